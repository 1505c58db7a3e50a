"""pytorch-grad-cam's own test matrix (``tests/test_run_all_models.py``) ported as a parity test, plus a wider
model list and the methods added in the second round, all against grad-cam 1.5.7 on identical weights and inputs.

The matrix: torchvision resnet18 (target layers ``layer4[-1]`` and ``layer4[-2]``: a list, maps averaged) and vgg11
(``features[-1]``) × inputs 2×32×32 and 1×32×40 × targets ``None`` and class 100 × ``eigen_smooth`` off/on × ScoreCAM,
AblationCAM, GradCAM, GradCAM++, XGradCAM, EigenCAM, EigenGradCAM, LayerCAM, FullGrad (144 cells; grad-cam only checks
shapes). Models are built with ``weights=None`` (nothing is downloaded) and their BatchNorm statistics set from a few
seeded images, so maps are well conditioned. A representative subset runs by default; the full matrix and the wider
model list are marked ``slow``.

Conventions compared (see docs/explainers.md, "Coming from grad-cam"):

* Maps are compared at input resolution, tolerance 1e-4 (grad-cam's ``/ (max + 1e-7)`` normalisation differs from our
  exact min-max by ~1e-7 relative).
* Projections (EigenCAM, EigenGradCAM, every ``eigen_smooth`` map) are compared up to sign, per image and per layer:
  grad-cam keeps LAPACK's arbitrary SVD sign, we orient it (largest magnitude positive; for ``eigen_smooth`` the sign
  correlating with the unsmoothed map).
* At 32 px the stride-32 feature maps are 1×1 (or 1×2): most CAMs are constant there and both libraries return all
  zeros — the matrix checks that too.
* DenseNet: torchvision's DenseNet applies ``F.relu(inplace=True)`` to ``features.norm5``'s output. On CPU grad-cam's
  stored activation (``.cpu()`` does not copy) is that tensor, so it is overwritten by the ReLU; on GPU it is not. We
  capture the layer's output itself. The reference therefore clones the output after grad-cam's hook; the test also
  shows that the unpatched grad-cam map differs.
"""
from __future__ import annotations

import functools

import pytest
import torch

pgc = pytest.importorskip('pytorch_grad_cam')
torchvision = pytest.importorskip('torchvision')
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget  # noqa: E402

from zoo.explainers import build_explainer  # noqa: E402
from zoo.explainers._layers import get_layer  # noqa: E402

from .gradcam_reference import calibrated, grad_cam_maps, match_up_to_sign  # noqa: E402

PGC_NAME = {'GradCAMPlusPlus': 'GradCAMPlusPlus', 'KPCACAM': 'KPCA_CAM'}
PROJECTIONS = ('EigenCAM', 'EigenGradCAM')
NO_EIGEN_OPTION = ('EigenCAM', 'EigenGradCAM')  # projections already: eigen_smooth changes nothing in either library


@functools.cache
def torchvision_model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return calibrated(getattr(torchvision.models, name)(weights=None))


def matrix_image(batch: int, height: int, width: int) -> torch.Tensor:
    """A seeded RGB image in [0, 1], normalised as grad-cam's ``preprocess_image`` (mean = std = 0.5), repeated."""
    rgb = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(11))
    return ((rgb - 0.5) / 0.5).repeat(batch, 1, 1, 1)


def compare(name: str, model, images, targets, layers: list[str] | None, modules, eigen: bool, **ours_kw) -> None:
    theirs = grad_cam_maps(PGC_NAME.get(name, name), model, modules, images, targets, eigen_smooth=eigen)
    kw = dict(ours_kw)
    if eigen and name not in NO_EIGEN_OPTION:
        kw['eigen_smooth'] = True
    if name in PROJECTIONS or eigen:
        ours = match_up_to_sign(name, model, images, targets, theirs, layers, **kw)
    else:
        ours = build_explainer(name, **({} if layers is None else {'target_layer': layers}), **kw)(
            model, images, targets)
    assert ours.shape == theirs.shape == (images.shape[0], *images.shape[-2:])
    if len(modules) > 1 and _layer_mean_is_constant(name, model, modules, images, targets, eigen):
        # grad-cam min-max scales the mean of the per-layer maps; when that mean is constant (the layers' maps cancel,
        # e.g. two opposite ramps), it rescales float noise into a full [0, 1] map. Ours returns the constant map's
        # all-zeros, as for any constant map.
        assert torch.equal(ours, torch.zeros_like(ours)), name
        return
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)


