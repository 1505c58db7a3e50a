"""``OpenCLIPTextEncoder``: the text tower of an open_clip model, with learnable context embeddings.

Only the text tower is built (no image tower is created or loaded). ``pretrained`` is an open_clip tag
(``'openai'``: downloaded from the Hugging Face Hub), a local checkpoint file of a whole CLIP model or of the text
tower alone, or ``None`` (random init: for tests only).

Example:
    >>> from registry import TEXT_ENCODERS
    >>> enc = TEXT_ENCODERS.build(dict(type='OpenCLIPTextEncoder', model_name='ViT-B-32', pretrained=None))
    >>> enc.encode_text(['a photo of a bird']).sentence.shape
    torch.Size([1, 512])
"""
from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from registry import TEXT_ENCODERS
from registry.errors import CheckpointError, ConfigError, did_you_mean
from zoo.core.assets import Asset

from ..assets import open_clip_weights
from .base import PromptBatch, TextEncoder, TextFeatures, pool_eot, to_class_major
from .prefix import shared_prefix_forward, supports_prefix_sharing

_TEXT_KEYS = ('token_embedding', 'positional_embedding', 'transformer', 'ln_final', 'text_projection')


def _model_config(model_name: str) -> dict[str, Any]:
    import open_clip

    cfg = open_clip.get_model_config(model_name)
    if cfg is None:
        raise ConfigError(f'open_clip has no model config {model_name!r}.'
                          f'{did_you_mean(model_name, open_clip.list_models())} '
                          'List them with open_clip.list_models().')
    text_cfg = dict(cfg.get('text_cfg', {}))
    if text_cfg.get('hf_model_name'):
        raise ConfigError(f'open_clip model {model_name!r} uses a Hugging Face text tower '
                          f"({text_cfg['hf_model_name']}); use type='HFTextEncoder' for it.")
    if text_cfg.get('embed_cls') or text_cfg.get('pool_type', 'argmax') not in ('argmax', 'eos'):
        raise ConfigError(f'open_clip model {model_name!r} pools its text tower with '
                          f"pool_type={text_cfg.get('pool_type')!r}/embed_cls; OpenCLIPTextEncoder supports the "
                          "CLIP-style end-of-text pooling ('argmax'/'eos') only.")
    return cfg


def _checkpoint_path(model_name: str, pretrained: str) -> str:
    """A local file for ``pretrained`` (a path, or a tag resolved through open_clip's download helpers)."""
    import open_clip

    path = os.path.expanduser(pretrained)
    if os.path.isfile(path):
        return path
    tag_cfg = open_clip.get_pretrained_cfg(model_name, pretrained)
    if not tag_cfg:
        tags = open_clip.list_pretrained_tags_by_model(model_name)
        raise ConfigError(f'pretrained={pretrained!r} is neither a file nor an open_clip tag of {model_name!r}. '
                          f"Tags: {', '.join(tags) or 'none'}. Or pass a local checkpoint path, or None.")
    try:
        target = open_clip.pretrained.download_pretrained(tag_cfg)
    except Exception as exc:  # noqa: BLE001  (hub, http and offline errors all mean the same to the user)
        first = str(exc).splitlines()[0] if str(exc) else ''
        offline = os.environ.get('HF_HUB_OFFLINE', '') not in ('', '0')
        raise CheckpointError(
            f"Could not get the open_clip weights {model_name!r}/{pretrained!r} ({type(exc).__name__}: {first})"
            f"{' - HF_HUB_OFFLINE is set' if offline else ''}. This machine may be offline. Pass pretrained= a local "
            'open_clip checkpoint file (.bin/.pt/.safetensors), pretrained=None for a random text tower (tests '
            "only), or use type='HFTextEncoder' with a locally installed encoder (e.g. all-MiniLM-L6-v2).") from exc
    if not target:
        raise CheckpointError(f'open_clip returned no file for {model_name!r}/{pretrained!r}.')
    return target


def _text_state_dict(path: str) -> dict[str, torch.Tensor]:
    """Text-tower weights from a CLIP (``token_embedding...``), CustomTextCLIP (``text....``) or tower checkpoint."""
    from open_clip.factory import load_state_dict

    try:
        sd = load_state_dict(path)
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f'Could not read the checkpoint {path!r}: {exc}') from exc
    if any(k.startswith('text.') for k in sd):
        sd = {k[5:]: v for k, v in sd.items() if k.startswith('text.')}
    return {k: v for k, v in sd.items() if k.split('.')[0] in _TEXT_KEYS}


