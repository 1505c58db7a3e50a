"""The export format of every zoo model — ``config.json`` + ``model.safetensors`` — and how it is written and read.

Writing (:func:`save_model`, what ``model.save_pretrained`` runs) stores the model's ``inference_config()``
(training-only parts dropped, ``pretrained`` off), its :class:`~zoo.models.contract.Preprocessing`, class names,
explainer defaults and a ``training`` block, and the inference weights, atomically.

Reading (:func:`load_model`, what ``ZooModel.from_pretrained`` and ``zoo.load`` run) treats the folder as
**untrusted** (see docs/security.md):

- ``config.json`` is read with size and depth caps and checked by :func:`zoo.validation.check_untrusted`:
  registered names only (never a module path), no argument that loads files or code, no training-only part,
  integers under the caps; preprocessing and explainer settings are checked too;
- the weights file must be ``model.safetensors`` inside the folder (a symlink out of it is refused; a pickle only
  with ``trust_pickle=True``); its header is read first and compared with the architecture built on the ``meta``
  device, so a config that does not fit its weights fails before anything is allocated;
- tensors must be finite, of a floating dtype where the model has floats, and loaded strictly;
- building and loading run under :func:`zoo.core.netguard.no_network`: a component that tried to reach the network
  anyway would make the load fail.

Example:
    >>> import tempfile, torch
    >>> from registry import MODELS
    >>> model = MODELS.build(dict(type='ImageClassifier', class_names=['a', 'b'],
    ...                           backbone=dict(type='TimmBackbone', model_name='test_resnet'),
    ...                           head=dict(type='LinearClsHead', num_classes=2)))
    >>> folder = tempfile.mkdtemp()
    >>> sorted(model.save_pretrained(folder).files)
    ['config.json', 'model.safetensors']
    >>> loaded = load_model(folder)
    >>> x = torch.randn(1, 3, 32, 32)
    >>> bool(torch.allclose(model.eval()(x), loaded(x)))
    True
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from registry.errors import CheckpointError, ConfigError, SecurityError, XZooError, shorten
from zoo.core.fileio import atomic_path, ensure_dir, sha256_file, write_json
from zoo.core.limits import (
    CONFIG_NAME,
    FORMAT,
    FORMAT_VERSION,
    MAX_BATCH,
    MAX_CLASSES,
    MAX_EXPLAINER_INT,
    MAX_IMAGE_SIDE,
    MAX_PARAMS,
    WEIGHTS_NAME,
    read_json,
)
from zoo.core.netguard import no_network

from .weights import (
    check_state_dict_fits,
    load_model_weights,
    pick_weights_file,
    safetensors_header,
    verify_sha256,
)

REQUIRED = ('format', 'format_version', 'architecture', 'model_args', 'num_classes', 'preprocessing', 'explainer')
_TEST_TRANSFORMS = frozenset({'Resize', 'CenterCrop', 'Pad', 'Grayscale', 'RGB'})
"""What an untrusted preprocessing pipeline may contain: deterministic test-time transforms."""


# --- JSON ---------------------------------------------------------------------------------------------------------
def to_json(obj: Any, where: str = 'config') -> Any:
    """``obj`` as plain JSON values (tuples → lists); a class becomes its name, anything else is an error.

    Example:
        >>> to_json({'size': (510, 510), 'flag': True})
        {'size': [510, 510], 'flag': True}
    """
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        if not math.isfinite(obj):
            raise ConfigError(f'{where} is {obj}, which JSON cannot hold.')
        return obj
    if isinstance(obj, Mapping):  # 'type' first: a component reads as what it is, then its arguments
        keys = sorted(obj, key=lambda k: k != 'type')
        return {str(k): to_json(obj[k], f'{where}.{k}') for k in keys}
    if isinstance(obj, (list, tuple)):
        return [to_json(v, f'{where}[{i}]') for i, v in enumerate(obj)]
    if isinstance(obj, type):
        return obj.__name__  # a class in `type=`: exported by its registered name (checked when loading)
    if hasattr(obj, 'item') and getattr(obj, 'ndim', None) == 0:  # numpy / torch scalar
        return to_json(obj.item(), where)
    raise ConfigError(f'{where} is a {type(obj).__name__} ({shorten(repr(obj), 80)}); a config.json holds plain '
                      'values only. Build the model from a config (numbers, strings, lists, dicts) to export it.')


# --- checks of untrusted parts -----------------------------------------------------------------------------------
def _numbers(value: Any, where: str, source: str, length: int | None = None) -> list[float]:
    ok = isinstance(value, (list, tuple)) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    if not ok or (length is not None and len(value) != length):
        size = f'{length} ' if length else ''
        raise ConfigError(f'{source}: {where} must be a list of {size}finite numbers, got {shorten(repr(value))}.')
    return [float(v) for v in value]


def _side(value: Any, where: str, source: str) -> None:
    sides = value if isinstance(value, (list, tuple)) else [value]
    for v in sides:
        if isinstance(v, bool) or not isinstance(v, int) or not 0 < v <= MAX_IMAGE_SIDE:
            raise SecurityError(f'{source}: {where} must hold positive integer sizes of at most {MAX_IMAGE_SIDE} px, '
                                f'got {shorten(repr(value))}.')


def check_preprocessing(cls: type, data: Any, source: str) -> Any:
    """A :class:`~zoo.models.contract.Preprocessing` (``cls``) from an untrusted ``preprocessing`` object."""
    if not isinstance(data, Mapping):
        raise ConfigError(f'{source}: "preprocessing" must be an object (input_size, mean, std, ...).')
    missing = [k for k in ('input_size', 'mean', 'std') if k not in data]
    if missing:
        raise ConfigError(f'{source}: "preprocessing" lacks {", ".join(map(repr, missing))}; re-export the model.')
    size = data['input_size']
    if not isinstance(size, (list, tuple)) or len(size) != 3:
        raise ConfigError(f'{source}: "preprocessing.input_size" must be [channels, height, width].')
    _side(list(size), 'preprocessing.input_size', source)
    if size[0] not in (1, 3):
        raise ConfigError(f'{source}: preprocessing.input_size has {size[0]} channels; 1 or 3 expected.')
    mean = _numbers(data['mean'], 'preprocessing.mean', source, size[0] if size[0] == 3 else None)
    std = _numbers(data['std'], 'preprocessing.std', source, len(mean))
    if any(s <= 0 for s in std):
        raise ConfigError(f'{source}: preprocessing.std must be positive, got {std}.')
    steps = data.get('pipeline') or []
    if not isinstance(steps, list):
        raise ConfigError(f'{source}: "preprocessing.pipeline" must be a list of transforms.')
    from registry import TRANSFORMS
    from zoo.validation import check_component

    for i, step in enumerate(steps):
        kind = step.get('type') if isinstance(step, Mapping) else None
        if not isinstance(kind, str) or kind not in _TEST_TRANSFORMS:
            raise SecurityError(f'{source}: preprocessing.pipeline[{i}].type = {shorten(repr(kind))}; a config.json '
                                f'pipeline may hold only {", ".join(sorted(_TEST_TRANSFORMS))}. Refused.')
        check_component(step, TRANSFORMS, f'preprocessing.pipeline[{i}]', untrusted=True, source=f'{source}: ')
        for key in ('size', 'padding', 'max_size'):
            if step.get(key) is not None:
                _side(step[key], f'preprocessing.pipeline[{i}].{key}', source)
    resize = data.get('resize')
    if resize is not None:
        _side(resize, 'preprocessing.resize', source)
    crop_pct = data.get('crop_pct', 1.0)
    if isinstance(crop_pct, bool) or not isinstance(crop_pct, (int, float)) or not 0 < crop_pct <= 1:
        raise ConfigError(f'{source}: preprocessing.crop_pct must be in (0, 1], got {shorten(repr(crop_pct))}.')
    text = {k: data.get(k, d) for k, d in (('interpolation', 'bilinear'), ('crop_mode', 'center'))}
    for key, value in text.items():
        if not isinstance(value, str) or len(value) > 32:
            raise ConfigError(f'{source}: preprocessing.{key} must be a short string, got {shorten(repr(value))}.')
    return cls(input_size=tuple(int(v) for v in size), mean=tuple(mean), std=tuple(std),
               interpolation=text['interpolation'], crop_pct=float(crop_pct), crop_mode=text['crop_mode'],
               resize=tuple(resize) if isinstance(resize, list) else resize, pipeline=tuple(dict(s) for s in steps))


def _check_explainer(explainer: Any, source: str) -> None:
    from zoo.explainers import explainer_class
    from zoo.validation import _check_plain_tree

    if not isinstance(explainer, Mapping) or not isinstance(explainer.get('method'), str):
        raise ConfigError(f'{source}: "explainer" must be an object with a "method" name, e.g. "gradcam".')
    try:
        cls = explainer_class(explainer['method'])
    except XZooError as exc:
        raise SecurityError(f'{source}: explainer.method: {exc}') from None
    kwargs = explainer.get('kwargs') or {}
    if not isinstance(kwargs, Mapping):
        raise ConfigError(f'{source}: "explainer.kwargs" must be an object of explainer arguments.')
    import inspect

    accepted = set(inspect.signature(cls).parameters)
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise SecurityError(f'{source}: explainer.kwargs.{shorten(unknown[0], 60)} is not an argument of '
                            f'{cls.__name__}; refused.')
    _check_plain_tree(dict(kwargs), 'explainer.kwargs', f'{source}: ')
    for key, value in kwargs.items():  # explaining must stay cheap: masks, batches and steps are capped lower
        cap = MAX_BATCH if key == 'batch_size' else MAX_EXPLAINER_INT
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > cap:
            raise SecurityError(f'{source}: explainer.kwargs.{key} = {value} is larger than {cap:,}; refused.')
    layer = explainer.get('target_layer')
    if layer is not None and (not isinstance(layer, str) or len(layer) > 512):
        raise ConfigError(f'{source}: explainer.target_layer must be a dotted module name.')


def validate_export_config(config: Any, source: str) -> dict[str, Any]:
    """Check a parsed ``config.json`` (schema + safety, see the module docstring); return it."""
    if not isinstance(config, dict):
        raise ConfigError(f'{source} must hold a JSON object, got {type(config).__name__}.')
    if config.get('format') != FORMAT:
        raise ConfigError(f'{source} is not an xzoo model config (format {shorten(repr(config.get("format")))}, '
                          f'expected {FORMAT!r}). Export models with model.save_pretrained or tools/push_to_hub.py.')
    missing = [k for k in REQUIRED if k not in config]
    if missing:
        raise ConfigError(f'{source} lacks {", ".join(map(repr, missing))}; re-export the model.')
    version = config['format_version']
    if isinstance(version, bool) or not isinstance(version, int) or version > FORMAT_VERSION:
        raise ConfigError(f'{source} has format_version {shorten(repr(version))}; this xzoo reads up to '
                          f'{FORMAT_VERSION}. Upgrade xzoo.')
    if not isinstance(config['model_args'], dict) or 'type' in config['model_args']:
        raise ConfigError(f'{source}: "model_args" must be an object of the architecture\'s arguments '
                          '(without "type"; the class is "architecture").')
    arch = config['architecture']
    from registry import MODELS
    from zoo.validation import check_untrusted

    if not isinstance(arch, str) or arch not in MODELS or '.' in arch:
        raise SecurityError(f'{source}: architecture {shorten(repr(arch))} is not the name of a registered xzoo '
                            'model; refused (a config.json may only name registered components, never a module '
                            'path).')
    num = config['num_classes']
    if isinstance(num, bool) or not isinstance(num, int) or not 0 < num <= MAX_CLASSES:
        raise SecurityError(f'{source}: num_classes must be an integer in 1..{MAX_CLASSES:,}, got '
                            f'{shorten(repr(num))}.')
    check_untrusted({'type': arch, **config['model_args']}, source)
    from .contract import Preprocessing

    check_preprocessing(Preprocessing, config['preprocessing'], source)
    names = config.get('class_names')
    if names is not None and (not isinstance(names, list) or len(names) != num
                              or not all(isinstance(n, str) and len(n) <= 512 for n in names)):
        raise ConfigError(f'{source}: "class_names" must list {num} names (num_classes) as strings.')
    _check_explainer(config['explainer'], source)
    return config


def read_export_config(path: str | os.PathLike, source: str | None = None) -> dict[str, Any]:
    """Read and validate a ``config.json`` (size- and depth-capped); errors name the file."""
    path = os.fspath(path)
    label = source or repr(path)
    if not os.path.exists(path):
        raise ConfigError(f'{label} does not exist; a model folder needs config.json next to model.safetensors.')
    return validate_export_config(read_json(path, label), label)


# --- building -----------------------------------------------------------------------------------------------------
def _build(model_cfg: Mapping[str, Any], source: str) -> Any:
    from mmengine.registry import DefaultScope

    from registry import MODELS, SCOPE

    try:
        with DefaultScope.overwrite_default_scope(SCOPE):
            return MODELS.build(dict(model_cfg))
    except XZooError as exc:
        raise type(exc)(f'{source}: {exc}') from None
    except (TypeError, ValueError, KeyError, AssertionError, IndexError, RuntimeError, AttributeError) as exc:
        raise ConfigError(f'{source}: cannot build {model_cfg.get("type")!r}: {type(exc).__name__}: '
                          f'{shorten(str(exc), 200)}') from exc


_SAFETENSORS_DTYPES = {'F64': torch.float64, 'F32': torch.float32, 'F16': torch.float16, 'BF16': torch.bfloat16,
                       'I64': torch.int64, 'I32': torch.int32, 'I16': torch.int16, 'I8': torch.int8,
                       'U8': torch.uint8, 'BOOL': torch.bool, 'F8_E4M3': torch.float8_e4m3fn,
                       'F8_E5M2': torch.float8_e5m2}


def dry_run(model_cfg: Mapping[str, Any], source: str, header: Mapping[str, Any] | None = None,
            weights: str = 'the weights') -> None:
    """Build the architecture on the ``meta`` device (no memory) and check its size, and its tensors against a
    weights header (names, shapes, dtypes: :func:`check_state_dict_fits`), before the real build allocates
    anything. A model that cannot be built on ``meta`` skips this (its integers are still capped by the config
    check)."""
    try:
        with torch.device('meta'):
            model = _build(model_cfg, source)
    except XZooError:
        raise
    except Exception:  # noqa: BLE001 - some constructors compute on tensors and cannot run on meta
        return
    params = sum(t.numel() for t in model.state_dict().values())
    if header is None:
        if params > MAX_PARAMS:
            raise SecurityError(f'{source}: the architecture would have {params:,} parameters (over '
                                f'{MAX_PARAMS:,}); refused before allocating.')
        return
    fake = {}
    for key, entry in header.items():
        shape = entry.get('shape') if isinstance(entry, Mapping) else None
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise CheckpointError(f'{weights!r}: the header entry of {shorten(str(key), 80)} is malformed.')
        dtype = _SAFETENSORS_DTYPES.get(str(entry.get('dtype')), torch.uint8)
        fake[key] = torch.empty(shape, dtype=dtype, device='meta')
    prefixes = getattr(model, 'training_only_prefixes', lambda: ())()
    check_state_dict_fits(model, fake, weights, prefixes, check_values=False)


def build_from_config(config: Mapping[str, Any], source: str, header: Mapping[str, Any] | None = None,
                      weights: str = 'the weights') -> Any:
    """The architecture of a validated ``config.json`` with random weights (eval mode), its preprocessing, class
    names and explainer defaults set."""
    from .contract import Preprocessing

    model_cfg = {'type': config['architecture'], **json.loads(json.dumps(config['model_args']))}
    preprocessing = Preprocessing.from_dict(config['preprocessing'], source)
    dry_run(model_cfg, source, header, weights)
    model = _build(model_cfg, source)
    if not hasattr(model, 'preprocessing'):
        raise ConfigError(f'{source}: {config["architecture"]} does not implement the zoo model contract.')
    if int(model.num_classes) != int(config['num_classes']):
        raise ConfigError(f'{source}: num_classes is {config["num_classes"]} but the architecture predicts '
                          f'{model.num_classes} classes.')
    model.preprocessing = preprocessing
    if config.get('class_names'):
        model.class_names = list(config['class_names'])
    explainer = config['explainer']
    model.set_explainer_defaults(explainer['method'], explainer.get('target_layer'), explainer.get('kwargs'))
    return model.eval()


def load_model(folder: str | os.PathLike, weights: str | os.PathLike | None = None, pretrained: bool = True,
               source: str | None = None, sha256: str | None = None, trust_pickle: bool = False,
               config_path: str | os.PathLike | None = None, confined: bool = True) -> Any:
    """A model from an export folder (or ``config_path`` + ``weights`` files, e.g. from the Hub cache).

    Args:
        folder: the export folder (``config.json``, ``model.safetensors``).
        weights: the weights file (default: picked in ``folder``); pretrained: ``False`` keeps random weights.
        source: how errors and ``model.pretrained_source`` name it. sha256: the expected digest of the weights.
        trust_pickle: allow a pickle weights file (it can run code). confined: weights must lie inside ``folder``.
    """
    folder = os.fspath(folder)
    label = source or f'local-dir:{folder}'
    config_path = os.fspath(config_path) if config_path is not None else os.path.join(folder, CONFIG_NAME)
    config = read_export_config(config_path, f'{label} ({CONFIG_NAME})')
    if pretrained and weights is None:
        weights = pick_weights_file(folder, trust_pickle, confined=confined)
    header = None
    if weights is not None:
        weights = os.fspath(weights)
        if not os.path.isfile(weights):
            raise CheckpointError(f'Weights file {weights!r} ({label}) does not exist.')
        if not weights.endswith('.safetensors') and not trust_pickle:
            raise CheckpointError(f'{weights!r} ({label}) is not a safetensors file; a pickle can run code when '
                                  'loaded, so it is refused. Use a .safetensors file, or pass trust_pickle=True if '
                                  'you made this file yourself.')
        verify_sha256(weights, sha256, label)
        header = safetensors_header(weights) if weights.endswith('.safetensors') else None
    files: dict[str, Any] = {'config': config_path}
    with no_network(label):  # the checks above make a build need no network; this makes sure of it
        model = build_from_config(config, f'{label} ({CONFIG_NAME})', header, weights or 'the weights')
        if weights is not None:
            load_model_weights(model, weights, trust_pickle=trust_pickle)
            files.update(weights=weights, sha256=sha256)
    model._set_pretrained_source(label, files, config)
    return model.eval()


# --- writing ------------------------------------------------------------------------------------------------------
@dataclass
class SavedModel:
    """What :func:`save_model` wrote: the folder, its files, their sha256 and the ``config.json`` content."""

    folder: str
    files: list[str] = field(default_factory=list)
    sha256: dict[str, str] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)


def export_config(model: Any, training: Mapping[str, Any] | None = None,
                  class_names: Sequence[str] | None = None) -> dict[str, Any]:
    """The ``config.json`` of ``model`` (validated before returning)."""
    import zoo

    inference = model.inference_config()
    architecture = to_json(inference.pop('type'), 'model.type')
    inference.pop('class_names', None)
    names = list(class_names) if class_names is not None else model.class_names
    meta = dict(model.explain_meta)
    defaults = model.explainer_defaults
    config = {
        'format': FORMAT, 'format_version': FORMAT_VERSION, 'xzoo_version': zoo.__version__,
        'architecture': architecture,
        'model_args': to_json(inference, 'model'),
        'num_classes': int(model.num_classes),
        'class_names': [str(n) for n in names] if names else None,
        'preprocessing': model.preprocessing.to_dict(),
        'explainer': {'method': defaults['method'], 'target_layer': defaults.get('target_layer'),
                      'patch_size': to_json(meta.get('patch_size')), 'num_prefix_tokens': meta.get('num_prefix_tokens'),
                      'output_fmt': meta.get('output_fmt'), 'kwargs': to_json(dict(defaults.get('kwargs') or {}))},
        'training': to_json(dict(training or {}), 'training'),
    }
    return validate_export_config(json.loads(json.dumps(config)), 'the exported config')


def save_model(model: Any, folder: str | os.PathLike, training: Mapping[str, Any] | None = None,
               class_names: Sequence[str] | None = None) -> SavedModel:
    """Write ``config.json`` and ``model.safetensors`` (inference weights only) into ``folder``, atomically."""
    from safetensors.torch import save_file

    out = ensure_dir(folder)
    config = export_config(model, training, class_names)
    weights = {k: v.detach().to('cpu').contiguous().clone() for k, v in model.inference_state_dict().items()}
    prefixes = model.training_only_prefixes()
    leaked = [k for k in weights if prefixes and k.startswith(prefixes)]
    if leaked:  # inference_state_dict filters them; keep the promise explicit
        raise CheckpointError(f'training-only tensors would be exported: {leaked[:3]}')
    with atomic_path(os.path.join(out, WEIGHTS_NAME)) as tmp:
        save_file(weights, tmp, metadata={'format': 'pt', 'producer': f'xzoo {config["xzoo_version"]}'})
    write_json(os.path.join(out, CONFIG_NAME), config)
    files = [CONFIG_NAME, WEIGHTS_NAME]
    return SavedModel(out, files, {f: sha256_file(os.path.join(out, f)) for f in files}, config)

