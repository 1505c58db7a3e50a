"""CoOp-style prompt learners: learnable context vectors around a class name (``[SOS] X X ... X name . [EOS]``).

Three designs (LICO's code changed between releases, see docs/lico.md):

* :class:`SharedPromptLearner` (``shared``): one generic context for every class, class name at the end.
* :class:`ClassSpecificPromptLearner` (``class_specific``): a context per class, class name in the middle,
  optionally shuffled every training step (LICO Jan-2024 code, reproduction 1).
* :class:`RolledPromptLearner` (``rolled``): ``n_ctx`` copies of a generic context, each a prompt variant (LICO
  Oct-2024 code); the copies are rolled versions of one random draw.

Context vectors are initialised N(0, ``init_std``²) (0.02, as CoOp and LICO). The class names' token ids come
from the encoder; only the classes asked for are laid out, truncated to the longest of them.

Example:
    >>> import torch
    >>> from registry import TEXT_ENCODERS
    >>> learner = TEXT_ENCODERS.build(dict(type='SharedPromptLearner', n_ctx=4), default_args=dict(width=8,
    ...                                                                                    num_classes=3))
    >>> tuple(learner.context(train=False).shape)    # [variants, classes (1 = shared), n_ctx, width]
    (1, 1, 4, 8)
"""
from __future__ import annotations

import torch
from torch import nn

from registry import TEXT_ENCODERS
from registry.errors import ConfigError

from .base import PromptBatch, TextEncoder

_POSITIONS = ('end', 'middle', 'front')


