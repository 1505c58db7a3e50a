"""Explainers: localisation sanity, RISE, misuse, side effects (modes, requires_grad, hooks, memory), layouts."""
from __future__ import annotations

import gc
import warnings

import pytest
import timm
import torch
from torch import nn

from registry.errors import ConfigError, DataError
from zoo.explainers import build_explainer

GRADIENT = ['gradcam', 'gradcam++', 'xgradcam', 'layercam', 'hirescam']
ALL = [*GRADIENT, 'eigencam', 'kpcacam', 'scorecam', 'rise']
HOOK_DICTS = ('_forward_hooks', '_forward_pre_hooks', '_backward_hooks', '_backward_pre_hooks',
              '_forward_hooks_with_kwargs', '_forward_pre_hooks_with_kwargs', '_forward_hooks_always_called')


def make(alias: str, **kw) -> object:
    """A small, fast configuration of each explainer."""
    if alias == 'rise':
        kw = dict(n_masks=24, grid_size=4, batch_size=48, **kw)
    elif alias == 'scorecam':
        kw = dict(batch_size=96, **kw)
    return build_explainer(alias, **kw)


def tiny_resnet() -> nn.Module:
    torch.manual_seed(0)
    return timm.create_model('test_resnet', pretrained=False, num_classes=4)


def n_hooks(model: nn.Module) -> int:
    glob = torch.nn.modules.module
    return sum(len(getattr(m, d, {})) for m in model.modules() for d in HOOK_DICTS) + len(
        glob._global_forward_hooks) + len(glob._global_forward_pre_hooks) + len(glob._global_backward_hooks)


def state(model: nn.Module) -> tuple:
    return ([m.training for m in model.modules()], [p.requires_grad for p in model.parameters()],
            [p.grad for p in model.parameters()])


def assert_clean(model: nn.Module, before: tuple) -> None:
    after = state(model)
    assert after[0] == before[0], 'train/eval modes not restored'
    assert after[1] == before[1], 'requires_grad flags not restored'
    assert all(a is b for a, b in zip(after[2], before[2])), '.grad touched'
    assert n_hooks(model) == 0, 'a hook was left on the model'


IMAGES = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))


# --- sanity: localisation ------------------------------------------------------------------------------------
class RegionModel(nn.Module):
    """Logits depend only on the region rows 0:24, cols 8:32 of a 48x64 input (4-px feature stride)."""

    def __init__(self, gate_input: bool) -> None:
        super().__init__()
        torch.manual_seed(3)
        mask = torch.zeros(48, 64)
        mask[0:24, 8:32] = 1
        self.register_buffer('mask', mask)
        self.gate_input = gate_input
        self.features = nn.Sequential(nn.Conv2d(3, 8, 4, stride=4, bias=False), nn.ReLU())
        self.fc = nn.Linear(8, 3)
        with torch.no_grad():
            self.fc.weight.abs_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gate_input:
            return self.fc(self.features(x * self.mask).mean((2, 3)))
        f = self.features(x)  # region pooling in the head: the logit ignores features outside the region
        fmask = self.mask[::4, ::4]
        return self.fc((f * fmask).sum((2, 3)) / fmask.sum())


def _assert_maps_peak_in_region(alias: str, model: RegionModel, batch: int, seed: int) -> None:
    """Every map of a random batch peaks inside the model's region and puts > 90 % of its mass there."""
    x = torch.rand(batch, 3, 48, 64, generator=torch.Generator().manual_seed(seed))
    maps = make(alias, target_layer='features')(model, x, targets=0)
    inside = model.mask.bool()
    for m in maps:
        assert inside.flatten()[m.argmax()]
        assert float(m[inside].sum() / m.sum()) > 0.9


@pytest.mark.parametrize('alias', GRADIENT + ['scorecam'])
def test_every_method_peaks_in_the_region_the_logit_depends_on(alias):
    _assert_maps_peak_in_region(alias, RegionModel(gate_input=True).eval(), batch=3, seed=4)


@pytest.mark.parametrize('alias', ['layercam', 'hirescam'])
def test_elementwise_methods_localise_without_gated_input(alias):
    _assert_maps_peak_in_region(alias, RegionModel(gate_input=False).eval(), batch=2, seed=5)


