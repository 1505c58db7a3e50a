"""One work dir, one writer: a second training started in the work dir of a running one refuses at once (naming the
holder's pid) and touches nothing; the first finishes with its own checkpoints. Two real processes.

The first run is held at a gate (``GateHook`` below, imported by its config through ``custom_imports``) after it
has written its first checkpoint, so that the second starts while the first is certainly mid-run.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook

from registry import HOOKS

from .conftest import ROOT, run_tool
from .test_bad_input import TINY


@HOOKS.register_module(force=True)
class GateHook(Hook):
    """Test-only: before iteration ``at``, create ``$XZOO_GATE/started`` and wait (≤ 5 min) for ``$XZOO_GATE/go``."""

    def __init__(self, at: int = 2) -> None:
        self.at = at

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        gate = os.environ.get('XZOO_GATE')
        if not gate or runner.iter != self.at:
            return
        Path(gate, 'started').write_text(str(os.getpid()))
        deadline = time.monotonic() + 300
        while not Path(gate, 'go').exists():
            if time.monotonic() > deadline:
                raise TimeoutError('GateHook: nobody opened the gate')
            time.sleep(0.05)


def _config(tmp: Path) -> str:
    cfg = Config(TINY)
    cfg.train_cfg = dict(by_epoch=False, max_iters=6, val_interval=100)
    cfg.merge_from_dict(dict(default_hooks=dict(checkpoint=dict(type='AtomicCheckpointHook', by_epoch=False,
                                                                interval=2)),
                             param_scheduler=[], randomness=dict(seed=1),
                             custom_imports=dict(imports=['tests.test_security_concurrency'],
                                                 allow_failed_imports=False)))
    cfg.custom_hooks = [*cfg.custom_hooks, dict(type='GateHook', at=2)]
    path = tmp / 'gated.py'
    cfg.dump(str(path))
    return str(path)


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob('*') if p.is_file()}


@pytest.mark.slow
def test_second_run_in_a_busy_work_dir_refuses_and_the_first_keeps_its_checkpoints(tmp_path):
    from zoo.core.checkpoints import is_complete_checkpoint

    config, work, gate = _config(tmp_path), tmp_path / 'work', tmp_path / 'gate'
    gate.mkdir()
    env = dict(os.environ, HF_HUB_OFFLINE='1', PYTHONPATH=str(ROOT), XZOO_GATE=str(gate))
    first = subprocess.Popen([sys.executable, 'tools/train.py', config, '--work-dir', str(work)], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 600
        while not (gate / 'started').exists():
            assert first.poll() is None, first.communicate()[1][-3000:]
            assert time.monotonic() < deadline, 'the first run never reached its gate'
            time.sleep(0.1)
        assert (work / 'iter_2.pth').is_file()
        before = _snapshot(work)
        second = run_tool('tools/train.py', config, '--work-dir', str(work), '--resume', 'auto', '--cfg-options',
                          'randomness.seed=2', timeout=600, env={'XZOO_GATE': ''})
        last = second.stderr.strip().splitlines()[-1]
        assert second.returncode == 2, second.stderr[-3000:]
        assert last.startswith('error: Work dir') and f'in use by another run (pid {first.pid})' in last, last
        assert 'Traceback' not in second.stderr
        assert _snapshot(work) == before  # nothing written, deleted or overwritten
    finally:
        (gate / 'go').write_text('')
        out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-3000:]
    names = sorted(p.name for p in work.iterdir() if p.suffix == '.pth')
    assert names == ['iter_2.pth', 'iter_4.pth', 'iter_6.pth'], names
    assert (work / 'last_checkpoint').read_text().strip() == str(work / 'iter_6.pth')
    assert not list(work.rglob('*.partial-*')) and not (work / '.xzoo.lock').exists()
    for name in names:
        assert is_complete_checkpoint(work / name)
        ckpt = torch.load(work / name, map_location='cpu', weights_only=False)
        assert ckpt['meta']['seed'] == 1  # the first run's, not the refused second's (seed 2)


def test_partial_files_of_a_live_writer_are_kept(tmp_path):
    """The cleanup of killed writes removes a dead writer's partial file, never a live one's (this process's)."""
    from zoo.core.fileio import remove_partial_files

    live = tmp_path / f'iter_2.pth.partial-{os.getpid()}'
    dead_pid = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'], capture_output=True,
                              text=True).stdout.strip()
    dead = tmp_path / f'iter_4.pth.partial-{dead_pid}'
    live.write_bytes(b'in flight')
    dead.write_bytes(b'left by a kill')
    assert remove_partial_files(tmp_path) == [str(dead)]
    assert live.read_bytes() == b'in flight'
