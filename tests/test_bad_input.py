"""Bad input, table-driven: every case gives one actionable line on stderr, exit code 2, and leaves nothing behind.

"Nothing behind": no checkpoint, no ``last_checkpoint``, no metrics file (``--out``), no PNG and no ``*.partial-*``
file anywhere under the test's folder, and every file that was there before is unchanged. The cases run the
``main`` of ``tools/train.py``, ``test.py``, ``explain.py``, ``list_models.py`` and ``push_to_hub.py`` in process
(see ``tests/test_tools.py`` for five more, and a real subprocess); a few at the end run real processes. Bad input
to the Python API (one-line errors) is the second table, ``API_CASES``.
"""
from __future__ import annotations

import copy
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

from zoo.cli import run_cli

from .conftest import ROOT, load_tool, make_fake_cub, run_tool, visible_lines

TOOLS = {name: load_tool(name) for name in ('train', 'test', 'explain', 'list_models', 'push_to_hub')}
CUB = str(ROOT / 'configs' / 'resnet50_baseline_cub.py')

TINY = dict(
    default_scope='zoo',
    model=dict(type='ImageClassifier', backbone=dict(type='TimmBackbone', model_name='test_resnet'),
               head=dict(type='LinearClsHead', num_classes=9, dropout=0.1),
               data_preprocessor=dict(type='ClsDataPreprocessor', mean=[127.5] * 3, std=[127.5] * 3)),
    train_dataloader=dict(batch_size=4, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=True),
                          dataset=dict(type='SyntheticShapes', num_samples=8, image_size=32,
                                       pipeline=[dict(type='RandomHorizontalFlip', p=0.5),
                                                 dict(type='PackInputs')])),
    val_dataloader=dict(batch_size=4, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
                        dataset=dict(type='SyntheticShapes', num_samples=4, image_size=32, split='test')),
    val_evaluator=dict(type='Accuracy', topk=(1,)),
    test_dataloader=dict(batch_size=4, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
                         dataset=dict(type='SyntheticShapes', num_samples=4, image_size=32, split='test')),
    test_evaluator=dict(type='Accuracy', topk=(1,)),
    optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01)),
    param_scheduler=[dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=2)],
    train_cfg=dict(by_epoch=True, max_epochs=1, val_interval=1),
    val_cfg=dict(),
    test_cfg=dict(),
    default_hooks=dict(checkpoint=dict(type='AtomicCheckpointHook', interval=1),
                       logger=dict(type='LoggerHook', interval=1)),
    custom_hooks=[dict(type='ClassNamesHook')],
    randomness=dict(seed=0),
)


@dataclass
class Ctx:
    """Paths a case builds its command line from."""

    tmp: Path
    tiny: str = ''
    work: str = ''
    cub: Path = field(default_factory=Path)

    def cub_options(self, *extra: str, workers: int = 0) -> list[str]:
        opts = ['model.backbone.pretrained=False', 'model.backbone.model_name=test_resnet',
                'train_dataloader.batch_size=4', 'train_cfg.max_epochs=1', 'model.head.num_classes=200',
                # 2 training images per class: hold out 1 of them as the validation split (default 10 %: none)
                '+train_dataloader.dataset.val_fraction=0.5', '+val_dataloader.dataset.val_fraction=0.5']
        for split in ('train', 'val', 'test'):  # 448-px crops of 510-px images -> 32 of 40: fast
            opts += [f'{split}_dataloader.dataset.data_root={self.cub}', f'{split}_dataloader.num_workers={workers}',
                     f'{split}_dataloader.dataset.pipeline.0.size=[40,40]',
                     f'{split}_dataloader.dataset.pipeline.1.size=32']
        return opts + list(extra)


def _tiny_checkpoint(ctx: Ctx, name: str, optimizer: str = 'AdamW', **model_changes) -> str:
    """A checkpoint as mmengine writes it, without training: the tiny model (changed) + an optimizer state."""
    from registry import MODELS

    cfg = Config(TINY)
    cfg.merge_from_dict({f'model.{k}': v for k, v in model_changes.items()})
    model = MODELS.build(cfg.model)
    opt = getattr(torch.optim, optimizer)(model.parameters(), lr=0.01)
    path = ctx.tmp / name
    torch.save({'meta': {'epoch': 1, 'iter': 2}, 'state_dict': model.state_dict(), 'optimizer': opt.state_dict(),
                'message_hub': {}}, path)
    return str(path)


def _cub_train_image(ctx: Ctx, k: int = 0) -> Path:
    """The k-th image of the training split of cub_options() (the validation split holds out half the images)."""
    from zoo.datasets.cub import CUB200

    return Path(CUB200(str(ctx.cub), split='train', val_fraction=0.5).get_data_info(k)['img_path'])


def _truncate_image(ctx: Ctx) -> Path:
    path = _cub_train_image(ctx, 0)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 3])
    return path


