"""What grad-cam users reach for: callable targets, lists of target layers, aug/eigen smoothing on every CAM, the
Score-CAM variants, overlays of numpy images, one-call image loading; and the interface guarantees of every new
explainer (shape, range, state restored, no hook left)."""
from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from torch import nn

from registry import MODELS
from registry.errors import ConfigError, DataError
from zoo.explainers import build_explainer
from zoo.viz import load_image, overlay, save_overlay

from .test_explainers_behaviour import assert_clean, state

NEW = ['gradcamelementwise', 'shapleycam', 'finercam', 'eigengradcam', 'ablationcam', 'sscam', 'iscam', 'fullgrad',
       'saliency', 'ig', 'smoothgrad', 'guidedbackprop', 'guidedgradcam']
LAYERLESS = ('fullgrad', 'saliency', 'ig', 'smoothgrad', 'guidedbackprop')
CAMS = ['gradcam', 'gradcam++', 'xgradcam', 'layercam', 'hirescam', 'gradcamelementwise', 'shapleycam', 'scorecam',
        'ablationcam', 'sscam', 'iscam', 'fullgrad', 'eigencam', 'eigengradcam', 'kpcacam', 'finercam']
X = torch.randn(2, 3, 48, 64, generator=torch.Generator().manual_seed(0))


def small(alias: str, **kw):
    """A fast configuration of each explainer on timm's test_resnet."""
    fast = {'scorecam': dict(batch_size=96), 'ablationcam': dict(batch_size=96),
            'sscam': dict(num_samples=2, batch_size=96), 'iscam': dict(num_samples=2, batch_size=96),
            'ig': dict(n_steps=4), 'smoothgrad': dict(n_samples=3)}
    args = {**fast.get(alias, {}), **kw}
    if alias not in LAYERLESS:
        args.setdefault('target_layer', 'layer4')
    return build_explainer(alias, **args)


@pytest.fixture(scope='module')
def net():
    torch.manual_seed(0)
    return timm.create_model('test_resnet', pretrained=False, num_classes=5).eval()


