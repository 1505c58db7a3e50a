"""``LICOTextBranch``: text encoder + prompt learner + class names, evaluated efficiently once per step.

The classifier owns one branch (``ImageClassifier(text_branch=...)``) and hands its output for the batch's labels
to every alignment head, so the manifold and OT heads share one encoder, one prompt learner and one forward.

Cost levers (design.md "Known costs"): only the classes present in the batch are encoded; prompts are truncated
to the longest real prompt among them; a causal encoder computes the start token + shared context once; and when
nothing upstream of the features can change (encoder and context frozen, no shuffling) the features of all classes
are computed once and cached until a weight, the class names, the device or the dtype changes.

Example:
    >>> import torch
    >>> from registry import TEXT_ENCODERS
    >>> branch = TEXT_ENCODERS.build(dict(
    ...     type='LICOTextBranch', encoder=dict(type='OpenCLIPTextEncoder', pretrained=None),
    ...     prompt=dict(type='SharedPromptLearner', n_ctx=4)), default_args=dict(num_classes=2))
    >>> branch.set_class_names(['cat', 'dog'])
    >>> out = branch(torch.tensor([1, 0, 1]))
    >>> tuple(out.sentence.shape), tuple(out.tokens.shape[:3])   # [B, V, D], [B, V, L, D]
    ((3, 1, 512), (3, 1, 8))
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from registry import TEXT_ENCODERS
from registry.errors import ConfigError

from .base import TextFeatures


@TEXT_ENCODERS.register_module()
class LICOTextBranch(nn.Module):
    """Class-name prompts -> text features for a batch of labels.

    Args:
        encoder: config of a text encoder (``OpenCLIPTextEncoder``, ``HFTextEncoder``).
        prompt: config of a prompt learner (``SharedPromptLearner``, ``ClassSpecificPromptLearner``,
            ``RolledPromptLearner``); ``width`` and ``num_classes`` are filled in.
        num_classes: number of classes (filled in by the classifier).
        class_names: the names, in label order; usually set later from the dataset (``set_class_names``).
        suffix: text after the class name (``'.'``, as CoOp and LICO).
        cache: ``'auto'`` caches all classes' features while nothing upstream is trainable; ``False`` never caches.
        cache_chunk: prompts per encoder call when filling the cache.
    """

    component_args = {'encoder': 'TEXT_ENCODERS', 'prompt': 'TEXT_ENCODERS'}

    def __init__(self, encoder: dict | nn.Module, prompt: dict | nn.Module, num_classes: int,
                 class_names: Sequence[str] | None = None, suffix: str = '.', cache: bool | str = 'auto',
                 cache_chunk: int = 256) -> None:
        super().__init__()
        if cache not in ('auto', False, True):
            raise ConfigError(f"LICOTextBranch cache must be 'auto' or False, got {cache!r}.")
        self.encoder = TEXT_ENCODERS.build(encoder) if isinstance(encoder, dict) else encoder
        if isinstance(prompt, dict):
            prompt = TEXT_ENCODERS.build(prompt, default_args=dict(width=self.encoder.width,
                                                                   num_classes=num_classes))
        self.prompt = prompt
        self.num_classes, self.suffix, self.cache, self.cache_chunk = num_classes, suffix, cache, cache_chunk
        self.class_names: list[str] | None = None
        self._name_ids: list[list[int]] = []
        self._suffix_ids = self.encoder.tokenize_piece(suffix) if suffix else []
        self._cache: tuple[Any, TextFeatures] | None = None
        if class_names is not None:
            self.set_class_names(class_names)

    @property
    def out_dim(self) -> int:
        """Width of the sentence and token features."""
        return int(self.encoder.out_dim)

    @property
    def n_variants(self) -> int:
        return self.prompt.n_variants

    def set_class_names(self, names: Sequence[str]) -> None:
        """Tokenize the class names (``_`` read as a space, as CoOp); prompts longer than the encoder are cut."""
        names = [str(n) for n in names]
        if len(names) != self.num_classes:
            raise ConfigError(f'LICOTextBranch got {len(names)} class names for {self.num_classes} classes.')
        room = self.encoder.context_length - 2 - self.prompt.n_ctx - len(self._suffix_ids)
        if room < 1:
            raise ConfigError(f'n_ctx={self.prompt.n_ctx} leaves no room for a class name in the '
                              f'{self.encoder.context_length}-token context of the text encoder.')
        self.class_names = names
        self._name_ids = [self.encoder.tokenize_piece(n.replace('_', ' '))[:room] for n in names]
        self._cache = None

    # --- caching -------------------------------------------------------------------------------------------
    def _trainable_upstream(self) -> bool:
        return any(p.requires_grad for p in self.parameters()) or (self.prompt.shuffle and self.training)

    def _cache_key(self) -> tuple:
        p = next(self.parameters())
        return (p.device, p.dtype, tuple(self.class_names or ()), tuple(t._version for t in self.parameters()))

    def _encode_classes(self, class_ids: torch.Tensor) -> TextFeatures:
        prompts = self.prompt(self.encoder, self._name_ids, self._suffix_ids, class_ids)
        return self.encoder.encode(prompts)

    def all_class_features(self) -> TextFeatures:
        """Features of every class (no gradient), encoded in chunks; ``mask``/``tokens`` padded to one length."""
        device = next(self.parameters()).device
        per_chunk = max(1, self.cache_chunk // self.n_variants)
        parts = []
        with torch.no_grad():
            for start in range(0, self.num_classes, per_chunk):
                ids = torch.arange(start, min(start + per_chunk, self.num_classes), device=device)
                parts.append(self._encode_classes(ids))
        length = max(p.tokens.shape[2] for p in parts)
        pad = lambda t, dim: torch.nn.functional.pad(t, [0, 0] * (t.ndim - dim - 1) + [0, length - t.shape[dim]])
        return TextFeatures(torch.cat([p.sentence for p in parts]),
                            torch.cat([pad(p.tokens, 2) for p in parts]),
                            torch.cat([pad(p.mask, 1) for p in parts]), min(p.shared for p in parts))

    # --- forward -------------------------------------------------------------------------------------------
    def forward(self, labels: torch.Tensor) -> TextFeatures:
        """Text features of each sample's class: sentence ``[B, V, D]``, tokens ``[B, V, L, D]``, mask ``[B, L]``."""
        if self.class_names is None:
            raise ConfigError('LICOTextBranch has no class names: set model.class_names (ClassNamesHook does it '
                              "from the dataset's metainfo['classes']) or text_branch.class_names in the config.")
        if self.cache and not self._trainable_upstream():
            key = self._cache_key()
            if self._cache is None or self._cache[0] != key:
                self._cache = (key, self.all_class_features())
            return self._cache[1].index(labels)
        self._cache = None
        classes, inverse = torch.unique(labels, return_inverse=True)
        return self._encode_classes(classes).index(inverse)
