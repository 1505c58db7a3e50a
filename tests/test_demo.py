"""`make demo`'s console path on tiny configs: a short console with the table, full logs in the files, stage times, the
next commands; the quiet-console mechanism itself."""
from __future__ import annotations

import logging
import re
from pathlib import Path

from tests.conftest import visible_lines
from tests.demo_fixtures import NAMES, DemoRun, demo_run  # noqa: F401

CONSOLE_BUDGET = 60


def test_console_is_short_and_holds_the_table(demo_run: DemoRun):  # noqa: F811
    lines = visible_lines(demo_run.stdout) + visible_lines(demo_run.stderr)
    assert len(lines) <= CONSOLE_BUDGET, '\n'.join(lines)
    out = demo_run.stdout
    table = out[out.index('=== xzoo demo'):]
    header = table.splitlines()[1]
    assert header.split()[:3] == ['model', 'top1', '%'] and 'gradcam ins ↑' in header and 'PG ↑' in header
    rows = {ln.split()[0]: ln for ln in table.splitlines()[3:5]}
    assert set(rows) == {'baseline', 'lico'}
    top1 = demo_run.result('lico')['metrics']['accuracy/top1']
    assert f'{top1:.2f}' in rows['lico']
    # one line per stage, then stage times and the three next commands
    for name in ('baseline', 'lico'):
        assert sum(ln.startswith(f'[{name}] ') for ln in out.splitlines()) == 4  # trained, tested, registered, files
    times = next(ln for ln in out.splitlines() if ln.startswith('Stage times (s):'))
    assert re.search(r'lico: train [\d.]+, test [\d.]+ \(explain [\d.]+\), register [\d.]+', times)
    assert re.search(r'Demo finished in \d+ s \(target: 300 s', out)
    nxt = out[out.index('\nNext:'):].strip().splitlines()[1:]
    assert len(nxt) == 3 and nxt[0].strip().startswith('python tools/explain.py')
    assert f"zoo.load('{NAMES['lico']}')" in nxt[1]
    assert nxt[2].strip().startswith('python tools/compare.py --model ') and '--explainers gradcam,scorecam' in nxt[2]
    # none of mmengine's dumps reach the console
    for noise in ('System environment', 'Config:', 'Hooks will be executed', 'FileClient', 'deprecated',
                  'Epoch(train)'):
        assert noise not in out + demo_run.stderr, noise


def test_full_logs_are_in_the_log_files(demo_run: DemoRun):  # noqa: F811
    for r in demo_run.results:
        log = Path(r['log']).read_text()
        assert Path(r['log']).parent.parent == Path(r['work_dir'])
        assert 'System environment' in log and 'Config:' in log and 'Hooks will be executed' in log
        assert 'Epoch(train)' in log and 'loss_cls' in log
        assert '"FileClient" will be deprecated' in log  # kept in the file, not on the console
        assert str(r['log']) in demo_run.stdout  # the console says where it is
    lico_log = Path(demo_run.result('lico')['log']).read_text()
    assert 'loss_mm' in lico_log and 'loss_ot' in lico_log


def test_progress_bars_were_shown(demo_run: DemoRun):  # noqa: F811
    err = demo_run.stderr
    assert 'training lico' in err and 'loss_ot=' in err  # the training bar shows every loss term
    assert 'testing baseline' in err and 'explaining (gradcam)' in err


def test_sample_images_and_next_commands_point_at_real_files(demo_run: DemoRun):  # noqa: F811
    images = sorted((demo_run.work_root / 'images').glob('*.png'))
    assert len(images) == 4 and re.match(r'000_\w+', images[0].stem)
    nxt = demo_run.stdout[demo_run.stdout.index('\nNext:'):].split()
    paths = [p for p in nxt if p.startswith(str(demo_run.work_root)) and p.endswith(('.py', '.pth'))]
    assert paths and all(Path(p).is_file() for p in paths)


def test_console_filter_and_verbose_switch():
    from mmengine.config import Config

    from zoo.apis._runner import ConsoleFilter, console_level, prepare_runtime

    quiet = ConsoleFilter(logging.WARNING)

    def record(level: int, msg: str, **extra) -> logging.LogRecord:
        rec = logging.LogRecord('mmengine', level, __file__, 1, msg, None, None)
        rec.__dict__.update(extra)
        return rec

    assert not quiet.filter(record(logging.INFO, 'Config:\n...'))
    assert quiet.filter(record(logging.WARNING, 'The dataset has 3 empty images'))
    assert not quiet.filter(record(logging.WARNING, '"FileClient" will be deprecated in future.'))
    assert quiet.filter(record(logging.INFO, 'Auto resumed from epoch_1.pth', console=True))
    base = dict(model=dict(type='ImageClassifier', backbone=dict(type='TimmBackbone', model_name='test_resnet'),
                           head=dict(type='LinearClsHead', num_classes=2)))
    cfg = prepare_runtime(Config(base), '/tmp/x', None, 'none')
    assert console_level(cfg) == logging.WARNING
    assert [h['type'] for h in cfg.custom_hooks][-1] == 'ProgressBarHook'
    cfg = prepare_runtime(Config(base), '/tmp/x', None, 'none', verbose=True)
    assert console_level(cfg) == logging.INFO  # mmengine's own console output, no bars
    assert 'ProgressBarHook' not in [h['type'] for h in cfg.custom_hooks]
