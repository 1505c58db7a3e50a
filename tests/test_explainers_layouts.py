"""Layouts (channels-last Swin stages, torchvision ViT tokens) and constant maps.

Swin stages output ``[B, h, w, C]`` (torchvision and timm alike); read as NCHW they would give an ``w × C`` "map"
resized to the image without any error. Our maps are compared with Grad-CAM computed by hand on the correctly
permuted activation and gradient. torchvision's ViT needs no ``patch_size`` (its ``model.patch_size`` is read).
"""
from __future__ import annotations

import pytest
import timm
import torch
import torch.nn.functional as F
from torch import nn

from registry.errors import ConfigError
from zoo.explainers import build_explainer
from zoo.explainers._layers import LayerMeta, layer_meta, layout, plausible_grid, token_grid

torchvision = pytest.importorskip('torchvision')


def grad_cam_by_hand(model: nn.Module, layer: nn.Module, x: torch.Tensor, targets: list[int], to_nchw) -> torch.Tensor:
    """Grad-CAM from first principles: the layer's output and its gradient laid out as NCHW by ``to_nchw``."""
    store = {}
    handle = layer.register_forward_hook(lambda _m, _i, out: store.setdefault('a', out))
    try:
        logits = model(x)
    finally:
        handle.remove()
    grad = torch.autograd.grad(logits.gather(1, torch.tensor(targets)[:, None]).sum(), store['a'])[0]
    a, g = to_nchw(store['a'].detach()), to_nchw(grad)
    cam = torch.relu((g.mean((2, 3), keepdim=True) * a).sum(1))
    cam = F.interpolate(cam[:, None], size=x.shape[-2:], mode='bilinear', align_corners=False)[:, 0]
    low, high = cam.amin((1, 2), keepdim=True), cam.amax((1, 2), keepdim=True)
    return (cam - low) / (high - low)


def nhwc(t: torch.Tensor) -> torch.Tensor:
    return t.permute(0, 3, 1, 2)


@pytest.fixture(scope='module')
def tv_swin():
    """torchvision's SwinTransformer class (the one ``swin_t`` builds), made small."""
    torch.manual_seed(0)
    return torchvision.models.SwinTransformer(patch_size=[4, 4], embed_dim=32, depths=[1, 1, 1, 1],
                                              num_heads=[1, 2, 2, 4], window_size=[7, 7], num_classes=6).eval()


@pytest.mark.parametrize('layer', ['features.-1', 'norm', 'features.5.0.norm1'])
def test_torchvision_swin_maps_equal_the_correct_layout_by_hand(tv_swin, layer):
    from zoo.explainers._layers import get_layer

    x = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    ours = build_explainer('gradcam', target_layer=layer)(tv_swin, x, [1, 4])
    ref = grad_cam_by_hand(tv_swin, get_layer(tv_swin, layer)[0], x, [1, 4], nhwc)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
    forced = build_explainer('gradcam', target_layer=layer, output_fmt='NCHW')(tv_swin, x, [1, 4])
    assert float((forced - ref).abs().max()) > 0.1  # the silently wrong reading of the first round


def test_timm_swin_maps_equal_the_correct_layout_by_hand():
    torch.manual_seed(0)
    model = timm.create_model('swin_tiny_patch4_window7_224', pretrained=False, img_size=(64, 96), embed_dim=32,
                              depths=(1, 1, 1, 1), num_heads=(1, 1, 2, 2), num_classes=5).eval()
    x = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(2))
    for layer, module in [('layers.-1.blocks.-1.norm1', model.layers[-1].blocks[-1].norm1), ('norm', model.norm)]:
        ours = build_explainer('gradcam', target_layer=layer)(model, x, [0, 3])
        torch.testing.assert_close(ours, grad_cam_by_hand(model, module, x, [0, 3], nhwc), atol=1e-5, rtol=0)
    conv = build_explainer('gradcam', target_layer='patch_embed.proj')(model, x, [0, 3])  # an NCHW conv inside
    torch.testing.assert_close(conv, grad_cam_by_hand(model, model.patch_embed.proj, x, [0, 3], lambda t: t),
                               atol=1e-5, rtol=0)


def test_torchvision_vit_without_patch_size():
    torch.manual_seed(0)
    vit = torchvision.models.VisionTransformer(image_size=64, patch_size=16, num_layers=2, num_heads=2,
                                               hidden_dim=32, mlp_dim=64, num_classes=5).eval()
    nn.init.normal_(vit.heads.head.weight, std=0.2)  # torchvision initialises the head to zeros: all maps constant
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    layer = vit.encoder.layers[-1].ln_1
    ours = build_explainer('gradcam', target_layer='encoder.layers.-1.ln_1')(vit, x, [2, 0])

    def tokens(t: torch.Tensor) -> torch.Tensor:  # 1 class token, then a 4 × 4 grid
        return t[:, 1:].reshape(t.shape[0], 4, 4, t.shape[2]).permute(0, 3, 1, 2)

    torch.testing.assert_close(ours, grad_cam_by_hand(vit, layer, x, [2, 0], tokens), atol=1e-5, rtol=0)
    assert layer_meta(vit).patch_size == (16, 16)


@pytest.mark.slow
def test_full_size_torchvision_swin_t_and_vit_b_16():
    torch.manual_seed(0)
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(4))
    swin = torchvision.models.swin_t(weights=None).eval()
    torch.testing.assert_close(build_explainer('gradcam', target_layer='features.-1')(swin, x, [5]),
                               grad_cam_by_hand(swin, swin.features[-1], x, [5], nhwc), atol=1e-5, rtol=0)
    vit = torchvision.models.vit_b_16(weights=None).eval()
    nn.init.normal_(vit.heads.head.weight, std=0.02)  # zeros by default

    def tokens(t: torch.Tensor) -> torch.Tensor:
        return t[:, 1:].reshape(t.shape[0], 14, 14, t.shape[2]).permute(0, 3, 1, 2)

    torch.testing.assert_close(build_explainer('gradcam', target_layer='encoder.layers.-1.ln_1')(vit, x, [5]),
                               grad_cam_by_hand(vit, vit.encoder.layers[-1].ln_1, x, [5], tokens), atol=1e-5, rtol=0)


