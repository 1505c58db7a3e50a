"""Export a trained model as a Hub-ready folder: ``config.json`` + ``model.safetensors`` + ``README.md`` card.

The folder is what ``model.save_pretrained`` writes (:mod:`zoo.models.serialization`), plus a model card and the
figures it shows. The ``training`` block of ``config.json`` says how the model was trained: the recipe, and the
method as the model's family recognises it in the *training* config (``ImageClassifier`` with LICO alignment
heads → ``lico`` with its paper; see ``ZooModel.method_info``). :func:`export_checkpoint` picks up the work dir's
evaluation outputs by default (``metrics.json``, ``explain/results.json`` and its PNGs; see
:mod:`zoo.hub.results`) for the card.

Example::

    from zoo.hub.export import export_checkpoint
    export_checkpoint('work_dirs/resnet50_lico_cub', 'export/lico-resnet50-cub')
"""
from __future__ import annotations

import copy
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from zoo.core.checkpoints import find_checkpoint
from zoo.core.limits import CONFIG_NAME, WEIGHTS_NAME
from zoo.models.serialization import SavedModel

from .results import Evaluation, find_evaluation

FIGURE_NAME = 'saliency.png'


@dataclass
class ExportResult(SavedModel):
    """What :func:`save_pretrained` wrote (the model's files plus the card and figures): folder, files, sha256,
    config, and the evaluation its card reports (with notes on what was missing)."""

    evaluation: Evaluation = field(default_factory=Evaluation)


def training_info(cfg: Any, model_cls: type | None = None, recipe: str | None = None,
                  method: str | None = None) -> dict[str, Any]:
    """The ``training`` block of ``config.json``: recipe, method (from the model family), dataset, paper."""
    from registry import MODELS
    from zoo.models.serialization import to_json

    model_cfg = dict(cfg.get('model') or {})
    if model_cls is None:
        kind = model_cfg.get('type', 'ImageClassifier')
        model_cls = MODELS.get(kind) if isinstance(kind, str) else kind
    describe = getattr(model_cls, 'method_info', None)
    info = dict(describe(model_cfg)) if callable(describe) else {'method': 'unknown', 'tags': [], 'paper': None}
    branch = model_cfg.get('text_branch')
    loader = cfg.get('train_dataloader') or {}
    backbone = model_cfg.get('backbone') if isinstance(model_cfg.get('backbone'), Mapping) else {}
    out = {'recipe': recipe or (os.path.basename(cfg.filename) if getattr(cfg, 'filename', None) else None),
           'method': method or info.get('method'),
           'dataset': (loader.get('dataset') or {}).get('type') if isinstance(loader, Mapping) else None,
           'text_branch': branch.get('type') if isinstance(branch, Mapping) and model_cfg.get('alignment_heads')
           else None,
           'backbone_init': backbone.get('pretrained'),
           **{k: v for k, v in info.items() if k != 'method'}}
    return to_json(out, 'training')


def _saliency_figure(model: Any, images: Sequence[str], method: str, out: str) -> str | None:
    """A grid of saliency overlays of ``images`` written to ``out``."""
    import tempfile

    from zoo.apis.explaining import explain_images

    with tempfile.TemporaryDirectory() as tmp:
        res = explain_images(model, list(images), methods=[method], out_dir=tmp, progress=False)
        grid = next(p for p in res.files if p.name == 'grid.png')
        shutil.copyfile(grid, out)
    return out


