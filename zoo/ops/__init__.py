"""Small numeric kernels and tensor helpers with no model knowledge (no import of models, explainers or metrics).

- :mod:`zoo.ops.sinkhorn`: batched log-domain Sinkhorn (POT is the reference);
- :mod:`zoo.ops.tensors`: map resizing/normalisation, class-index targets, batch fields;
- :mod:`zoo.ops.modules`: a module's device, mode/flag restore, logits with clear errors.

Importing this package costs only ``torch``; heavier dependencies (POT) are imported inside the functions that
need them.

Example:
    >>> from zoo.ops import sinkhorn_log
    >>> callable(sinkhorn_log)
    True
"""
from .sinkhorn import sinkhorn_log

__all__ = ['sinkhorn_log']
