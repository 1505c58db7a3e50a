"""zoo.ops.sinkhorn_log against POT, its gradients and its numerics at the edges."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from zoo.ops import sinkhorn_log

ot = pytest.importorskip('ot')


def _simplex(*shape: int, gen: torch.Generator) -> torch.Tensor:
    w = torch.rand(*shape, dtype=torch.float64, generator=gen) + 0.05
    return w / w.sum(-1, keepdim=True)


@pytest.mark.parametrize('eps', [0.1, 0.05])
@pytest.mark.parametrize('uniform', [True, False])
def test_matches_pot_sinkhorn_log(eps: float, uniform: bool) -> None:
    gen = torch.Generator().manual_seed(int(eps * 100) + uniform)
    batch, n, m = 5, 17, 6
    x = torch.nn.functional.normalize(torch.randn(batch, n, 8, dtype=torch.float64, generator=gen), dim=-1)
    y = torch.nn.functional.normalize(torch.randn(batch, m, 8, dtype=torch.float64, generator=gen), dim=-1)
    cost = torch.cdist(x, y) ** 2
    a = None if uniform else _simplex(batch, n, gen=gen)
    b = None if uniform else _simplex(batch, m, gen=gen)
    plan, value = sinkhorn_log(cost, a, b, eps=eps, max_iter=5000, tol=1e-12)
    for k in range(batch):
        ak = torch.full((n,), 1 / n, dtype=torch.float64) if a is None else a[k]
        bk = torch.full((m,), 1 / m, dtype=torch.float64) if b is None else b[k]
        ref = ot.sinkhorn(ak, bk, cost[k], eps, method='sinkhorn_log', numItermax=10000, stopThr=1e-13)
        assert (plan[k] - ref).abs().max() < 1e-6
        assert abs(float(value[k]) - float((ref * cost[k]).sum())) < 1e-6


def test_single_problem_and_marginals() -> None:
    cost = torch.rand(7, 3)
    plan, value = sinkhorn_log(cost, eps=0.1, max_iter=500, tol=1e-7)
    assert plan.shape == (7, 3) and value.shape == ()
    assert torch.allclose(plan.sum(1), torch.full((7,), 1 / 7), atol=1e-6)
    assert torch.allclose(plan.sum(0), torch.full((3,), 1 / 3), atol=1e-6)


@pytest.mark.parametrize('grad', [True, 'envelope'])
def test_gradients_are_finite(grad: bool | str) -> None:
    cost = (torch.rand(4, 30, 12) * 4).requires_grad_()
    plan, value = sinkhorn_log(cost, eps=0.1, grad=grad)
    (value.sum() + (plan.sum() if grad is True else 0)).backward()
    assert torch.isfinite(cost.grad).all() and cost.grad.abs().sum() > 0
    assert plan.requires_grad is (grad is True)


def test_envelope_gradient_is_the_plan() -> None:
    cost = torch.rand(2, 6, 4, dtype=torch.float64, requires_grad=True)
    plan, value = sinkhorn_log(cost, eps=0.1, grad='envelope', max_iter=1000, tol=1e-12)
    value.sum().backward()
    assert torch.allclose(cost.grad, plan, atol=1e-12)


def test_no_grad_mode_detaches() -> None:
    cost = torch.rand(3, 5, 4, requires_grad=True)
    plan, value = sinkhorn_log(cost, grad=False)
    assert not plan.requires_grad and not value.requires_grad


@pytest.mark.parametrize('case', ['small_eps', 'constant', 'huge', 'huge_range', 'zero_mass'])
def test_no_nan_or_inf(case: str) -> None:
    gen = torch.Generator().manual_seed(0)
    cost = torch.rand(3, 40, 12, generator=gen) * 4
    b, eps = None, 0.1
    if case == 'small_eps':
        eps = 1e-3
    elif case == 'constant':
        cost = torch.full((3, 40, 12), 2.5)
    elif case == 'huge':
        cost = cost * 1e10
    elif case == 'huge_range':
        cost = cost.clone()
        cost[:, :20] = 1e6
    else:
        b = torch.tensor([0.0, 0.5, 0.5] + [0.0] * 9)
    cost.requires_grad_()
    plan, value = sinkhorn_log(cost, b=b, eps=eps)
    (value.sum() + plan.sum()).backward()
    for t in (plan, value, cost.grad):
        assert torch.isfinite(t).all(), case
    assert torch.allclose(plan.sum((1, 2)), torch.ones(3), atol=1e-4)
    if case == 'constant':
        assert torch.allclose(plan, torch.full_like(plan, 1 / (40 * 12)))
        assert torch.allclose(value, torch.full((3,), 2.5))
    if case == 'zero_mass':
        assert plan[:, :, 0].abs().max() == 0 and plan[:, :, 3:].abs().max() == 0


@pytest.mark.parametrize('scale', [1e30, 1e38])
def test_extreme_costs_stay_finite_forward_and_envelope(scale: float) -> None:
    # float32 cannot resolve cost/eps ~ 1e31: unrolled autodiff gradients would overflow, the envelope ones do not
    cost = (torch.rand(3, 40, 12, generator=torch.Generator().manual_seed(1)) * scale).requires_grad_()
    plan, value = sinkhorn_log(cost, eps=1e-3, grad='envelope')
    value.sum().backward()
    for t in (plan, value, cost.grad):
        assert torch.isfinite(t).all()


def test_early_stop_and_iteration_cap() -> None:
    cost = torch.rand(2, 10, 5)
    loose, _ = sinkhorn_log(cost, eps=0.1, tol=1e-2)
    tight, _ = sinkhorn_log(cost, eps=0.1, tol=0, max_iter=300)
    assert (loose.sum(-1) - 0.1).abs().sum(-1).max() < 1e-2
    assert (tight.sum(-1) - 0.1).abs().max() < 1e-6


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match='eps'):
        sinkhorn_log(torch.rand(2, 3, 3), eps=0)
    with pytest.raises(ValueError, match='grad'):
        sinkhorn_log(torch.rand(2, 3, 3), grad='yes')
    with pytest.raises(ValueError, match='marginal'):
        sinkhorn_log(torch.rand(2, 3, 3), a=torch.ones(4) / 4)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 9), m=st.integers(1, 9), eps=st.sampled_from([1e-3, 1e-2, 0.1, 1.0]),
       scale=st.sampled_from([1e-6, 1.0, 1e6]))
def test_plan_is_a_finite_coupling(n: int, m: int, eps: float, scale: float) -> None:
    cost = torch.rand(2, n, m, generator=torch.Generator().manual_seed(n * 10 + m)) * scale
    plan, value = sinkhorn_log(cost, eps=eps, max_iter=200)
    assert torch.isfinite(plan).all() and torch.isfinite(value).all()
    assert (plan >= 0).all()
    assert torch.allclose(plan.sum((1, 2)), torch.ones(2), atol=1e-4)
    assert torch.allclose(plan.sum(1), torch.full((2, m), 1 / m), atol=1e-4)
