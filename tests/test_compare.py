"""tools/compare.py and zoo.apis.compare: per-image values, explainer comparisons, config comparisons over seeds
(a planted difference detected, identical configs covering 0), reuse, and resuming a killed comparison.

The configs are tiny: ``test_resnet`` on 32-px SyntheticShapes with three colour classes, trained with one torch
thread. Arm ``a`` never learns (learning rate 0, one step: chance, ~20-40 % by seed); arm ``b`` reaches ~90-100 %
in 12 AdamW steps: a planted difference of ~65 points. ``a`` given twice with independent seeds is the "identical
configs" case.
"""
from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from mmengine.hooks import Hook

import zoo.datasets  # noqa: F401  (registered before the forkserver child unpickles the target)
import zoo.engine  # noqa: F401
import zoo.metrics  # noqa: F401
import zoo.models  # noqa: F401
from registry import HOOKS
from registry.errors import ConfigError, DataError
from tests.conftest import load_tool
from zoo.apis.compare import Comparison, Plan, compare, compare_explainers, tables_from_runs

CONFIG = '''
default_scope = 'zoo'
data = dict(type='SyntheticShapes', num_samples=64, image_size=32, colours=['red', 'green', 'blue'],
            shapes=['square'])
model = dict(type='ImageClassifier', backbone=dict(type='TimmBackbone', model_name='test_resnet', pretrained=False),
             head=dict(type='LinearClsHead', num_classes=3),
             data_preprocessor=dict(type='ClsDataPreprocessor', mean=[127.5] * 3, std=[127.5] * 3))
train_dataloader = dict(batch_size=16, num_workers=0, sampler=dict(type='InfiniteSampler', shuffle=True),
                        dataset=data)
test_dataloader = dict(batch_size=24, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
                       dataset=dict(data, num_samples=36, split='test'))
test_evaluator = dict(type='Accuracy', topk=(1,))
test_cfg = dict()
optim_wrapper = dict(optimizer=dict(type='AdamW', lr={lr}))
train_cfg = dict(by_epoch=False, max_iters={iters})
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook', by_epoch=False, interval=4),
                     logger=dict(type='LoggerHook', interval=4))
custom_hooks = {hooks}
randomness = dict(seed=0)
log_level = 'INFO'
'''
EXPLAIN = dict(explainers=['gradcam'], explain_metrics=[dict(type='Insertion', step=128),
                                                        dict(type='Deletion', step=128), 'pointing_game'],
               explain_subset=6)


def write_config(folder: Path, name: str, lr: float, iters: int, hooks: list | None = None) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f'{name}.py'
    path.write_text(CONFIG.format(lr=lr, iters=iters, hooks=repr(hooks or [])))
    return str(path)


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Tiny models train several times faster on one thread than on two contended ones."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def configs(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp('compare_cfgs')
    return dict(a=write_config(folder, 'a', 0.0, 1), b=write_config(folder, 'b', 0.01, 12))


# --- explainers of one model: per-image values ----------------------------------------------------------------------

@pytest.fixture(scope='module')
def explainer_run(configs, tmp_path_factory) -> tuple[Comparison, Path]:
    from mmengine.config import Config

    from registry import MODELS

    root = tmp_path_factory.mktemp('compare_explainers')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(configs['a']).model)
    torch.save(dict(state_dict=model.state_dict(), meta={}), root / 'ckpt.pth')
    layer2 = dict(type='GradCAM', target_layer='backbone.model.layer2')  # labelled 'gradcam_2'
    with one_torch_thread():
        res = compare_explainers([(configs['a'], str(root / 'ckpt.pth'))], ['gradcam', layer2],
                                 [dict(type='Insertion', step=128), dict(type='Deletion', step=128), 'pointing_game'],
                                 out=str(root / 'out'), explain_subset=8, progress=False)
    return res, root


def test_per_image_values_reproduce_the_aggregates(explainer_run):
    res, root = explainer_run
    run_dir = root / 'out' / 'runs' / 'model' / 'seed_0'
    saved = json.loads((run_dir / 'per_image.json').read_text())
    per, metrics = saved['per_image'], saved['metrics']
    acc = per['accuracy/top1']
    assert len(acc['values']) == 36 and set(acc['values']) <= {0.0, 100.0}
    assert np.mean(acc['values']) == pytest.approx(metrics['accuracy/top1'], abs=1e-3)
    assert sorted(acc['sample_idx']) == list(range(36))
    for ename in ('gradcam', 'gradcam_2'):
        ins, dele = per[f'explain/{ename}/insertion'], per[f'explain/{ename}/deletion']
        assert len(ins['values']) == 8 and ins['higher_is_better'] and not dele['higher_is_better']
        assert np.mean(ins['values']) == pytest.approx(metrics[f'explain/{ename}/insertion'], abs=1e-6)
        overall = per[f'explain/{ename}/overall']['values']
        assert overall == pytest.approx(np.subtract(ins['values'], dele['values']).tolist())
        assert ins['conventions']['type'] == 'Insertion'


