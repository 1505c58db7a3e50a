"""Export a trained classifier as a Hub-ready folder: ``config.json`` + ``model.safetensors`` + ``README.md``.

``config.json`` is plain JSON (schema in :mod:`zoo.hub.schema`); ``model.safetensors`` holds the inference weights
only — the LICO text branch and alignment heads are training-only and never exported.

Example:
    >>> from zoo.hub.export import strip_training_only
    >>> sorted(strip_training_only(dict(type='ImageClassifier', backbone=dict(type='TimmBackbone', pretrained=True),
    ...     head=dict(type='LinearClsHead'), text_branch=dict(type='LICOTextBranch'), alignment_heads=[])))
    ['backbone', 'head', 'type']
"""
from __future__ import annotations

import copy
import glob
import hashlib
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .index import CONFIG_NAME, WEIGHTS_NAME
from .schema import FORMAT, FORMAT_VERSION, to_json, validate_config, write_json

TRAINING_ONLY_KEYS = ('alignment_heads', 'text_branch', 'alignment_defaults', 'init_cfg')
TRAINING_ONLY_PREFIXES = ('alignment_heads.', 'text_branch.')
FIGURE_NAME = 'saliency.png'
_LICO_HEADS = {'ManifoldAlignmentHead', 'OTAlignmentHead'}
_INTERPOLATION = {0: 'nearest', 1: 'lanczos', 2: 'bilinear', 3: 'bicubic', 4: 'box', 5: 'hamming'}
_SIZE_KEYS = ('image_size', 'canvas_size', 'img_size')