def _not_an_image(ctx: Ctx) -> Path:
    path = _cub_train_image(ctx, 1)
    path.write_text('this is not a JPEG')
    return path


# (id, tool, argv(ctx), fragments that must be in the message (may use {placeholders} from setup), setup(ctx))
Argv = Callable[[Ctx], list[str]]
CASES: list[tuple[str, str, Argv, tuple[str, ...]]] = [
    # --- the config file ---
    ('config-missing', 'train', lambda c: [str(c.tmp / 'nope.py')], ('does not exist', 'configs/')),
    ('config-syntax-error', 'train', lambda c: [_write(c, 'bad.py', 'model = dict(type=\n')], ('syntax error',)),
    ('config-raises', 'train', lambda c: [_write(c, 'bad.py', 'x = undefined_name\n')],
     ('failed to load', 'NameError')),
    ('config-without-model', 'train', lambda c: [_write(c, 'bad.py', 'default_scope = "zoo"\n')], ('no `model`',)),
    ('test-config-without-test-set', 'test',
     lambda c: [_write(c, 'bad.py', 'model = dict(type="ImageClassifier")\n'), c.tiny], ('no test_dataloader',)),
    # --- malformed --cfg-options ---
    ('option-without-equals', 'train', lambda c: [c.tiny, '--cfg-options', 'model.head.num_classes'],
     ('KEY=VALUE',)),
    ('option-bad-key', 'train', lambda c: [c.tiny, '--cfg-options', 'model..head=1'], ('not a valid key',)),
    ('option-unbalanced-brackets', 'train', lambda c: [c.tiny, '--cfg-options', 'custom_hooks=[1,2'],
     ('cannot parse value',)),
    ('option-index-out-of-range', 'train', lambda c: [c.tiny, '--cfg-options', 'custom_hooks.5.type=X'],
     ('is a list of 1 items',)),
    ('option-into-a-scalar', 'train', lambda c: [c.tiny, '--cfg-options', 'model.head.num_classes.x=1'],
     ('is an int', 'Replace the whole value')),
    ('option-typo', 'train', lambda c: [c.tiny, '--cfg-options', 'optim_wrapper.optimizer.lrr=0.1'],
     ("Did you mean 'lr'?",)),
    # --- unknown `type` ---
    ('unknown-dataset', 'train', lambda c: [c.tiny, '--cfg-options', 'train_dataloader.dataset.type=SyntheticShape'],
     ("DATASETS has no 'SyntheticShape'", "Did you mean 'SyntheticShapes'?")),
    ('unknown-backbone', 'train', lambda c: [c.tiny, '--cfg-options', 'model.backbone.type=TimBackbone'],
     ("BACKBONES has no 'TimBackbone'", "'TimmBackbone'")),
    ('unknown-timm-model', 'train', lambda c: [c.tiny, '--cfg-options', 'model.backbone.model_name=resnet5O'],
     ("timm has no model 'resnet5O'",)),
    ('unknown-optimizer', 'train', lambda c: [c.tiny, '--cfg-options', 'optim_wrapper.optimizer.type=AdamWW'],
     ("OPTIMIZERS has no 'AdamWW'", "'AdamW'")),
    ('unknown-scheduler', 'train', lambda c: [c.tiny, '--cfg-options', 'param_scheduler.0.type=LinerLR'],
     ("PARAM_SCHEDULERS has no 'LinerLR'", "'LinearLR'")),
    ('unknown-hook', 'train', lambda c: [c.tiny, '--cfg-options', 'custom_hooks.0.type=ClassNameHook'],
     ("HOOKS has no 'ClassNameHook'", "'ClassNamesHook'")),
    ('unknown-transform', 'train',
     lambda c: [c.tiny, '--cfg-options', 'train_dataloader.dataset.pipeline.0.type=RandomHorizontalFlop'],
     ("TRANSFORMS has no 'RandomHorizontalFlop'", "'RandomHorizontalFlip'")),
    ('unknown-sampler', 'train', lambda c: [c.tiny, '--cfg-options', 'train_dataloader.sampler.type=DefaultSample'],
     ("DATA_SAMPLERS has no 'DefaultSample'", "'DefaultSampler'")),
    ('unknown-metric', 'train', lambda c: [c.tiny, '--cfg-options', 'val_evaluator.type=Accurracy'],
     ("METRICS has no 'Accurracy'", "'Accuracy'")),
    # --- unknown or missing arguments ---
    ('head-unknown-argument', 'train', lambda c: [c.tiny, '--cfg-options', '+model.head.num_clases=3'],
     ("'LinearClsHead' got unknown argument 'num_clases'", "'num_classes'")),
    ('dataset-unknown-argument', 'train',
     lambda c: [c.tiny, '--cfg-options', '+train_dataloader.dataset.imagesize=32'],
     ("'SyntheticShapes' got unknown argument 'imagesize'", "'image_size'")),
    ('optimizer-unknown-argument', 'train',
     lambda c: [c.tiny, '--cfg-options', '+optim_wrapper.optimizer.weight_decy=0.1'],
     ("'AdamW' got unknown argument 'weight_decy'", "'weight_decay'")),
    ('hook-unknown-argument', 'train', lambda c: [c.tiny, '--cfg-options', '+default_hooks.checkpoint.intreval=1'],
     ("'AtomicCheckpointHook' got unknown argument 'intreval'", "'interval'")),
    ('train-cfg-unknown-argument', 'train', lambda c: [c.tiny, '--cfg-options', '+train_cfg.max_epoch=3'],
     ("got unknown argument 'max_epoch'", "'max_epochs'")),
    ('head-missing-argument', 'train', lambda c: [_write_tiny(c, 'nohead.py', head=dict(type='LinearClsHead'))],
     ("needs argument 'num_classes'",)),
    # --- wrong value types ---
    ('num-classes-string', 'train', lambda c: [c.tiny, '--cfg-options', 'model.head.num_classes=ten'],
     ('model.head.num_classes', "'ten'")),
    ('batch-size-string', 'train', lambda c: [c.tiny, '--cfg-options', 'train_dataloader.batch_size=four'],
     ('train_dataloader.batch_size', 'positive integer')),
    ('batch-size-zero', 'train', lambda c: [c.tiny, '--cfg-options', 'train_dataloader.batch_size=0'],
     ('train_dataloader.batch_size', 'positive integer')),
    ('num-workers-negative', 'train', lambda c: [c.tiny, '--cfg-options', 'train_dataloader.num_workers=-1'],
     ('train_dataloader.num_workers', '0 or more')),
    ('lr-string', 'train', lambda c: [c.tiny, '--cfg-options', 'optim_wrapper.optimizer.lr=fast'],
     ('optim_wrapper.optimizer.lr', "'fast'")),
    ('max-epochs-float', 'train', lambda c: [c.tiny, '--cfg-options', 'train_cfg.max_epochs=1.5'],
     ('train_cfg.max_epochs', '1.5')),
    ('model-name-int', 'train', lambda c: [c.tiny, '--cfg-options', 'model.backbone.model_name=123'],
     ('model.backbone.model_name', '123')),
    ('dropout-string', 'train', lambda c: [c.tiny, '--cfg-options', 'model.head.dropout=high'],
     ('model.head.dropout', "'high'")),
    ('seed-string', 'train', lambda c: [c.tiny, '--cfg-options', 'randomness.seed=abc'],
     ('randomness.seed', "'abc'")),
    ('num-samples-string', 'train', lambda c: [c.tiny, '--cfg-options', 'train_dataloader.dataset.num_samples=many'],
     ('train_dataloader.dataset.num_samples', "'many'")),
    # --- values a component rejects (caught while it is built from the config) ---
    ('dropout-out-of-range', 'train', lambda c: [c.tiny, '--cfg-options', 'model.head.dropout=2.0'],
     ('LinearClsHead rejected a value', 'dropout probability')),
    ('lr-negative', 'train', lambda c: [c.tiny, '--cfg-options', 'optim_wrapper.optimizer.lr=-1'],
     ('AdamW rejected a value', 'learning rate')),
    ('scheduler-end-before-begin', 'train', lambda c: [c.tiny, '--cfg-options', 'param_scheduler.0.end=0'],
     ('LinearLR rejected a value', 'end')),
    ('val-interval-zero', 'train', lambda c: [c.tiny, '--cfg-options', 'train_cfg.val_interval=0'],
     ('train_cfg.val_interval must be a positive integer',)),
    ('image-size-too-small', 'train', lambda c: [c.tiny, '--cfg-options', 'train_dataloader.dataset.image_size=1'],
     ('SyntheticShapes: cannot load', 'Check the dataset settings')),
    ('class-count-mismatch', 'train', lambda c: [c.tiny, '--cfg-options', 'model.head.num_classes=5'],
     ('dataset has 9 classes but the model head predicts 5', 'model.head.num_classes=9')),
    # --- data ---
    ('cub-data-root-empty', 'train', lambda c: [CUB, '--work-dir', c.work, '--cfg-options',
                                                *c.cub_options(f'train_dataloader.dataset.data_root={_empty(c)}')],
     ('classes.txt', 'is missing')),
    ('cub-data-root-empty-string', 'train', lambda c: [CUB, '--work-dir', c.work, '--cfg-options',
                                                       *c.cub_options('train_dataloader.dataset.data_root=""')],
     ('data_root', 'does not exist')),
    ('cub-data-root-is-a-file', 'train', lambda c: [CUB, '--work-dir', c.work, '--cfg-options',
                                                    *c.cub_options(f'train_dataloader.dataset.data_root={c.tiny}')],
     ('data_root', 'is a file', 'CUB_200_2011 folder')),
    ('cub-image-missing', 'train', lambda c: [_gone(_cub_train_image(c, 0)), CUB, '--work-dir', c.work,
                                              '--cfg-options', *c.cub_options()][1:],
     ('does not exist', '.jpg')),
    ('cub-image-truncated', 'train', lambda c: [CUB, '--work-dir', c.work, '--cfg-options', *c.cub_options()],
     ('Cannot read image', 'truncated')),
    ('cub-not-an-image-in-worker', 'train',
     lambda c: [CUB, '--work-dir', c.work, '--cfg-options', *c.cub_options(workers=1)],
     ('Cannot read image', 'not an image')),
    ('cub-crop-larger-than-images', 'train', lambda c: [CUB, '--work-dir', c.work, '--cfg-options',
                                                        *c.cub_options('train_dataloader.dataset.pipeline.1.size=64')],
     ('transform RandomCrop', 'is larger than input image size', '.jpg', 'Check the pipeline settings')),
    # --- checkpoints ---
    ('resume-truncated', 'train', lambda c: [c.tiny, '--resume', _truncated_ckpt(c)], ('incomplete',)),
    ('resume-other-architecture', 'train',
     lambda c: [c.tiny, '--resume', _tiny_checkpoint(c, 'other.pth', **{'backbone.model_name': 'test_convnext'})],
     ('does not fit this model', 'other.pth')),
    ('resume-other-class-count', 'train',
     lambda c: [c.tiny, '--resume', _tiny_checkpoint(c, 'five.pth', **{'head.num_classes': 5})],
     ('does not fit this model', 'shape mismatch', 'head.fc')),
    ('resume-other-optimizer', 'train', lambda c: [c.tiny, '--resume', _tiny_checkpoint(c, 'sgd.pth', 'SGD')],
     ('another optimizer', 'load_from')),
    ('test-checkpoint-missing', 'test', lambda c: [c.tiny, str(c.tmp / 'none.pth')], ('does not exist',)),
    ('test-checkpoint-truncated', 'test', lambda c: [c.tiny, _truncated_ckpt(c)], ('truncated',)),
    ('test-checkpoint-not-a-checkpoint', 'test', lambda c: [c.tiny, _write(c, 'notes.pth', 'hello')],
     ('not a torch checkpoint',)),
    ('test-safetensors-corrupt', 'test', lambda c: [c.tiny, _write(c, 'w.safetensors', 'garbage')],
     ('not a valid safetensors file',)),
    ('backbone-weights-missing', 'train',
     lambda c: [c.tiny, '--cfg-options', f'+model.backbone.pretrained={c.tmp / "none.safetensors"}'],
     ('Backbone weights file', 'does not exist')),
    # --- launcher / hardware ---
    ('launcher-without-torchrun', 'train', lambda c: [c.tiny, '--launcher', 'pytorch'], ('torchrun',)),
    ('amp-without-gpu', 'train', lambda c: [c.tiny, '--amp'], ('needs a CUDA GPU',)),
    # --- work dirs and outputs ---
    ('work-dir-is-a-file', 'train', lambda c: [c.tiny, '--work-dir', _write(c, 'afile', 'keep')],
     ('is a file, not a folder',)),
    ('work-dir-under-a-file', 'train', lambda c: [c.tiny, '--work-dir', str(Path(_write(c, 'afile', 'x')) / 'w')],
     ('a part of the path is a file',)),
    ('test-out-is-a-folder', 'test', lambda c: [c.tiny, _tiny_checkpoint(c, 'other.pth'), '--out', _empty(c)],
     ('--out', 'is a folder')),
    ('test-out-under-a-file', 'test',
     lambda c: [c.tiny, _tiny_checkpoint(c, 'other.pth'), '--out', str(Path(_write(c, 'afile', 'x')) / 'm.json')],
     ('--out', 'is a file, so no folder can be made')),
    ('test-explain-dir-is-a-file', 'test',
     lambda c: [c.tiny, _tiny_checkpoint(c, 'other.pth'), '--explainers', 'gradcam', '--explain-dir',
                _write(c, 'afile', 'x')], ('--explain-dir', 'is a file')),
    ('resume-zip-holding-a-list', 'train', lambda c: [c.tiny, '--resume', 'auto', '--work-dir', _list_ckpt(c)],
     ('holds a list, not a checkpoint',)),
    ('resume-path-is-a-folder', 'train', lambda c: [c.tiny, '--resume', _dir_ckpt(c)], ('is a folder',)),
    ('resume-auto-newest-is-a-folder', 'train',
     lambda c: [c.tiny, '--resume', 'auto', '--work-dir', str(Path(_dir_ckpt(c)).parent)],
     ('is a folder, not a checkpoint',)),
    ('option-key-3000-parts', 'train', lambda c: [c.tiny, '--cfg-options', '+' + '.'.join(['a'] * 3000) + '=1'],
     ('3000 dotted parts', 'at most 64')),
    ('option-key-10e6-characters', 'train', lambda c: [c.tiny, '--cfg-options', 'x' * 10 ** 6 + '=1'],
     ('(1000000 characters)',)),
    ('lr-inf-diverges', 'train', lambda c: [c.tiny, '--cfg-options', 'optim_wrapper.optimizer.lr=inf'],
     ('the loss is not finite', 'default_hooks.nonfinite_loss=None')),
    # --- tools/explain.py ---
    ('explain-batch-size-0', 'explain', lambda c: [*_explain(c), '--batch-size', '0'], ('--batch-size',)),
    ('explain-size-0', 'explain', lambda c: [*_explain(c), '--size', '0'], ('--size', 'between 1 and 8192')),
    ('explain-size-negative', 'explain', lambda c: [*_explain(c), '--size', '-5'], ('--size',)),
    ('explain-size-100000', 'explain', lambda c: [*_explain(c), '--size', '100000'], ('--size',)),
    ('explain-900-megapixel-png', 'explain', lambda c: _explain(c, _bomb_png(c)),
     ('Cannot read image', '900000000 pixels')),
    ('explain-out-is-a-file', 'explain', lambda c: _explain(c, out=_write(c, 'afile', 'keep')),
     ('--out', 'is a file, not a folder')),
    ('explain-device-meta', 'explain', lambda c: [*_explain(c), '--device', 'meta'], ("'meta' holds no data",)),
    ('explain-device-cuda-7', 'explain', lambda c: [*_explain(c), '--device', 'cuda:7'], ("'cuda:7'",)),
    ('explain-device-nonsense', 'explain', lambda c: [*_explain(c), '--device', 'gpu0'], ('is not a torch device',)),
    ('explain-method-unknown', 'explain', lambda c: [*_explain(c), '--method', 'gradcma'],
     ("No explainer 'gradcma'", "'gradcam'")),
    # --- tools/list_models.py, tools/push_to_hub.py ---
    ('list-models-index-is-a-folder', 'list_models', lambda c: ['--index', _empty(c)], ('is a folder',)),
    ('list-models-index-outside-config', 'list_models',
     lambda c: ['--index', _write(c, 'index.json', '{"models": [{"name": "m", "config": "../x.json"}]}')],
     ('inside the index',)),
    ('push-to-hub-offline', 'push_to_hub', lambda c: [_tiny_checkpoint(c, 'other.pth'), '--repo-id', 'me/x'],
     ('offline mode is on',)),
]


