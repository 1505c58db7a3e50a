"""Explanation metrics equal their references on identical models, images and maps.

* Insertion/Deletion: a straightforward per-image implementation of RISE's ``CausalMetric.single_run`` (written
  here, numpy ordering and copying as in ``eclique/RISE/evaluation.py``).
* ROAD: ``pytorch_grad_cam.metrics.road`` (zero noise, and seeded noise).
* Energy pointing game: ``quantus.RelevanceMassAccuracy``.
* Average Drop / Increase in Confidence: their formulas on hand-made models and maps.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from zoo.metrics import (
    ROAD,
    AverageDrop,
    Deletion,
    EnergyPointingGame,
    IncreaseInConfidence,
    Insertion,
    build_explanation_metric,
    gaussian_kernel,
)
from zoo.metrics.base import box_masks

# grad-cam's imputer passes torch tensors to numpy functions
pytestmark = pytest.mark.filterwarnings('ignore:__array_wrap__ must accept context:DeprecationWarning')


class TinyNet(nn.Module):
    """A small CNN with enough spatial sensitivity for the perturbation curves to move."""

    def __init__(self, classes: int = 4, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2))
        self.fc = nn.Linear(64, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).flatten(1)) * 3


@pytest.fixture(scope='module')
def batch():
    g = torch.Generator().manual_seed(1)
    images = torch.randn(5, 3, 24, 20, generator=g)
    maps = torch.rand(5, 24, 20, generator=g)
    maps = maps + 1e-4 * torch.arange(24 * 20).view(24, 20).flip(0)  # distinct values: tie order cannot matter
    return TinyNet().eval(), images, maps


# --- RISE CausalMetric, per image, as evaluation.py does it ---------------------------------------------------
def rise_gkern(klen: int = 11, nsig: float = 5.0) -> torch.Tensor:
    from scipy.ndimage import gaussian_filter

    inp = np.zeros((klen, klen))
    inp[klen // 2, klen // 2] = 1
    k = gaussian_filter(inp, nsig)
    kern = np.zeros((3, 3, klen, klen))
    for c in range(3):
        kern[c, c] = k
    return torch.from_numpy(kern.astype('float32'))


def rise_single_run(model, img, explanation, mode, step, substrate_fn, target=None, softmax=True, order=None):
    """``CausalMetric.single_run`` for one image ``[1, C, H, W]`` (batch of 1), returns the score curve."""
    _, c, h, w = img.shape
    hw = h * w
    with torch.no_grad():
        out = model(img)
    cls = int(out.argmax(1)) if target is None else int(target)
    n_steps = (hw + step - 1) // step
    if mode == 'del':
        start, finish = img.clone(), substrate_fn(img)
    else:
        start, finish = substrate_fn(img), img.clone()
    scores = np.empty(n_steps + 1)
    if order is None:
        order = np.flip(np.argsort(explanation.reshape(-1, hw), axis=1), axis=-1)
    for i in range(n_steps + 1):
        with torch.no_grad():
            pred = model(start)
            pred = pred.softmax(1) if softmax else pred
        scores[i] = float(pred[0, cls])
        if i < n_steps:
            coords = order[:, step * i:step * (i + 1)]
            s, f = start.numpy().reshape(1, c, hw), finish.numpy().reshape(1, c, hw)
            s[0, :, coords[0]] = f[0, :, coords[0]]
    return scores


def rise_auc(arr: np.ndarray) -> float:
    return float((arr.sum() - arr[0] / 2 - arr[-1] / 2) / (arr.shape[0] - 1))


def blur_fn(img):
    return nn.functional.conv2d(img, rise_gkern(), padding=11 // 2)


CASES = [  # (metric, RISE mode, step, substrate field, substrate fn, scored_class, softmax)
    (Insertion, 'ins', 20, 'blur', blur_fn, 'predicted', True),         # RISE's settings: one row per step
    (Deletion, 'del', 20, 'zeros', torch.zeros_like, 'predicted', True),
    (Insertion, 'ins', 37, 'zeros', torch.zeros_like, 'target', False),  # partial last step, GT class, logits
    (Deletion, 'del', 53, 'blur', blur_fn, 'target', True),
    (Deletion, 'del', 64, -0.5, lambda x: torch.full_like(x, -0.5), 'predicted', False),
]


@pytest.mark.parametrize('cls, mode, step, substrate, fn, scored, softmax', CASES)
def test_insertion_deletion_equal_rise_per_image(batch, cls, mode, step, substrate, fn, scored, softmax):
    model, images, maps = batch
    targets = torch.tensor([0, 1, 2, 3, 1])
    metric = cls(step=step, substrate=substrate, scored_class=scored, use_softmax=softmax, batch_size=13)
    res = metric(model, images, maps, targets=targets)
    for i in range(len(images)):
        ref = rise_single_run(model, images[i:i + 1].clone(), maps[i].numpy(), mode, step, fn,
                              target=targets[i] if scored == 'target' else None, softmax=softmax)
        np.testing.assert_allclose(res.curve[i].numpy(), ref, rtol=1e-5, atol=1e-6)
        assert res.per_sample[i].item() == pytest.approx(rise_auc(ref), rel=1e-5, abs=1e-6)
    assert res.aggregate == pytest.approx(float(res.per_sample.mean()), rel=1e-6)
    assert res.conventions['step'] == step and res.conventions['n_steps'] == -(-24 * 20 // step)
    assert res.curve.shape == (5, res.conventions['n_steps'] + 1)


def test_gaussian_kernel_is_rise_gkern():
    np.testing.assert_allclose(gaussian_kernel(11, 5.0).numpy(), rise_gkern()[0, 0].numpy(), atol=1e-8)


def test_ties_are_broken_by_row_major_order(batch):
    """ReLU'd CAMs have many equal values: the order must not depend on sort internals."""
    model, images, _ = batch
    maps = torch.zeros(5, 24, 20)
    maps[:, 5:15, 4:12] = 1.0
    maps[:, 8:10, 6:8] = 2.0
    res = Deletion(step=24)(model, images, maps)
    for i in range(len(images)):
        stable = np.argsort(-maps[i].numpy().reshape(1, -1), axis=1, kind='stable')
        ref = rise_single_run(model, images[i:i + 1].clone(), None, 'del', 24, torch.zeros_like, order=stable)
        np.testing.assert_allclose(res.curve[i].numpy(), ref, rtol=1e-5, atol=1e-6)
    again = Deletion(step=24, batch_size=3)(model, images, maps)
    assert torch.equal(res.curve, again.curve)


