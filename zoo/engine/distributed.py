"""DDP without a GPU (what mmengine 0.10's ``pytorch`` launcher needs on CPU processes), and a gather with gradient.

mmengine's launcher calls ``torch.cuda.set_device(LOCAL_RANK)`` before ``init_process_group`` and wraps the model
in ``DistributedDataParallel(device_ids=[LOCAL_RANK])``; both fail on a machine without CUDA. On such a machine
xzoo initialises the process group itself from torchrun's environment (mmengine then skips its own
``init_dist``) and wraps the model with :class:`CPUDistributedDataParallel`, which leaves ``device_ids`` unset as
torch requires for CPU modules. With a GPU nothing changes: mmengine's launcher and NCCL as usual.

:func:`gather_with_grad` concatenates a tensor over all processes (rank order) so that a loss over the *global*
batch (LICO's manifold term compares every pair of samples) can be computed in each process, with the gradient of
every process's loss flowing back to the rows it came from.

Example::

    torchrun --nproc_per_node=2 tools/train.py CONFIG --launcher pytorch     # CPU: gloo, set up here
"""
from __future__ import annotations

import datetime
import os
from typing import Any

import torch
import torch.distributed as dist
from mmengine.model import MMDistributedDataParallel

from registry import MODEL_WRAPPERS
from registry.errors import ConfigError


@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """mmengine's ``MMDistributedDataParallel`` for a model on CPU (``device_ids`` dropped)."""

    def __init__(self, module: torch.nn.Module, device_ids: list[int] | None = None, **kwargs: Any) -> None:
        on_cpu = all(p.device.type == 'cpu' for p in module.parameters())
        super().__init__(module=module, device_ids=None if on_cpu else device_ids, **kwargs)


def init_cpu_process_group(dist_cfg: dict[str, Any] | None = None) -> None:
    """``init_process_group`` from torchrun's environment (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``...), gloo.

    Does nothing when a group exists. ``dist_cfg`` is the config's ``env_cfg.dist_cfg`` (``backend``,
    ``timeout`` in seconds).
    """
    import torch.distributed as dist

    if dist.is_initialized():
        return
    missing = [k for k in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT') if k not in os.environ]
    if missing:
        raise ConfigError(f'--launcher pytorch needs the environment torchrun sets ({", ".join(missing)} missing). '
                          'Start with: torchrun --nproc_per_node=N tools/train.py CONFIG --launcher pytorch')
    cfg = dict(dist_cfg or {})
    backend = cfg.pop('backend', 'gloo')
    if backend == 'nccl':
        backend = 'gloo'  # no CUDA here
    timeout = cfg.pop('timeout', None)
    kwargs: dict[str, Any] = {}
    if timeout is not None:
        kwargs['timeout'] = datetime.timedelta(seconds=float(timeout))
    dist.init_process_group(backend=backend, init_method='env://', **kwargs)


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