def _write(ctx: Ctx, name: str, text: str) -> str:
    path = ctx.tmp / name
    path.write_text(text)
    return str(path)


def _write_tiny(ctx: Ctx, name: str, **model_changes) -> str:
    cfg = copy.deepcopy(TINY)
    cfg['model'].update(model_changes)
    path = ctx.tmp / name
    Config(cfg).dump(str(path))
    return str(path)


def _empty(ctx: Ctx) -> str:
    folder = ctx.tmp / 'empty'
    folder.mkdir(exist_ok=True)
    return str(folder)


def _gone(path: Path) -> str:
    path.unlink()
    return str(path)


def _list_ckpt(ctx: Ctx) -> str:
    """A work dir whose newest checkpoint is a valid torch zip holding a list."""
    work = ctx.tmp / 'listed'
    work.mkdir()
    torch.save([1, 2, 3], work / 'epoch_2.pth')
    (work / 'last_checkpoint').write_text(str(work / 'epoch_2.pth'))
    return str(work)


def _dir_ckpt(ctx: Ctx) -> str:
    """A work dir whose newest 'checkpoint' is a folder."""
    work = ctx.tmp / 'dirs'
    (work / 'epoch_2.pth').mkdir(parents=True)
    (work / 'last_checkpoint').write_text(str(work / 'epoch_2.pth'))
    return str(work / 'epoch_2.pth')


