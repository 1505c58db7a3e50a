"""Publish a trained model to the Hugging Face Hub in one commit (what ``tools/push_to_hub.py`` runs).

The export folder (``config.json``, ``model.safetensors``, ``README.md`` card, the work dir's saliency grid and
curves, optional ``saliency.png``) is built in a temporary folder and sent with a single ``HfApi.create_commit``.
The card reports the work dir's evaluation outputs by default (``metrics.json``, ``explain/results.json``; see
:mod:`zoo.hub.results`). A card already in the repo is kept unless ``overwrite_card=True``. ``dry_run=OUT_DIR``
writes the folder there and touches no network; a folder that already holds an export is refused unless
``overwrite=True``.

Example::

    from zoo.hub.publish import push_to_hub
    res = push_to_hub('work_dirs/resnet50_lico_cub', 'my-lab/lico-resnet50-cub')
    res.commit_oid, res.sha256['model.safetensors']
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from registry.errors import ConfigError
from zoo.core.limits import CONFIG_NAME, WEIGHTS_NAME

_REPO_ID = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$')


@dataclass
class PushResult:
    """What was written or pushed: files and sha256, the folder (dry runs) or the commit (pushes)."""

    repo_id: str
    folder: str | None
    files: list[str]
    sha256: dict[str, str]
    commit_url: str | None = None
    commit_oid: str | None = None
    pr_url: str | None = None
    revision: str | None = None
    card_kept: bool = False
    config: dict[str, Any] = field(default_factory=dict, repr=False)
    notes: list[str] = field(default_factory=list)
    """What the card could not report (no evaluation outputs, stale ones), for people."""
    results: int = 0
    """How many evaluation results the card reports."""

    def index_entry(self, name: str | None = None) -> dict[str, Any]:
        """An entry for a lab's own model index (``zoo.register_index``) pinning this push."""
        published = bool(self.commit_oid) and not self.pr_url
        return {'name': name or self.repo_id.split('/')[-1], 'hf_hub': self.repo_id, 'config': None,
                'revision': self.commit_oid, 'sha256': {WEIGHTS_NAME: self.sha256.get(WEIGHTS_NAME)},
                'status': 'published' if published else 'unpublished',
                'method': (self.config.get('training') or {}).get('method')}


def read_results(paths: Sequence[str | os.PathLike]) -> dict[str, Any]:
    """Merge metrics from JSON files (``tools/test.py --out`` output or ``{name: value}``)."""
    merged: dict[str, Any] = {}
    for path in paths:
        try:
            with open(path, encoding='utf-8') as fh:
                data = json.load(fh)
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f'Cannot read results file {os.fspath(path)!r}: {exc}') from exc
        metrics = data.get('metrics', data) if isinstance(data, Mapping) else None
        if not isinstance(metrics, Mapping):
            raise ConfigError(f'Results file {os.fspath(path)!r} must hold a JSON object of metrics (or '
                              '{"metrics": {...}} as tools/test.py --out writes).')
        merged.update(metrics)
    return merged


def check_dry_run_folder(folder: str | os.PathLike, overwrite: bool) -> None:
    """Refuse to write an export into a folder that already holds one (its ``config.json``) unless ``overwrite``."""
    if not overwrite and os.path.isfile(os.path.join(os.fspath(folder), CONFIG_NAME)):
        raise ConfigError(f'{os.fspath(folder)!r} already holds an export ({CONFIG_NAME}); pass --overwrite to '
                          'replace it, or choose another --dry-run folder.')


def push_to_hub(source: str | os.PathLike, repo_id: str, *, revision: str | None = None, private: bool = False,
                create_pr: bool = False, dry_run: str | os.PathLike | None = None, config: str | None = None,
                results: Sequence[str | os.PathLike] = (), metrics: Mapping[str, Any] | None = None,
                explain_results: str | os.PathLike | None = None, comparison: str | os.PathLike | None = None,
                evaluation: bool = True, figure: str | None = None, example_images: Sequence[str] | None = None,
                overwrite_card: bool = False, overwrite: bool = False, commit_message: str | None = None,
                token: str | None = None, trust_pickle: bool = True) -> PushResult:
    """Export the model of a work_dir/checkpoint and push it to ``repo_id`` as one commit (or only write it).

    Args:
        source: a training work_dir or checkpoint (see :func:`zoo.hub.export.find_checkpoint`).
        revision: branch to commit to (created from main when missing). create_pr: open a pull request instead.
        dry_run: write the export folder here and stop (no network).
        config: the training config when it cannot be found next to the checkpoint.
        results: metrics files for the card instead of the work dir's ``metrics.json`` (``tools/test.py --out``);
            explain_results: an explanation report instead of the work dir's ``explain/results.json``;
            comparison: a comparison report (``tools/compare.py``) whose CIs for this model the card adds;
            evaluation: ``False`` leaves every evaluation output out; metrics: more ``{name: value}`` results.
        figure/example_images: the card's saliency figure (the work dir's explanation PNGs are added anyway).
        overwrite_card: replace a README.md already in the repo (kept by default).
        overwrite: let ``dry_run`` write into a folder that already holds an export (refused by default).
        trust_pickle: the training checkpoint is a pickle you wrote (default True, as tools/test.py).
    """
    from .export import load_trained, save_pretrained, work_dir_evaluation

    if not isinstance(repo_id, str) or not _REPO_ID.match(repo_id):
        raise ConfigError(f'--repo-id must be ORG/NAME (letters, digits, ".", "-", "_"), got {repo_id!r}.')
    if create_pr and revision not in (None, 'main'):
        raise ConfigError('--create-pr opens a pull request against main; leave out --revision.')
    found = work_dir_evaluation(source, config, metrics=list(results) or None, explain=explain_results,
                                comparison=comparison, names=[repo_id.split('/')[-1]], include=evaluation)
    if dry_run is not None:  # (after the source is found: a wrong source is the first thing to hear about)
        check_dry_run_folder(dry_run, overwrite)
    model, cfg = load_trained(source, config, trust_pickle=trust_pickle)
    export_kw = dict(metrics=dict(metrics) if metrics else None, evaluation=found, figure=figure,
                     example_images=example_images, repo_id=repo_id)
    if dry_run is not None:
        res = save_pretrained(model, dry_run, cfg, overwrite_card=overwrite_card or overwrite, **export_kw)
        return PushResult(repo_id, res.folder, res.files, res.sha256, revision=revision, config=res.config,
                          notes=list(found.notes), results=len(found.results))

    from huggingface_hub import CommitOperationAdd, HfApi

    api = HfApi(token=token, library_name='xzoo')
    api.create_repo(repo_id, private=private or None, exist_ok=True)  # None: the owner's default visibility
    if revision not in (None, 'main'):
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    card_exists = api.file_exists(repo_id, 'README.md', revision=revision)
    with tempfile.TemporaryDirectory(prefix='xzoo-push-') as tmp:
        res = save_pretrained(model, tmp, cfg, card=overwrite_card or not card_exists, overwrite_card=True,
                              **export_kw)
        ops = [CommitOperationAdd(path_in_repo=f, path_or_fileobj=os.path.join(tmp, f)) for f in res.files]
        info = api.create_commit(repo_id, ops, commit_message=commit_message or f'Upload {repo_id} with xzoo',
                                 revision=revision, create_pr=create_pr)
    return PushResult(repo_id, None, res.files, res.sha256,
                      commit_url=info.commit_url, commit_oid=info.oid, pr_url=info.pr_url,
                      revision=info.pr_revision or revision or 'main', card_kept=card_exists and not overwrite_card,
                      config=res.config, notes=list(found.notes), results=len(found.results))