# --- RISE ----------------------------------------------------------------------------------------------------
class QuadrantModel(nn.Module):
    """Class 0's logit grows with the mean of the top-right quadrant; class 1's is zero."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        q = 10 * (x[:, :, : h // 2, w // 2:].mean((1, 2, 3)) - 0.5)
        return torch.stack([q, torch.zeros_like(q)], 1)


def test_rise_same_seed_same_maps_and_rng_untouched():
    model, x = tiny_resnet().eval(), IMAGES[:1]
    rng = torch.random.get_rng_state()
    a = make('rise', seed=7)(model, x)
    b = make('rise', seed=7)(model, x)
    c = make('rise', seed=8)(model, x)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.equal(rng, torch.random.get_rng_state())


def test_rise_concentrates_on_the_quadrant_the_model_uses():
    x = torch.ones(2, 3, 32, 32)
    raw = build_explainer('rise', n_masks=500, grid_size=4, batch_size=500, normalize=False)(QuadrantModel(), x)
    maps = build_explainer('rise', n_masks=500, grid_size=4, batch_size=500)(QuadrantModel(), x)
    quad = torch.zeros(32, 32, dtype=torch.bool)
    quad[:16, 16:] = True
    for r, m in zip(raw, maps):
        assert quad.flatten()[m.argmax()]
        assert float(r[quad].mean()) > float(r[~quad].mean()) + 0.05  # expected probability, masks on vs off
        assert float(m[quad].sum() / m.sum()) > 0.4  # a quarter of the image holds > 40% of the saliency


def test_rise_chunks_do_not_change_the_result():
    model = tiny_resnet().eval()
    a = build_explainer('rise', n_masks=6, grid_size=4, batch_size=12)(model, IMAGES)
    b = build_explainer('rise', n_masks=6, grid_size=4, batch_size=1)(model, IMAGES)  # images split too
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


# --- misuse: clear errors, state restored, no hook left -------------------------------------------------------
@pytest.mark.parametrize('alias', ALL)
def test_nan_input(alias):
    model = tiny_resnet().train()
    before = state(model)
    bad = IMAGES.clone()
    bad[1, 0, 3, 3] = float('nan')
    with pytest.raises(DataError, match=r'NaN or Inf .*image\(s\) \[1\]'):
        make(alias, target_layer='layer4')(model, bad) if alias != 'rise' else make(alias)(model, bad)
    assert_clean(model, before)


@pytest.mark.parametrize('alias', ALL)
def test_wrong_channel_count(alias):
    model = tiny_resnet().train()
    before = state(model)
    kw = {} if alias == 'rise' else dict(target_layer='layer4')
    with pytest.raises(ConfigError, match='takes 3-channel images but the batch has 1 channels'):
        make(alias, **kw)(model, IMAGES[:, :1])
    assert_clean(model, before)


@pytest.mark.parametrize('alias', ALL)
def test_batch_of_one_and_range(alias):
    model = tiny_resnet().eval()
    kw = {} if alias == 'rise' else dict(target_layer='layer4')
    maps = make(alias, **kw)(model, IMAGES[:1])
    assert maps.shape == (1, 64, 64) and maps.dtype == torch.float32
    assert bool(torch.isfinite(maps).all()) and float(maps.min()) >= 0 and float(maps.max()) <= 1


@pytest.mark.parametrize('alias', ALL)
def test_train_mode_is_restored_and_maps_come_from_eval_mode(alias):
    model = tiny_resnet().train()
    model.layer1.eval()  # a mixed state must come back exactly
    model.layer2.requires_grad_(False)
    stats = model.bn1.running_mean.clone()
    before = state(model)
    kw = {} if alias == 'rise' else dict(target_layer='layer4')
    maps = make(alias, **kw)(model, IMAGES)
    assert_clean(model, before)
    assert torch.equal(stats, model.bn1.running_mean), 'BatchNorm statistics changed'
    ref = make(alias, **kw)(tiny_resnet().eval(), IMAGES)
    torch.testing.assert_close(maps, ref, atol=1e-5, rtol=0)


class Boom(nn.Module):
    """Wraps a module and raises ``exc`` on its ``fail_on``-th call."""

    def __init__(self, inner: nn.Module, fail_on: int, exc: BaseException) -> None:
        super().__init__()
        self.inner, self.fail_on, self.exc, self.calls = inner, fail_on, exc, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == self.fail_on:
            raise self.exc
        return self.inner(x)


@pytest.mark.parametrize('alias', ALL)
@pytest.mark.parametrize('exc', [RuntimeError('boom'), KeyboardInterrupt()])
def test_exception_inside_forward(alias, exc):
    model = tiny_resnet().train()
    # layer3 runs before the target layer: the first call is the clean forward, later ones are masked forwards
    model.layer3 = Boom(model.layer3, fail_on=2 if alias in ('scorecam', 'rise') else 1, exc=exc)
    before = state(model)
    kw = {} if alias == 'rise' else dict(target_layer='layer4')
    with pytest.raises(type(exc)) as info:
        make(alias, **kw)(model, IMAGES)
    assert info.value is exc
    if isinstance(exc, RuntimeError):
        assert any('state was restored' in n for n in getattr(exc, '__notes__', []))
    assert_clean(model, before)


def test_exception_after_target_layer_with_gradients_pending():
    model = tiny_resnet().eval()
    model.fc = Boom(model.fc, fail_on=1, exc=RuntimeError('head failed'))
    before = state(model)
    with pytest.raises(RuntimeError, match='head failed'):
        make('gradcam', target_layer='layer4')(model, IMAGES)
    assert_clean(model, before)


def test_input_and_target_validation():
    model, e = tiny_resnet().eval(), make('gradcam', target_layer='layer4')
    with pytest.raises(DataError, match=r'images\[None\]'):
        e(model, IMAGES[0])
    with pytest.raises(DataError, match='normalised floats'):
        e(model, (IMAGES * 50).clamp(0, 255).to(torch.uint8))
    with pytest.raises(DataError, match='empty batch'):
        e(model, IMAGES[:0])
    with pytest.raises(DataError, match='torch.Tensor'):
        e(model, IMAGES.numpy())
    with pytest.raises(ConfigError, match='3 entries for a batch of 2'):
        e(model, IMAGES, targets=[0, 1, 2])
    with pytest.raises(ConfigError, match=r'out of range.*4 classes'):
        e(model, IMAGES, targets=[0, 4])
    before = state(model)
    torch.testing.assert_close(e(model, IMAGES, targets=2), e(model, IMAGES, targets=torch.tensor([2, 2])))
    assert_clean(model, before)


def test_target_layer_lookup():
    model = tiny_resnet().eval()
    ref = make('gradcam', target_layer='layer4.0')(model, IMAGES)
    for target in ('layer4.-1', model.layer4[0]):
        torch.testing.assert_close(make('gradcam', target_layer=target)(model, IMAGES), ref)
    with pytest.raises(ConfigError, match="no submodule 'layr4'. Did you mean 'layer4'"):
        make('gradcam', target_layer='layr4')(model, IMAGES)
    with pytest.raises(ConfigError, match="'layer4' has no submodule '5'"):
        make('gradcam', target_layer='layer4.5')(model, IMAGES)
    with pytest.raises(ConfigError, match='pass target_layer='):
        make('gradcam')(model, IMAGES)
    with pytest.raises(ConfigError, match='not a submodule'):
        make('gradcam', target_layer=nn.ReLU())(model, IMAGES)
    model.unused = nn.Conv2d(3, 3, 1)
    with pytest.raises(ConfigError, match='did not run'):
        make('gradcam', target_layer='unused')(model, IMAGES)
    assert n_hooks(model) == 0


def test_inner_layer_followed_by_inplace_add():
    """``bn2``'s output is modified in place (``x += shortcut``); the captured activation must not be."""
    model = tiny_resnet().eval()
    for alias in ('gradcam', 'eigencam', 'scorecam'):
        maps = make(alias, target_layer='layer4.0.bn2')(model, IMAGES)
        assert maps.shape == (2, 64, 64) and bool(torch.isfinite(maps).all())


