"""xzoo's ``config.json``: plain JSON describing an inference model, and the checks that make loading it safe.

Schema (``format_version`` 1)::

    {"format": "xzoo-classifier", "format_version": 1, "xzoo_version": "0.1.0",
     "architecture": "ImageClassifier",               # a registered MODELS name
     "model_args": {"backbone": {"type": "TimmBackbone", "model_name": "resnet50", "pretrained": false},
                    "head": {"type": "LinearClsHead", "num_classes": 200},
                    "data_preprocessor": {"type": "ClsDataPreprocessor", "mean": [...], "std": [...]}},
     "num_classes": 200, "class_names": [...],
     "preprocessing": {"input_size": [3, 448, 448], "resize": [510, 510], "crop_pct": 0.8784,
                       "crop_mode": "center", "interpolation": "bilinear",
                       "mean": [0.485, ...], "std": [0.229, ...],          # 0-1 scale, as timm
                       "pipeline": [{"type": "Resize", "size": [510, 510]}, {"type": "CenterCrop", "size": 448}]},
     "explainer": {"method": "gradcam", "target_layer": "backbone.model.layer4", "kwargs": {}, ...},
     "training": {"recipe": "configs/resnet50_baseline_cub.py", "method": "baseline", ...}}

Loading never executes anything from the file: every ``type`` must be a plain name registered in xzoo's
registries (mmengine would otherwise import dotted paths such as ``'os.system'``), and keys that make a component
read or download files (``init_cfg``, ``checkpoint_path``, ``pretrained_cfg_overlay``, a true ``pretrained``,
``hf-hub:``/``local-dir:`` model names) are refused.

Example:
    >>> to_json({'size': (510, 510), 'flag': True})
    {'size': [510, 510], 'flag': True}
"""
from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from typing import Any

FORMAT = 'xzoo-classifier'
FORMAT_VERSION = 1
_IDENT = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')
# test-pipeline transforms may also be torchvision v2 classes named by their dotted path
_TV_TRANSFORM = re.compile(r'^torchvision\.transforms\.v2\.[A-Za-z_][A-Za-z0-9_]*$')
FILE_LOADING_KEYS = frozenset({'init_cfg', 'checkpoint_path', 'pretrained_cfg_overlay', 'pretrained_cfg',
                               'custom_imports', '_scope_', 'cache_dir', 'checkpoint', 'load_from'})
_REMOTE_PREFIXES = ('hf-hub:', 'hf_hub:', 'local-dir:', 'http://', 'https://', 'file:')
REQUIRED = ('format', 'format_version', 'architecture', 'model_args', 'num_classes', 'preprocessing', 'explainer')


def _config_error(message: str) -> Exception:
    from registry.errors import ConfigError

    return ConfigError(message)


def to_json(obj: Any, where: str = 'config') -> Any:
    """``obj`` as plain JSON values (tuples → lists); a class becomes its name, anything else is an error."""
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        if not math.isfinite(obj):
            raise _config_error(f'{where} is {obj}, which JSON cannot hold.')
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
    raise _config_error(f'{where} is a {type(obj).__name__} ({obj!r}); a config.json holds plain values only. '
                        'Write it in the config as a number, string, list or dict.')


_MODEL_REGISTRIES = ('MODELS', 'BACKBONES', 'HEADS', 'LOSSES', 'TEXT_ENCODERS')


def _registered(name: str, pipeline: bool = False) -> bool:
    """Whether ``name`` is registered where model parts (or, for ``pipeline``, transforms) are built.

    Looks names up in the registries' tables only: mmengine's ``get`` would import a module named ``name``.
    """
    import registry

    kinds = ('TRANSFORMS',) if pipeline else _MODEL_REGISTRIES
    return any(name in registry.ALL[k].names(include_parents=True) for k in kinds)


