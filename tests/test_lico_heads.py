"""LICO alignment heads: the manifold loss against its closed form, the OT head against POT, the scheduler."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from registry import HEADS, PARAM_SCHEDULERS
from registry.errors import ConfigError
from zoo.models.backbones.timm_backbone import BackboneOutput
from zoo.models.text.base import TextFeatures


def _closed_form(img: torch.Tensor, txt: torch.Tensor, sign: int, tau: float, normalize: bool = True):
    """kl_div(log_softmax(±D_F/τ), softmax(±D_G/τ), 'batchmean') with D = max(||x_i - x_j||, 0.01)."""
    def dist(x):
        x = F.normalize(x, dim=1) if normalize else x
        return torch.cdist(x, x).clamp_min(0.01)
    log_f = F.log_softmax(sign * dist(img) / tau, dim=1)
    p_g = F.softmax(sign * dist(txt) / tau, dim=1)
    return F.kl_div(log_f, p_g, reduction='batchmean')


@pytest.mark.parametrize('sign', [1, -1])
@pytest.mark.parametrize('normalize', [True, False])
def test_manifold_loss_equals_closed_form(sign: int, normalize: bool) -> None:
    gen = torch.Generator().manual_seed(sign + 2 * normalize)
    img, txt = torch.randn(8, 32, generator=gen, dtype=torch.float64), torch.randn(8, 12, generator=gen)
    head = HEADS.build(dict(type='ManifoldAlignmentHead', sign=sign, normalize=normalize, weight=10.0))
    tau = math.log(1 / 0.07)
    expected = 10.0 * _closed_form(img.float(), txt, sign, tau, normalize)
    assert torch.allclose(head.manifold_loss(img.float(), txt), expected, atol=1e-6)
    # the released code's formulation: KLDivLoss(softmax(F).log(), softmax(G)), 'batchmean'
    logits = [head.similarity_logits(x) for x in (img.float(), txt)]
    released = nn.KLDivLoss(reduction='batchmean')(F.softmax(logits[0], 1).log(), F.softmax(logits[1], 1))
    assert torch.allclose(head.manifold_loss(img.float(), txt), 10.0 * released, atol=1e-5)


def test_manifold_head_through_loss_and_temperature() -> None:
    head = HEADS.build(dict(type='ManifoldAlignmentHead', sign=-1))
    assert head.temperature.requires_grad and abs(head.temperature.detach().item() - 2.6593) < 1e-4
    feats = BackboneOutput(torch.randn(6, 4, 2, 2), torch.randn(6, 4, requires_grad=True), torch.empty(0))
    text = TextFeatures(torch.randn(6, 3, 5), torch.randn(6, 3, 7, 5), torch.ones(6, 7, dtype=torch.bool))
    loss = head.loss(feats, torch.zeros(6, dtype=torch.long), [], text=text)['loss_mm']
    loss.backward()
    assert head.temperature.grad is not None and feats.pooled.grad.abs().sum() > 0
    fixed = HEADS.build(dict(type='ManifoldAlignmentHead', learn_temperature=False, temperature_mode='exp_scale'))
    assert not any(True for _ in fixed.parameters()) and float(fixed.scale()) == pytest.approx(1 / 0.07)
    with pytest.raises(ConfigError, match='text branch'):
        head.loss(feats, torch.zeros(6, dtype=torch.long), [])
    with pytest.raises(ConfigError, match='sign'):
        HEADS.build(dict(type='ManifoldAlignmentHead', sign=0))


def _ot_inputs(batch: int = 4, channels: int = 16, side: int = 3, points: int = 5, dim: int = 8):
    gen = torch.Generator().manual_seed(0)
    return torch.randn(batch, channels, side, side, generator=gen), torch.randn(batch, points, dim, generator=gen)


def test_ot_head_architecture_and_pot_solver() -> None:
    head = HEADS.build(dict(type='OTAlignmentHead', spatial_size=(3, 3), text_dim=8, tol=1e-9, max_iter=500)).eval()
    kinds = [type(m) for m in head.projection]
    assert kinds == [nn.Linear, nn.Dropout, nn.ReLU, nn.Linear] and head.projection[1].p == 0.5
    assert head.projection[0].out_features == 512 and head.projection[3].out_features == 9
    maps, points = _ot_inputs()
    plan, cost = head.transport(maps, points)
    head.solver = 'pot'
    plan_pot, cost_pot = head.transport(maps, points)
    assert torch.allclose(plan, plan_pot.float(), atol=1e-5) and torch.allclose(cost, cost_pot.float(), atol=1e-5)
    # squared Euclidean cost between unit rows lies in [0, 4]
    assert (cost >= 0).all() and (cost <= 4).all()


@pytest.mark.parametrize('grad', [True, False, 'envelope'])
def test_ot_head_grad_switch(grad: bool | str) -> None:
    head = HEADS.build(dict(type='OTAlignmentHead', spatial_size=9, text_dim=8, grad=grad))
    maps, points = _ot_inputs()
    maps.requires_grad_()
    text = TextFeatures(points, points[:, :1, None].expand(-1, 1, 6, -1), torch.ones(4, 6, dtype=torch.bool))
    loss = head.loss(BackboneOutput(maps, maps.mean((2, 3)), maps), torch.zeros(4, dtype=torch.long), [],
                     text=text)['loss_ot']
    assert loss.requires_grad is (grad is not False)
    if grad is not False:
        loss.backward()
        assert torch.isfinite(maps.grad).all() and maps.grad.abs().sum() > 0
        assert head.projection[0].weight.grad.abs().sum() > 0


def test_ot_head_per_token_points_ignore_padding_and_start() -> None:
    head = HEADS.build(dict(type='OTAlignmentHead', spatial_size=9, text_dim=8, text_points='per_token')).eval()
    maps, _ = _ot_inputs()
    tokens = torch.randn(4, 1, 6, 8)
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2] * 2)
    text = TextFeatures(tokens[:, :, 0], tokens, mask)
    points, weights = head.text_points_of(text)
    assert points.shape == (4, 6, 8) and torch.allclose(weights.sum(1), torch.ones(4))
    assert (weights[:, 0] == 0).all() and (weights[1, 4:] == 0).all()
    plan, cost = head.transport(maps, points, weights)
    assert plan[1, :, 4:].abs().max() == 0 and torch.isfinite(cost).all()
    # padding tokens change nothing
    plan_short, cost_short = head.transport(maps[1:2], points[1:2, :4], weights[1:2, :4])
    assert torch.allclose(cost[1], cost_short[0], atol=1e-6)


def test_ot_head_class_dependent_positions_skip_the_shared_prefix() -> None:
    head = HEADS.build(dict(type='OTAlignmentHead', spatial_size=9, text_dim=8, text_points='per_token'))
    tokens = torch.randn(2, 1, 7, 8)
    mask = torch.tensor([[True] * 7, [True] * 6 + [False]])
    _, weights = head.text_points_of(TextFeatures(tokens[:, :, 0], tokens, mask, shared=3))
    assert (weights[:, :3] == 0).all() and (weights[0, 3:] == 0.25).all() and weights[1, 6] == 0
    head.token_positions = 'after_start'
    _, weights = head.text_points_of(TextFeatures(tokens[:, :, 0], tokens, mask, shared=3))
    assert (weights[:, 0] == 0).all() and (weights[0, 1:] > 0).all()
    head.token_positions = 'class_dependent'
    with pytest.raises(ConfigError, match='class name'):
        head.text_points_of(TextFeatures(tokens[:, :, 0], tokens, mask, shared=7))
    with pytest.raises(ConfigError, match='token_positions'):
        HEADS.build(dict(type='OTAlignmentHead', spatial_size=9, token_positions='class_only'))


def test_manifold_rows_against_other_columns_and_fixed_temperature() -> None:
    from zoo.models.heads.manifold_head import pairwise_distances

    gen = torch.Generator().manual_seed(3)
    x, y = torch.randn(3, 5, generator=gen), torch.randn(4, 5, generator=gen)
    full = pairwise_distances(torch.cat([x, y]))
    assert torch.allclose(pairwise_distances(x, y=torch.cat([x, y])), full[:3], atol=1e-6)
    fixed = HEADS.build(dict(type='ManifoldAlignmentHead', sign=-1, temperature_init=0.5, learn_temperature=False))
    assert not list(fixed.parameters()) and float(fixed.scale()) == 2.0
    assert 'temperature' in fixed.state_dict()  # a buffer: saved with checkpoints, never trained
    img, txt = torch.randn(6, 8, generator=gen), torch.randn(6, 4, generator=gen)
    learned = HEADS.build(dict(type='ManifoldAlignmentHead', sign=-1))
    # at the released code's tau (2.659) both similarity matrices are near uniform: a far smaller loss
    assert fixed.manifold_loss(img, txt) > 5 * learned.manifold_loss(img, txt)
    # the released code's learnable tau: descending the loss raises it (both matrices flatten, the loss shrinks)
    learned.manifold_loss(img, txt).backward()
    assert learned.temperature.grad < 0
    # not distributed: gather changes nothing
    off = HEADS.build(dict(type='ManifoldAlignmentHead', sign=-1, gather=False))
    assert torch.equal(learned.manifold_loss(img, txt), off.manifold_loss(img, txt))


def test_ot_head_huge_and_constant_features_stay_finite() -> None:
    head = HEADS.build(dict(type='OTAlignmentHead', spatial_size=9, text_dim=8, eps=1e-3))
    for maps in (torch.full((2, 16, 3, 3), 1e30), torch.zeros(2, 16, 3, 3), torch.randn(2, 16, 3, 3) * 1e20):
        maps.requires_grad_()
        _, cost = head.transport(maps, torch.randn(2, 5, 8) * 1e20)
        cost.sum().backward()
        assert torch.isfinite(cost).all() and torch.isfinite(maps.grad).all()


def test_ot_head_config_errors() -> None:
    with pytest.raises(ConfigError, match='alignment_defaults'):
        HEADS.build(dict(type='OTAlignmentHead', text_dim=8))
    head = HEADS.build(dict(type='OTAlignmentHead', spatial_size=49, text_dim=8))
    with pytest.raises(ConfigError, match='spatial_size=9'):
        head.transport(*_ot_inputs())
    with pytest.raises(ConfigError, match="'native' or 'pot'"):
        HEADS.build(dict(type='OTAlignmentHead', spatial_size=4, solver='geomloss'))


def test_fixmatch_cosine_scheduler() -> None:
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.03)
    sched = PARAM_SCHEDULERS.get('FixMatchCosineLR').build_iter_from_epoch(opt, begin=0, end=2, epoch_length=5)
    assert sched.T_max == 10 and not sched.by_epoch
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]['lr'])
        opt.step()
        sched.step()
    expected = [0.03 * math.cos(7 * math.pi * k / 160) for k in range(10)]
    assert lrs == pytest.approx(expected)
    with pytest.raises(ConfigError, match='T_max'):
        PARAM_SCHEDULERS.get('FixMatchCosineLR')(opt)