def test_mean_substrate_and_low_resolution_maps(batch):
    model, images, _ = batch
    model.data_preprocessor = nn.Module()
    model.data_preprocessor.register_buffer('mean', torch.tensor([120., 110., 100.]).view(3, 1, 1))
    model.data_preprocessor.register_buffer('std', torch.tensor([60., 50., 40.]).view(3, 1, 1))
    try:
        metric = Insertion(step=40, substrate='mean', substrate_mean=[90, 110, 140])
        colour = ((torch.tensor([90., 110., 140.]) - model.data_preprocessor.mean.flatten())
                  / model.data_preprocessor.std.flatten())
        sub = metric.make_substrate(model, images)
        assert torch.allclose(sub[2, :, 3, 4], colour)
        small = torch.rand(5, 6, 5)
        res = metric(model, images, small)
        up = nn.functional.interpolate(small[:, None], size=(24, 20), mode='bilinear', align_corners=False)[:, 0]
        assert torch.allclose(res.curve, metric(model, images, up).curve)
    finally:
        del model.data_preprocessor


# --- ROAD vs pytorch_grad_cam.metrics.road -----------------------------------------------------------------
@pytest.fixture(scope='module')
def road_batch():
    g = torch.Generator().manual_seed(2)
    images = torch.randn(3, 3, 20, 20, generator=g)
    low = torch.rand(3, 1, 5, 5, generator=g)
    maps = nn.functional.interpolate(low, size=(20, 20), mode='bilinear', align_corners=False)[:, 0]
    return TinyNet(seed=3).eval(), images, maps