def check_components(tree: Any, source: str, where: str = 'model_args', pipeline: bool = False) -> None:
    """Refuse anything in ``tree`` that could import code or read/download files (see the module docstring)."""
    if isinstance(tree, list):
        for i, item in enumerate(tree):
            check_components(item, source, f'{where}[{i}]', pipeline)
        return
    if not isinstance(tree, dict):
        if isinstance(tree, str) and tree.startswith(_REMOTE_PREFIXES):
            raise _config_error(f'{source}: {where} = {tree!r} would fetch files while building the model; '
                                'refused. A config.json names architectures only; weights come from its '
                                'model.safetensors.')
        return
    for key, value in tree.items():
        if key in FILE_LOADING_KEYS:
            raise _config_error(f'{source}: {where}.{key} is set; it would load files or code while building '
                                'the model, which loading from a config.json never does. Remove it.')
        if key == 'pretrained' and value not in (False, None):
            raise _config_error(f'{source}: {where}.pretrained = {value!r}; a config.json must set pretrained '
                                'to false (the weights come from model.safetensors).')
        if key == 'type':
            ok = isinstance(value, str) and (_IDENT.match(value) or (pipeline and _TV_TRANSFORM.match(value)))
            if not ok or (_IDENT.match(value) and not _registered(value, pipeline)):
                raise _config_error(f'{source}: {where}.type = {value!r} is not the name of a registered xzoo '
                                    'component; refused (a config.json may only name registered components, '
                                    'never a module path). Install/import the plugin that registers it.')
            continue
        check_components(value, source, f'{where}.{key}', pipeline)


def validate_config(config: Any, source: str) -> dict[str, Any]:
    """Check a parsed ``config.json`` (schema + safety); return it. ``source`` names the file in errors."""
    if not isinstance(config, dict):
        raise _config_error(f'{source} must hold a JSON object, got {type(config).__name__}.')
    if config.get('format') != FORMAT:
        raise _config_error(f'{source} is not an xzoo model config (format {config.get("format")!r}, expected '
                            f'{FORMAT!r}). Export models with zoo.hub.save_pretrained or tools/push_to_hub.py.')
    missing = [k for k in REQUIRED if k not in config]
    if missing:
        raise _config_error(f'{source} lacks {", ".join(map(repr, missing))}; re-export the model.')
    version = config['format_version']
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise _config_error(f'{source} has format_version {version!r}; this xzoo reads up to {FORMAT_VERSION}. '
                            'Upgrade xzoo.')
    if not isinstance(config['model_args'], dict) or 'type' in config['model_args']:
        raise _config_error(f'{source}: "model_args" must be an object of the architecture\'s arguments '
                            '(without "type"; the class is "architecture").')
    arch = config['architecture']
    if not (isinstance(arch, str) and _IDENT.match(arch) and _registered(arch)):
        raise _config_error(f'{source}: architecture {arch!r} is not the name of a registered xzoo model; refused '
                            '(a config.json may only name registered components, never a module path).')
    check_components(config['model_args'], source)
    pre = config['preprocessing']
    if not isinstance(pre, dict) or len(pre.get('input_size') or []) != 3:
        raise _config_error(f'{source}: "preprocessing.input_size" must be [channels, height, width].')
    check_components(pre.get('pipeline') or [], source, 'preprocessing.pipeline', pipeline=True)
    names = config.get('class_names')
    if names is not None and (not isinstance(names, list) or len(names) != config['num_classes']):
        raise _config_error(f'{source}: "class_names" must list {config["num_classes"]} names (num_classes).')
    if not isinstance(config['explainer'], dict) or not isinstance(config['explainer'].get('method'), str):
        raise _config_error(f'{source}: "explainer" must be an object with a "method" name, e.g. "gradcam".')
    return config


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a ``config.json``; errors name the file."""
    path = os.fspath(path)
    try:
        with open(path, encoding='utf-8') as fh:
            config = json.load(fh)
    except FileNotFoundError:
        raise _config_error(f'{path!r} does not exist; a model folder needs config.json next to '
                            'model.safetensors.') from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _config_error(f'{path!r} is not valid JSON ({exc}); it may be truncated: download or export it '
                            'again.') from exc
    return validate_config(config, repr(path))


def write_json(path: str | os.PathLike, payload: Any) -> None:
    """Write ``payload`` as indented JSON atomically (a killed write never leaves half a file)."""
    path = os.fspath(path)
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'w', encoding='utf-8') as fh:
        json.dump(payload, fh, indent=2, ensure_ascii=False)
        fh.write('\n')
    os.replace(tmp, path)
