"""Explainers: parity with pytorch-grad-cam (``grad-cam``, the ``xai`` extra) and the public interface.

Conventions compared here (see docs/explainers.md):

* Both pipelines apply ReLU to the raw map. grad-cam then min-max scales at feature resolution (``x - min``,
  ``/ (max + 1e-7)``), resizes with ``cv2.resize`` (bilinear, half-pixel centres) and min-max scales again; we
  resize with ``F.interpolate(bilinear, align_corners=False)`` and min-max scale once, without the ``1e-7``. Both
  resizes are linear and keep constants, so the two agree up to that epsilon (≈1e-7 relative): compared at
  input resolution, tolerance 1e-4.
* EigenCAM: an SVD's sign is arbitrary and grad-cam does not fix it (LAPACK decides; numpy's and torch's differ on
  the ViT case below). We flip each map so that its largest-magnitude value is positive, so the comparison picks,
  per image, the sign of our raw projection that matches and then applies our post-processing.
* KPCA-CAM: scikit-learn flips eigenvectors the same way (``svd_flip``), so maps match without any sign choice.
  grad-cam hands float32 activations to scikit-learn, which centres the kernel matrix in float32; the centred
  kernel keeps only ~1e-4 of the kernel's magnitude, so grad-cam's maps are off by up to ~4e-4 from the exact
  result on the resnet case (its own float32 vs float64 runs differ that much). We compute in float64. The
  reference therefore runs on a float64 copy of the same model (identical weights and inputs); our maps come from
  the float32 model, as a user would run it.
* ScoreCAM: same masks (bilinear ``align_corners=True``, per-channel min-max with ``+1e-8``) and scores (target
  logit, softmax over channels); ours batches (image, channel) pairs across the batch.
"""
from __future__ import annotations

import copy

import pytest
import torch

pgc = pytest.importorskip('pytorch_grad_cam')
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

from registry import EXPLAINERS, MODELS  # noqa: E402
from registry.errors import ConfigError, UnknownTypeError  # noqa: E402
from zoo.explainers import Explainer, build_explainer, list_explainers, resolve_name  # noqa: E402

NAMES = ['GradCAM', 'GradCAMPlusPlus', 'XGradCAM', 'LayerCAM', 'HiResCAM', 'EigenCAM', 'KPCACAM', 'ScoreCAM', 'RISE']
ALIASES = {'gradcam': 'GradCAM', 'gradcam++': 'GradCAMPlusPlus', 'xgradcam': 'XGradCAM', 'layercam': 'LayerCAM',
           'hirescam': 'HiResCAM', 'eigencam': 'EigenCAM', 'kpcacam': 'KPCACAM', 'scorecam': 'ScoreCAM',
           'rise': 'RISE'}
THEIRS = {'GradCAM': 'GradCAM', 'GradCAMPlusPlus': 'GradCAMPlusPlus', 'XGradCAM': 'XGradCAM', 'LayerCAM': 'LayerCAM',
          'HiResCAM': 'HiResCAM', 'EigenCAM': 'EigenCAM', 'KPCACAM': 'KPCA_CAM', 'ScoreCAM': 'ScoreCAM'}


