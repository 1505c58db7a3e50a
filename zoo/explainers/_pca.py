"""First principal component of per-channel maps: Eigen-CAM's projection and every CAM's ``eigen_smooth``.

A ``[B, C, h, w]`` stack is read as ``hw`` rows of ``C`` features, centred over the rows, and projected on its
first right singular vector: the ``hw`` scores form the map. The sign of a singular vector is arbitrary (LAPACK
decides, and numpy's and torch's differ); :func:`orient` fixes it by a stated rule.

Example:
    >>> import torch
    >>> stack = torch.zeros(1, 2, 2, 2); stack[0, :, 0, 0] = 3.0
    >>> [[round(v, 3) for v in row] for row in first_component(stack, sign='peak')[0].tolist()]
    [[3.182, -1.061], [-1.061, -1.061]]
"""
from __future__ import annotations

import torch
from torch import Tensor

SIGN_RULES = ('peak', 'align', 'none')


def centred_rows(stack: Tensor) -> Tensor:
    """``[B, C, h, w]`` → ``[B, hw, C]`` in float64 (float32 on MPS), NaN → 0, channels centred over positions.

    Double precision matters: a centred kernel matrix keeps only ~1e-4 of the kernel's magnitude, so float32
    loses about three digits there.
    """
    dtype = torch.float32 if stack.device.type == 'mps' else torch.float64
    m = torch.nan_to_num(stack.to(dtype), nan=0.0).flatten(2).transpose(1, 2)
    return m - m.mean(1, keepdim=True)


def positive_peak(proj: Tensor) -> Tensor:
    """Flip each row of ``[B, n]`` so that its largest-magnitude entry is positive (scikit-learn's ``svd_flip``
    rule; Seg-Eigen-CAM's Eq. 13 "flip when ``|min| > |max|``" is the same rule)."""
    peak = proj.gather(1, proj.abs().argmax(1, keepdim=True))
    return proj * torch.where(peak < 0, -1.0, 1.0).to(proj.dtype)


def orient(proj: Tensor, sign: str, reference: Tensor | None = None) -> Tensor:
    """Fix the sign of projections ``[B, n]``: ``'peak'`` (largest magnitude positive), ``'align'`` (positive
    correlation with ``reference`` ``[B, n]``, e.g. the unsmoothed map), ``'none'`` (the SVD's own sign)."""
    if sign == 'peak':
        return positive_peak(proj)
    if sign == 'align':
        ref = reference.to(proj.dtype)
        dot = ((proj - proj.mean(1, keepdim=True)) * (ref - ref.mean(1, keepdim=True))).sum(1, keepdim=True)
        return proj * torch.where(dot < 0, -1.0, 1.0).to(proj.dtype)
    return proj


def first_component(stack: Tensor, sign: str = 'peak', reference: Tensor | None = None) -> Tensor:
    """The ``[B, h, w]`` first-principal-component scores of ``stack`` ``[B, C, h, w]`` (float64 inside, returned
    in the stack's dtype), oriented by :func:`orient`."""
    b, _, h, w = stack.shape
    rows = centred_rows(stack)
    u, s, _ = torch.linalg.svd(rows, full_matrices=False)
    proj = u[..., 0] * s[..., :1]
    ref = None if reference is None else reference.reshape(b, h * w)
    return orient(proj, sign, ref).reshape(b, h, w).to(stack.dtype if stack.is_floating_point() else torch.float32)