def _layer_mean_is_constant(name: str, model, modules, images, targets, eigen: bool) -> bool:
    """Whether grad-cam's multi-layer aggregate (the mean of its per-layer scaled maps) is constant per image, up to
    1e-3 of its largest value: the degenerate case where its final min-max scaling only amplifies rounding."""
    per_layer = [grad_cam_maps(PGC_NAME.get(name, name), model, [m], images, targets, eigen_smooth=eigen)
                 for m in modules]
    mean = torch.stack(per_layer).mean(0).flatten(1)
    spread = mean.amax(1) - mean.amin(1)
    return bool((spread <= 1e-3 * mean.amax(1).clamp_min(1e-12)).all())


# --- the ported matrix -------------------------------------------------------------------------------------------
MATRIX_MODELS = {'resnet18': ['layer4.-1', 'layer4.-2'], 'vgg11': ['features.-1']}
SIZES = [(2, 32, 32), (1, 32, 40)]
METHODS = ['ScoreCAM', 'AblationCAM', 'GradCAM', 'GradCAMPlusPlus', 'XGradCAM', 'EigenCAM', 'EigenGradCAM', 'LayerCAM',
           'FullGrad']
FAST = {('resnet18', (1, 32, 40), 100, False), ('resnet18', (2, 32, 32), None, True)}
FAST_PLAIN = ('GradCAM', 'GradCAMPlusPlus', 'XGradCAM', 'EigenCAM', 'EigenGradCAM', 'LayerCAM', 'FullGrad')
FAST_EIGEN = ('FullGrad',)  # 1×1 maps make the CAMs trivial here; the small-resnet tests cover eigen_smooth


def _cells() -> list:
    cells = []
    for model in MATRIX_MODELS:
        for size in SIZES:
            for target in (None, 100):
                for eigen in (False, True):
                    for method in METHODS:
                        fast = (model, size, target, eigen) in FAST and method in (FAST_EIGEN if eigen else FAST_PLAIN)
                        marks = () if fast else (pytest.mark.slow,)
                        cells.append(pytest.param(model, size, target, eigen, method, marks=marks,
                                                  id=f'{model}-{size[0]}x{size[1]}x{size[2]}-{target}-'
                                                     f'{"eigen" if eigen else "plain"}-{method}'))
    return cells


@pytest.mark.parametrize('model_name,size,target,eigen,method', _cells())
def test_grad_cam_matrix(model_name, size, target, eigen, method):
    model = torchvision_model(model_name)
    layers = MATRIX_MODELS[model_name]
    modules = [get_layer(model, n)[0] for n in layers]  # grad-cam's model.layer4[-1], model.layer4[-2]
    images = matrix_image(*size)
    kw = {'batch_size': 64} if method in ('ScoreCAM', 'AblationCAM') else {}
    compare(method, model, images, target, None if method == 'FullGrad' else layers, modules, eigen, **kw)


def test_matrix_constant_cells_are_all_zeros():
    """32 px through resnet18: 1×1 layer4 maps are constant, so maps are all zeros (not 0/0.5/1 rounding noise)."""
    model = torchvision_model('resnet18')
    images = matrix_image(2, 32, 32)
    for name in ('GradCAM', 'LayerCAM', 'ScoreCAM'):
        maps = build_explainer(name, target_layer=['layer4.-1', 'layer4.-2'], **(
            {'batch_size': 64} if name == 'ScoreCAM' else {}))(model, images, 100)
        assert torch.equal(maps, torch.zeros_like(maps)), name


# --- a wider model list ------------------------------------------------------------------------------------------
def _vit_reshape(grid):
    return lambda t: t[:, 1:].reshape(t.shape[0], *grid, t.shape[2]).permute(0, 3, 1, 2)


