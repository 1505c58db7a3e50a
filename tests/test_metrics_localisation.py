"""Pointing game, energy pointing game and mask coverage: hand-made cases, TorchRay's rule, the embedded dataset."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from zoo.metrics import EnergyPointingGame, MaskCoverage, PointingGame
from zoo.metrics.base import box_masks, tight_boxes


def point_map(h: int, w: int, y: int, x: int) -> torch.Tensor:
    m = torch.rand(h, w) * 0.5
    m[y, x] = 1.0
    return m


def torchray_hit(mask: torch.Tensor, point: tuple[int, int], tolerance: int) -> bool:
    """TorchRay ``PointingGame.evaluate``: a hit when the disk of radius ``tolerance`` around (u, v) meets the mask."""
    v, u = torch.meshgrid((torch.arange(mask.shape[0], dtype=torch.float32) - point[1]) ** 2,
                          (torch.arange(mask.shape[1], dtype=torch.float32) - point[0]) ** 2, indexing='ij')
    return bool((mask & ((v + u) < tolerance ** 2)).any())


def test_tolerance_is_strict_euclidean_distance():
    mask = torch.zeros(1, 40, 40, dtype=torch.bool)
    mask[0, 10, 10] = True
    images = torch.zeros(1, 3, 40, 40)
    cases = [((10, 24), 15, 1.0), ((10, 25), 15, 0.0), ((19, 21), 15, 1.0), ((19, 22), 15, 0.0),  # 15.0 is a miss
             ((10, 10), 0, 1.0), ((10, 11), 0, 0.0), ((10, 11), 1.5, 1.0)]
    for (y, x), tol, expected in cases:
        r = PointingGame(tolerance=tol)(None, images, point_map(40, 40, y, x)[None], targets=0, masks=mask)
        assert r.per_sample.item() == expected, (y, x, tol)
        assert r.extras['points'].tolist() == [[y, x]]


def test_matches_torchray_rule_on_random_masks():
    g = torch.Generator().manual_seed(0)
    masks = torch.rand(64, 32, 48, generator=g) > 0.97
    maps = torch.rand(64, 32, 48, generator=g)
    for tol in (0.5, 3, 15):
        r = PointingGame(tolerance=tol, per_class=False)(None, torch.zeros(64, 3, 32, 48), maps, masks=masks)
        for i in range(64):
            y, x = divmod(int(maps[i].argmax()), 48)
            assert r.per_sample[i].item() == float(torchray_hit(masks[i], (x, y), tol)), (i, tol)


def test_per_class_average_and_samples_without_object():
    masks = torch.zeros(6, 20, 20, dtype=torch.bool)
    masks[:, 5:10, 5:10] = True
    masks[4] = False                                              # no object: excluded and counted
    masks[5] = False                                              # the only sample of class 2: class not counted
    maps = torch.stack([point_map(20, 20, 7, 7), point_map(20, 20, 6, 6), point_map(20, 20, 8, 8),
                        point_map(20, 20, 19, 19), point_map(20, 20, 7, 7), point_map(20, 20, 7, 7)])
    targets = torch.tensor([0, 0, 0, 1, 1, 2])
    images = torch.zeros(6, 3, 20, 20)
    r = PointingGame(tolerance=0)(None, images, maps, targets=targets, masks=masks)
    assert r.per_sample[:4].tolist() == [1.0, 1.0, 1.0, 0.0]
    assert torch.isnan(r.per_sample[4:]).all() and r.n_excluded == 2 and r.extras['n_excluded'] == 2
    assert r.extras['class_accuracy'] == {0: 1.0, 1: 0.0}
    assert r.aggregate == 0.5                                     # (1.0 + 0.0) / 2 classes
    plain = PointingGame(tolerance=0, per_class=False)(None, images, maps, targets=targets, masks=masks)
    assert plain.aggregate == 0.75
    assert r.conventions == dict(type='PointingGame', tolerance=0, region='mask', per_class=True, ties='first',
                                 empty='exclude', convention='torchray')
    assert math.isnan(PointingGame().reduce(torch.tensor([float('nan')]), torch.tensor([0])))  # nothing to score


def test_boxes_ties_and_grouping_by_prediction():
    images = torch.zeros(2, 3, 16, 16)
    boxes = torch.tensor([[2., 2., 6., 6.], [10., 10., 10., 16.]])  # the second has no area: no object
    maps = torch.zeros(2, 16, 16)                                  # constant map: the maximum is pixel (0, 0)
    r = PointingGame(tolerance=3, region='box', per_class=False)(None, images, maps, boxes=boxes)
    assert r.per_sample[0].item() == 1.0 and torch.isnan(r.per_sample[1])   # distance √8 < 3 to (2, 2)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 3))
    r2 = PointingGame(region='box')(model, images, maps, boxes=boxes)
    assert r2.classes.tolist() == model(images).argmax(1).tolist()


def test_region_helpers():
    masks = torch.zeros(2, 6, 7, dtype=torch.bool)
    masks[0, 1:4, 2:6] = True
    assert tight_boxes(masks).tolist() == [[2., 1., 6., 4.], [0., 0., 0., 0.]]
    assert torch.equal(box_masks(tight_boxes(masks), (6, 7)), masks)
    with pytest.raises(Exception, match="region='box'"):
        PointingGame(region='mask')(None, torch.zeros(1, 3, 6, 7), torch.rand(1, 6, 7),
                                    boxes=torch.tensor([[0., 0., 2., 2.]]))
    auto = PointingGame()(None, torch.zeros(1, 3, 6, 7), torch.rand(1, 6, 7), boxes=torch.tensor([[0., 0., 2., 2.]]))
    assert auto.conventions['region'] == 'box'                    # no masks: the box


def test_energy_pointing_game_and_mask_coverage_by_hand():
    maps = torch.zeros(1, 4, 4)
    maps[0, 0, 0], maps[0, 0, 1], maps[0, 3, 3] = 3.0, 1.0, 1.0
    maps[0, 2, 2] = -5.0                                          # negative saliency is ignored
    mask = torch.zeros(1, 4, 4, dtype=torch.bool)
    mask[0, 0, :2] = True
    images = torch.zeros(1, 3, 4, 4)
    assert EnergyPointingGame(region='mask')(None, images, maps, masks=mask).aggregate == pytest.approx(0.8)
    cov = MaskCoverage(percentiles=[0, 90])(None, images, maps, masks=mask)
    # q=90: the 90th percentile of the 16 values is 1.0 (linear), so the pixels >= 1 are kept: 3 + 1 inside, 1 out
    assert cov.curve.tolist() == [[pytest.approx(0.8), pytest.approx(0.8)]]
    cov2 = MaskCoverage(percentiles=[0, 95])(None, images, maps, masks=mask)  # threshold 1.5: only the 3.0
    assert cov2.curve[0, 1].item() == pytest.approx(1.0)
    assert cov2.per_sample.item() == pytest.approx(0.9)
    empty = EnergyPointingGame(region='mask')(None, images, torch.zeros(1, 4, 4), masks=mask)
    assert empty.aggregate == 0.0                                 # no positive mass: nothing inside


# --- on the embedded dataset ------------------------------------------------------------------------------------
class ObjectOnlyNet(nn.Module):
    """A random, bias-free CNN that sees only the object: its input is multiplied by the object mask."""

    def __init__(self, masks: torch.Tensor) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 3, padding=1, bias=False), nn.ReLU())
        self.fc = nn.Linear(32, 10, bias=False)
        self.register_buffer('masks', masks.float()[:, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x * self.masks).mean((2, 3)))


@pytest.fixture(scope='module')
def fmnist_batch(fashion_mnist_dir):
    from registry import DATASETS

    ds = DATASETS.build(dict(type='ClutteredFashionMNIST', data_root=fashion_mnist_dir, split='test',
                             num_samples=160))
    items = [ds[i] for i in range(len(ds))]
    images = (torch.stack([d['inputs'] for d in items]).float() - 127.5) / 127.5
    masks = torch.stack([d['data_samples'].gt_mask for d in items])
    labels = torch.tensor([int(d['data_samples'].gt_label) for d in items])
    return images, masks, labels


def test_object_only_model_points_at_the_object(fmnist_batch):
    from zoo.explainers import build_explainer

    images, masks, labels = fmnist_batch
    model = ObjectOnlyNet(masks).eval()
    maps = build_explainer('gradcam', target_layer='features.7')(model, images)
    r = PointingGame()(model, images, maps, targets=labels, masks=masks)
    assert r.aggregate >= 0.95 and r.n_excluded == 0
    assert EnergyPointingGame()(model, images, maps, targets=labels, masks=masks).aggregate > 0.5


def test_random_maps_score_the_object_area_baseline(fmnist_batch):
    from scipy.ndimage import distance_transform_edt

    images, masks, labels = fmnist_batch
    g = torch.Generator().manual_seed(0)
    for tol in (0, 15):
        # P(hit) for a uniformly random maximum: the share of pixels on the object or closer than tol to it
        dist = np.stack([distance_transform_edt(~m.numpy()) for m in masks])
        baseline = float(((dist == 0) | (dist < tol)).mean())
        scores = [PointingGame(tolerance=tol, per_class=False)(None, images, torch.rand(*masks.shape, generator=g),
                                                               masks=masks).aggregate for _ in range(4)]
        sigma = (baseline * (1 - baseline) / (4 * len(masks))) ** 0.5
        assert abs(np.mean(scores) - baseline) < 4 * sigma + 0.01, (tol, np.mean(scores), baseline)
    area = float(masks.float().mean())
    ebpg = EnergyPointingGame(region='mask')(None, images, torch.rand(*masks.shape, generator=g), masks=masks)
    assert ebpg.aggregate == pytest.approx(area, abs=0.01)
