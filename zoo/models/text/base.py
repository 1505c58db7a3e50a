"""The protocol shared by text encoders and prompt learners: ``PromptBatch`` in, ``TextFeatures`` out.

A prompt learner lays out token ids for the classes it is asked about and splices its learnable context vectors
into the encoder's token embeddings (:class:`PromptBatch`). A text encoder turns such a batch into sentence
features (the end-of-text token for CLIP, the pooled output for BERT-like encoders) and per-token features
(:class:`TextFeatures`). Everything is batched over prompt *variants* ``V`` (1, or ``n_ctx`` for the rolled
design) and *classes* ``K``.

Example:
    >>> import torch
    >>> batch = PromptBatch(embeds=torch.zeros(1, 2, 5, 8), ids=torch.ones(2, 5, dtype=torch.long),
    ...                     eot=torch.tensor([4, 3]), prefix_len=3)
    >>> batch.mask.tolist()
    [[True, True, True, True, True], [True, True, True, True, False]]
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class PromptBatch:
    """Prompts for ``K`` classes in ``V`` context variants, ready for a text encoder.

    Attributes:
        embeds: ``[V, K, L, W]`` token embeddings with the context spliced in (no positional embeddings yet).
        ids: ``[K, L]`` token ids; context slots hold a placeholder id, padding the encoder's pad id.
        eot: ``[K]`` position of the end token (so ``L = eot.max() + 1``: truncated to the longest real prompt).
        prefix_len: number of leading positions that are identical for all ``K`` prompts of a variant (start token
            plus a shared context); a causal encoder may compute them once. 0 or 1 means nothing worth sharing.
    """

    embeds: torch.Tensor
    ids: torch.Tensor
    eot: torch.Tensor
    prefix_len: int = 0

    @property
    def mask(self) -> torch.Tensor:
        """``[K, L]`` True at real tokens (start token through end token)."""
        pos = torch.arange(self.ids.shape[1], device=self.ids.device)
        return pos[None, :] <= self.eot[:, None]


@dataclass
class TextFeatures:
    """Encoder output for prompts or a batch of samples.

    Attributes:
        sentence: ``[..., V, D]`` one feature per prompt (EOT token / pooled output), projected to the output width.
        tokens: ``[..., V, L, D]`` per-token features in the same output space.
        mask: ``[..., L]`` True at real tokens (start through end token).
        shared: number of leading token positions whose features are the same for every class: a causal encoder's
            start token and a context shared by all classes placed before the class name (their outputs cannot see
            the name). 0 for a bidirectional encoder, where every position attends to the class name.
    """

    sentence: torch.Tensor
    tokens: torch.Tensor
    mask: torch.Tensor
    shared: int = 0

    def index(self, idx: torch.Tensor) -> TextFeatures:
        """Select along the leading (class) axis, e.g. ``feats.index(labels)``."""
        return TextFeatures(self.sentence[idx], self.tokens[idx], self.mask[idx], self.shared)

    def class_dependent(self) -> torch.Tensor:
        """``[..., L]`` True at real tokens whose features depend on the class (``mask`` minus the shared prefix)."""
        keep = self.mask.clone()
        keep[..., :self.shared] = False
        return keep


class TextEncoder(nn.Module):
    """Base class of text encoders that accept learnable context embeddings.

    Subclasses set ``width`` (token-embedding width, where context vectors live), ``out_dim`` (feature width),
    ``context_length``, ``bos_id``, ``eos_id``, ``pad_id``, ``placeholder_id`` (id written at context slots),
    ``causal`` (a left-to-right encoder, so shared prefixes may be computed once) and implement
    :meth:`tokenize_piece`, :meth:`embed_ids` and :meth:`encode`.

    Args:
        frozen: when True no encoder parameter requires a gradient and the encoder stays in eval mode (dropout off),
            while gradients still flow through it to learnable context vectors.
    """

    width: int
    out_dim: int
    context_length: int
    bos_id: int
    eos_id: int
    pad_id: int
    placeholder_id: int
    causal: bool = False

    def __init__(self, frozen: bool = True) -> None:
        super().__init__()
        self.frozen = frozen

    def _apply_frozen(self) -> None:
        if self.frozen:
            self.requires_grad_(False)
            super().train(False)

    def train(self, mode: bool = True) -> TextEncoder:
        """Like ``nn.Module.train``, but a frozen encoder always stays in eval mode."""
        return super().train(mode and not self.frozen)

    def tokenize_piece(self, text: str) -> list[int]:
        """Token ids of ``text`` without start/end tokens."""
        raise NotImplementedError

    def embed_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """Token embeddings ``[..., L, W]`` of ids ``[..., L]`` (no positions)."""
        raise NotImplementedError

    def encode(self, prompts: PromptBatch) -> TextFeatures:
        """Features of a prompt batch: sentence ``[K, V, D]``, tokens ``[K, V, L, D]``, mask ``[K, L]``."""
        raise NotImplementedError

    def prompts_from_text(self, texts: list[str]) -> PromptBatch:
        """Plain sentences (no context) as a one-variant :class:`PromptBatch`."""
        pieces = [[self.bos_id, *self.tokenize_piece(t)[: self.context_length - 2], self.eos_id] for t in texts]
        length = max(len(p) for p in pieces)
        ids = torch.full((len(texts), length), self.pad_id, dtype=torch.long)
        for i, p in enumerate(pieces):
            ids[i, : len(p)] = torch.tensor(p)
        ids = ids.to(self.device)
        eot = torch.tensor([len(p) - 1 for p in pieces], device=self.device)
        return PromptBatch(self.embed_ids(ids)[None], ids, eot, prefix_len=0)

    def encode_text(self, texts: list[str]) -> TextFeatures:
        """Features of plain sentences: sentence ``[N, D]``, tokens ``[N, L, D]``, mask ``[N, L]``.

        Example::

            enc.encode_text(['a photo of a cat']).sentence.shape
            torch.Size([1, 512])
        """
        out = self.encode(self.prompts_from_text(texts))
        return TextFeatures(out.sentence[:, 0], out.tokens[:, 0], out.mask, out.shared)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device


def pool_eot(tokens: torch.Tensor, eot: torch.Tensor) -> torch.Tensor:
    """Pick the end-token feature: tokens ``[V, K, L, D]``, eot ``[K]`` -> ``[V, K, D]``."""
    idx = eot.view(1, -1, 1, 1).expand(tokens.shape[0], -1, 1, tokens.shape[-1])
    return tokens.gather(2, idx).squeeze(2)


def to_class_major(sentence: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor, shared: int = 0
                   ) -> TextFeatures:
    """``[V, K, ...]`` encoder outputs as class-major :class:`TextFeatures` (``[K, V, ...]``)."""
    return TextFeatures(sentence.transpose(0, 1), tokens.transpose(0, 1), mask, shared)
