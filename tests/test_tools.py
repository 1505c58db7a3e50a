"""tools/train.py and tools/test.py: a real train → resume → test cycle, and one-line errors with exit code 2."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from zoo.cli import run_cli

from .conftest import load_tool, run_tool

train_tool, test_tool = load_tool('train'), load_tool('test')

CUB = 'configs/resnet50_baseline_cub.py'


def _cub_options(root: Path, *extra: str) -> list[str]:
    opts = ['model.backbone.pretrained=False', 'train_dataloader.batch_size=2',
            # few training images per class: hold out half of them as the validation split (default 10 %: none)
            '+train_dataloader.dataset.val_fraction=0.5', '+val_dataloader.dataset.val_fraction=0.5']
    for split in ('train', 'val', 'test'):
        opts += [f'{split}_dataloader.dataset.data_root={root}', f'{split}_dataloader.num_workers=0']
    return opts + list(extra)


@pytest.mark.slow
def test_resnet50_baseline_cub_trains_resumes_and_tests(fake_cub, tmp_path):
    work = tmp_path / 'work'
    # 8 official train images, 4 of them held out for validation; batch 2: 2 iterations per epoch
    out = run_tool('tools/train.py', CUB, '--work-dir', str(work), '--cfg-options',
                   *_cub_options(fake_cub, 'train_cfg.max_epochs=1'))
    assert out.returncode == 0, out.stderr[-3000:]
    assert (work / 'epoch_1.pth').is_file() and (work / 'last_checkpoint').is_file()
    first = torch.load(work / 'epoch_1.pth', map_location='cpu', weights_only=False)
    assert first['meta']['iter'] == 2 and first['meta']['dataset_meta']['classes'][0] == 'Black footed Albatross'

    out = run_tool('tools/train.py', CUB, '--work-dir', str(work), '--resume', '--cfg-options',
                   *_cub_options(fake_cub, 'train_cfg.max_epochs=2'))
    assert out.returncode == 0, out.stderr[-3000:]
    assert 'Auto resumed from the latest checkpoint' in out.stdout + out.stderr
    second = torch.load(work / 'epoch_2.pth', map_location='cpu', weights_only=False)
    assert second['meta']['epoch'] == 2 and second['meta']['iter'] == 4  # continued, not restarted
    assert 'optimizer' in second and 'param_schedulers' in second

    metrics_file = tmp_path / 'metrics.json'
    out = run_tool('tools/test.py', CUB, str(work / 'epoch_2.pth'), '--work-dir', str(work), '--out',
                   str(metrics_file), '--cfg-options', *_cub_options(fake_cub))
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = json.loads(metrics_file.read_text())['metrics']
    assert set(metrics) == {'accuracy/top1', 'accuracy/top5'}
    assert 0 <= metrics['accuracy/top1'] <= metrics['accuracy/top5'] <= 100


def _expect_error(capsys, main, argv, *fragments):
    with pytest.raises(SystemExit) as info:
        run_cli(main, argv)
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2
    assert err.startswith('error: ') and '\n' not in err and 'Traceback' not in err, err
    for fragment in fragments:
        assert fragment in err, err
    return err


def test_unknown_type_is_one_line_and_exit_2(capsys, fake_cub, tmp_path):
    _expect_error(capsys, train_tool.main,
                  [CUB, '--work-dir', str(tmp_path), '--cfg-options', *_cub_options(fake_cub),
                   'model.head.type=LinearClsHaed'],
                  "HEADS has no 'LinearClsHaed'", "Did you mean 'LinearClsHead'?")


def test_unknown_override_key_is_one_line_and_exit_2(capsys, tmp_path):
    _expect_error(capsys, train_tool.main, [CUB, '--work-dir', str(tmp_path), '--cfg-options',
                                            'model.backbone.pretrianed=False'],
                  "no key 'model.backbone.pretrianed'", "Did you mean 'pretrained'?", '+model.backbone')


def test_missing_data_root_is_one_line_and_exit_2(capsys, tmp_path):
    _expect_error(capsys, train_tool.main, [CUB, '--work-dir', str(tmp_path), '--cfg-options',
                                            *_cub_options(tmp_path / 'no_such_dir')],
                  'CUB200: data_root', 'does not exist', 'train_dataloader.dataset.data_root=PATH')


def test_class_count_mismatch_is_one_line_and_exit_2(capsys, fake_cub, tmp_path):
    _expect_error(capsys, train_tool.main, [CUB, '--work-dir', str(tmp_path), '--cfg-options',
                                            *_cub_options(fake_cub), 'model.head.num_classes=10'],
                  'dataset has 200 classes but the model head predicts 10', 'model.head.num_classes=200')
    assert not list(tmp_path.glob('*.pth'))  # nothing half-written


def test_test_tool_refuses_a_checkpoint_of_another_architecture(capsys, fake_cub, tmp_path):
    import timm
    ckpt = tmp_path / 'other.pth'
    torch.save({'state_dict': timm.create_model('resnet18').state_dict()}, ckpt)
    _expect_error(capsys, test_tool.main, [CUB, str(ckpt), '--work-dir', str(tmp_path), '--cfg-options',
                                           *_cub_options(fake_cub)],
                  f"Checkpoint '{ckpt}' does not fit this model", 'different config')


def test_resume_path_that_does_not_exist(capsys, tmp_path):
    _expect_error(capsys, train_tool.main, [CUB, '--work-dir', str(tmp_path), '--resume',
                                            str(tmp_path / 'nope.pth')], 'no such checkpoint file')


def test_errors_from_a_real_process_have_no_traceback(tmp_path):
    out = run_tool('tools/train.py', CUB, '--work-dir', str(tmp_path), '--cfg-options', 'model.type=Nope')
    assert out.returncode == 2
    assert out.stderr.strip().startswith("error: MODELS has no 'Nope'.") and 'Traceback' not in out.stderr


def test_help_describes_the_options():
    out = run_tool('tools/train.py', '--help')
    assert out.returncode == 0
    for flag in ('--work-dir', '--resume', '--amp', '--cfg-options', '--launcher'):
        assert flag in out.stdout
    out = run_tool('tools/test.py', '--help')
    for flag in ('--work-dir', '--out', '--cfg-options', '--launcher'):
        assert flag in out.stdout


def test_runners_started_in_the_same_second_keep_their_own_logs(tmp_path, monkeypatch):
    """mmengine names its logger ``{config}_{timestamp}`` (1 s resolution) and reuses a taken name; xzoo's runners
    in one process must still each log into their own work_dir."""
    import time

    import mmengine.runner.runner as mm_runner
    from mmengine.config import Config

    frozen = time.time()
    monkeypatch.setattr(mm_runner.time, 'time', lambda: frozen)  # both runners start "in the same second"

    from zoo.apis._runner import build_runner

    cfg = dict(default_scope='zoo',
               model=dict(type='ImageClassifier', backbone=dict(type='TimmBackbone', model_name='test_resnet'),
                          head=dict(type='LinearClsHead', num_classes=3)))
    path = tmp_path / 'tiny.py'
    Config(cfg).dump(str(path))
    runners = []
    for name in ('a', 'b'):
        c = Config.fromfile(str(path))
        c.work_dir = str(tmp_path / name)
        runners.append(build_runner(c))
    a, b = runners
    assert a.logger is not b.logger and a.experiment_name != b.experiment_name
    b.logger.info('only in b')
    logs = {n: next((tmp_path / n).rglob('*.log')).read_text() for n in ('a', 'b')}
    assert 'only in b' in logs['b'] and 'only in b' not in logs['a']
