"""The local zoo: after the demo, zoo.load(NAME) in a new process returns the trained model; listing shows local models
with their metrics and provenance; published entries win only when asked; no local entry says how to make one."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

import zoo
from registry.errors import CheckpointError
from tests.conftest import ROOT, run_tool
from tests.demo_fixtures import NAMES, DemoRun, demo_run, local_zoo  # noqa: F401
from zoo.hub import index as zoo_index

PROBE = 'torch.manual_seed(0); x = torch.randint(0, 256, (3, 3, 64, 64), dtype=torch.uint8)'


def _python(code: str, zoo_dir: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE='1', XZOO_CACHE=str(zoo_dir))
    return subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=env)


def test_load_by_name_in_a_new_process_equals_the_checkpoint(demo_run: DemoRun):  # noqa: F811
    from zoo.hub.export import load_trained

    code = ('import json, torch, zoo\n'
            f"m = zoo.load('{NAMES['lico']}')\n"
            f'{PROBE}\n'
            'with torch.no_grad():\n'
            '    out = m(m.normalize(x))\n'
            'print(json.dumps(dict(logits=out.tolist(), source=m.pretrained_source, training=m.training)))')
    proc = _python(code, demo_run.zoo_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert loaded['source'] == NAMES['lico'] and loaded['training'] is False
    original, _ = load_trained(demo_run.result('lico')['work_dir'])  # the training checkpoint itself
    torch.manual_seed(0)
    x = torch.randint(0, 256, (3, 3, 64, 64), dtype=torch.uint8)
    with torch.no_grad():
        expected = original(original.normalize(x))
    assert torch.allclose(torch.tensor(loaded['logits']), expected, atol=1e-5)


def test_entry_has_provenance_and_metrics(demo_run: DemoRun):  # noqa: F811
    from zoo.core.fileio import sha256_file

    r = demo_run.result('lico')
    with local_zoo(demo_run.zoo_dir):
        entry = zoo_index.get_entry(NAMES['lico'])
        rows = {row['name']: row for row in zoo_index.model_table('*-clutteredfmnist')}
    assert entry.local and entry.method == 'lico'
    made = entry.provenance
    assert Path(made['config_dump']).name == 'tiny_lico.py' and made['seed'] == 0
    assert made['checkpoint'] == str(Path(r['checkpoint']).resolve())
    assert made['checkpoint_sha256'] == sha256_file(r['checkpoint'])
    assert made['date'].startswith('20') and made['xzoo'] == zoo.__version__
    assert made['commit'] is None or len(made['commit']) == 40
    metrics = json.loads(Path(r['metrics_json']).read_text())['metrics']
    assert zoo_index.entry_metric(entry, 'accuracy/top1') == metrics['accuracy/top1']
    assert zoo_index.entry_metric(entry, 'explain/gradcam/insertion') == pytest.approx(
        metrics['explain/gradcam/insertion'])
    row = rows[NAMES['lico']]
    assert row['weights'] == 'local' and row['top1'] == f"{metrics['accuracy/top1']:.2f}"
    assert entry.weights_sha256 == sha256_file(Path(entry.config).parent / 'model.safetensors')


def test_list_models_tool_shows_local_models(demo_run: DemoRun):  # noqa: F811
    out = run_tool('tools/list_models.py', '*-clutteredfmnist', env={'XZOO_CACHE': str(demo_run.zoo_dir)},
                   timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[1].split()[0] == NAMES['baseline'] and ' local ' in lines[1]
    summary = next(ln for ln in lines if ln.strip().startswith(f"{NAMES['lico']} (local"))
    assert 'Top-1 accuracy' in summary and 'gradcam insertion AUC' in summary and 'seed 0' in summary
    only = run_tool('tools/list_models.py', '--local', env={'XZOO_CACHE': str(demo_run.zoo_dir)}, timeout=120)
    assert [ln.split()[0] for ln in only.stdout.splitlines()[1:3]] == [NAMES['baseline'], NAMES['lico']]


def test_listing_stays_free_of_torch_with_local_models(demo_run: DemoRun):  # noqa: F811
    proc = _python('import sys, json, zoo\nnames = zoo.list_models("*-efficientnetlite0-clutteredfmnist")\n'
                   'from zoo.hub.index import model_table\nrows = model_table()\n'
                   'print(json.dumps([names, [m for m in ("torch", "mmengine") if m in sys.modules]]))',
                   demo_run.zoo_dir)
    assert proc.returncode == 0, proc.stderr[-2000:]
    names, heavy = json.loads(proc.stdout.strip().splitlines()[-1])
    assert names == [NAMES['baseline'], NAMES['lico']] and heavy == []


def test_no_local_entry_says_how_to_make_one(tmp_path):
    with local_zoo(tmp_path / 'empty'), pytest.raises(CheckpointError) as err:
        zoo.load(NAMES['lico'])
    msg = str(err.value)
    assert 'has no published weights' in msg and str(tmp_path / 'empty') in msg
    assert '`make demo`' in msg and f"--register {NAMES['lico']}" in msg
    assert 'configs/efficientnetlite0_lico_clutteredfmnist.py' in msg


@pytest.fixture
def clean_index(monkeypatch):
    monkeypatch.setattr(zoo_index, '_entries', {})
    monkeypatch.setattr(zoo_index, '_indexes', [])


def test_published_entries_win_only_when_asked(demo_run: DemoRun, tmp_path, clean_index):  # noqa: F811
    import shutil

    zoo_dir = tmp_path / 'zoo'
    shutil.copytree(demo_run.zoo_dir / 'models' / NAMES['baseline'], zoo_dir / 'models' / 'lab-model')
    entry_file = zoo_dir / 'models' / 'lab-model' / 'zoo_entry.json'
    entry_file.write_text(entry_file.read_text().replace(NAMES['baseline'], 'lab-model'))
    lab = tmp_path / 'lab.json'
    lab.write_text(json.dumps({'format_version': 1, 'models': [{
        'name': 'lab-model', 'hf_hub': 'lab/model', 'config': None, 'revision': 'a' * 40,
        'sha256': {'model.safetensors': 'b' * 64}, 'status': 'published'}]}))
    zoo.register_index(lab)
    with local_zoo(zoo_dir):
        assert zoo_index.get_entry('lab-model').local
        assert zoo_index.get_entry('lab-model', prefer='published').hf_hub == 'lab/model'
        assert zoo.load('lab-model').pretrained_source == 'lab-model'  # the local one, offline
        with pytest.raises(CheckpointError, match="Hub repo 'lab/model'"):  # the published one: not cached
            zoo.load('lab-model', prefer='published')
        with pytest.raises(Exception, match="prefer must be 'local'"):
            zoo.load('lab-model', prefer='hub')


def test_a_broken_local_entry_is_skipped_with_a_warning(tmp_path):
    bad = tmp_path / 'models' / 'broken'
    bad.mkdir(parents=True)
    (bad / 'zoo_entry.json').write_text('{"name": "broken", "status": "local"}')
    (tmp_path / 'models' / '.partial-x-1').mkdir()  # a registration in progress is not listed
    with local_zoo(tmp_path), warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter('always')
        assert 'broken' not in zoo.list_models()
    assert any('Skipping a local zoo model' in str(w.message) and 'broken' in str(w.message) for w in seen)


def test_stale_evaluation_outputs_are_left_out(tmp_path):
    from zoo.hub.results import find_evaluation

    (tmp_path / 'metrics.json').write_text(json.dumps({'metrics': {'accuracy/top1': 50.0}}))
    ckpt = tmp_path / 'epoch_2.pth'
    ckpt.write_bytes(b'x')
    old = ckpt.stat().st_mtime - 100
    os.utime(tmp_path / 'metrics.json', (old, old))
    ev = find_evaluation(tmp_path, checkpoint=str(ckpt))
    assert ev.results == [] and 'older than the checkpoint epoch_2.pth' in ev.notes[0]
    os.utime(tmp_path / 'metrics.json')
    ev = find_evaluation(tmp_path, checkpoint=str(ckpt))
    assert [(r['key'], r['value']) for r in ev.results] == [('accuracy/top1', 50.0)]


@pytest.mark.slow
def test_train_tool_registers(tmp_path):
    from tests.demo_fixtures import TINY_BASELINE

    config = tmp_path / 'tiny_baseline.py'
    config.write_text(TINY_BASELINE.format(runtime=str(ROOT / 'configs/_base_/default_runtime.py')))
    zoo_dir = tmp_path / 'zoo'
    out = run_tool('tools/train.py', str(config), '--work-dir', str(tmp_path / 'work'), '--register', 'my-tiny',
                   env={'XZOO_CACHE': str(zoo_dir)}, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "zoo.load('my-tiny')" in out.stdout and 'full log:' in out.stdout
    assert 'Config:' not in out.stdout and 'System environment' not in out.stdout
    with local_zoo(zoo_dir):
        model = zoo.load('my-tiny')
        entry = zoo_index.get_entry('my-tiny')
    assert model.num_classes == 4 and entry.provenance['seed'] == 0 and entry.method == 'baseline'
    card = (zoo_dir / 'models' / 'my-tiny' / 'README.md').read_text()
    assert 'No evaluation results were supplied' in card and 'No evaluation outputs in' in card
    bad = run_tool('tools/train.py', str(config), '--register', 'no/slash', timeout=120)
    assert bad.returncode == 2 and 'zoo name' in bad.stderr
