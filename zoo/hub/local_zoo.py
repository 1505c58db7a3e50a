"""Registering a trained model in the local zoo, so that ``zoo.load(NAME)`` finds it in any later process.

:func:`register_model` exports a training work dir (or checkpoint) into ``<local zoo>/models/<NAME>/`` —
``config.json``, ``model.safetensors``, the model card ``README.md`` with the work dir's evaluation outputs and
figures (:mod:`zoo.hub.results`) — and writes ``zoo_entry.json``: an index entry (``"status": "local"``) with the
method, dataset, paper, license and metrics, and a ``provenance`` block (config, seed, source commit, checkpoint and
its sha256, date). The folder is built next to its place and swapped in, so a reader never sees half a model. The
local zoo is ``$XZOO_CACHE`` (default ``~/.cache/xzoo``; see :func:`zoo.hub.index.local_zoo_dir`). What
``make demo`` and ``tools/train.py --register NAME`` run.

Example::

    from zoo.hub.local_zoo import register_model
    entry = register_model('work_dirs/demo/lico', 'lico-efficientnetlite0-clutteredfmnist')
    import zoo
    model = zoo.load('lico-efficientnetlite0-clutteredfmnist')
"""
from __future__ import annotations

import contextlib
import datetime
import os
import shutil
import subprocess
from collections.abc import Mapping
from typing import Any

from zoo.core.checkpoints import find_checkpoint
from zoo.core.fileio import ensure_dir, sha256_file, write_json
from zoo.core.limits import CONFIG_NAME, WEIGHTS_NAME

from .export import load_trained, save_pretrained, work_dir_evaluation
from .index import LOCAL_ENTRY, ZooEntry, find_index_entry, local_entries, local_model_dir
from .results import Evaluation


def source_version(path: str | None = None) -> dict[str, Any]:
    """The xzoo version and, in a git checkout, the commit of ``path`` (default: this package) and whether the
    working tree had changes (``dirty``)."""
    from zoo import __version__

    out: dict[str, Any] = {'xzoo': __version__, 'commit': None, 'dirty': None}
    folder = os.path.dirname(os.path.abspath(path or __file__))
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        head = subprocess.run(['git', '-C', folder, 'rev-parse', 'HEAD'], capture_output=True, text=True, timeout=10)
        if head.returncode == 0:
            out['commit'] = head.stdout.strip()
            status = subprocess.run(['git', '-C', folder, 'status', '--porcelain', '--untracked-files=no'],
                                    capture_output=True, text=True, timeout=10)
            out['dirty'] = bool(status.stdout.strip()) if status.returncode == 0 else None
    return out


def _seed(cfg: Any) -> Any:
    randomness = cfg.get('randomness') or {}
    return randomness.get('seed') if isinstance(randomness, Mapping) else None


def _entry_metrics(evaluation: Evaluation) -> list[dict[str, Any]]:
    keep = ('key', 'name', 'value', 'conventions', 'higher_is_better')
    return [{k: r[k] for k in keep if r.get(k) is not None} for r in evaluation.results]


def register_model(source: str | os.PathLike, name: str, *, config: str | None = None, seed: Any = None,
                   evaluation: Evaluation | bool = True, description: str | None = None,
                   provenance: Mapping[str, Any] | None = None, trust_pickle: bool = True) -> ZooEntry:
    """Export the model of a work dir or checkpoint into the local zoo as ``name``; return its entry.

    Args:
        source: a training work dir (its ``last_checkpoint`` and config dump) or a checkpoint file.
        name: the zoo name ``zoo.load`` will take; an existing local model of that name is replaced. The name of
            an index entry (``lico-efficientnetlite0-clutteredfmnist``) gives the card that entry's dataset,
            terms, paper and license.
        config: the training config when none is dumped next to the checkpoint.
        seed: the run's seed (default: the config's ``randomness.seed``).
        evaluation: ``True`` reads the work dir's ``metrics.json`` and ``explain/results.json``; ``False`` leaves
            them out; or an :class:`~zoo.hub.results.Evaluation`.
        description: the card's first paragraph. provenance: more provenance fields.
    """
    folder = local_model_dir(name)
    cfg_path, ckpt = find_checkpoint(source, config)
    if not isinstance(evaluation, Evaluation):
        evaluation = work_dir_evaluation(source, config, names=[name], include=bool(evaluation))
    model, cfg = load_trained(source, config, trust_pickle=trust_pickle)
    index = find_index_entry(name, os.path.basename(cfg_path))
    recipe = (index.recipe if index is not None and index.recipe and
              os.path.basename(index.recipe) == os.path.basename(cfg_path) else None)
    made = dict(config=recipe or os.path.abspath(cfg_path), config_dump=os.path.abspath(cfg_path),
                seed=_seed(cfg) if seed is None else seed, **source_version(),
                checkpoint=os.path.abspath(ckpt), checkpoint_sha256=sha256_file(ckpt),
                work_dir=os.path.dirname(os.path.abspath(ckpt)),
                date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
                **dict(provenance or {}))
    ensure_dir(os.path.dirname(folder))
    tmp = os.path.join(os.path.dirname(folder), f'.partial-{name}-{os.getpid()}')  # hidden from listings
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        res = save_pretrained(model, tmp, cfg, evaluation=evaluation, name=name, provenance=made,
                              description=description)
        training = res.config.get('training') or {}
        entry = {'name': name, 'status': 'local', 'config': CONFIG_NAME,
                 'sha256': {WEIGHTS_NAME: res.sha256[WEIGHTS_NAME]},
                 'description': description or f"{training.get('method')} model trained here from "
                                               f"{recipe or os.path.basename(cfg_path)}",
                 'method': training.get('method'), 'recipe': recipe or os.path.basename(cfg_path),
                 'dataset': dict(index.dataset) if index is not None else {'name': training.get('dataset')},
                 'metrics': _entry_metrics(evaluation), 'notes': list(evaluation.notes),
                 'paper': training.get('paper') or (index.paper if index is not None else None),
                 'license': index.license if index is not None else None,
                 'hf_hub': index.hf_hub if index is not None else None, 'provenance': made,
                 'files': sorted(res.files)}
        write_json(os.path.join(tmp, LOCAL_ENTRY), entry)
        _swap_in(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return local_entries()[name]


def _swap_in(new: str, folder: str) -> None:
    """Replace ``folder`` by ``new`` (renames: readers see the old model or the new one, never a mix)."""
    old = os.path.join(os.path.dirname(folder), f'.old-{os.path.basename(folder)}-{os.getpid()}')
    if os.path.exists(folder):
        os.replace(folder, old)
    try:
        os.replace(new, folder)
    except OSError:
        if os.path.exists(old):
            os.replace(old, folder)
        raise
    shutil.rmtree(old, ignore_errors=True)