@pytest.mark.parametrize('softmax', [True, False])
def test_road_equals_grad_cam_without_noise(road_batch, monkeypatch, softmax):
    from pytorch_grad_cam.metrics import road as gr
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget, ClassifierOutputTarget

    model, images, maps = road_batch
    monkeypatch.setattr(gr.NoisyLinearImputer, '__init__', lambda self, noise=0.0, weighting=None:
                        setattr(self, 'noise', 0.0))
    pct = [20, 50, 80]
    with torch.no_grad():
        pred = model(images).argmax(1)
    kind = ClassifierOutputSoftmaxTarget if softmax else ClassifierOutputTarget
    targets = [kind(int(c)) for c in pred]
    ref_morf = gr.ROADMostRelevantFirstAverage(pct)(images, maps.numpy(), targets, model)
    ref_lerf = gr.ROADLeastRelevantFirstAverage(pct)(images, maps.numpy(), targets, model)
    for solver in ('direct', 'cg'):
        kw = dict(percentiles=pct, noise=0.0, use_softmax=softmax, solver=solver)
        morf = ROAD(order='morf', **kw)(model, images, maps)
        lerf = ROAD(order='lerf', **kw)(model, images, maps)
        np.testing.assert_allclose(morf.per_sample.numpy(), ref_morf, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(lerf.per_sample.numpy(), ref_lerf, rtol=1e-4, atol=1e-6)
        single = gr.ROADMostRelevantFirst(pct[1])(images, maps.numpy(), targets, model)
        np.testing.assert_allclose(morf.curve[:, 1].numpy(), single, rtol=1e-4, atol=1e-6)
    assert morf.conventions['removed_fraction'] == pytest.approx([0.8, 0.5, 0.2])
    assert not morf.higher_is_better and lerf.higher_is_better


def test_road_combined_equals_grad_cam_with_seeded_noise(road_batch):
    from pytorch_grad_cam.metrics.road import ROADCombined
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    model, images, maps = road_batch
    with torch.no_grad():
        targets = [ClassifierOutputSoftmaxTarget(int(c)) for c in model(images).argmax(1)]
    torch.manual_seed(7)
    ref = ROADCombined(percentiles=[30, 70])(images, maps.numpy(), targets, model)
    ours = ROAD(percentiles=[30, 70], seed=7, solver='direct')(model, images, maps)
    np.testing.assert_allclose(ours.per_sample.numpy(), ref, rtol=1e-4, atol=1e-7)
    assert torch.allclose(ours.curve, (ours.extras['lerf_curve'] - ours.extras['morf_curve']) / 2)
    again = ROAD(percentiles=[30, 70], seed=7)(model, images, maps)
    assert torch.equal(ours.per_sample, again.per_sample)  # deterministic for a seed


# --- Energy pointing game vs quantus ------------------------------------------------------------------------
def test_energy_pointing_game_equals_quantus_relevance_mass_accuracy():
    import quantus

    g = torch.Generator().manual_seed(4)
    maps = torch.rand(6, 24, 24, generator=g) ** 3
    boxes = torch.tensor([[2., 3., 20., 22.], [0., 0., 24., 8.], [5., 5., 6., 6.], [10., 4., 23., 17.],
                          [0., 0., 24., 24.], [7.5, 2.2, 13.7, 19.9]])
    regions = box_masks(boxes, (24, 24))
    model = TinyNet().eval()
    x = torch.randn(6, 3, 24, 24, generator=g)
    ref = quantus.RelevanceMassAccuracy(abs=False, normalise=False, disable_warnings=True)(
        model=model, x_batch=x.numpy(), y_batch=np.zeros(6, dtype=int), a_batch=maps[:, None].numpy(),
        s_batch=regions[:, None].numpy().astype(np.float32), device='cpu')
    ours = EnergyPointingGame()(model, x, maps, boxes=boxes)
    np.testing.assert_allclose(ours.per_sample.numpy(), np.asarray(ref), rtol=1e-6)
    masks_res = EnergyPointingGame(region='mask')(None, x, maps, masks=regions)
    np.testing.assert_allclose(masks_res.per_sample.numpy(), np.asarray(ref), rtol=1e-6)
    assert ours.conventions['region'] == 'box'


# --- AD / IC on hand-made cases -----------------------------------------------------------------------------
class MeanModel(nn.Module):
    """Two logits ``[k · mean(x), 0]``: softmax class 0 = sigmoid(k · mean(x)), easy to compute by hand."""

    def __init__(self, k: float = 4.0) -> None:
        super().__init__()
        self.k = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.mean((1, 2, 3)) * self.k
        return torch.stack([m, torch.zeros_like(m)], 1)


def sig(v: float) -> float:
    return 1 / (1 + np.exp(-v))


def test_average_drop_and_increase_in_confidence_formulas():
    model = MeanModel(4.0)
    images = torch.stack([torch.ones(3, 4, 4), -torch.ones(3, 4, 4), 0.5 * torch.ones(3, 4, 4)])
    maps = torch.zeros(3, 4, 4)
    maps[0, :2] = 1.0          # half the image kept: mean 1 → 0.5
    maps[1, :, :1] = 1.0       # a quarter kept: mean -1 → -0.25 (class 1 is predicted)
    maps[2] = 1.0              # constant map of ones: image unchanged
    kw = dict(multiply='normalized', scored_class='target')
    ad = AverageDrop(**kw)(model, images, maps, targets=0)
    ic = IncreaseInConfidence(**kw)(model, images, maps, targets=0)
    y = np.array([sig(4.0), sig(-4.0), sig(2.0)])
    o = np.array([sig(2.0), sig(-1.0), sig(2.0)])
    np.testing.assert_allclose(ad.per_sample.numpy(), 100 * np.maximum(0, y - o) / y, rtol=1e-5)
    np.testing.assert_allclose(ic.per_sample.numpy(), 100 * (o > y), rtol=0)
    assert ad.aggregate == pytest.approx(float(np.mean(100 * np.maximum(0, y - o) / y)), rel=1e-5)
    assert ic.aggregate == pytest.approx(100 / 3)
    assert not ad.higher_is_better and ic.higher_is_better
    pred = AverageDrop(multiply='normalized')(model, images, maps)  # predicted class: 1 for the dark image
    assert pred.classes.tolist() == [0, 1, 0]
    p1_y, p1_o = 1 - sig(-4.0), 1 - sig(-1.0)
    assert pred.per_sample[1].item() == pytest.approx(100 * max(0.0, p1_y - p1_o) / p1_y, rel=1e-5)


def test_confidence_pixel_space_and_keep_top():
    model = MeanModel(1.0)
    model.data_preprocessor = nn.Module()
    model.data_preprocessor.register_buffer('mean', torch.full((3, 1, 1), 100.0))
    model.data_preprocessor.register_buffer('std', torch.full((3, 1, 1), 50.0))
    pixels = torch.full((1, 3, 2, 2), 200.0)                 # normalised: 2.0
    images = (pixels - 100) / 50
    maps = torch.tensor([[[0.0, 0.5], [1.0, 0.25]]])         # min-max already in [0, 1]
    metric = AverageDrop(scored_class='target')
    expl = metric.explanation_images(model, images, maps)
    assert torch.allclose(expl, ((pixels * maps[:, None]) - 100) / 50)
    top = AverageDrop(scored_class='target', keep_top=0.5).explanation_images(model, images, maps)
    kept = torch.tensor([[[0.0, 0.5], [1.0, 0.0]]])
    assert torch.allclose(top, ((pixels * kept[:, None]) - 100) / 50)
    r = metric(model, images, maps, targets=0)
    y, o = sig(2.0), sig(float(expl.mean()))
    assert r.per_sample.item() == pytest.approx(100 * max(0, y - o) / y, rel=1e-5)
    with pytest.raises(Exception, match='mean/std'):
        AverageDrop()(MeanModel(), images, maps)


def test_builder_aliases_and_bad_fields():
    from registry.errors import ConfigError, UnknownTypeError

    assert type(build_explanation_metric('ins')).__name__ == 'Insertion'
    assert type(build_explanation_metric('energy_pointing_game')).__name__ == 'EnergyPointingGame'
    assert build_explanation_metric(dict(type='road', order='morf')).order == 'morf'
    with pytest.raises(UnknownTypeError, match='Did you mean'):
        build_explanation_metric('insertoin')
    with pytest.raises(ConfigError, match='substrate'):
        Insertion(substrate='grey')
    with pytest.raises(ConfigError, match='scored_class'):
        Deletion(scored_class='gt')
    with pytest.raises(ConfigError, match='targets'):
        Insertion(scored_class='target')(TinyNet(), torch.randn(1, 3, 8, 8), torch.rand(1, 8, 8))