def save_pretrained(model: Any, out_dir: str | os.PathLike, cfg: Any = None, *,
                    class_names: Sequence[str] | None = None, metrics: Mapping[str, Any] | None = None,
                    evaluation: Evaluation | None = None, explainer: str | None = None, figure: str | None = None,
                    example_images: Sequence[str] | None = None, repo_id: str | None = None, name: str | None = None,
                    card: bool = True, overwrite_card: bool = False, recipe: str | None = None,
                    method: str | None = None, provenance: Mapping[str, Any] | None = None,
                    description: str | None = None) -> ExportResult:
    """Write ``config.json``, ``model.safetensors``, the figures and (unless one exists) ``README.md`` into ``out_dir``.

    Args:
        model: the trained model (any zoo model); cfg: the mmengine config it was trained with (its test pipeline
            becomes the model's preprocessing, its model section says the method).
        metrics: more results to show on the card (``tools/test.py --out`` JSON, or ``{name: value}``).
        evaluation: results with conventions and figures (:func:`zoo.hub.results.find_evaluation`); its PNGs are
            copied into the folder and shown on the card.
        explainer: the default explainer of the export (default: the model's).
        figure: a PNG to show as the saliency figure; example_images: image files to draw one from instead.
        repo_id: the Hub repo the card's usage snippet names; name: the zoo name (local zoo). Either picks the zoo
            index entry (else the one of the same recipe) whose dataset, terms, paper and license the card cites.
        overwrite_card: replace an existing README.md. provenance: how the model was made (shown on the card).
        description: the card's first paragraph (default: what was trained, with which method, on what).
    """
    from zoo.core.fileio import sha256_file
    from zoo.models.contract import Preprocessing

    from .card import build_card
    from .index import find_index_entry

    out = os.fspath(out_dir)
    evaluation = evaluation or Evaluation()
    if cfg is not None:
        pre = model.data_preprocessor
        model.preprocessing = Preprocessing.from_config(cfg, [float(m) / 255 for m in pre.mean.flatten()],
                                                        [float(s) / 255 for s in pre.std.flatten()])
    if explainer is not None:
        defaults = model.explainer_defaults
        model.set_explainer_defaults(explainer, defaults.get('target_layer'))
    training = training_info(cfg, type(model), recipe, method) if cfg is not None else None
    saved = model.save_pretrained(out, training=training, class_names=class_names)
    result = ExportResult(saved.folder, list(saved.files), dict(saved.sha256), saved.config, evaluation)
    fig_path = os.path.join(out, FIGURE_NAME)
    if figure:
        shutil.copyfile(figure, fig_path)
    elif example_images:
        _saliency_figure(model, example_images, saved.config['explainer']['method'], fig_path)
    shown = [FIGURE_NAME] if os.path.isfile(fig_path) else []
    for fname, src in evaluation.figures.items():
        shutil.copyfile(src, os.path.join(out, fname))
        shown.append(fname)
    for fname in shown:
        result.files.append(fname)
        result.sha256[fname] = sha256_file(os.path.join(out, fname))
    readme = os.path.join(out, 'README.md')
    if card and (overwrite_card or not os.path.isfile(readme)):
        entry = find_index_entry(name or (repo_id.split('/')[-1] if repo_id else None),
                                 (saved.config.get('training') or {}).get('recipe'))
        build_card(saved.config, repo_id=repo_id, name=name, metrics=metrics, results=evaluation.results,
                   notes=evaluation.notes, sha256=result.sha256, figure=FIGURE_NAME if FIGURE_NAME in shown else None,
                   figures=shown, dataset=entry.dataset if entry else None, license=entry.license if entry else None,
                   paper=entry.paper if entry else None, provenance=provenance,
                   description=description).save(readme)
    if os.path.isfile(readme):
        result.files.append('README.md')
    return result


def load_trained(source: str | os.PathLike, config: str | None = None, trust_pickle: bool = True) -> tuple[Any, Any]:
    """``(model, cfg)``: the inference model of a work_dir/checkpoint (CPU, eval) and its full training config.

    Training checkpoints (``.pth``) are pickles this user wrote, so they are trusted by default here (as in
    ``tools/test.py``); pass ``trust_pickle=False`` to accept ``.safetensors`` only.
    """
    from zoo.apis.config import load_config
    from zoo.apis.inference import init_model

    cfg_path, ckpt = find_checkpoint(source, config)
    cfg = load_config(cfg_path)
    model = init_model(copy.deepcopy(cfg), ckpt, device='cpu', trust_pickle=trust_pickle)
    return model, cfg


def work_dir_evaluation(source: str | os.PathLike, config: str | None = None, *,
                        metrics: Sequence[str | os.PathLike] | None = None,
                        explain: str | os.PathLike | None = None, comparison: str | os.PathLike | None = None,
                        names: Sequence[str] = (), include: bool = True) -> Evaluation:
    """The evaluation outputs of a work_dir/checkpoint's model (:func:`zoo.hub.results.find_evaluation` on the
    checkpoint's folder; outputs older than the checkpoint are left out with a note)."""
    cfg_path, ckpt = find_checkpoint(source, config)
    recipe = os.path.basename(cfg_path)
    return find_evaluation(os.path.dirname(os.path.abspath(ckpt)), checkpoint=ckpt, metrics=metrics, explain=explain,
                           comparison=comparison, names=[*names, recipe], include=include)


def export_checkpoint(source: str | os.PathLike, out_dir: str | os.PathLike, config: str | None = None,
                      trust_pickle: bool = True, evaluation: Evaluation | bool = True, **kwargs: Any) -> ExportResult:
    """:func:`save_pretrained` of a training work_dir or checkpoint (see :func:`zoo.core.checkpoints.find_checkpoint`),
    with the work dir's evaluation outputs on the card (``evaluation=False`` leaves them out; an
    :class:`~zoo.hub.results.Evaluation` replaces them).

    Example::

        export_checkpoint('work_dirs/resnet50_lico_cub', 'export/lico-resnet50-cub')
    """
    if not isinstance(evaluation, Evaluation):
        names = [kwargs.get('name') or '', (kwargs.get('repo_id') or '').split('/')[-1]]
        evaluation = work_dir_evaluation(source, config, names=names, include=bool(evaluation))
    model, cfg = load_trained(source, config, trust_pickle=trust_pickle)
    return save_pretrained(model, out_dir, cfg, evaluation=evaluation, **kwargs)


__all__ = ['ExportResult', 'Evaluation', 'FIGURE_NAME', 'CONFIG_NAME', 'WEIGHTS_NAME', 'save_pretrained',
           'load_trained', 'export_checkpoint', 'work_dir_evaluation', 'training_info', 'find_checkpoint']
