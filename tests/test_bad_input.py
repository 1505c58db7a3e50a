"""Bad input, table-driven: every case gives one actionable line on stderr, exit code 2, and leaves nothing behind.

"Nothing behind": no checkpoint, no ``last_checkpoint``, no metrics file (``--out``) and no ``*.partial-*`` file
anywhere under the test's folder. The cases run ``tools/train.py`` / ``tools/test.py``'s ``main`` in process (see
``tests/test_tools.py`` for five more, and a real subprocess); a few at the end run real processes.
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from PIL import Image

from zoo.cli import run_cli

from .conftest import ROOT, load_tool, make_fake_cub, run_tool

TOOLS = {'train': load_tool('train'), 'test': load_tool('test')}
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


def _truncated_ckpt(ctx: Ctx) -> str:
    path = Path(_tiny_checkpoint(ctx, 'cut.pth'))
    path.write_bytes(path.read_bytes()[:2000])
    return str(path)


SETUP = {'cub-image-truncated': _truncate_image, 'cub-not-an-image-in-worker': _not_an_image}
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


def _nothing_written(root: Path) -> list[str]:
    return [str(p) for p in root.rglob('*') if p.suffix in ('.pth', '.json') and p.parent.name != 'vis_data'
            and p.name not in ('other.pth', 'five.pth', 'sgd.pth', 'cut.pth', 'notes.pth')
            or p.name == 'last_checkpoint' or '.partial-' in p.name]


def test_the_table_has_at_least_30_cases():
    assert len(CASES) >= 30 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize('case', CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_nothing_written(case, ctx, capsys):
    name, tool, argv, fragments = case
    if name in SETUP:
        SETUP[name](ctx)
    args = argv(ctx)
    if '--work-dir' not in args:
        args += ['--work-dir', ctx.work]
    if tool == 'test':
        args += ['--out', str(ctx.tmp / 'metrics.json')]
    with pytest.raises(SystemExit) as info:
        run_cli(TOOLS[tool].main, args)
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2, err
    assert err.startswith('error: ') and '\n' not in err and 'Traceback' not in err, err
    for fragment in fragments:
        assert fragment in err, err
    assert not _nothing_written(ctx.tmp), _nothing_written(ctx.tmp)


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