def _image(ctx: Ctx) -> str:
    path = ctx.tmp / 'red.png'
    if not path.exists():
        Image.new('RGB', (40, 30), 'red').save(path)
    return str(path)


def _explain(ctx: Ctx, image: str | None = None, out: str | None = None) -> list[str]:
    return [ctx.tiny, 'none', image or _image(ctx), '--out', out or str(ctx.tmp / 'maps'), '--no-progress']


def _bomb_png(ctx: Ctx) -> str:
    """A PNG whose header says 30000 x 30000 pixels (900 Mpx); PIL refuses it from the header alone."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff)

    path = ctx.tmp / 'bomb.png'
    path.write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', 30000, 30000, 8, 0, 0, 0, 0)) +
                     chunk(b'IDAT', zlib.compress(b'\0' * 100)) + chunk(b'IEND', b''))
    return str(path)


def _truncated_ckpt(ctx: Ctx) -> str:
    path = Path(_tiny_checkpoint(ctx, 'cut.pth'))
    path.write_bytes(path.read_bytes()[:2000])
    return str(path)


SETUP = {'cub-image-truncated': _truncate_image, 'cub-not-an-image-in-worker': _not_an_image}
# refused before any work: no Runner was built (its work dir and log folder do not exist), no model was loaded
BEFORE_ANY_WORK = {'test-out-is-a-folder', 'test-out-under-a-file', 'test-explain-dir-is-a-file',
                   *(name for name, *_ in CASES if name.startswith('explain-') and name != 'explain-method-unknown')}
CUB_CASES = {name for name, *_ in CASES if name.startswith('cub-')}


@pytest.fixture(autouse=True)
def _fresh_mmengine_loggers():
    """mmengine keeps loggers (and their handlers on the captured streams of earlier tests) between runs."""
    yield
    from mmengine.logging import MMLogger

    for logger in list(MMLogger._instance_dict.values()):
        for handler in list(logger.handlers):
            handler.close()
            logger.removeHandler(handler)
    MMLogger._instance_dict.clear()


@pytest.fixture
def ctx(tmp_path: Path, request) -> Ctx:
    c = Ctx(tmp=tmp_path, work=str(tmp_path / 'work'))
    cfg = Config(TINY)
    cfg.dump(str(tmp_path / 'tiny.py'))
    c.tiny = str(tmp_path / 'tiny.py')
    if request.node.callspec.params['case'][0] in CUB_CASES:
        c.cub = make_fake_cub(tmp_path / 'CUB_200_2011', classes_with_images=2, per_class=4, size=(40, 48),
                              with_segmentations=False)
    return c


def _nothing_written(root: Path, before: dict[Path, tuple[int, int] | None] | None = None) -> list[str]:
    """New checkpoints, pointers, JSON, PNGs or partial files under ``root``, and files of ``before`` that changed."""
    before = before or {}
    new = [str(p) for p in root.rglob('*') if p not in before and (
        p.suffix in ('.pth', '.json', '.png') and p.parent.name != 'vis_data'
        and p.name not in ('other.pth', 'five.pth', 'sgd.pth', 'cut.pth', 'notes.pth')
        or p.name == 'last_checkpoint' or '.partial-' in p.name)]
    changed = [f'{p} (changed)' for p, stat in before.items() if _stat(p) != stat]
    return new + changed


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns) if path.is_file() else (0, 0)


def _snapshot(root: Path) -> dict[Path, tuple[int, int] | None]:
    return {p: _stat(p) for p in root.rglob('*')}


def test_the_table_has_at_least_30_cases():
    assert len(CASES) >= 30 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize('case', CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_nothing_written(case, ctx, capsys):
    name, tool, argv, fragments = case
    if name in SETUP:
        SETUP[name](ctx)
    args = argv(ctx)
    if tool in ('train', 'test') and '--work-dir' not in args:
        args += ['--work-dir', ctx.work]
    if tool == 'test' and '--out' not in args:
        args += ['--out', str(ctx.tmp / 'metrics.json')]
    before = _snapshot(ctx.tmp)
    with pytest.raises(SystemExit) as info:
        run_cli(TOOLS[tool].main, args)
    err = '\n'.join(visible_lines(capsys.readouterr().err)).strip()  # as a terminal shows it
    assert info.value.code == 2, err
    assert err.startswith('error: ') and '\n' not in err and 'Traceback' not in err, err
    assert len(err) < 2500, err[:300]  # a message never echoes a huge input
    for fragment in fragments:
        assert fragment in err, err
    assert not _nothing_written(ctx.tmp, before), _nothing_written(ctx.tmp, before)
    if name in BEFORE_ANY_WORK:
        assert not Path(ctx.work).exists() and not (ctx.tmp / 'maps').exists()


def test_non_rgb_images_are_converted_and_train(tmp_path, capsys):
    """Greyscale, palette, RGBA, CMYK and 16-bit images in a dataset are converted to RGB (documented)."""
    root = make_fake_cub(tmp_path / 'CUB_200_2011', classes_with_images=2, per_class=4, size=(40, 48),
                         with_segmentations=False)
    lines = [ln.split(' ', 1)[1] for ln in (root / 'images.txt').read_text().split('\n') if ln]
    for rel, mode in zip(lines, ['L', 'P', 'RGBA', 'CMYK', 'I;16', 'LA', '1', 'I']):
        path = root / 'images' / rel
        img = Image.open(path).convert('RGB')
        img = img.convert('L').convert('I;16') if mode == 'I;16' else img.convert(mode)
        img.save(path.with_suffix('.tif') if mode in ('I;16', 'I', 'CMYK', 'LA') else path.with_suffix('.png'))
        path.unlink()
        new = path.with_suffix('.tif' if mode in ('I;16', 'I', 'CMYK', 'LA') else '.png')
        text = (root / 'images.txt').read_text().replace(rel, str(new.relative_to(root / 'images')))
        (root / 'images.txt').write_text(text)
    c = Ctx(tmp=tmp_path, cub=root)
    run_cli(TOOLS['train'].main, [CUB, '--work-dir', str(tmp_path / 'work'), '--cfg-options', *c.cub_options()])
    assert (tmp_path / 'work' / 'epoch_1.pth').is_file()


def test_bad_input_in_a_real_process(tmp_path):
    """The same promises from a real process, for the hardest path: a data error raised in a DataLoader worker."""
    root = make_fake_cub(tmp_path / 'CUB_200_2011', classes_with_images=2, per_class=4, size=(40, 48),
                         with_segmentations=False)
    bad = _truncate_image(Ctx(tmp=tmp_path, cub=root))
    out = run_tool('tools/train.py', CUB, '--work-dir', str(tmp_path / 'work'), '--cfg-options',
                   *Ctx(tmp=tmp_path, cub=root).cub_options(workers=2))
    assert out.returncode == 2, out.stderr[-3000:]
    err = out.stderr.strip().splitlines()
    assert err[-1].startswith('error: Cannot read image') and str(bad) in err[-1], err[-3:]
    assert 'Traceback' not in out.stderr
    assert not _nothing_written(tmp_path)


# --- the Python API: the same promise (one line, an xzoo error), no tool in between -------------------------------
def _api_model(names: list[str] | None = ('cat', 'dog')) -> torch.nn.Module:
    from registry import MODELS

    return MODELS.build(dict(type='ImageClassifier', class_names=list(names) if names else None,
                             backbone=dict(type='TimmBackbone', model_name='test_resnet'),
                             head=dict(type='LinearClsHead', num_classes=2)))


def _metric(name: str, model: torch.nn.Module | None, n: int = 2, **kw):
    from zoo.metrics import build_explanation_metric

    return build_explanation_metric(name)(model, torch.rand(n, 3, 16, 16), torch.rand(n, 16, 16), **kw)


def _preprocessing(**kw):
    from zoo.models.contract import Preprocessing

    return Preprocessing(**kw)


def _export_preprocessing(**kw):
    from zoo.models.contract import Preprocessing
    from zoo.models.serialization import check_preprocessing

    return check_preprocessing(Preprocessing, {'input_size': [3, 32, 32], 'mean': [0.5] * 3, 'std': [0.5] * 3,
                                               **kw}, 'config.json')


X = torch.rand(2, 3, 32, 32)
API_CASES = [
    ('targets-fractions', lambda m: m.explain(X, targets=[0.5, 1.2]), 'a fraction'),
    ('targets-unknown-name', lambda m: m.explain(X, targets='cow'), "'cow'"),
    ('targets-name-without-class-names', lambda m: _api_model(None).explain(X, targets='cat'), 'class names'),
    ('meta-device-model', lambda m: _api_model().to('meta').explain(X), "'meta' device"),
    ('meta-device-classify', lambda m: _api_model().to('meta').classify(X), "'meta' device"),
    ('insertion-empty-batch', lambda m: _metric('insertion', m, n=0), 'the batch is empty'),
    ('pointing-game-masks-0-255-floats',
     lambda m: _metric('pointing_game', None, masks=torch.full((2, 16, 16), 255.0)), 'float masks must hold values in'),
    ('pointing-game-masks-nan', lambda m: _metric('pointing_game', None, masks=torch.full((2, 16, 16), float('nan'))),
     'float masks must hold values in'),
    ('preprocessing-std-zero', lambda m: _preprocessing(std=(0.0, 0.0, 0.0)), 'positive std'),
    ('preprocessing-mean-nan', lambda m: _preprocessing(mean=(float('nan'), 0.5, 0.5)), 'finite mean'),
    ('export-preprocessing-std-zero', lambda m: _export_preprocessing(std=[0, 0, 0]), 'std must be positive'),
    ('export-preprocessing-mean-nan', lambda m: _export_preprocessing(mean=[float('nan')] * 3), 'finite numbers'),
    ('load-images-size-100000', lambda m: m.load_images([np.zeros((8, 8, 3), np.uint8)], size=100_000),
     'between 1 and 8192'),
    ('explainer-name-10e6-characters', lambda m: m.explain(X, method='x' * 10 ** 6), '(1000000 characters)'),
    ('registry-name-10e6-characters', lambda m: __import__('registry').MODELS.get('y' * 10 ** 6),
     '(1000000 characters)'),
    ('zoo-load-name-10e6-characters', lambda m: __import__('zoo').load('z' * 10 ** 6), '(1000000 characters)'),
    ('zoo-load-device-meta', lambda m: __import__('zoo').load('baseline-resnet50-cub', pretrained=False,
                                                            device='meta'), "'meta' holds no data"),
    ('init-model-device-cuda-7', lambda m: __import__('zoo.apis', fromlist=['init_model']).init_model(
        Config(TINY), None, device='cuda:7'), "'cuda:7'"),
]


@pytest.fixture(scope='module')
def api_model() -> torch.nn.Module:
    return _api_model()


@pytest.mark.parametrize('case', API_CASES, ids=[c[0] for c in API_CASES])
def test_python_api_bad_input_is_one_line(case, api_model):
    from registry.errors import XZooError

    name, call, fragment = case
    with pytest.raises(XZooError) as info:
        call(api_model)
    text = str(info.value)
    assert fragment in text and '\n' not in text and len(text) < 2500, text[:400]


def test_float_masks_are_thresholded_not_read_as_nonzero():
    """A soft mask of 0.1 everywhere holds no object (not "all true"); 0/1 floats equal bool masks."""
    from zoo.metrics import build_explanation_metric

    pg = build_explanation_metric('pointing_game', tolerance=0)
    maps = torch.zeros(2, 8, 8)
    maps[:, 0, 0] = 1.0  # the peak lies outside the object
    hard = torch.zeros(2, 8, 8, dtype=torch.bool)
    hard[:, 4:, 4:] = True
    images = torch.zeros(2, 3, 8, 8)
    as_bool = pg(None, images, maps, targets=0, masks=hard)
    as_float = pg(None, images, maps, targets=0, masks=hard.float())
    assert torch.equal(as_bool.per_sample, as_float.per_sample) and as_bool.aggregate == 0.0
    soft = torch.full((2, 8, 8), 0.1)
    assert pg(None, images, maps, targets=0, masks=soft).n_excluded == 2  # no object: excluded, not a hit


@pytest.mark.parametrize('code,message', [(28, 'the disk is full'), (30, 'the file system is read-only')])
@pytest.mark.parametrize('where', ['makedirs', 'open'])
def test_full_or_read_only_disk_is_one_line(tmp_path, capsys, monkeypatch, code, message, where):
    """ENOSPC / EROFS when the work dir is created or its first file (the run's lock) is opened."""
    import errno

    from zoo.core import fileio

    work = tmp_path / 'work'
    config = tmp_path / 'tiny.py'
    Config(TINY).dump(str(config))
    real = {'makedirs': os.makedirs, 'open': open}

    def failing(path, *args, **kwargs):
        if str(path).startswith(str(work)):
            raise OSError(code, os.strerror(code), str(path))
        return real[where](path, *args, **kwargs)

    assert errno.ENOSPC == 28 and errno.EROFS == 30
    if where == 'makedirs':
        monkeypatch.setattr(os, 'makedirs', failing)
    else:
        work.mkdir()
        monkeypatch.setattr(fileio, 'open', failing, raising=False)
    with pytest.raises(SystemExit) as info:
        run_cli(TOOLS['train'].main, [str(config), '--work-dir', str(work)])
    err = '\n'.join(visible_lines(capsys.readouterr().err)).strip()  # as a terminal shows it
    assert info.value.code == 2 and err.startswith('error: Cannot write') and message in err and '\n' not in err, err
    assert not _nothing_written(tmp_path, {config: _stat(config)})


def test_push_to_hub_with_the_endpoint_down(tmp_path, capsys, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setenv('HF_TOKEN', 'hf_fake_token_for_tests')
    monkeypatch.setattr(constants, 'ENDPOINT', 'http://127.0.0.1:9')  # nothing listens on the discard port
    monkeypatch.setattr(constants, 'HF_HUB_OFFLINE', False)
    ctx = Ctx(tmp=tmp_path)
    Config(TINY).dump(str(tmp_path / 'tiny.py'))
    ckpt = _tiny_checkpoint(ctx, 'other.pth')
    before = _snapshot(tmp_path)
    with pytest.raises(SystemExit) as info:
        run_cli(TOOLS['push_to_hub'].main, [ckpt, '--repo-id', 'me/x'])
    err = '\n'.join(visible_lines(capsys.readouterr().err)).strip()  # as a terminal shows it
    assert info.value.code == 2 and err.startswith('error: Cannot reach the network') and '\n' not in err, err
    assert not _nothing_written(tmp_path, before)


@pytest.mark.gpu
def test_cuda_devices_are_checked_against_this_machine():
    from registry.errors import ConfigError
    from zoo.ops.modules import check_device

    count = torch.cuda.device_count()
    assert check_device('cuda:0').type == 'cuda' and check_device('cuda').type == 'cuda'
    with pytest.raises(ConfigError, match=f'this machine has {count} CUDA device'):
        check_device(f'cuda:{count}')