# --- the layout rule -----------------------------------------------------------------------------------------
def test_layout_is_read_from_the_shape():
    meta = LayerMeta(None, None)
    assert layout((2, 7, 7, 768), (224, 224), meta) == 'NHWC'
    assert layout((2, 768, 7, 7), (224, 224), meta) == 'NCHW'
    assert layout((2, 512, 1, 2), (32, 40), meta) == 'NCHW'       # 1×2 map of a 32×40 image
    assert layout((2, 1, 2, 512), (32, 40), meta) == 'NHWC'
    assert layout((2, 8, 12, 16), (48, 64), meta) == 'NCHW'        # few channels, still unambiguous
    assert layout((2, 7, 7, 768), (224, 224), LayerMeta(None, None, output_fmt='NCHW')) == 'NCHW'  # obeyed
    assert plausible_grid(8, 8, (299, 299)) and not plausible_grid(7, 768, (224, 224))


def test_ambiguous_layouts_use_hints_then_nchw_and_unreadable_ones_are_refused():
    ambiguous = (2, 16, 16, 16)  # C = h = w = 16 for a 64 × 64 image: both readings fit
    assert layout(ambiguous, (64, 64), LayerMeta(None, None), nn.ReLU(), 'blocks') == 'NCHW'  # PyTorch's default
    assert layout(ambiguous, (64, 64), LayerMeta(None, None, declared_fmt='NHWC')) == 'NHWC'
    assert layout(ambiguous, (64, 64), LayerMeta(None, None), nn.LayerNorm(16)) == 'NHWC'
    assert layout(ambiguous, (64, 64), LayerMeta(None, None), nn.Conv2d(3, 16, 3)) == 'NCHW'
    with pytest.raises(ConfigError, match="neither .* fits.*output_fmt='NCHW' or output_fmt='NHWC'"):
        layout((2, 3, 40, 200), (64, 64), LayerMeta(None, None), nn.Identity(), 'head')
    assert layout((2, 3, 40, 200), (64, 64), LayerMeta(None, None, declared_fmt='NCHW')) == 'NCHW'


def test_unreadable_layer_output_is_refused_by_the_explainer():
    class Resizing(nn.Module):  # resizes every input to 40 × 200 first: the map's grid says nothing of the image
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.mark, self.fc = nn.Conv2d(3, 8, 1), nn.Identity(), nn.Linear(8, 3)

        def forward(self, x):
            x = F.interpolate(x, size=(40, 200), mode='bilinear', align_corners=False)
            return self.fc(self.mark(self.conv(x)).mean((2, 3)))

    x = torch.randn(1, 3, 64, 64)
    with pytest.raises(ConfigError, match='output_fmt'):
        build_explainer('gradcam', target_layer='mark')(Resizing(), x)
    assert build_explainer('gradcam', target_layer='mark', output_fmt='NCHW')(Resizing(), x).shape == (1, 64, 64)


def test_token_grid_without_patch_size():
    assert token_grid(197, (224, 224), LayerMeta(None, None)) == (1, 14, 14)
    assert token_grid(1 + 4 * 6, (64, 96), LayerMeta(None, None)) == (1, 4, 6)
    assert token_grid(3 + 3 * 5, (48, 80), LayerMeta(None, None)) == (3, 3, 5)  # 16 divides both sides, 17 does not
    with pytest.raises(ConfigError, match='patch_size'):
        token_grid(17, (32, 32), LayerMeta(None, None))  # 1 + 4×4 (patch 8) or 13 + 2×2 (patch 16): ambiguous


# --- constant maps -------------------------------------------------------------------------------------------
def test_a_one_by_one_feature_map_gives_all_zeros():
    """32 px through a stride-32 CNN: the map is 1 × 1, hence constant; upsampling rounding must not turn it into a
    0/0.5/1 pattern."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10).eval()
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    for name in ('gradcam', 'gradcam++', 'layercam', 'xgradcam'):
        assert build_explainer(name, target_layer='layer4', resize=False)(model, x).shape == (3, 1, 1)
        maps = build_explainer(name, target_layer='layer4')(model, x)
        assert torch.equal(maps, torch.zeros_like(maps)), name
        raw = build_explainer(name, target_layer='layer4', normalize=False, relu=False)(model, x)
        assert raw.shape == (3, 32, 32) and float(raw.abs().amin()) > 0  # the raw map is not zero, only constant


def test_a_tiny_but_real_map_is_scaled_not_zeroed():
    """Maps whose values are ~1e-15 (an uninitialised head) are real: min-max scaling is scale-free, so they equal
    the maps of the same model with a normal-sized head."""
    torch.manual_seed(0)
    model = timm.create_model('test_resnet', pretrained=False, num_classes=4).eval()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    ref = build_explainer('gradcam', target_layer='layer4')(model, x, [1, 2])
    with torch.no_grad():
        model.fc.weight.mul_(1e-14)
        model.fc.bias.zero_()
    raw = build_explainer('gradcam', target_layer='layer4', normalize=False, resize=False)(model, x, [1, 2])
    assert 0 < float(raw.amax()) < 1e-12
    torch.testing.assert_close(build_explainer('gradcam', target_layer='layer4')(model, x, [1, 2]), ref,
                               atol=1e-4, rtol=0)