@dataclass
class ExportResult:
    """What :func:`save_pretrained` wrote: the folder, its files, their sha256 and the config."""

    folder: str
    files: list[str] = field(default_factory=list)
    sha256: dict[str, str] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file (streamed)."""
    digest = hashlib.sha256()
    with open(path, 'rb') as fh:
        for block in iter(lambda: fh.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def strip_training_only(model_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """``model_cfg`` without training-only parts (alignment heads, text branch, ``init_cfg`` anywhere)."""
    def strip(node: Any) -> Any:
        if isinstance(node, Mapping):
            return {k: strip(v) for k, v in node.items() if k != 'init_cfg'}
        if isinstance(node, (list, tuple)):
            return [strip(v) for v in node]
        return node

    out = {k: v for k, v in dict(model_cfg).items() if k not in TRAINING_ONLY_KEYS}
    out = strip(copy.deepcopy(out))
    if isinstance(out.get('backbone'), dict) and 'pretrained' in out['backbone']:
        out['backbone']['pretrained'] = False  # the exported weights replace any initialisation
    return out


def _pair(size: Any) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, int):
        return size, size
    size = list(size)
    return (int(size[0]), int(size[0])) if len(size) == 1 else (int(size[0]), int(size[1]))


def _dataset_image_size(dataset: Mapping[str, Any]) -> tuple[int, int] | None:
    """A generated dataset's image side, from its config or its class's default (``image_size``, ...)."""
    import inspect

    for key in _SIZE_KEYS:
        if key in dataset:
            return _pair(dataset[key])
    try:
        from registry import DATASETS

        params = inspect.signature(DATASETS.get(dataset['type'])).parameters
    except Exception:  # noqa: BLE001 - unknown dataset type: no size from it
        return None
    for key in _SIZE_KEYS:
        if key in params and isinstance(params[key].default, int):
            return _pair(params[key].default)
    return None


def preprocessing_from_cfg(cfg: Any, mean: Sequence[float], std: Sequence[float]) -> dict[str, Any]:
    """The test-time preprocessing of a config: timm-style summary plus the exact pipeline.

    ``mean``/``std`` are in the 0-255 pixel scale (as the data preprocessor holds them); they are written in the
    0-1 scale, as timm's ``pretrained_cfg``.
    """
    loader = cfg.get('test_dataloader') or cfg.get('val_dataloader') or {}
    dataset = dict(loader.get('dataset') or {})
    steps = [to_json(dict(t), 'test pipeline') for t in dataset.get('pipeline') or []
             if dict(t).get('type') != 'PackInputs']
    resize = crop = None
    interpolation = 'bilinear'
    for step in steps:
        kind = str(step.get('type', '')).rsplit('.', 1)[-1]
        if kind == 'Resize':
            resize = step.get('size')
            interp = step.get('interpolation', 2)
            interpolation = _INTERPOLATION.get(interp, str(interp)) if isinstance(interp, int) else str(interp)
        elif kind == 'CenterCrop':
            crop = _pair(step.get('size'))
    resized = _pair(resize)
    hw = crop or resized or _dataset_image_size(dataset)
    if hw is None:
        from registry.errors import ConfigError
        raise ConfigError('Cannot tell the model input size: the test pipeline has no Resize/CenterCrop and the '
                          "dataset no image size. Add dict(type='Resize', size=...) to the test pipeline.")
    crop_pct = round(crop[0] / resized[0], 6) if crop and resized else 1.0
    return {'input_size': [3, hw[0], hw[1]], 'resize': resize, 'crop_pct': crop_pct,
            # timm's vocabulary: 'squash' = resize both sides to an exact size, then centre crop
            'crop_mode': 'squash' if isinstance(resize, (list, tuple)) else 'center', 'interpolation': interpolation,
            'mean': [round(float(m) / 255, 6) for m in mean], 'std': [round(float(s) / 255, 6) for s in std],
            'pipeline': steps}


def _training_info(cfg: Any, recipe: str | None, method: str | None) -> dict[str, Any]:
    model_cfg = cfg.get('model') or {}
    heads = [to_json(h.get('type'), 'alignment head') for h in model_cfg.get('alignment_heads') or []]
    branch = model_cfg.get('text_branch')
    loader = cfg.get('train_dataloader') or {}
    backbone = dict(model_cfg.get('backbone') or {})
    return {'recipe': recipe or (os.path.basename(cfg.filename) if getattr(cfg, 'filename', None) else None),
            'method': method or ('lico' if set(heads) & _LICO_HEADS else 'alignment' if heads else 'baseline'),
            'dataset': to_json((loader.get('dataset') or {}).get('type'), 'dataset type'),
            'alignment_heads': heads,
            'text_branch': to_json(branch.get('type'), 'text branch') if isinstance(branch, Mapping) else None,
            'backbone_init': to_json(backbone.get('pretrained'), 'backbone.pretrained')}


def model_config(model: Any, cfg: Any, class_names: Sequence[str] | None = None, explainer: str = 'gradcam',
                 explainer_kwargs: Mapping[str, Any] | None = None, recipe: str | None = None,
                 method: str | None = None) -> dict[str, Any]:
    """The ``config.json`` of ``model`` built from the mmengine config ``cfg`` (validated before returning)."""
    import zoo

    model_cfg = strip_training_only(cfg.model)
    architecture = to_json(model_cfg.pop('type', 'ImageClassifier'), 'model.type')
    model_cfg.pop('class_names', None)
    mean = [float(v) for v in model.data_preprocessor.mean.flatten()]
    std = [float(v) for v in model.data_preprocessor.std.flatten()]
    pre_cfg = dict(model_cfg.get('data_preprocessor') or {'type': 'ClsDataPreprocessor'})
    if pre_cfg.get('mean') is None or pre_cfg.get('std') is None:  # filled from timm at build time: pin them
        pre_cfg.update(mean=mean, std=std)
    model_cfg['data_preprocessor'] = pre_cfg
    names = list(class_names) if class_names is not None else model.class_names
    meta = dict(model.explain_meta)
    config = {
        'format': FORMAT, 'format_version': FORMAT_VERSION, 'xzoo_version': zoo.__version__,
        'architecture': architecture,
        'model_args': to_json(model_cfg, 'model'),
        'num_classes': int(model.num_classes),
        'class_names': [str(n) for n in names] if names else None,
        'preprocessing': preprocessing_from_cfg(cfg, mean, std),
        'explainer': {'method': explainer, 'target_layer': meta.get('target_layer'),
                      'patch_size': to_json(meta.get('patch_size')), 'num_prefix_tokens': meta.get('num_prefix_tokens'),
                      'output_fmt': meta.get('output_fmt'), 'kwargs': to_json(dict(explainer_kwargs or {}))},
        'training': _training_info(cfg, recipe, method),
    }
    return validate_config(config, 'the exported config')


def inference_weights(model: Any) -> dict[str, Any]:
    """CPU copies of the weights needed at inference (no alignment-head or text-branch tensor)."""
    state = model.inference_state_dict() if hasattr(model, 'inference_state_dict') else model.state_dict()
    return {k: v.detach().to('cpu').contiguous().clone() for k, v in state.items()
            if not k.startswith(TRAINING_ONLY_PREFIXES)}


def _saliency_figure(model: Any, images: Sequence[str], method: str, out: str) -> str | None:
    """A grid of saliency overlays of ``images`` (needs zoo.explainers/zoo.viz); ``None`` if unavailable."""
    import tempfile

    try:
        from zoo.apis.explain import explain_images
    except ImportError:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        res = explain_images(model, list(images), methods=[method], out_dir=tmp, progress=False)
        grid = next(p for p in res.files if p.name == 'grid.png')
        shutil.copyfile(grid, out)
    return out


def save_pretrained(model: Any, out_dir: str | os.PathLike, cfg: Any, *, class_names: Sequence[str] | None = None,
                    metrics: Mapping[str, Any] | None = None, explainer: str = 'gradcam',
                    figure: str | None = None, example_images: Sequence[str] | None = None,
                    repo_id: str | None = None, card: bool = True, overwrite_card: bool = False,
                    recipe: str | None = None, method: str | None = None) -> ExportResult:
    """Write ``config.json``, ``model.safetensors`` and (unless one exists) ``README.md`` into ``out_dir``.

    Args:
        model: the trained classifier; cfg: the mmengine config it was built from.
        metrics: results to show on the card (``tools/test.py --out`` JSON, or ``{name: value}``).
        figure: a PNG to show as the saliency figure; example_images: image files to draw one from instead.
        repo_id: the Hub repo the card's usage snippet names. overwrite_card: replace an existing README.md.
    """
    from safetensors.torch import save_file

    from .card import build_card

    out = os.fspath(out_dir)
    os.makedirs(out, exist_ok=True)
    config = model_config(model, cfg, class_names=class_names, explainer=explainer, recipe=recipe, method=method)
    write_json(os.path.join(out, CONFIG_NAME), config)
    weights = inference_weights(model)
    leaked = [k for k in weights if k.startswith(TRAINING_ONLY_PREFIXES)]
    assert not leaked, leaked  # inference_weights filters them; keep the promise explicit
    tmp = os.path.join(out, f'.{WEIGHTS_NAME}.tmp{os.getpid()}')
    save_file(weights, tmp, metadata={'format': 'pt', 'producer': f'xzoo {config["xzoo_version"]}'})
    os.chmod(tmp, 0o644)  # safetensors creates the file private (0600); give it the usual permissions
    os.replace(tmp, os.path.join(out, WEIGHTS_NAME))
    result = ExportResult(out, [CONFIG_NAME, WEIGHTS_NAME], config=config)
    fig_path = os.path.join(out, FIGURE_NAME)
    if figure:
        shutil.copyfile(figure, fig_path)
    elif example_images:
        _saliency_figure(model, example_images, explainer, fig_path)
    if os.path.isfile(fig_path):
        result.files.append(FIGURE_NAME)
    result.sha256 = {f: sha256_file(os.path.join(out, f)) for f in result.files}
    readme = os.path.join(out, 'README.md')
    if card and (overwrite_card or not os.path.isfile(readme)):
        build_card(config, repo_id=repo_id, metrics=metrics, sha256=result.sha256,
                   figure=FIGURE_NAME if FIGURE_NAME in result.files else None).save(readme)
    if os.path.isfile(readme):
        result.files.append('README.md')
    return result


def _number(path: str) -> int:
    m = re.search(r'(\d+)\.pth$', path)
    return int(m.group(1)) if m else -1


def find_checkpoint(source: str | os.PathLike, config: str | None = None) -> tuple[str, str]:
    """``(config, checkpoint)`` from a training work_dir (its ``last_checkpoint`` and config dump) or a
    checkpoint file (the config is ``config`` or the single ``.py`` next to it)."""
    from registry.errors import CheckpointError, ConfigError

    source = os.path.expanduser(os.fspath(source))
    if os.path.isdir(source):
        work_dir, ckpt = source, None
        pointer = os.path.join(source, 'last_checkpoint')
        if os.path.isfile(pointer):
            with open(pointer, encoding='utf-8') as fh:
                named = fh.read().strip()
            ckpt = named if os.path.isabs(named) else os.path.join(source, named)
            if not os.path.isfile(ckpt):
                ckpt = os.path.join(source, os.path.basename(named))
        if ckpt is None or not os.path.isfile(ckpt):
            found = sorted(glob.glob(os.path.join(source, '*.pth')) + glob.glob(os.path.join(source, '*.safetensors')),
                           key=_number)
            if not found:
                raise CheckpointError(f'{source!r} holds no checkpoint (no last_checkpoint, *.pth or *.safetensors). '
                                      'Pass a training work_dir or a checkpoint file.')
            ckpt = found[-1]
    elif os.path.isfile(source):
        work_dir, ckpt = os.path.dirname(os.path.abspath(source)), source
    else:
        raise CheckpointError(f'{source!r} does not exist. Pass a training work_dir or a checkpoint file.')
    if config is None:
        dumps = sorted(glob.glob(os.path.join(work_dir, '*.py')))
        if len(dumps) != 1:
            what = 'no config dump (*.py)' if not dumps else f'{len(dumps)} configs ({", ".join(dumps)})'
            raise ConfigError(f'{work_dir!r} holds {what}; pass the training config with --config.')
        config = dumps[0]
    return config, ckpt


def load_trained(source: str | os.PathLike, config: str | None = None, trust_pickle: bool = True) -> tuple[Any, Any]:
    """``(model, cfg)``: the inference classifier of a work_dir/checkpoint (CPU, eval) and its full config.

    Training checkpoints (``.pth``) are pickles this user wrote, so they are trusted by default here (as in
    ``tools/test.py``); pass ``trust_pickle=False`` to accept ``.safetensors`` only.
    """
    from zoo.apis import init_model, load_config

    cfg_path, ckpt = find_checkpoint(source, config)
    cfg = load_config(cfg_path)
    build_cfg = copy.deepcopy(cfg)
    build_cfg.model = strip_training_only(cfg.model)
    model = init_model(build_cfg, ckpt, device='cpu', trust_pickle=trust_pickle)
    return model, cfg


def export_checkpoint(source: str | os.PathLike, out_dir: str | os.PathLike, config: str | None = None,
                      trust_pickle: bool = True, **kwargs: Any) -> ExportResult:
    """:func:`save_pretrained` of a training work_dir or checkpoint (see :func:`find_checkpoint`).

    Example:
        >>> export_checkpoint('work_dirs/resnet50_lico_cub', 'export/lico-resnet50-cub')  # doctest: +SKIP
    """
    model, cfg = load_trained(source, config, trust_pickle=trust_pickle)
    return save_pretrained(model, out_dir, cfg, **kwargs)