def test_works_under_no_grad_and_inference_mode():
    model = tiny_resnet().eval()
    ref = make('gradcam', target_layer='layer4')(model, IMAGES)
    with torch.no_grad():
        torch.testing.assert_close(make('gradcam', target_layer='layer4')(model, IMAGES), ref)
    with torch.inference_mode():
        x = IMAGES.clone()
        torch.testing.assert_close(make('gradcam', target_layer='layer4')(model, x), ref)


def test_differentiable_maps_carry_gradient():
    model = tiny_resnet().eval()
    ref = make('gradcam', target_layer='layer4')(model, IMAGES)
    maps = make('gradcam', target_layer='layer4', differentiable=True)(model, IMAGES)
    assert maps.requires_grad
    torch.testing.assert_close(maps.detach(), ref, atol=1e-5, rtol=0)
    assert all(p.grad is None for p in model.parameters())
    maps.sum().backward()
    assert model.conv1[0].weight.grad is not None and model.layer4[0].conv1.weight.grad is not None
    assert n_hooks(model) == 0


@pytest.mark.parametrize('alias', ['gradcam', 'eigencam', 'scorecam', 'rise'])  # one per code path
def test_repeated_calls_do_not_grow_memory(alias):
    model = tiny_resnet().eval()
    kw = {} if alias == 'rise' else dict(target_layer='layer4')
    e = make(alias, **kw)
    x = IMAGES[:1]
    e(model, x)

    def live() -> int:
        gc.collect()
        with warnings.catch_warnings():  # isinstance on torch's deprecated module proxies warns
            warnings.simplefilter('ignore')
            return sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor))

    start = live()
    for _ in range(3):
        e(model, x)
    assert live() <= start
    assert n_hooks(model) == 0


