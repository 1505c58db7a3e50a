"""Collectives that models use inside their losses (pure ``torch.distributed``; no mmengine).

:func:`gather_with_grad` concatenates a tensor over all processes (rank order) so that a loss over the *global*
batch (LICO's manifold term compares every pair of samples) can be computed in each process, with the gradient of
every process's loss flowing back to the rows it came from. Outside a process group it returns its input.

Example:
    >>> import torch
    >>> from zoo.ops.distributed import gather_with_grad, world_size
    >>> x = torch.ones(2, 3, requires_grad=True)
    >>> gather_with_grad(x) is x, world_size()
    (True, 1)
"""
from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist


def world_size() -> int:
    """Processes in the default group (1 when torch.distributed is not initialised)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class _GatherRows(torch.autograd.Function):
    """All-gather along dim 0 (sizes may differ per rank); backward sums every rank's gradient of the gathered
    tensor (all-reduce) and returns this rank's rows, so ``d(sum over ranks of loss_r) / d(rows of rank r)``."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        n = dist.get_world_size()
        x = x.contiguous()
        size = torch.tensor([x.shape[0]], device=x.device, dtype=torch.long)
        sizes = [torch.zeros_like(size) for _ in range(n)]
        dist.all_gather(sizes, size)
        ctx.sizes, ctx.rank = [int(s) for s in sizes], dist.get_rank()
        top = max(ctx.sizes)
        padded = x.new_zeros((top, *x.shape[1:]))
        padded[:x.shape[0]] = x
        parts = [torch.empty_like(padded) for _ in range(n)]
        dist.all_gather(parts, padded)
        return torch.cat([p[:k] for p, k in zip(parts, ctx.sizes)])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = sum(ctx.sizes[:ctx.rank])
        return grad[start:start + ctx.sizes[ctx.rank]]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """``x`` ``[B_r, ...]`` of every process concatenated along dim 0 in rank order (``x`` itself when not
    distributed). Differentiable: under DDP, which averages gradients over processes, a loss that each process
    computes for its own rows against the gathered columns trains exactly like that loss over the global batch in
    one process. Every process must call it (a collective), with the same trailing shape.

    Example::

        feats = gather_with_grad(local_feats)   # [sum of B_r, D]; its gradient flows back to local_feats
    """
    if world_size() == 1:
        return x
    return _GatherRows.apply(x)
