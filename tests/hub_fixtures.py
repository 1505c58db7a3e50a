"""Fixtures shared by the hub/zoo tests: a tiny model trained for a few steps, the fake Hub, an exported folder.

Import the fixtures into a test module with ``from tests.hub_fixtures import fake_hub, trained  # noqa: F401``.
The trained work_dir is made once per test session (cached here), whichever module asks first.
"""
from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from tests.fakehub import FakeHub

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ['red circle', 'red square', 'green circle', 'green square']
_CACHE: dict[str, Any] = {}


def _register_toy_alignment_head() -> None:
    from registry import HEADS

    @HEADS.register_module(force=True)
    class ToyAlignmentHead(nn.Module):
        """A training-only head with its own weights (stands in for LICO's alignment heads)."""

        def __init__(self, in_channels: int = 8, weight: float = 0.1) -> None:
            super().__init__()
            self.proj = nn.Linear(in_channels, 4)
            self.weight = weight

        def loss(self, feats: Any, labels: torch.Tensor, data_samples: list, **_: Any) -> dict[str, torch.Tensor]:
            return {'loss_align': self.weight * self.proj(feats.pooled).pow(2).mean()}


TINY_CONFIG = '''
_base_ = [{runtime!r}]
model = dict(
    type='ImageClassifier',
    backbone=dict(type='TimmBackbone', model_name='test_resnet', pretrained=False),
    head=dict(type='LinearClsHead', num_classes=4),
    data_preprocessor=dict(type='ClsDataPreprocessor', mean=[127.5, 127.5, 127.5], std=[64.0, 64.0, 64.0]),
    alignment_heads=[dict(type='ToyAlignmentHead', in_channels=96)],
)
shapes = dict(type='SyntheticShapes', image_size=40, colours=('red', 'green'), shapes=('circle', 'square'))
pipeline = [dict(type='Resize', size=(40, 40)), dict(type='CenterCrop', size=32), dict(type='PackInputs')]
train_dataloader = dict(batch_size=8, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=True),
                        dataset=dict(shapes, num_samples=16, split='train', pipeline=pipeline))
test_dataloader = dict(batch_size=8, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
                       dataset=dict(shapes, num_samples=8, split='test', pipeline=pipeline))
test_evaluator = dict(type='Accuracy', topk=(1,))
test_cfg = dict()
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9))
train_cfg = dict(by_epoch=False, max_iters=3)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(by_epoch=False, interval=3))
'''


def train_tiny(work_dir: Path) -> Path:
    """Train ``test_resnet`` (+ a toy alignment head) for 3 SGD steps with the real Runner; return work_dir."""
    from zoo.apis import train

    _register_toy_alignment_head()
    config = work_dir.parent / 'tiny_shapes.py'
    config.write_text(textwrap.dedent(TINY_CONFIG.format(runtime=str(ROOT / 'configs/_base_/default_runtime.py'))))
    train(str(config), work_dir=str(work_dir))
    return work_dir


@pytest.fixture(scope='session')
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A training work_dir (config dump, iter_3.pth, last_checkpoint) of the tiny model, made once."""
    if 'work_dir' not in _CACHE:
        _CACHE['work_dir'] = train_tiny(tmp_path_factory.mktemp('tiny') / 'work_dir')
    _register_toy_alignment_head()
    yield _CACHE['work_dir']
    from registry import HEADS
    HEADS._module_dict.pop('ToyAlignmentHead', None)  # the test-only head leaves the registry with the session


@pytest.fixture(scope='session')
def exported(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model exported (dry run) to a folder: config.json, model.safetensors, README.md."""
    if 'exported' not in _CACHE:
        from zoo.hub.publish import push_to_hub

        out = tmp_path_factory.mktemp('export') / 'tiny'
        push_to_hub(trained, 'xzoo-test/tiny-shapes', dry_run=out, metrics={'accuracy/top1': 50.0})
        _CACHE['exported'] = out
    return _CACHE['exported']


def copy_export(exported: Path, dest: Path) -> Path:
    """A writable copy of the exported folder (tests that damage files work on copies)."""
    import shutil

    return Path(shutil.copytree(exported, dest))


def probe_images() -> torch.Tensor:
    """Fixed uint8 images ``[4, 3, 32, 32]`` to compare model outputs."""
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (4, 3, 32, 32), generator=g, dtype=torch.uint8)


def logits(model: Any, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(model.data_preprocessor.normalize(images))


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """The loopback fake Hub (TEST DOUBLE, tests/fakehub.py) with huggingface_hub pointed at it.

    CI exports HF_HUB_OFFLINE=1, which huggingface_hub reads at import, so its constants are patched here.
    """
    from huggingface_hub import constants

    hub = FakeHub().start()
    monkeypatch.setenv('HF_TOKEN', 'hf_fake_token_for_tests')
    monkeypatch.setattr(constants, 'ENDPOINT', hub.endpoint)
    monkeypatch.setattr(constants, 'HUGGINGFACE_CO_URL_TEMPLATE',
                        hub.endpoint + '/{repo_id}/resolve/{revision}/{filename}')
    monkeypatch.setattr(constants, 'HF_HUB_CACHE', str(tmp_path / 'hf-cache'))
    monkeypatch.setattr(constants, 'HF_HUB_OFFLINE', False)
    yield hub
    hub.stop()
