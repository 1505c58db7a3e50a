"""Batched, log-domain Sinkhorn for entropic optimal transport (used by LICO's OT alignment head).

Solves, for every problem ``k`` of a batch, ``min_P <P, C_k> - eps * H(P)`` subject to ``P 1 = a_k`` and
``P^T 1 = b_k``, with the dual potentials kept in the log domain so that small ``eps`` does not underflow. The
updates are POT's ``ot.sinkhorn(a, b, M, reg, method='sinkhorn_log')``; the result equals it to solver tolerance.

Example:
    >>> import torch
    >>> from zoo.ops import sinkhorn_log
    >>> plan, value = sinkhorn_log(torch.rand(2, 5, 3), eps=0.1)
    >>> tuple(plan.shape), tuple(value.shape)
    ((2, 5, 3), (2,))
    >>> torch.allclose(plan.sum(-1), torch.full((2, 5), 1 / 5), atol=1e-5)
    True
"""
from __future__ import annotations

import torch

__all__ = ['sinkhorn_log']

GradMode = bool | str


def _log_marginal(w: torch.Tensor | None, batch: int, n: int, like: torch.Tensor) -> torch.Tensor:
    """log of a marginal as ``[B, n]`` (uniform when ``w`` is None); zero mass gives ``-inf``."""
    if w is None:
        return like.new_full((batch, n), -float(torch.log(torch.tensor(float(n)))))
    w = torch.as_tensor(w, dtype=like.dtype, device=like.device)
    if w.shape[-1] != n:
        raise ValueError(f'marginal has {w.shape[-1]} entries but the cost has {n} along that axis')
    w = w.expand(batch, n)
    return torch.where(w > 0, w.clamp_min(torch.finfo(like.dtype).tiny).log(), torch.full_like(w, -float('inf')))


def _working_precision(cost: torch.Tensor, eps: float) -> torch.Tensor:
    """float64 when ``range(cost) / eps`` is too large for the input precision to resolve ``f + g - C`` to O(eps)."""
    if cost.dtype == torch.float64 or cost.numel() == 0:
        return cost
    span = float((cost.detach().amax() - cost.detach().amin()).float()) / eps
    return cost.double() if span > 1e5 else cost


def _iterate(log_k: torch.Tensor, log_a: torch.Tensor, log_b: torch.Tensor, max_iter: int,
             tol: float) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Alternate the two log-domain projections; stop when the row marginals are within ``tol`` (L1)."""
    f = torch.zeros_like(log_a)
    g = torch.zeros_like(log_b)
    a = log_a.exp()
    it = 0
    for it in range(1, max_iter + 1):
        row_lse = torch.logsumexp(log_k + g[:, None, :], dim=2)
        if it > 1 and tol > 0:
            # row marginals of the current plan, for free: the column marginals are exact after a g-update
            err = (torch.exp(f + row_lse) - a).detach().abs().sum(-1).max()
            if float(err) < tol:
                it -= 1
                break
        f = log_a - row_lse
        g = log_b - torch.logsumexp(log_k + f[:, :, None], dim=1)
    return f, g, it


def sinkhorn_log(cost: torch.Tensor, a: torch.Tensor | None = None, b: torch.Tensor | None = None,
                 eps: float = 0.1, max_iter: int = 100, tol: float = 1e-6,
                 grad: GradMode = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Entropic OT plans and transport costs for a batch of cost matrices.

    Args:
        cost: ``[B, N, M]`` (a single ``[N, M]`` is treated as a batch of one and returned without the batch axis).
        a, b: marginals ``[B, N]``/``[N]`` and ``[B, M]``/``[M]`` (non-negative, each summing to 1); uniform when
            ``None``. Zero entries are allowed (those rows/columns receive no mass).
        eps: entropic regularisation (POT's ``reg``); must be > 0.
        max_iter: most Sinkhorn iterations (one iteration = one row and one column update).
        tol: stop early once every problem's row marginals are within ``tol`` in L1 (0 runs all iterations).
        grad: ``True`` differentiates through the unrolled iterations (plan and value); ``False`` returns detached
            results (the released LICO code); ``'envelope'`` solves without a graph and returns a detached plan with
            ``value = <plan, cost>`` differentiable in ``cost`` only (the envelope-theorem gradient, cheap).

    Returns:
        ``(plan [B, N, M], value [B])`` with ``value = sum(plan * cost)`` (POT's ``sinkhorn2`` / ``value_linear``).

    Numerics: the cost is shifted by its per-problem minimum (the plan is invariant to it), ``-cost/eps`` is kept
    finite, and the iterations run in float64 when ``range(cost)/eps`` exceeds 1e5 (float32 could not resolve the
    potentials), so ``eps`` down to 1e-3, constant and huge costs give finite plans and values. Unrolled gradients
    grow with ``cost/eps``; for costs beyond ~1e12 * eps prefer ``grad='envelope'``.
    """
    if eps <= 0:
        raise ValueError(f'eps must be > 0, got {eps}')
    if grad not in (True, False, 'envelope'):
        raise ValueError(f"grad must be True, False or 'envelope', got {grad!r}")
    single = cost.ndim == 2
    if single:
        cost = cost[None]
    if cost.ndim != 3:
        raise ValueError(f'cost must be [B, N, M] or [N, M], got shape {tuple(cost.shape)}')
    if not cost.is_floating_point():
        cost = cost.float()
    out_dtype = cost.dtype
    batch, n, m = cost.shape
    track = grad is True and torch.is_grad_enabled()
    cost = _working_precision(cost, eps)
    shift = cost.detach().amin(dim=(1, 2), keepdim=True)
    with torch.set_grad_enabled(track):
        limit = torch.finfo(cost.dtype).max / 8  # -cost/eps stays finite, sums of three terms cannot overflow
        log_k = (-(cost - shift) / eps).clamp_min(-limit)
        log_a = _log_marginal(a, batch, n, cost)
        log_b = _log_marginal(b, batch, m, cost)
        f, g, _ = _iterate(log_k, log_a, log_b, max_iter, tol)
        plan = torch.exp(log_k + f[:, :, None] + g[:, None, :])
    if not track:  # grad=False: nothing differentiable; 'envelope': only <plan, cost> through cost
        plan = plan.detach()
        if grad is False:
            cost = cost.detach()
    value = (plan * (cost - shift)).sum((1, 2)) + shift.flatten() * plan.sum((1, 2))
    plan, value = plan.to(out_dtype), value.to(out_dtype)
    if single:
        return plan[0], value[0]
    return plan, value
