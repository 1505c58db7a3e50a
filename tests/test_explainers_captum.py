"""Pixel attributions against Captum 0.9 (and grad-cam's guided backprop) on identical weights, inputs and targets.

``attribute()`` returns Captum's per-channel attributions; the maps reduce them over channels (not compared:
Captum has no such reduction). Conventions: Saliency is compared with ``abs=False`` (Captum's default takes the
absolute value; our attributions keep the sign, the map takes it); SmoothGrad with an absolute ``stdev`` and
``nt_samples_batch_size=1`` after ``torch.manual_seed(seed)`` (Captum draws from the global generator, one
``[B, C, H, W]`` sample at a time in that setting; we draw the same numbers from a private generator); Guided
Grad-CAM with Captum's nearest-neighbour upsampling of the raw ReLU'd Grad-CAM map.
"""
from __future__ import annotations

import copy
import warnings

import pytest
import torch

ca = pytest.importorskip('captum.attr')

from zoo.explainers import build_explainer  # noqa: E402

from .gradcam_reference import calibrated  # noqa: E402


@pytest.fixture(scope='module')
def setup():
    import timm

    torch.manual_seed(0)
    model = calibrated(timm.create_model('test_resnet', pretrained=False, num_classes=10))
    images = torch.randn(2, 3, 64, 80, generator=torch.Generator().manual_seed(5))
    return model, images, torch.tensor([3, 7])


def captum(fn):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # "Input Tensor 0 did not already require gradients", backward-hook notes
        return fn().detach()


def check(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    assert float(theirs.abs().max()) > 1e-4  # a real attribution, not all zeros
    torch.testing.assert_close(ours, theirs, atol=1e-4 * float(theirs.abs().max()), rtol=0)


def test_saliency(setup):
    model, x, t = setup
    check(build_explainer('saliency').attribute(model, x, t), captum(lambda: ca.Saliency(model).attribute(
        x, target=t, abs=False)))


@pytest.mark.parametrize('method', ['gausslegendre', 'riemann_trapezoid', 'riemann_middle'])
def test_integrated_gradients(setup, method):
    model, x, t = setup
    ours = build_explainer('ig', n_steps=12, method=method, batch_size=10).attribute(model, x, t)  # 5 steps a chunk
    check(ours, captum(lambda: ca.IntegratedGradients(model).attribute(x, target=t, n_steps=12, method=method)))


def test_integrated_gradients_baseline_and_completeness(setup):
    model, x, t = setup
    base = torch.full_like(x[0], 0.3)
    ours = build_explainer('ig', n_steps=32, baseline=base).attribute(model, x, t)
    check(ours, captum(lambda: ca.IntegratedGradients(model).attribute(x, baselines=base[None].expand_as(x),
                                                                         target=t, n_steps=32)))
    with torch.no_grad():
        gap = model(x).gather(1, t[:, None])[:, 0] - model(base[None].expand_as(x)).gather(1, t[:, None])[:, 0]
    torch.testing.assert_close(ours.flatten(1).sum(1), gap, atol=0.05 * float(gap.abs().max()), rtol=0)


@pytest.mark.parametrize('nt_type', ['smoothgrad', 'smoothgrad_sq', 'vargrad'])
def test_smoothgrad(setup, nt_type):
    model, x, t = setup
    ours = build_explainer('smoothgrad', n_samples=3, stdev=0.3, seed=3, nt_type=nt_type, batch_size=4).attribute(
        model, x, t)  # 2 samples a chunk: chunking does not change the draws

    def ref():
        torch.manual_seed(3)
        return ca.NoiseTunnel(ca.Saliency(model)).attribute(x, nt_type=nt_type, nt_samples=3, nt_samples_batch_size=1,
                                                            stdevs=0.3, target=t, abs=False)

    check(ours, captum(ref))


def test_smoothgrad_relative_noise_and_private_generator(setup):
    model, x, t = setup
    rng = torch.random.get_rng_state()
    sg = build_explainer('smoothgrad', n_samples=3, noise_level=0.1, seed=1)
    a, b = sg.attribute(model, x, t), sg.attribute(model, x, t)
    assert torch.equal(a, b) and torch.equal(rng, torch.random.get_rng_state())
    sigma = sg.sigma(x).flatten()
    torch.testing.assert_close(sigma, 0.1 * (x.flatten(1).amax(1) - x.flatten(1).amin(1)))


def test_guided_backprop_and_guided_grad_cam(setup):
    import pytorch_grad_cam as pgc

    model, x, t = setup
    twin = copy.deepcopy(model)
    check(build_explainer('guidedbackprop').attribute(model, x, t),
          captum(lambda: ca.GuidedBackprop(twin).attribute(x, target=t)))
    check(build_explainer('guidedgradcam', target_layer='layer4').attribute(model, x, t),
          captum(lambda: ca.GuidedGradCam(twin, twin.layer4).attribute(x, target=t)))
    ref = pgc.GuidedBackpropReLUModel(copy.deepcopy(model), device='cpu')(x[1:2], target_category=7)  # one image
    check(build_explainer('guidedbackprop').attribute(model, x[1:2], 7)[0],
          torch.from_numpy(ref).permute(2, 0, 1).float())
    scaled = build_explainer('guidedgradcam', target_layer='layer4', scale_cam=True, interpolate='bilinear')
    assert scaled(model, x, t).shape == (2, 64, 80)


def test_maps_reduce_channels(setup):
    model, x, t = setup
    attr = build_explainer('ig', n_steps=4).attribute(model, x, t)
    for how, expected in [('max_abs', attr.abs().amax(1)), ('sum_abs', attr.abs().sum(1)),
                          ('abs_sum', attr.sum(1).abs()), ('sum', attr.sum(1))]:
        maps = build_explainer('ig', n_steps=4, reduce=how, normalize=False)(model, x, t)
        torch.testing.assert_close(maps, expected)
    normed = build_explainer('ig', n_steps=4)(model, x, t)
    assert float(normed.amin()) == 0.0 and float(normed.amax()) == 1.0


def test_guided_relus_leave_the_model_as_it_was(setup):
    model, x, t = setup
    before = {k: v.clone() for k, v in model.state_dict().items()}
    modules = [type(m) for m in model.modules()]
    build_explainer('guidedbackprop')(model, x, t)
    assert [type(m) for m in model.modules()] == modules
    assert all(len(m._forward_hooks) == 0 for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    plain = build_explainer('saliency').attribute(model, x, t)
    torch.testing.assert_close(plain, captum(lambda: ca.Saliency(model).attribute(x, target=t, abs=False)))
