"""The text tower of an :class:`~zoo.models.image_text.ImageTextModel` as a :class:`zoo.models.text.TextEncoder`.

Prompt learning (CoOp, ECOR) needs to feed *token embeddings* with learnable vectors spliced in, and to get
sentence features in the joint image-text space. :func:`tower_text_encoder` wraps the model's own text tower (no
copy, no new weights) in the :class:`~zoo.models.text.TextEncoder` protocol that the prompt learners of
:mod:`zoo.models.text.prompt_learners` use: ``tokenize_piece``, ``embed_ids``, ``encode(PromptBatch)``.

- CLIP-style towers (open_clip ``CLIP``, or a ``CustomTextCLIP`` with open_clip's ``TextTransformer``) reuse
  :class:`~zoo.models.text.OpenCLIPTextEncoder`'s forward (end-of-text pooling, projection, shared causal
  prefixes computed once).
- Hugging Face towers (open_clip's ``HFTextEncoder``, e.g. MiniLM) run the transformer on ``inputs_embeds`` with
  the prompts' attention mask, then the tower's own pooler and projection.

For plain sentences the result equals ``ImageTextModel.encode_text`` (tested).

Example::

    enc = image_text.text_encoder()
    learner = SharedPromptLearner(width=enc.width, num_classes=10, n_ctx=4)
    feats = enc.encode(learner(enc, name_ids, suffix_ids, class_ids))   # feats.sentence: [K, 1, D]
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from registry.errors import ConfigError

from ..text import OpenCLIPTextEncoder, PromptBatch, TextEncoder, TextFeatures
from ..text.base import to_class_major
from ..text.prefix import supports_prefix_sharing


class _Shared:
    """Mixin: the wrapped tower is referenced, not registered (no second copy in any state dict)."""

    _owner: Any

    def _attach(self, owner: Any, tower: nn.Module) -> None:
        object.__setattr__(self, '_owner', owner)
        object.__setattr__(self, 'tower', tower)

    @property
    def device(self) -> torch.device:
        return self._owner.device


class CLIPTowerEncoder(_Shared, OpenCLIPTextEncoder):
    """A CLIP-style text tower of an image-text model (see the module docstring)."""

    def __init__(self, owner: Any) -> None:
        TextEncoder.__init__(self, frozen=False)
        tower = owner.clip.text if owner.is_custom_text else owner.clip
        pool = getattr(tower, 'pool_type', getattr(tower, 'text_pool_type', 'argmax'))
        if pool not in ('argmax', 'eos') or getattr(tower, 'cls_emb', None) is not None:
            raise ConfigError(f'Prompt learning needs end-of-text pooling; this text tower pools with {pool!r}.')
        self._attach(owner, tower)
        self.model_name, self.pretrained = owner.model_name, None
        self.tokenizer = owner.tokenizer
        self.width = int(tower.token_embedding.embedding_dim)
        self.out_dim = int(owner.embed_dim)
        self.context_length = int(tower.positional_embedding.shape[0])
        ids = owner._special
        self.bos_id, self.eos_id = ids['bos'], ids['eos']
        self.pad_id = int(getattr(tower, 'pad_id', 0) or 0)
        self.placeholder_id = int(self.tokenizer.encode('X')[0]) if hasattr(self.tokenizer, 'encode') else 1
        self.share_prefix = supports_prefix_sharing(tower.transformer)


class HFTowerEncoder(_Shared, TextEncoder):
    """A Hugging Face text tower (open_clip's ``HFTextEncoder``) of an image-text model."""

    causal = False

    def __init__(self, owner: Any) -> None:
        TextEncoder.__init__(self, frozen=False)
        tower = owner.clip.text
        self._attach(owner, tower)
        tok = owner.tokenizer.tokenizer
        self.hf_tokenizer = tok
        config = tower.transformer.config
        self.width = int(config.hidden_size)
        self.out_dim = int(owner.embed_dim)
        self.context_length = int(min(owner.context_length, getattr(config, 'max_position_embeddings', 512)))
        ids = owner._special
        self.bos_id, self.eos_id, self.pad_id = ids['bos'], ids['eos'], ids['pad']
        self.placeholder_id = int(tok.convert_tokens_to_ids('x'))

    def tokenize_piece(self, text: str) -> list[int]:
        return list(self.hf_tokenizer(text, add_special_tokens=False)['input_ids'])

    def embed_ids(self, ids: torch.Tensor) -> torch.Tensor:
        return self.tower.transformer.get_input_embeddings()(ids)

    def encode(self, prompts: PromptBatch) -> TextFeatures:
        n_var, n_cls, length, width = prompts.embeds.shape
        if length > self.context_length:
            raise ConfigError(f'Prompts of {length} tokens exceed the text tower context of {self.context_length}.')
        mask = prompts.mask
        flat = mask[None].expand(n_var, -1, -1).reshape(n_var * n_cls, length).long()
        out = self.tower.transformer(inputs_embeds=prompts.embeds.reshape(n_var * n_cls, length, width),
                                     attention_mask=flat)
        sentence = self.tower.proj(self.tower.pooler(out, flat)).view(n_var, n_cls, -1)
        tokens = self.tower.proj(out.last_hidden_state).view(n_var, n_cls, length, -1)
        return to_class_major(sentence, tokens, mask)


def tower_text_encoder(owner: Any) -> TextEncoder:
    """The right adapter for ``owner``'s text tower."""
    text = getattr(owner.clip, 'text', None)
    if text is not None and hasattr(text, 'transformer') and hasattr(text, 'pooler') and hasattr(text, 'proj'):
        return HFTowerEncoder(owner)
    return CLIPTowerEncoder(owner)