@functools.cache
def wide_model(name: str):
    """``(model, our layer name, grad-cam layer module, reshape_transform)`` for 64×96 inputs."""
    import timm

    torch.manual_seed(0)
    if name == 'vit_tiny':
        model = calibrated(timm.create_model('vit_tiny_patch16_224', pretrained=False, img_size=(64, 96)),
                           size=(64, 96))
        return model, 'blocks.-1.norm1', model.blocks[-1].norm1, _vit_reshape((4, 6))
    if name == 'swin_tiny':
        model = calibrated(timm.create_model('swin_tiny_patch4_window7_224', pretrained=False, img_size=(64, 96)),
                           size=(64, 96))
        return model, 'layers.-1.blocks.-1.norm1', model.layers[-1].blocks[-1].norm1, lambda t: t.permute(0, 3, 1, 2)
    model = calibrated(getattr(torchvision.models, name)(weights=None), size=(64, 96))
    layer = {'resnet18': 'layer4', 'resnet50': 'layer4', 'vgg11': 'features.20', 'densenet121': 'features.norm5',
             'mnasnet0_5': 'layers.16', 'mobilenet_v3_small': 'features.12', 'efficientnet_b0': 'features.8'}[name]
    return model, layer, model.get_submodule(layer), None


WIDE = ['resnet18', 'resnet50', 'vgg11', 'densenet121', 'mnasnet0_5', 'mobilenet_v3_small', 'efficientnet_b0',
        'vit_tiny', 'swin_tiny']
WIDE_METHODS = ['GradCAM', 'GradCAMPlusPlus', 'XGradCAM', 'LayerCAM', 'HiResCAM', 'GradCAMElementWise', 'EigenCAM',
                'EigenGradCAM']


WIDE_FAST = {('resnet18', 'GradCAM'), ('resnet18', 'EigenCAM')}  # + the DenseNet test below


@pytest.mark.parametrize('model_name,method', [
    pytest.param(m, k, marks=() if (m, k) in WIDE_FAST else (pytest.mark.slow,)) for m in WIDE for k in WIDE_METHODS])
def test_wider_model_list(model_name, method):
    model, layer, module, reshape = wide_model(model_name)
    images = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(3))
    targets = [1, 7]
    clone = module if model_name == 'densenet121' else None
    theirs = grad_cam_maps(method, model, [module], images, targets, reshape=reshape, clone_after=clone)
    if method in PROJECTIONS:
        ours = match_up_to_sign(method, model, images, targets, theirs, [layer])
    else:
        ours = build_explainer(method, target_layer=layer)(model, images, targets)
    assert float(theirs.amax()) > 0.99
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)


def test_densenet_grad_cam_activation_is_overwritten_on_cpu():
    """Without the clone, grad-cam's DenseNet map is computed from relu(norm5) (its stored activation was modified
    in place): it differs from the map of the layer's real output, which ours is."""
    model, layer, module, _ = wide_model('densenet121')
    images = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(3))
    raw = grad_cam_maps('GradCAM', model, [module], images, [1, 7])
    fixed = grad_cam_maps('GradCAM', model, [module], images, [1, 7], clone_after=module)
    ours = build_explainer('gradcam', target_layer=layer)(model, images, [1, 7])
    assert float((raw - fixed).abs().max()) > 1e-2
    torch.testing.assert_close(ours, fixed, atol=1e-4, rtol=0)


# --- the second round's methods, smoothing and target lists, on a calibrated small resnet ----------------------------
@pytest.fixture(scope='module')
def small():
    import timm

    torch.manual_seed(0)
    model = calibrated(timm.create_model('test_resnet', pretrained=False, num_classes=10))
    images = torch.randn(2, 3, 64, 80, generator=torch.Generator().manual_seed(5))
    return model, images, [3, 7]


@pytest.mark.parametrize('name,layers,eigen', [
    ('GradCAM', ['layer4', 'layer3'], False), ('GradCAM', ['layer4'], True), ('LayerCAM', ['layer4'], True),
    ('ScoreCAM', ['layer4'], False), pytest.param('ScoreCAM', ['layer4'], True, marks=pytest.mark.slow),
    ('AblationCAM', ['layer4'], False), pytest.param('AblationCAM', ['layer4'], True, marks=pytest.mark.slow),
    ('EigenGradCAM', ['layer4'], False), ('GradCAMElementWise', ['layer4'], False),
    ('GradCAMElementWise', ['layer4'], True), ('FullGrad', None, False), ('FullGrad', None, True),
    ('HiResCAM', ['layer4', 'layer2'], False)])