def test_explainers_are_compared_paired_over_images(explainer_run):
    res, root = explainer_run
    result = res.report['result']
    assert result['arms'] == ['gradcam', 'gradcam_2']
    assert list(result['metrics']) == ['insertion', 'deletion', 'pointing_game', 'overall']
    diff = result['metrics']['insertion']['differences']['gradcam_2 - gradcam']
    assert diff['n_seeds'] == 1 and diff['n_images'] == 8 and diff['covers'] == ['images']
    assert 'test-set sampling (images) only' in res.report['method']['statement']
    assert (root / 'out' / 'forest.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    text = (root / 'out' / 'report.md').read_text()
    assert '| insertion ↑ | gradcam_2 - gradcam |' in text and '(explainers of one model)' in text
    again = compare_explainers(res.report['setup']['models'], ['gradcam', dict(
        type='GradCAM', target_layer='backbone.model.layer2')],
        [dict(type='Insertion', step=128), dict(type='Deletion', step=128), 'pointing_game'],
        out=str(root / 'out'), explain_subset=8, progress=False)
    assert 'test reused' in (root / 'out' / 'compare.log').read_text().splitlines()[-1]
    assert again.report['result']['metrics']['insertion'] == result['metrics']['insertion']


# --- tables from runs (no training) -------------------------------------------------------------------------------

def _fake_run(folder: Path, arm: str, seed: int, ids: list[int], labels: list[int], values: list[Any]) -> dict:
    work = folder / arm / f'seed_{seed}'
    work.mkdir(parents=True)
    per = {'accuracy/top1': dict(sample_idx=ids, label=labels, values=values, higher_is_better=True),
           'explain/gradcam/pointing_game': dict(sample_idx=ids, label=labels, values=[1.0, None, 0.0][:len(ids)],
                                                 higher_is_better=True)}
    (work / 'per_image.json').write_text(json.dumps(dict(per_image=per)))
    return dict(arm=arm, seed=seed, work_dir=str(work))


def test_tables_align_images_by_index_and_refuse_other_test_sets(tmp_path):
    runs = [_fake_run(tmp_path / '1', 'a', 0, [0, 1, 2], [5, 6, 7], [100.0, 0.0, 100.0]),
            _fake_run(tmp_path / '1', 'b', 0, [2, 0, 1], [7, 5, 6], [0.0, 100.0, 100.0])]
    values, directions, _ = tables_from_runs(runs, 'configs')
    assert values['b']['accuracy/top1'].tolist() == [[100.0, 100.0, 0.0]]  # reordered by sample index
    assert np.isnan(values['a']['gradcam/pointing_game'][0, 1]) and directions['accuracy/top1'] is True
    other_labels = [runs[0], _fake_run(tmp_path / '2', 'b', 0, [0, 1, 2], [5, 6, 0], [0.0, 0.0, 0.0])]
    with pytest.raises(DataError, match='other labels for the same test images'):
        tables_from_runs(other_labels, 'configs')
    other_images = [runs[0], _fake_run(tmp_path / '3', 'b', 0, [0, 1, 3], [5, 6, 7], [0.0, 0.0, 0.0])]
    with pytest.raises(DataError, match='other test images'):
        tables_from_runs(other_images, 'configs')


def test_a_schedule_shorter_than_training_is_pointed_out(tmp_path):
    from tests.conftest import ROOT
    from zoo.apis._compare_runs import RunSpec, schedule_note

    demo = str(ROOT / 'configs' / 'efficientnetlite0_baseline_clutteredfmnist.py')
    # the demo recipes' cosine has no end: it follows max_epochs, nothing to point out
    assert schedule_note(RunSpec('base', 0, demo, '', {'train_cfg.max_epochs': 5})) is None
    config = str(tmp_path / 'one_epoch_cosine.py')  # the same recipe with a cosine that ends at epoch 1
    Path(config).write_text(f"_base_ = [{demo!r}]\nparam_scheduler = [dict(type='LinearLR', start_factor=0.1, "
                            "by_epoch=False, begin=0, end=10), dict(type='CosineAnnealingLR', by_epoch=True, "
                            "begin=0, end=1, convert_to_iter_based=True)]\n")
    note = schedule_note(RunSpec('base', 0, config, '', {'train_cfg.max_epochs': 5}))
    assert 'ends by epoch 1 but training runs 5 epochs' in note and 'param_scheduler.1.end=5' in note
    assert schedule_note(RunSpec('base', 0, config, '', {'train_cfg.max_epochs': 5, 'param_scheduler.1.end': 5})) \
        is None
    assert schedule_note(RunSpec('base', 0, config, '', {})) is None


# --- the command line ---------------------------------------------------------------------------------------------

def test_cli_errors_are_one_line_with_exit_status_2(configs, tmp_path, capsys):
    from zoo.cli import run_cli

    tool = load_tool('compare')
    cases = [
        ([configs['a'], '--out', str(tmp_path / 'o'), '--model', configs['a'], 'x.pth'], 'not both'),
        (['--model', configs['a'], 'x.pth', '--out', str(tmp_path / 'o')], 'add --explainers'),
        ([configs['a'], '--out', str(tmp_path / 'o'), '--explain-metrics', 'insertion'], 'needs --explainers'),
        ([configs['a'], '--out', str(tmp_path / 'o'), '--seeds', '0'], 'argument --seeds'),
        ([str(tmp_path / 'missing.py'), '--out', str(tmp_path / 'o'), '--dry-run'], 'does not exist'),
        ([configs['a'], '--out', str(tmp_path / 'o'), '--labels', 'x,y', '--dry-run'], '2 labels for 1 configs'),
        ([configs['a'], configs['b'], '--out', str(tmp_path / 'o'), '--reference', 'c'], "reference 'c'"),
        (['--model', configs['a'], str(tmp_path / 'x.pth'), '--explainers', 'gradcam', '--out', str(tmp_path)],
         'checkpoint'),
    ]
    for argv, needle in cases:
        with pytest.raises(SystemExit) as exc:
            run_cli(tool.main, argv)
        assert exc.value.code == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert needle in err[-1], (argv, err)


def test_dry_run_prints_the_plan_with_probed_estimates(configs, tmp_path, capsys):
    tool = load_tool('compare')
    with one_torch_thread():
        tool.main([configs['a'], configs['b'], '--seeds', '2', '--out', str(tmp_path / 'o'), '--explainers',
                   'gradcam', '--explain-metrics', 'insertion,deletion', '--explain-subset', '4', '--dry-run'])
    out = capsys.readouterr().out
    assert 'configs comparison: 4 runs' in out and out.count(' new ') == 4
    assert out.count('probed with the untrained model') == 2 and 'estimated time left: ?' not in out
    assert not (tmp_path / 'o').exists()  # a dry run writes nothing


# --- configs over seeds (trained) ---------------------------------------------------------------------------------

ARMS = dict(seeds=3, independent_seeds=True, progress=False, **EXPLAIN)


@pytest.fixture(scope='module')
def config_run(configs, tmp_path_factory) -> Comparison:
    """a, b and a again, 3 independent seeds each (9 tiny trainings, 6 of them a single step, and 9 tests)."""
    out = tmp_path_factory.mktemp('compare_configs') / 'out'
    with one_torch_thread():
        return compare([configs['a'], configs['b'], configs['a']], out=str(out), **ARMS)


@pytest.mark.slow
def test_planted_difference_is_detected_and_identical_configs_cover_zero(config_run):
    result = config_run.report['result']
    assert result['arms'] == ['a', 'b', 'a_2']
    for metric, entry in result['metrics'].items():  # a vs a: every interval holds 0
        same = entry['differences']['a_2 - a']
        assert same['low'] <= 0 <= same['high'] and same['better'] is None, (metric, same)
    acc = result['metrics']['accuracy/top1']
    planted = acc['differences']['b - a']
    assert planted['low'] > 20 and planted['better'] == 'arm' and planted['p_value'] < 0.05, planted
    assert acc['means']['a']['mean'] < 60 < acc['means']['b']['mean']
    seeds = {(r['arm'], r['seed']): r['cfg_options']['+randomness.seed'] for r in config_run.report['runs']}
    assert seeds[('b', 1)] == 1001 and seeds[('a_2', 2)] == 2002 and seeds[('a', 0)] == 0


@pytest.mark.slow
def test_report_json_md_and_forest(config_run):
    out = Path(config_run.out)
    report = json.loads((out / 'report.json').read_text())
    metrics = report['result']['metrics']
    assert set(metrics) == {'accuracy/top1', 'gradcam/insertion', 'gradcam/deletion', 'gradcam/pointing_game',
                            'gradcam/overall'}
    assert metrics['gradcam/deletion']['higher_is_better'] is False
    for entry in metrics.values():
        for est in [*entry['means'].values(), *entry['differences'].values()]:
            assert len(est['per_seed']) == 3
    for run in report['runs']:  # per-seed figures: each run's own test metrics equal its per-seed mean
        own = run['test']['metrics']['accuracy/top1']
        assert metrics['accuracy/top1']['means'][run['arm']]['per_seed'][run['seed']] == pytest.approx(own, abs=1e-3)
    assert report['seeds'] == [0, 1, 2] and report['method']['name'] == 'crossed'
    text = (out / 'report.md').read_text()
    for section in ('## Paired differences', '## Means', '## Per seed', '## Diagnostics', '## Runs'):
        assert section in text
    assert (out / 'forest.png').stat().st_size > 10_000
    assert len((out / 'compare.log').read_text().splitlines()) == 9


@pytest.mark.slow
def test_finished_runs_are_reused_and_changed_settings_are_caught(configs, config_run):
    out = config_run.out
    arms = [configs['a'], configs['b'], configs['a']]
    ckpt = Path(out) / 'runs' / 'b' / 'seed_0' / 'iter_12.pth'
    before = ckpt.stat().st_mtime_ns
    again = compare(arms, out=out, **dict(ARMS, reference='b'))  # everything reused, other pairs reported
    assert all('training reused, test reused' in line
               for line in (Path(out) / 'compare.log').read_text().splitlines()[-9:])
    assert list(again.report['result']['metrics']['accuracy/top1']['differences']) == ['a - b', 'a_2 - b']
    plan = compare(arms, out=out, dry_run=True, probe=False, **dict(ARMS, seeds=4))
    assert isinstance(plan, Plan)
    states = {s.run.name: (s.train, s.test) for s in plan.states}
    assert states['b seed 0'] == ('done', 'done') and states['b seed 3'] == ('new', 'todo')
    assert plan.estimates['b seed 0'] == 0 and plan.estimates['b seed 3'] > 0  # measured on the finished runs
    assert 'measured on finished runs' in plan.text()
    other_test = compare(arms, out=out, dry_run=True, probe=False, **dict(ARMS, explain_subset=5))
    assert {(s.train, s.test) for s in other_test.states} == {('done', 'todo')}  # only the tests are redone
    with pytest.raises(ConfigError, match='holds a run of a different config'):
        compare(arms, out=out, cfg_options=['train_cfg.max_iters=20'], dry_run=True, probe=False, **ARMS)
    assert ckpt.stat().st_mtime_ns == before


# --- a killed comparison resumes ----------------------------------------------------------------------------------

@HOOKS.register_module(force=True)
class KillOnceHook(Hook):
    """SIGKILL this process after train iteration ``after_iter`` the first time (a flag file remembers it)."""

    priority = 'LOWEST'

    def __init__(self, flag: str, after_iter: int) -> None:
        self.flag, self.after_iter = flag, after_iter

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        if runner.iter + 1 == self.after_iter and not os.path.exists(self.flag):
            Path(self.flag).touch()
            os.kill(os.getpid(), signal.SIGKILL)


def _child(kwargs: dict, log: str) -> None:
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    torch.set_num_threads(1)
    compare(**kwargs)


@pytest.mark.slow
def test_a_killed_comparison_resumes_without_retraining_finished_runs(configs, tmp_path):
    killer = write_config(tmp_path, 'b', 0.01, 12, [dict(type='KillOnceHook', flag=str(tmp_path / 'killed'),
                                                         after_iter=10)])
    kwargs = dict(configs=[configs['a'], killer], seeds=1, out=str(tmp_path / 'out'), progress=False)
    proc = mp.get_context('forkserver').Process(target=_child, args=(kwargs, str(tmp_path / 'child.log')))
    proc.start()
    proc.join(600)
    assert proc.exitcode == -signal.SIGKILL, (tmp_path / 'child.log').read_text()[-3000:]
    a_dir, b_dir = tmp_path / 'out' / 'runs' / 'a' / 'seed_0', tmp_path / 'out' / 'runs' / 'b' / 'seed_0'
    assert (a_dir / 'test_done.json').exists() and not (b_dir / 'train_done.json').exists()
    assert (b_dir / 'iter_8.pth').exists() and not (b_dir / 'iter_12.pth').exists()
    stamps = {p.name: p.stat().st_mtime_ns for p in a_dir.iterdir() if p.is_file()}

    plan = compare(**kwargs, dry_run=True, probe=False)
    assert [(s.train, s.test) for s in plan.states] == [('done', 'done'), ('resume', 'todo')]
    assert 'resume iter_8.pth' in plan.text()

    with one_torch_thread():
        res = compare(**kwargs)
    lines = (tmp_path / 'out' / 'compare.log').read_text().splitlines()
    assert lines[-2].startswith('[1/2] a seed 0: training reused, test reused')
    assert lines[-1].startswith('[2/2] b seed 0: resumed from iter_8.pth')
    assert {p.name: p.stat().st_mtime_ns for p in a_dir.iterdir() if p.is_file()} == stamps
    assert json.loads((b_dir / 'train_done.json').read_text())['iters'] == 12
    assert res.report['result']['metrics']['accuracy/top1']['differences']['b - a']['n_seeds'] == 1