def _classifier(model_name: str, **timm_kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    backbone = dict(type='TimmBackbone', model_name=model_name, **timm_kwargs)
    return MODELS.build(dict(type='ImageClassifier', backbone=backbone,
                             head=dict(type='LinearClsHead', num_classes=5))).eval()


@pytest.fixture(scope='module')
def resnet():
    """A resnet-style classifier; 128x96 input → a 4x3 layer4 map (non-square catches h/w swaps)."""
    model = _classifier('test_resnet')
    assert model.explain_meta['target_layer'] == 'backbone.model.layer4'
    images = torch.randn(2, 3, 128, 96, generator=torch.Generator().manual_seed(1))
    return model, model.backbone.model.layer4, None, images


@pytest.fixture(scope='module')
def vit():
    """A ViT classifier at 64x96 → a 4x6 patch grid plus one class token."""
    model = _classifier('test_vit', img_size=(64, 96))
    assert model.explain_meta['target_layer'] == 'backbone.model.blocks.5.norm1'

    def reshape(t: torch.Tensor) -> torch.Tensor:  # grad-cam's vit_reshape_transform with the right grid
        return t[:, 1:].reshape(t.shape[0], 4, 6, t.shape[2]).permute(0, 3, 1, 2)

    return model, model.backbone.model.blocks[-1].norm1, reshape, torch.randn(
        2, 3, 64, 96, generator=torch.Generator().manual_seed(2))


def _theirs(name: str, model, layer, reshape, images, targets):
    cls = getattr(pgc, THEIRS[name])
    if name == 'KPCACAM':  # see the module docstring: the float32 reference is not accurate to 1e-4
        path = [n for n, m in model.named_modules() if m is layer][0]
        model, images = copy.deepcopy(model).double(), images.double()
        layer = model.get_submodule(path)
    tg = None if targets is None else [ClassifierOutputTarget(int(t)) for t in targets]
    with cls(model, [layer], reshape_transform=reshape) as cam:
        if name == 'ScoreCAM':
            cam.batch_size = 16
        return torch.from_numpy(cam(images, targets=tg)).float()


@pytest.mark.parametrize('backbone', ['resnet', 'vit'])
@pytest.mark.parametrize('name', list(THEIRS))
def test_parity_with_grad_cam(request, backbone, name):
    model, layer, reshape, images = request.getfixturevalue(backbone)
    targets = None if name in ('EigenCAM', 'KPCACAM') else [1, 3]
    theirs = _theirs(name, model, layer, reshape, images, targets)
    explainer = build_explainer(name)  # target layer from model.explain_meta
    if name == 'EigenCAM':  # sign convention: choose the matching sign per image (see module docstring)
        raw = build_explainer(name, sign_correction=False, relu=False, normalize=False, resize=False)(model, images)
        both = [explainer.postprocess(s * raw, tuple(images.shape[-2:])) for s in (1.0, -1.0)]
        ours = torch.stack([min((b[i] for b in both), key=lambda m: float((m - theirs[i]).abs().max()))
                            for i in range(len(images))])
    else:
        ours = explainer(model, images, targets)
    assert ours.shape == theirs.shape == (2, *images.shape[-2:])
    assert float(theirs.max()) > 0.99  # a real map, not all zeros
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)


def test_eigencam_sign_correction_makes_peak_positive(vit):
    model, _, _, images = vit
    raw = build_explainer('eigencam', relu=False, normalize=False, resize=False)(model, images).flatten(1)
    peak = raw.gather(1, raw.abs().argmax(1, keepdim=True))
    assert bool((peak > 0).all())


def test_registered_names_and_aliases():
    for name in NAMES:
        assert name in EXPLAINERS
        assert issubclass(EXPLAINERS.get(name), Explainer)
    table = list_explainers()
    for alias, name in ALIASES.items():
        assert table[alias] == name
        assert type(build_explainer(alias)).__name__ == name
    assert resolve_name('Grad-CAM++') == 'GradCAMPlusPlus'
    assert resolve_name('KPCA_CAM') == 'KPCACAM'


def test_build_from_config_dict():
    e = EXPLAINERS.build(dict(type='GradCAM', target_layer='backbone.model.layer4'))
    assert e.target_layer == 'backbone.model.layer4'
    e = build_explainer(dict(type='scorecam', batch_size=4), progress=False)
    assert (type(e).__name__, e.batch_size, e.progress) == ('ScoreCAM', 4, False)
    assert build_explainer(e) is e
    assert e.config()['batch_size'] == 4 and 'ScoreCAM(' in repr(e)


def test_build_errors_are_friendly():
    with pytest.raises(UnknownTypeError, match="Did you mean 'gradcam'"):
        build_explainer('gradcma')
    with pytest.raises(ConfigError, match='batch_sise'):
        build_explainer('scorecam', batch_sise=3)
    with pytest.raises(ConfigError, match='kernel'):
        build_explainer('kpcacam', kernel='gauss')
    with pytest.raises(ConfigError, match='differentiable'):
        build_explainer('rise', differentiable=True)
    with pytest.raises(ConfigError):
        build_explainer(42)