def test_new_methods_and_options_match_grad_cam(small, name, layers, eigen):
    model, images, targets = small
    modules = [] if layers is None else [model.get_submodule(n) for n in layers]
    kw = {'batch_size': 64} if name in ('ScoreCAM', 'AblationCAM') else {}
    compare(name, model, images, targets, layers, modules, eigen, **kw)


@pytest.mark.parametrize('name', ['EigenCAM', 'EigenGradCAM'])
def test_default_eigen_maps_are_grad_cams_projection_with_its_own_sign_correction(small, name):
    """No sign choice in the test: our default orientation is grad-cam's ``get_2d_projection_with_sign_correction``
    (Seg-Eigen-CAM's Eq. 13), which grad-cam's EigenCAM/EigenGradCAM do not apply (its SegEigenCAM does, to |g| ⊙ A)."""
    from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection_with_sign_correction

    class SignCorrected(getattr(pgc, name)):
        def get_cam_image(self, input_tensor, target_layer, targets, activations, grads, eigen_smooth):
            stack = activations if name == 'EigenCAM' else grads * activations
            return get_2d_projection_with_sign_correction(stack)

    model, images, targets = small
    tg = [pgc.utils.model_targets.ClassifierOutputTarget(t) for t in targets]
    with SignCorrected(model=model, target_layers=[model.layer4]) as cam:
        theirs = torch.from_numpy(cam(images, targets=tg)).float()
    ours = build_explainer(name, target_layer='layer4')(model, images, targets)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)


@pytest.mark.parametrize('layer', ['layer4', 'layer3'])
def test_shapley_cam_with_a_softmax_target(small, layer):
    """A softmax target makes the Hessian term non-zero; grad-cam's ClassifierOutputSoftmaxTarget objects are accepted
    as targets as they are."""
    model, images, targets = small
    theirs = grad_cam_maps('ShapleyCAM', model, [model.get_submodule(layer)], images, targets,
                           target_cls=ClassifierOutputSoftmaxTarget)
    callables = [ClassifierOutputSoftmaxTarget(t) for t in targets]
    ours = build_explainer('shapleycam', target_layer=layer)(model, images, callables)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)
    plain = build_explainer('gradcam', target_layer=layer)(model, images, callables)
    assert float((ours - plain).abs().max()) > 1e-3  # the second-order term matters here


def test_shapley_cam_equals_grad_cam_for_a_logit_behind_a_linear_head(small):
    model, images, targets = small
    a = build_explainer('shapleycam', target_layer='layer4')(model, images, targets)
    torch.testing.assert_close(a, build_explainer('gradcam', target_layer='layer4')(model, images, targets))


def test_finer_cam_matches_grad_cam(small):
    model, images, _ = small
    with pgc.FinerCAM(model=model, target_layers=[model.layer4]) as cam:
        theirs = torch.from_numpy(cam(images)).float()
        fixed = torch.from_numpy(cam(images, target_idx=4, alpha=0.5)).float()
    torch.testing.assert_close(build_explainer('finercam', target_layer='layer4')(model, images), theirs, atol=1e-4,
                               rtol=0)
    ours = build_explainer('finercam', target_layer='layer4', alpha=0.5)(model, images, 4)
    torch.testing.assert_close(ours, fixed, atol=1e-4, rtol=0)


def test_aug_smooth_matches_grad_cam_rescaled(small):
    """grad-cam averages the six augmented maps and stops; we scale the average to [0, 1] again."""
    model, images, targets = small
    theirs = grad_cam_maps('GradCAM', model, [model.layer4], images, targets, aug_smooth=True)
    low, high = theirs.amin((1, 2), keepdim=True), theirs.amax((1, 2), keepdim=True)
    ours = build_explainer('gradcam', target_layer='layer4', aug_smooth=True)(model, images, targets)
    torch.testing.assert_close(ours, (theirs - low) / (high - low), atol=1e-4, rtol=0)