class PromptLearner(nn.Module):
    """Base class: owns the context parameters and lays out prompts for a set of classes.

    Args:
        width: token-embedding width of the text encoder (filled in by ``LICOTextBranch``).
        num_classes: number of classes (filled in by the classifier).
        n_ctx: context length.
        init_std: std of the N(0, std²) initialisation.
        class_position: where the class name sits: ``'end'``, ``'middle'`` (between the two context halves) or
            ``'front'``.
        shuffle: permute the context tokens randomly at every training forward (the same permutation for all
            classes of the step).
        learnable: train the context (``False`` freezes it; with a frozen encoder the branch then caches).
    """

    class_specific = False

    def __init__(self, width: int, num_classes: int, n_ctx: int = 12, init_std: float = 0.02,
                 class_position: str = 'end', shuffle: bool = False, learnable: bool = True) -> None:
        super().__init__()
        if class_position not in _POSITIONS:
            raise ConfigError(f'class_position must be one of {_POSITIONS}, got {class_position!r}.')
        if n_ctx < 1:
            raise ConfigError(f'n_ctx must be >= 1, got {n_ctx}.')
        self.width, self.num_classes, self.n_ctx = width, num_classes, n_ctx
        self.init_std, self.class_position, self.shuffle = init_std, class_position, shuffle
        self.ctx = nn.Parameter(self._init_context(), requires_grad=learnable)

    def _init_context(self) -> torch.Tensor:
        """``[V, K or 1, n_ctx, width]`` initial context."""
        raise NotImplementedError

    @property
    def n_variants(self) -> int:
        return int(self.ctx.shape[0])

    def context(self, train: bool | None = None) -> torch.Tensor:
        """The context ``[V, K or 1, n_ctx, W]``, shuffled along ``n_ctx`` when training with ``shuffle``."""
        train = self.training if train is None else train
        if self.shuffle and train:
            return self.ctx[:, :, torch.randperm(self.n_ctx, device=self.ctx.device)]
        return self.ctx

    def _layout(self, name: list[int], suffix: list[int]) -> tuple[list[int | None], int]:
        """Token ids with ``None`` at context slots (between start and end tokens), and the shared-prefix length."""
        ctx: list[int | None] = [None] * self.n_ctx
        half = self.n_ctx // 2
        if self.class_position == 'end':
            body, prefix = ctx + name + suffix, 1 + self.n_ctx
        elif self.class_position == 'middle':
            body, prefix = ctx[:half] + name + ctx[half:] + suffix, 1 + half
        else:
            body, prefix = name + ctx + suffix, 1
        return body, (1 if self.class_specific else prefix)

    def forward(self, encoder: TextEncoder, names: list[list[int]], suffix: list[int],
                class_ids: torch.Tensor) -> PromptBatch:
        """Prompts for ``class_ids`` ``[K]`` (names: token ids of every class name, suffix: e.g. ids of ``'.'``)."""
        rows, ctx_pos = [], []
        prefix = encoder.context_length
        for c in class_ids.tolist():
            body, pre = self._layout(names[c], suffix)
            seq = [encoder.bos_id, *body, encoder.eos_id]
            rows.append([encoder.placeholder_id if t is None else t for t in seq])
            ctx_pos.append([i for i, t in enumerate(seq) if t is None])
            prefix = min(prefix, pre)
        length = max(len(r) for r in rows)
        if length > encoder.context_length:
            raise ConfigError(f'A prompt has {length} tokens but the text encoder takes {encoder.context_length}: '
                              'use a shorter n_ctx or shorter class names.')
        device = self.ctx.device
        ids = torch.full((len(rows), length), encoder.pad_id, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = torch.tensor(r)
        ids = ids.to(device)
        eot = torch.tensor([len(r) - 1 for r in rows], device=device)
        pos = torch.tensor(ctx_pos, device=device)                                   # [K, n_ctx]
        ctx = self.context()
        ctx = ctx[:, class_ids] if ctx.shape[1] > 1 else ctx.expand(-1, len(rows), -1, -1)
        tok = encoder.embed_ids(ids)                                                 # [K, L, W]
        embeds = tok[None].expand(ctx.shape[0], -1, -1, -1).clone()
        k_idx = torch.arange(len(rows), device=device)[:, None].expand_as(pos)
        embeds[:, k_idx, pos] = ctx.to(embeds.dtype)
        return PromptBatch(embeds=embeds, ids=ids, eot=eot, prefix_len=prefix)


@TEXT_ENCODERS.register_module()
class SharedPromptLearner(PromptLearner):
    """One generic context for all classes (CoOp's unified context); class name at the end by default."""

    def _init_context(self) -> torch.Tensor:
        return torch.randn(1, 1, self.n_ctx, self.width) * self.init_std


@TEXT_ENCODERS.register_module()
class ClassSpecificPromptLearner(PromptLearner):
    """A context per class (CoOp's CSC); class name in the middle by default, as LICO's Jan-2024 code.

    Args:
        class_position: default ``'middle'``.
        shuffle: LICO's Jan-2024 ``_ctx_shuffle`` (off by default; the LICO presets set it).
        Others as :class:`PromptLearner`.
    """

    class_specific = True

    def __init__(self, width: int, num_classes: int, n_ctx: int = 12, init_std: float = 0.02,
                 class_position: str = 'middle', shuffle: bool = False, learnable: bool = True) -> None:
        super().__init__(width, num_classes, n_ctx, init_std, class_position, shuffle, learnable)

    def _init_context(self) -> torch.Tensor:
        return torch.randn(1, self.num_classes, self.n_ctx, self.width) * self.init_std


@TEXT_ENCODERS.register_module()
class RolledPromptLearner(PromptLearner):
    """``n_variants`` (default ``n_ctx``) copies of a generic context, each giving one prompt variant per class.

    Args:
        n_variants: number of copies; ``None`` means ``n_ctx`` (LICO Oct-2024).
        distinct_rolls: ``False`` rolls every copy by 1 as the released code (so all copies start identical and
            only diverge through training); ``True`` rolls copy ``i`` by ``i`` (distinct starting tokens, the
            authors' stated intent).
        Others as :class:`PromptLearner`.
    """

    def __init__(self, width: int, num_classes: int, n_ctx: int = 12, init_std: float = 0.02,
                 class_position: str = 'end', shuffle: bool = False, learnable: bool = True,
                 n_variants: int | None = None, distinct_rolls: bool = False) -> None:
        self._n_variants, self.distinct_rolls = n_variants or n_ctx, distinct_rolls
        super().__init__(width, num_classes, n_ctx, init_std, class_position, shuffle, learnable)

    def _init_context(self) -> torch.Tensor:
        base = torch.randn(self.n_ctx, self.width) * self.init_std
        copies = [torch.roll(base, shifts=(i if self.distinct_rolls else 1), dims=0)
                  for i in range(self._n_variants)]
        return torch.stack(copies)[:, None]
