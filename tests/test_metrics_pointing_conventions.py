"""Pointing-game conventions: the ``'quantus'`` preset equals quantus 0.6's ``PointingGame`` sample by sample, each
switch (tolerance, ties, empty masks, per-class mean) does what it says, and every result records the convention."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from registry.errors import ConfigError
from zoo.metrics import EnergyPointingGame, PointingGame, build_explanation_metric

quantus = pytest.importorskip('quantus')


def case(seed: int = 0, n: int = 10):
    """Maps with a few tied maxima (values on a 120-level grid), random masks, one empty mask."""
    g = torch.Generator().manual_seed(seed)
    maps = (torch.rand(n, 16, 20, generator=g) * 120).floor()
    maps[1] = 0.0  # a constant map: every pixel ties
    masks = torch.rand(n, 16, 20, generator=g) > 0.85
    masks[3] = False
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 20, 4)).eval()
    return model, torch.randn(n, 3, 16, 20, generator=g), maps, masks


def quantus_scores(model, x, maps, masks) -> np.ndarray:
    return np.asarray(quantus.PointingGame(disable_warnings=True)(
        model=model, x_batch=x.numpy(), y_batch=np.zeros(len(x), dtype=int), a_batch=maps[:, None].numpy(),
        s_batch=masks[:, None].numpy().astype(np.float32), device='cpu'), dtype=float)


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_quantus_preset_equals_quantus(seed):
    model, x, maps, masks = case(seed)
    ref = quantus_scores(model, x, maps, masks)
    ours = PointingGame(convention='quantus')(model, x, maps, masks=masks)
    np.testing.assert_array_equal(ours.per_sample.numpy(), ref)
    assert ours.aggregate == pytest.approx(float(ref.mean()))
    assert ours.conventions == dict(type='PointingGame', tolerance=0, region='mask', per_class=False, ties='any',
                                    empty='hit', convention='quantus')
    assert ours.extras['n_empty'] == 1 and ours.n_excluded == 0


def test_each_switch_explains_a_difference_from_quantus():
    model, x, maps, masks = case(0)
    ref = quantus_scores(model, x, maps, masks)
    first = PointingGame(tolerance=0, ties='first', empty='hit', per_class=False)(model, x, maps, masks=masks)
    tied = maps.flatten(1) == maps.flatten(1).amax(1, keepdim=True)
    differs = first.per_sample.numpy() != ref
    assert differs.any() and bool((tied.sum(1)[torch.from_numpy(differs)] > 1).all())  # only where maxima tie
    excluded = PointingGame(tolerance=0, ties='any', per_class=False)(model, x, maps, masks=masks)  # empty: exclude
    assert math.isnan(excluded.per_sample[3]) and excluded.n_excluded == 1
    miss = PointingGame(tolerance=0, ties='any', empty='miss', per_class=False)(model, x, maps, masks=masks)
    assert miss.per_sample[3] == 0.0
    default = PointingGame()(model, x, maps, masks=masks)
    assert default.conventions['convention'] == 'torchray' and default.conventions['tolerance'] == 15
    assert default.conventions['ties'] == 'first' and default.conventions['empty'] == 'exclude'


def test_tied_maxima_with_tolerance():
    mask = torch.zeros(1, 20, 20, dtype=torch.bool)
    mask[0, 10, 10] = True
    maps = torch.zeros(1, 20, 20)
    maps[0, 0, 0] = maps[0, 10, 14] = 1.0  # two maxima: the first is far, the second 4 px away
    images = torch.zeros(1, 3, 20, 20)
    assert PointingGame(tolerance=5, ties='first')(None, images, maps, masks=mask).aggregate == 0.0
    assert PointingGame(tolerance=5, ties='any')(None, images, maps, masks=mask).aggregate == 1.0
    assert PointingGame(tolerance=4, ties='any')(None, images, maps, masks=mask).aggregate == 0.0  # strict
    assert PointingGame(tolerance=4.5, ties='any')(None, images, maps, masks=mask).aggregate == 1.0


def test_bad_switches_are_refused():
    with pytest.raises(ConfigError, match='convention'):
        PointingGame(convention='zhang')
    with pytest.raises(ConfigError, match='ties'):
        PointingGame(ties='last')
    with pytest.raises(ConfigError, match='empty'):
        PointingGame(empty='skip')
    cfg = build_explanation_metric(dict(type='PointingGame', convention='quantus', tolerance=3)).conventions()
    assert (cfg['tolerance'], cfg['ties'], cfg['empty']) == (3, 'any', 'hit')  # explicit switches override


def test_energy_pointing_game_clamp_switch_equals_quantus_on_signed_maps():
    g = torch.Generator().manual_seed(2)
    maps = torch.randn(5, 12, 12, generator=g)
    regions = torch.rand(5, 12, 12, generator=g) > 0.5
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 12 * 12, 3)).eval()
    x = torch.randn(5, 3, 12, 12, generator=g)
    ref = quantus.RelevanceMassAccuracy(abs=False, normalise=False, disable_warnings=True)(
        model=model, x_batch=x.numpy(), y_batch=np.zeros(5, dtype=int), a_batch=maps[:, None].numpy(),
        s_batch=regions[:, None].numpy().astype(np.float32), device='cpu')
    signed = EnergyPointingGame(region='mask', clamp_negative=False)(model, x, maps, masks=regions)
    np.testing.assert_allclose(signed.per_sample.numpy(), np.asarray(ref), rtol=1e-4)  # quantus sums in float32
    clamped = EnergyPointingGame(region='mask')(model, x, maps, masks=regions)
    assert bool(((clamped.per_sample >= 0) & (clamped.per_sample <= 1)).all())
    assert not np.allclose(clamped.per_sample.numpy(), np.asarray(ref))
    assert clamped.conventions['clamp_negative'] is True