# --- layouts: tokens and NHWC ------------------------------------------------------------------------------------
def test_plain_timm_vit_with_register_tokens_and_non_square_input():
    torch.manual_seed(0)
    vit = timm.create_model('test_vit', pretrained=False, num_classes=3, reg_tokens=2, dynamic_img_size=True).eval()
    x = torch.randn(2, 3, 48, 80)  # 3x5 patches, 3 prefix tokens; no explain_meta: timm attributes are read
    maps = make('gradcam', target_layer='blocks.-1.norm1')(vit, x)
    assert maps.shape == (2, 48, 80)
    explicit = make('gradcam', target_layer='blocks.-1.norm1', patch_size=16, num_prefix_tokens=3)(vit, x)
    torch.testing.assert_close(maps, explicit)
    raw = make('eigencam', target_layer='blocks.-1.norm1', resize=False)(vit, x)
    assert raw.shape == (2, 3, 5)
    with pytest.raises(ConfigError, match='Cannot lay 18 tokens'):
        make('gradcam', target_layer='blocks.-1.norm1', patch_size=8)(vit, x)


class NHWC(nn.Module):
    """The same network as ``tiny_resnet`` but whose ``layer4`` hands NHWC maps to a permuting head."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.to_nhwc = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.to_nhwc(self.net.forward_features(x).permute(0, 2, 3, 1))
        return self.net.forward_head(f.permute(0, 3, 1, 2))


@pytest.mark.parametrize('alias', ['gradcam', 'layercam', 'eigencam'])
def test_nhwc_layer(alias):
    net = tiny_resnet().eval()
    ref = make(alias, target_layer='layer4')(net, IMAGES)
    maps = make(alias, target_layer='to_nhwc', output_fmt='NHWC')(NHWC(net).eval(), IMAGES)
    torch.testing.assert_close(maps, ref, atol=1e-5, rtol=0)


@pytest.mark.gpu  # deselected by default (pyproject addopts); run with `pytest -m gpu` on a CUDA machine
@pytest.mark.parametrize('alias', ALL)
def test_maps_follow_the_images_device(alias):
    model = tiny_resnet().eval().cuda()
    kw = {} if alias == 'rise' else dict(target_layer='layer4')
    assert make(alias, **kw)(model, IMAGES.cuda()).device.type == 'cuda'
    assert make(alias, **kw)(model, IMAGES).device.type == 'cpu'  # computed on the model's device
