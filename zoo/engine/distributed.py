"""DDP without a GPU (what mmengine 0.10's ``pytorch`` launcher needs on CPU processes), and a gather with gradient.

mmengine's launcher calls ``torch.cuda.set_device(LOCAL_RANK)`` before ``init_process_group`` and wraps the model
in ``DistributedDataParallel(device_ids=[LOCAL_RANK])``; both fail on a machine without CUDA. On such a machine
xzoo initialises the process group itself from torchrun's environment (mmengine then skips its own
``init_dist``) and wraps the model with :class:`CPUDistributedDataParallel`, which leaves ``device_ids`` unset as
torch requires for CPU modules. With a GPU nothing changes: mmengine's launcher and NCCL as usual.

:func:`gather_with_grad` (in :mod:`zoo.ops.distributed`, re-exported here) concatenates a tensor over all
processes (rank order) so that a loss over the *global* batch (LICO's manifold term compares every pair of samples)
can be computed in each process, with the gradient of every process's loss flowing back to the rows it came from.

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
from zoo.ops.distributed import gather_with_grad, world_size  # noqa: F401  (re-exported)


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
