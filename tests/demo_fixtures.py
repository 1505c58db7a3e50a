"""The demo's console path on tiny configs, run once per test session and shared by the demo, card and local-zoo tests.

The tiny twins stand in for the demo recipes (a 4-class SyntheticShapes task, ``test_resnet``, a few SGD steps; the
LICO twin adds the real LICO alignment heads with a tiny random open_clip text tower) and are registered under the
demo's zoo names in a local zoo of their own. Import with ``from tests.demo_fixtures import demo_run  # noqa: F401``.
"""
from __future__ import annotations

import contextlib
import io
import os
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
NAMES = {'baseline': 'baseline-efficientnetlite0-clutteredfmnist', 'lico': 'lico-efficientnetlite0-clutteredfmnist'}
TINY_BASELINE = '''
_base_ = [{runtime!r}]
model = dict(type='ImageClassifier',
             backbone=dict(type='TimmBackbone', model_name='test_resnet', pretrained=False),
             head=dict(type='LinearClsHead', num_classes=4),
             data_preprocessor=dict(type='ClsDataPreprocessor', mean=[127.5] * 3, std=[127.5] * 3))
shapes = dict(type='SyntheticShapes', image_size=64, colours=('red', 'green'), shapes=('circle', 'square'))
train_dataloader = dict(batch_size=8, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=True),
                        dataset=dict(shapes, num_samples=24, split='train', pipeline=[dict(type='PackInputs')]))
test_dataloader = dict(batch_size=8, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
                       dataset=dict(shapes, num_samples=16, split='test', pipeline=[dict(type='PackInputs')]))
test_evaluator = dict(type='Accuracy', topk=(1, 2))
test_cfg = dict()
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9))
param_scheduler = [dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0, end=2)]
train_cfg = dict(by_epoch=True, max_epochs=1)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1, max_keep_ckpts=1))
'''
TINY_LICO = '''
_base_ = ['./tiny_baseline.py']
model = dict(
    text_branch=dict(type='LICOTextBranch', encoder=dict(type='OpenCLIPTextEncoder', model_name={clip!r},
                                                         pretrained=None),
                     prompt=dict(type='RolledPromptLearner', n_ctx=4)),
    alignment_heads=[dict(type='ManifoldAlignmentHead', weight=10.0), dict(type='OTAlignmentHead', weight=1.0)],
    alignment_defaults=dict(spatial_size=2 * 2),  # test_resnet at 64 px
)
'''
EXPLAIN = dict(explainers=['gradcam'], explain_subset=6,
               explain_metrics=[dict(type='Insertion', step=512), dict(type='Deletion', step=512),
                                dict(type='PointingGame', tolerance=4)])
_CACHE: dict[str, Any] = {}


@dataclass
class DemoRun:
    """What the tiny demo left: its printed console (stdout + stderr), results, work root and local zoo."""

    stdout: str
    stderr: str
    results: list[dict[str, Any]]
    work_root: Path
    zoo_dir: Path

    def result(self, name: str) -> dict[str, Any]:
        return next(r for r in self.results if r['name'] == name)


@contextlib.contextmanager
def local_zoo(folder: Path) -> Iterator[Path]:
    """``XZOO_CACHE`` pointed at ``folder`` inside the block (and for the processes started in it)."""
    old = os.environ.get('XZOO_CACHE')
    os.environ['XZOO_CACHE'] = str(folder)
    try:
        yield folder
    finally:
        if old is None:
            os.environ.pop('XZOO_CACHE', None)
        else:
            os.environ['XZOO_CACHE'] = old


def run_tiny_demo(root: Path, clip: str) -> DemoRun:
    from zoo.apis.demo import run_demo

    (root / 'tiny_baseline.py').write_text(textwrap.dedent(TINY_BASELINE.format(
        runtime=str(ROOT / 'configs/_base_/default_runtime.py'))))
    (root / 'tiny_lico.py').write_text(textwrap.dedent(TINY_LICO.format(clip=clip)))
    runs = [('baseline', str(root / 'tiny_baseline.py'), NAMES['baseline']),
            ('lico', str(root / 'tiny_lico.py'), NAMES['lico'])]
    out, err = io.StringIO(), io.StringIO()
    with local_zoo(root / 'zoo'), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        results = run_demo(str(root / 'work'), data_dir=None, runs=runs, explain=EXPLAIN)
    return DemoRun(out.getvalue(), err.getvalue(), results, root / 'work', root / 'zoo')


@pytest.fixture(scope='session')
def demo_run(tmp_path_factory: pytest.TempPathFactory, tiny_clip: str) -> DemoRun:
    """The tiny demo, run once per session (whichever test asks first)."""
    if 'run' not in _CACHE:
        _CACHE['run'] = run_tiny_demo(tmp_path_factory.mktemp('demo'), tiny_clip)
    return _CACHE['run']