class TinyCNN(nn.Module):
    """Eight channels at stride 8 (``layer4``: named like a resnet's last stage), a ReLU, BatchNorm: cheap for
    methods that run one forward pass per channel."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.layer4 = nn.Sequential(nn.Conv2d(8, 8, 3, stride=4, padding=1), nn.ReLU())
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.layer4(self.stem(x)).mean((2, 3)))


@pytest.fixture(scope='module')
def tiny():
    return TinyCNN().eval()


# --- the interface, for every new explainer -----------------------------------------------------------------------
@pytest.mark.parametrize('alias', NEW)
def test_new_explainers_keep_the_interface(tiny, alias):
    tiny.train()
    tiny.stem.eval()  # a mixed state must come back exactly
    tiny.layer4.requires_grad_(False)
    before = state(tiny)
    try:
        maps = small(alias)(tiny, X, [1, 3])
        assert maps.shape == (2, 48, 64) and maps.dtype == torch.float32
        assert float(maps.amin()) >= 0 and float(maps.amax()) == 1.0
        assert_clean(tiny, before)
    finally:
        tiny.layer4.requires_grad_(True)
        tiny.eval()
    bad = X.clone()
    bad[0, 0, 0, 0] = float('nan')
    with pytest.raises(DataError, match='NaN'):
        small(alias)(tiny, bad)


@pytest.mark.parametrize('alias', CAMS)
def test_aug_smooth_and_eigen_smooth_on_every_cam(tiny, alias):
    e = small(alias, aug_smooth=True)
    assert e.config()['aug_smooth'] is True
    plain = small(alias)(tiny, X[:1], 2)
    maps = e(tiny, X[:1], 2)
    assert maps.shape == (1, 48, 64) and float(maps.amin()) == 0.0 and float(maps.amax()) in (0.0, 1.0)
    assert not torch.equal(maps, plain) or float(plain.amax()) == 0.0
    if 'eigen_smooth' in e.config():
        smooth = small(alias, eigen_smooth=True)(tiny, X[:1], 2)
        assert smooth.shape == (1, 48, 64) and bool(torch.isfinite(smooth).all())


def test_aug_smooth_averages_flipped_and_scaled_inputs_by_hand(net):
    """The six maps (no flip / flip × 0.9, 1, 1.1), flipped back, averaged and scaled again — for the class predicted
    on the unmodified image."""
    predicted = net(X).argmax(1)
    parts = []
    for flip in (False, True):
        for factor in (0.9, 1.0, 1.1):
            x = X.flip(-1) if flip else X
            m = build_explainer('gradcam', target_layer='layer4')(net, x * factor, predicted)
            parts.append(m.flip(-1) if flip else m)
    mean = torch.stack(parts).mean(0)
    expected = (mean - mean.amin((1, 2), keepdim=True)) / (mean.amax((1, 2), keepdim=True) -
                                                           mean.amin((1, 2), keepdim=True))
    torch.testing.assert_close(build_explainer('gradcam', target_layer='layer4', aug_smooth=True)(net, X), expected)


# --- callable targets ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('alias', ['gradcam', 'scorecam', 'ablationcam', 'saliency', 'eigengradcam', 'iscam'])
def test_callable_targets_equal_class_indices(tiny, alias):
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    ref = small(alias)(tiny, X, [1, 3])
    torch.testing.assert_close(small(alias)(tiny, X, [ClassifierOutputTarget(1), ClassifierOutputTarget(3)]), ref)
    one = small(alias)(tiny, X, 2)
    torch.testing.assert_close(small(alias)(tiny, X, ClassifierOutputTarget(2)), one)  # one callable, 2-D logits
    torch.testing.assert_close(small(alias)(tiny, X, lambda z: z[:, 2]), one)


def test_a_batched_callable_must_score_any_rows(tiny):
    """A single callable is called on whatever logits a method forwards (Score-CAM: masked copies of several
    images at once), so one that hard-codes the batch is refused in one line, not silently misapplied."""
    per_batch = lambda z: z.gather(1, torch.tensor([[1], [3]]))[:, 0]  # noqa: E731
    assert small('gradcam')(tiny, X, per_batch).shape == (2, 48, 64)  # rows are the images here: fine
    with pytest.raises(ConfigError, match=r'returned shape \(2,\) for 16 row'):
        small('scorecam')(tiny, X, per_batch)


def test_softmax_target_matches_grad_cam(net):
    import pytorch_grad_cam as pgc
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    targets = [ClassifierOutputSoftmaxTarget(1), ClassifierOutputSoftmaxTarget(4)]
    with pgc.GradCAM(model=net, target_layers=[net.layer4]) as cam:
        theirs = torch.from_numpy(cam(X, targets=targets)).float()
    torch.testing.assert_close(build_explainer('gradcam', target_layer='layer4')(net, X, targets), theirs, atol=1e-4,
                               rtol=0)


def test_rise_with_a_callable_target(net):
    rise = build_explainer('rise', n_masks=16, grid_size=4, batch_size=32)
    torch.testing.assert_close(rise(net, X, lambda z: z.softmax(1)[:, 2]), rise(net, X, 2))


@pytest.mark.parametrize('bad,match', [
    (object(), 'got object'), ({'class': 1}, 'got dict'), ('dog', 'got str'), ([1, lambda z: z[:, 0]], 'mix'),
    ([1.5, 2.0], 'whole class indices')])
def test_unknown_targets_are_refused_in_one_line(net, bad, match):
    with pytest.raises(ConfigError, match=match) as info:
        build_explainer('gradcam', target_layer='layer4')(net, X, bad)
    assert '\n' not in str(info.value)


def test_bad_callables_are_refused(net):
    e = build_explainer('gradcam', target_layer='layer4')
    with pytest.raises(ConfigError, match=r'returned shape \(2, 5\)'):
        e(net, X, lambda z: z)
    with pytest.raises(ConfigError, match='3 target callables for a batch of 2'):
        e(net, X, [lambda z: z[0]] * 3)
    with pytest.raises(ConfigError, match='returned float'):
        e(net, X, lambda z: 1.0)
    with pytest.raises(ConfigError, match='FinerCAM takes class indices'):
        build_explainer('finercam', target_layer='layer4')(net, X, lambda z: z[:, 0])


def test_model_explain_passes_callables_through():
    torch.manual_seed(0)
    model = MODELS.build(dict(type='ImageClassifier', class_names=['a', 'b', 'c'],
                              backbone=dict(type='TimmBackbone', model_name='test_resnet'),
                              head=dict(type='LinearClsHead', num_classes=3)))
    by_name = model.explain(X, method='gradcam', targets='c')
    torch.testing.assert_close(model.explain(X, method='gradcam', targets=lambda z: z[:, 2]), by_name)
    torch.testing.assert_close(model.explain(X, method='eigengradcam', targets=[lambda r: r[2]] * 2),
                               model.explain(X, method='eigengradcam', targets=2))


# --- lists of target layers ------------------------------------------------------------------------------------------
def test_target_layer_lists(net):
    maps = [build_explainer('gradcam', target_layer=layer)(net, X, 1) for layer in ('layer4', 'layer3')]
    both = build_explainer('gradcam', target_layer=['layer4', 'layer3'])(net, X, 1)
    mean = (maps[0] + maps[1]) / 2  # each map already in [0, 1]; no layer here is constant
    expected = (mean - mean.amin((1, 2), keepdim=True)) / (mean.amax((1, 2), keepdim=True) -
                                                           mean.amin((1, 2), keepdim=True))
    torch.testing.assert_close(both, expected, atol=2e-2, rtol=0)  # per-layer scaling happens at native resolution
    native = build_explainer('gradcam', target_layer=['layer4', 'layer3'], resize=False)(net, X, 1)
    assert native.shape[-2:] == build_explainer('gradcam', target_layer='layer3', resize=False)(net, X, 1).shape[-2:]
    assert build_explainer('gradcam', target_layer=('layer4', 'layer3')).config()['target_layer'] == ['layer4',
                                                                                                      'layer3']
    with pytest.raises(ConfigError, match='empty list'):
        build_explainer('gradcam', target_layer=[])(net, X)
    with pytest.raises(ConfigError, match='twice'):
        build_explainer('gradcam', target_layer=['layer4', 'layer4.-1.act2', 'layer4'])(net, X)
    nested = build_explainer('layercam', target_layer=['layer4', 'layer4.0.conv1'])(net, X, 1)  # one inside the other
    assert nested.shape == (2, 48, 64) and float(nested.amax()) == 1.0


# --- Score-CAM variants ---------------------------------------------------------------------------------------------
def test_score_cam_variants_reduce_to_score_cam(tiny):
    ref = small('scorecam')(tiny, X, [1, 3])
    torch.testing.assert_close(small('iscam', num_samples=1)(tiny, X, [1, 3]), ref)
    torch.testing.assert_close(small('sscam', std=0.0)(tiny, X, [1, 3]), ref)
    a, b = small('sscam', seed=4)(tiny, X, [1, 3]), small('sscam', seed=4)(tiny, X, [1, 3])
    assert torch.equal(a, b) and not torch.equal(a, small('sscam', seed=5)(tiny, X, [1, 3]))
    assert small('sscam', smooth='input')(tiny, X, [1, 3]).shape == (2, 48, 64)


def test_is_cam_by_hand(tiny):
    """IS-CAM from its definition: channel score = mean over i = 1..N of the logit of x ⊙ (i/N)·mask."""
    x, t, n = X[:1], 4, 3
    store = {}
    handle = tiny.layer4.register_forward_hook(lambda _m, _i, out: store.setdefault('a', out.detach()))
    with torch.no_grad():
        tiny(x)
        handle.remove()
        acts = store['a'][0]
        up = torch.nn.functional.interpolate(acts[:, None], size=x.shape[-2:], mode='bilinear', align_corners=True)
        low, high = up.amin((1, 2, 3), keepdim=True), up.amax((1, 2, 3), keepdim=True)
        masks = (up - low) / (high - low + 1e-8)
        scores = torch.stack([torch.stack([tiny(x * (i / n) * m)[0, t] for i in range(1, n + 1)]).mean()
                              for m in masks])
        cam = torch.relu((scores.softmax(0)[:, None, None] * acts).sum(0))
    ours = build_explainer('iscam', target_layer='layer4', num_samples=n, normalize=False, resize=False)(tiny, x, t)
    torch.testing.assert_close(ours[0], cam, atol=1e-5, rtol=1e-4)


def test_ablation_value(tiny):
    relu_layer = small('ablationcam')(tiny, X, 1)  # layer4 ends with a ReLU: 'auto' ablates to 0
    torch.testing.assert_close(small('ablationcam', ablation_value=0.0)(tiny, X, 1), relu_layer)
    with pytest.raises(ConfigError, match='ablation_value'):
        build_explainer('ablationcam', ablation_value='zero')
    torch.manual_seed(0)
    vit = timm.create_model('test_vit', pretrained=False, num_classes=3, img_size=64).eval()  # tokens, values < 0
    ablation = build_explainer('ablationcam', target_layer='blocks.-1.norm1', batch_size=128)
    maps = ablation(vit, torch.randn(1, 3, 64, 64))
    assert maps.shape == (1, 64, 64) and bool(torch.isfinite(maps).all())


# --- pictures ---------------------------------------------------------------------------------------------------------
def test_overlay_takes_numpy_and_pil_images():
    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    sal = np.random.default_rng(1).random((5, 6))
    as_uint8 = overlay(rgb, sal)
    assert as_uint8.shape == (20, 30, 3) and as_uint8.dtype == np.uint8
    as_float = overlay(rgb / 255.0, sal)
    assert as_float.dtype == np.float32 and 0 <= as_float.min() and as_float.max() <= 1
    np.testing.assert_allclose(as_float * 255, as_uint8, atol=1)
    from_tensor = overlay(torch.from_numpy(rgb).permute(2, 0, 1), torch.from_numpy(sal))
    np.testing.assert_allclose(from_tensor.permute(1, 2, 0).numpy(), as_float, atol=1e-6)
    pil = overlay(Image.fromarray(rgb), sal[None])
    assert isinstance(pil, Image.Image) and np.array_equal(np.asarray(pil), as_uint8)
    assert overlay(rgb[..., 0], sal).shape == (20, 30, 3)  # grey HW
    with pytest.raises(DataError, match=r'in \[0, 1\]'):
        overlay(rgb.astype(np.float32), sal)  # 0-255 floats: refused, not clipped to white
    with pytest.raises(DataError, match='HWC'):
        overlay(np.zeros((3, 20, 30), np.uint8), sal)


def test_save_overlay_of_a_numpy_image(tmp_path):
    path = save_overlay(tmp_path / 'o.png', np.zeros((12, 16, 3), np.uint8), np.eye(4))
    assert Image.open(path).size == (16, 12)


def test_load_image_uses_the_models_own_preprocessing(tmp_path, net):
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (90, 120, 3), dtype=np.uint8)).save(tmp_path / 'a.png')
    torch.manual_seed(0)
    zoo_model = MODELS.build(dict(type='ImageClassifier', backbone=dict(type='TimmBackbone', model_name='test_resnet'),
                                  head=dict(type='LinearClsHead', num_classes=3)))
    x, rgb = load_image(zoo_model, tmp_path / 'a.png')
    torch.testing.assert_close(x, zoo_model.prepare([tmp_path / 'a.png']))
    np.testing.assert_allclose(rgb, zoo_model.load_images([tmp_path / 'a.png'])[0].permute(1, 2, 0).numpy() / 255)
    x2, rgb2 = load_image(net, Image.open(tmp_path / 'a.png'), size=64)  # timm: its pretrained_cfg
    assert x2.shape == (1, 3, 64, 64) and rgb2.shape == (64, 64, 3) and rgb2.dtype == np.float32
    plain = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.Flatten())
    x3, _ = load_image(plain, np.asarray(Image.open(tmp_path / 'a.png')))  # no preprocessing: ImageNet's
    assert x3.shape == (1, 3, 224, 224)
    maps = build_explainer('gradcam', target_layer='layer4')(net, x2)
    assert overlay(rgb2, maps[0].numpy()).shape == (64, 64, 3)