@TEXT_ENCODERS.register_module()
class OpenCLIPTextEncoder(TextEncoder):
    """An open_clip text tower returning end-of-text sentence features and per-token features.

    Args:
        model_name: an ``open_clip.list_models()`` name (default ``'ViT-B-32'``, as LICO).
        pretrained: an open_clip tag of that model (``'openai'``), a local checkpoint file, or ``None`` (random).
        frozen: no gradient to the tower's weights (the paper); ``False`` trains it (the released LICO code).
        quick_gelu: activation; ``None`` takes the model config's value, switched on when the tag asks for it
            (OpenAI's weights were trained with QuickGELU).
        share_prefix: compute a prefix shared by all classes (start token + shared context) once per step; exact
            for causal towers, ignored when the prompt design has no shared prefix.
    """

    causal = True

    def __init__(self, model_name: str = 'ViT-B-32', pretrained: str | None = 'openai', frozen: bool = True,
                 quick_gelu: bool | None = None, share_prefix: bool = True) -> None:
        super().__init__(frozen=frozen)
        import open_clip
        from open_clip.model import _build_text_tower

        cfg = _model_config(model_name)
        if quick_gelu is None:
            tag_cfg = open_clip.get_pretrained_cfg(model_name, pretrained) if isinstance(pretrained, str) else {}
            quick_gelu = bool(cfg.get('quick_gelu', False) or tag_cfg.get('quick_gelu', False))
        self.model_name, self.pretrained = model_name, pretrained
        self.tower = _build_text_tower(cfg['embed_dim'], cfg['text_cfg'], quick_gelu=quick_gelu)
        if pretrained:
            path = _checkpoint_path(model_name, str(pretrained))
            missing, _ = self.tower.load_state_dict(_text_state_dict(path), strict=False)
            if missing:
                raise CheckpointError(f'{path!r} lacks text-tower weights of {model_name!r}: '
                                      f"{', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}.")
        self.tokenizer = open_clip.get_tokenizer(model_name)
        self.width = int(self.tower.width)
        self.out_dim = int(self.tower.output_dim or self.width)
        self.context_length = int(self.tower.context_length)
        self.bos_id = int(getattr(self.tokenizer, 'sot_token_id', 49406))
        self.eos_id = int(getattr(self.tokenizer, 'eot_token_id', 49407))
        self.pad_id = int(self.tower.pad_id)
        self.placeholder_id = int(self.tokenizer.encode('X')[0]) if hasattr(self.tokenizer, 'encode') else 1
        self.share_prefix = share_prefix and supports_prefix_sharing(self.tower.transformer)
        self._apply_frozen()

    @classmethod
    def required_assets(cls, args: dict[str, Any]) -> list[Asset]:
        """The tower's weights: the file of an open_clip tag (a Hub repo) or a local checkpoint
        (:mod:`zoo.core.assets`). The tokenizer ships with open_clip."""
        name, pretrained = args['model_name'], args.get('pretrained')
        return open_clip_weights(name, pretrained, what=f'CLIP text tower weights (open_clip {name!r}, {pretrained!r})',
                                 instead=('PATH (a local open_clip checkpoint: a whole CLIP model or its text tower)',
                                          'None (a random text tower: tests only)'))

    def tokenize_piece(self, text: str) -> list[int]:
        if hasattr(self.tokenizer, 'encode'):
            return list(self.tokenizer.encode(text))
        ids = self.tokenizer([text])[0].tolist()  # start ... end pad: strip the specials
        return ids[1:ids.index(self.eos_id)] if self.eos_id in ids else ids[1:]

    def embed_ids(self, ids: torch.Tensor) -> torch.Tensor:
        return self.tower.token_embedding(ids)

    def encode(self, prompts: PromptBatch) -> TextFeatures:
        tower = self.tower
        embeds = prompts.embeds
        n_var, n_cls, length, width = embeds.shape
        if length > self.context_length:
            raise ConfigError(f'Prompts of {length} tokens exceed the text tower context of {self.context_length}.')
        cast = tower.transformer.get_cast_dtype()
        x = embeds.to(cast) + tower.positional_embedding[:length].to(cast)
        mask = tower.attn_mask
        if self.share_prefix and prompts.prefix_len > 1 and n_cls > 1:
            x = shared_prefix_forward(tower.transformer, x, prompts.prefix_len, mask)
        else:
            x = tower.transformer(x.reshape(n_var * n_cls, length, width),
                                  attn_mask=None if mask is None else mask[:length, :length])
            x = x.view(n_var, n_cls, length, width)
        x = tower.ln_final(x)
        proj = tower.text_projection
        if isinstance(proj, nn.Linear):
            x = proj(x)
        elif proj is not None:
            x = x @ proj
        # causal: positions before the first class-specific token see only the start token and a shared context
        return to_class_major(pool_eot(x, prompts.eot), x, prompts.mask, shared=prompts.prefix_len)
