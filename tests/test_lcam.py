"""L-CAM: loss terms by hand, the Fm and Img paths on a classifier that is a known function, the explainer, a frozen
classifier through real training (weights and BN buffers bit-identical, gradient only in the attention module),
classifier checkpoints in every supported format, and the export/load round trip."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import timm
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

import zoo
from registry import BACKBONES, MODELS
from registry.errors import CheckpointError, ConfigError
from zoo.explainers import LCAM, build_explainer
from zoo.models.backbones.timm_backbone import BackboneOutput
from zoo.models.lcam import area_loss, tv_loss
from zoo.models.weights import safetensors_header
from zoo.structures import DataSample


@BACKBONES.register_module(force=True)
class LCAMToyBackbone(nn.Module):
    """Feature map = 4x4 average pooling of the image (3 channels); pooled = its mean, i.e. the image mean."""

    num_features = feature_channels = 3
    default_target_layer = 'pool'

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(4)

    def forward(self, x: torch.Tensor) -> BackboneOutput:
        f = self.pool(x)
        return BackboneOutput(feature_map=f, pooled=f.mean((2, 3)), raw=f)


W = torch.tensor([[1.0, 2.0, -1.0], [0.0, -1.0, 1.0]])
B = torch.tensor([0.1, -0.2])
WA = torch.tensor([[0.5, -1.0, 2.0], [-2.0, 1.0, 0.5]])
BA = torch.tensor([0.3, -0.1])


def toy_model(variant: str, **kw) -> nn.Module:
    """An L-CAM model whose classifier is ``logits = W · mean(image) + B`` (normalised image, mean 100, std 50)."""
    model = MODELS.build(dict(type='LCAMClassifier', variant=variant, classifier=dict(
        type='ImageClassifier', backbone=dict(type='LCAMToyBackbone'),
        head=dict(type='LinearClsHead', num_classes=2, in_channels=3),
        data_preprocessor=dict(type='ClsDataPreprocessor', mean=[100.0] * 3, std=[50.0] * 3)), **kw))
    with torch.no_grad():
        model.classifier.head.fc.weight.copy_(W)
        model.classifier.head.fc.bias.copy_(B)
        model.attention.weight.copy_(WA[:, :, None, None])
        model.attention.bias.copy_(BA)
    return model


def tv_by_hand(m: torch.Tensor) -> float:
    """The official TV written out with loops: squared neighbour differences, 0.3 × squared border pixels,
    divided by 2 × batch."""
    n, k, h, w = m.shape
    total = 0.0
    for a in range(n):
        for c in range(k):
            for i in range(h):
                for j in range(w):
                    v = float(m[a, c, i, j])
                    if i + 1 < h:
                        total += (float(m[a, c, i + 1, j]) - v) ** 2
                    if j + 1 < w:
                        total += (float(m[a, c, i, j + 1]) - v) ** 2
                    total += 0.3 * v * v * ((i == 0) + (i == h - 1) + (j == 0) + (j == w - 1))
    return total / (2 * n)


def test_area_and_tv_on_hand_made_masks():
    masks = torch.zeros(2, 1, 3, 3)
    masks[0, 0, :2, 1] = 1.0          # a vertical bar touching the top border
    masks[1] = 0.5                    # constant: only the border term
    # image 0: row differences 1, column differences 4, border 0.3 · 1; image 1: border 0.3 · 0.25 · 12
    assert tv_loss(masks).item() == pytest.approx((1 + 4 + 0.3 + 0.3 * 0.25 * 12) / (2 * 2))
    assert tv_loss(masks).item() == pytest.approx(tv_by_hand(masks))
    expected_area = (2 * 1.0005 ** 0.3 + 7 * 0.0005 ** 0.3 + 9 * 0.5005 ** 0.3) / 18
    assert area_loss(masks).item() == pytest.approx(expected_area)
    assert area_loss(masks, power=1).item() == pytest.approx(float(masks.mean()))
    assert tv_loss(masks, border=0).item() == pytest.approx(5 / 4)


def _inputs(n: int = 3, seed: int = 0) -> tuple[torch.Tensor, list[DataSample], torch.Tensor]:
    x = torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    labels = (torch.arange(n) + 1) % 2
    return x, [DataSample().set_gt_label(int(v)) for v in labels], labels


@pytest.mark.parametrize('variant', ['fm', 'img'])
def test_fm_and_img_paths_on_a_known_classifier(variant):
    model = toy_model(variant)
    x, samples, labels = _inputs()
    f = F.avg_pool2d(x, 4)                                               # [3, 3, 8, 8]
    att = torch.einsum('kc,bchw->bkhw', WA, f) + BA[:, None, None]
    logits, attention = model.lcam_attention(x)
    assert torch.allclose(logits, x.mean((2, 3)) @ W.T + B, atol=1e-5)  # the classifier, unchanged
    assert torch.allclose(model(x), logits) and attention.shape == (3, 2, 8, 8)
    assert torch.allclose(attention, att, atol=1e-5)
    a_c = torch.sigmoid(att)[torch.arange(3), labels][:, None]           # the label's mask, [3, 1, 8, 8]
    if variant == 'fm':
        masked = (a_c * f).mean((2, 3)) @ W.T + B                        # fc(GAP(A_c ⊙ F))
    else:
        up = F.interpolate(a_c, size=(32, 32), mode='bilinear', align_corners=False)
        image = ((x * 50 + 100) * up - 100) / 50                         # [0, 1] image × mask, normalised again
        masked = image.mean((2, 3)) @ W.T + B
    losses = model.loss(x, samples)
    assert losses['loss_ce'].item() == pytest.approx(1.5 * F.cross_entropy(masked, labels).item(), rel=1e-5)
    expected_area = ((a_c + 0.0005) ** 0.3).mean().item()
    assert losses['loss_area'].item() == pytest.approx(2 * expected_area, rel=1e-5)
    assert losses['loss_tv'].item() == pytest.approx(0.01 * tv_by_hand(a_c), rel=1e-5)
    assert losses['acc_masked'].item() == pytest.approx(100 * (masked.argmax(1) == labels).float().mean().item())


def test_official_all_batch_labels_quirk():
    model = toy_model('fm', all_batch_labels=True)
    x, samples, labels = _inputs()
    a = torch.sigmoid(torch.einsum('kc,bchw->bkhw', WA, F.avg_pool2d(x, 4)) + BA[:, None, None])
    masks = a[:, labels]                                                 # [3, 3, 8, 8]: every image × every label
    losses = model.loss(x, samples)
    assert losses['loss_area'].item() == pytest.approx(2 * ((masks + 0.0005) ** 0.3).mean().item(), rel=1e-5)
    assert losses['loss_tv'].item() == pytest.approx(0.01 * tv_by_hand(masks), rel=1e-5)
    plain = toy_model('fm').loss(x, samples)
    assert losses['loss_ce'].item() == pytest.approx(plain['loss_ce'].item())  # CE keeps each image's own mask


def test_fm_refuses_a_classifier_that_does_not_average_pool():
    model = toy_model('fm')
    model.classifier.backbone.forward = lambda x: BackboneOutput(F.avg_pool2d(x, 4), x.amax((2, 3)), x)
    with pytest.raises(ConfigError, match="global average.*variant='img'"):
        model.loss(*_inputs()[:2])


def test_explainer_is_one_forward_of_the_pre_sigmoid_attention():
    model = toy_model('img')
    x, _, _ = _inputs(3)
    calls = []
    model.classifier.backbone.register_forward_hook(lambda *_: calls.append(1))
    maps = model.explain(x)                                              # default explainer: 'lcam'
    assert len(calls) == 1 and maps.shape == (3, 32, 32)
    att = torch.einsum('kc,bchw->bkhw', WA, F.avg_pool2d(x, 4)) + BA[:, None, None]
    pred = (x.mean((2, 3)) @ W.T + B).argmax(1)
    native = att[torch.arange(3), pred]
    low, high = native.amin((1, 2), keepdim=True), native.amax((1, 2), keepdim=True)
    expected = F.interpolate(((native - low) / (high - low))[:, None], size=(32, 32), mode='bilinear',
                             align_corners=False)[:, 0]                  # min-max at 8x8, then upsample
    assert torch.allclose(maps, expected, atol=1e-6)
    other = model.explain(x, targets=[0, 0, 0], method=dict(type='LCAM', activation='sigmoid', resize=False))
    sig = torch.sigmoid(att[:, 0])
    low, high = sig.amin((1, 2), keepdim=True), sig.amax((1, 2), keepdim=True)
    assert torch.allclose(other, (sig - low) / (high - low), atol=1e-6)
    late = build_explainer('l-cam', normalize_first=False)(model, x)
    assert torch.allclose(late.amax((1, 2)), torch.ones(3)) and not torch.allclose(late, maps)


def test_explainer_refuses_a_model_without_attention():
    model = timm.create_model('test_resnet', num_classes=3)
    with pytest.raises(ConfigError, match='lcam_attention.*has none'):
        LCAM()(model, torch.randn(1, 3, 32, 32))


def test_other_explainers_explain_the_frozen_classifier():
    model = MODELS.build(dict(type='LCAMClassifier', classifier=dict(
        type='ImageClassifier', backbone=dict(type='TimmBackbone', model_name='test_resnet'),
        head=dict(type='LinearClsHead', num_classes=3))))
    x = torch.randn(2, 3, 32, 32)
    ours = model.explain(x, method='gradcam')
    ref = build_explainer('gradcam', target_layer='backbone.model.layer4')(model.classifier, x)
    assert model.explain_meta['target_layer'] == 'classifier.backbone.model.layer4'
    assert torch.allclose(ours, ref, atol=1e-6)
    assert MODELS.get('LCAMClassifier').method_info(dict(variant='fm'))['method'] == 'lcam-fm'
    assert 'bibtex' in MODELS.get('LCAMClassifier').method_info({})['paper']
    with pytest.raises(ConfigError, match="variant must be 'img'"):
        MODELS.build(dict(type='LCAMClassifier', variant='image', classifier=dict(
            type='ImageClassifier', backbone=dict(type='TimmBackbone', model_name='test_resnet'),
            head=dict(type='LinearClsHead', num_classes=3))))


# --- classifier checkpoints ----------------------------------------------------------------------------------------
CLASSIFIER = dict(type='ImageClassifier', backbone=dict(type='TimmBackbone', model_name='test_resnet'),
                  head=dict(type='LinearClsHead', num_classes=4),
                  data_preprocessor=dict(type='ClsDataPreprocessor', mean=[127.5] * 3, std=[127.5] * 3))


def _trained_looking_classifier(seed: int = 0) -> nn.Module:
    """A classifier with non-default BN statistics (one train-mode pass) and fixed random weights."""
    torch.manual_seed(seed)
    clf = MODELS.build(CLASSIFIER).train()
    with torch.no_grad():
        clf(torch.randn(8, 3, 32, 32) * 2 + 0.5)
    return clf.eval()


def test_classifier_checkpoint_formats(tmp_path: Path):
    clf = _trained_looking_classifier()
    x = torch.randn(2, 3, 32, 32)
    save_file(clf.state_dict(), str(tmp_path / 'clf.safetensors'))
    torch.save({'state_dict': clf.state_dict(), 'meta': {}}, tmp_path / 'epoch_1.pth')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_1.pth'))
    timm_model = timm.create_model('test_resnet', num_classes=4).eval()
    save_file(timm_model.state_dict(), str(tmp_path / 'timm.safetensors'))
    for source, reference in [('clf.safetensors', clf), ('epoch_1.pth', clf), ('.', clf),
                              ('timm.safetensors', timm_model)]:
        model = MODELS.build(dict(type='LCAMClassifier', classifier=CLASSIFIER,
                                  classifier_checkpoint=str(tmp_path / source)))
        assert torch.equal(model.eval()(x), reference(x)), source
    other = dict(CLASSIFIER, head=dict(type='LinearClsHead', num_classes=5))
    with pytest.raises(CheckpointError, match='does not fit'):
        MODELS.build(dict(type='LCAMClassifier', classifier=other,
                          classifier_checkpoint=str(tmp_path / 'clf.safetensors')))
    with pytest.raises(CheckpointError, match='Train the classifier first'):
        MODELS.build(dict(type='LCAMClassifier', classifier=CLASSIFIER,
                          classifier_checkpoint=str(tmp_path / 'missing.pth')))


# --- training through the Runner -----------------------------------------------------------------------------------
SHAPES = dict(type='SyntheticShapes', image_size=32, colours=('red', 'green'), shapes=('circle', 'square'))


def lcam_config(variant: str, checkpoint: str) -> dict:
    return dict(
        default_scope='zoo',
        model=dict(type='LCAMClassifier', variant=variant, classifier=CLASSIFIER, classifier_checkpoint=checkpoint),
        train_dataloader=dict(batch_size=4, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=True),
                              dataset=dict(SHAPES, num_samples=12, split='train')),
        test_dataloader=dict(batch_size=4, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
                             dataset=dict(SHAPES, num_samples=8, split='test')),
        test_evaluator=dict(type='Accuracy'), test_cfg=dict(),
        # the official optimiser (configs/_base_/schedules/lcam_official.py) with a large lr so 3 steps show
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.5, momentum=0.9, weight_decay=5e-4, nesterov=True),
                           paramwise_cfg=dict(bias_lr_mult=2.0)),
        train_cfg=dict(by_epoch=False, max_iters=3),
        default_hooks=dict(checkpoint=dict(type='AtomicCheckpointHook', by_epoch=False, interval=3)),
        custom_hooks=[dict(type='ClassNamesHook')],
    )


@pytest.fixture(scope='session')
def trained_lcam(tmp_path_factory) -> dict:
    """The classifier checkpoint and, per variant, the Runner that trained L-CAM on it for 3 iterations."""
    root = tmp_path_factory.mktemp('lcam')
    clf = _trained_looking_classifier(1)
    save_file(clf.state_dict(), str(root / 'classifier.safetensors'))
    out = {'root': root, 'classifier': clf.state_dict()}
    for variant in ('fm', 'img'):
        torch.manual_seed(0)
        cfg = lcam_config(variant, str(root / 'classifier.safetensors'))
        out[variant] = (cfg, zoo.train(cfg, work_dir=str(root / variant)))
    return out


@pytest.mark.parametrize('variant', ['fm', 'img'])
def test_training_leaves_the_classifier_bit_identical(trained_lcam, variant):
    cfg, runner = trained_lcam[variant]
    model = runner.model
    state = model.classifier.state_dict()
    assert any('running_mean' in k for k in state) and any('num_batches_tracked' in k for k in state)
    for key, value in trained_lcam['classifier'].items():
        assert torch.equal(state[key], value), key                      # weights and BN buffers
    assert not any(m.training for m in model.classifier.modules())
    optimizer = runner.optim_wrapper.optimizer
    moved = {n for n, p in model.named_parameters() if optimizer.state.get(p)}
    assert moved == {'attention.weight', 'attention.bias'}              # only they ever had a gradient
    lrs = {n: g['lr'] for g in optimizer.param_groups for n, p in model.named_parameters()
           if any(p is q for q in g['params'])}
    assert lrs['attention.bias'] == pytest.approx(2 * lrs['attention.weight'])
    assert optimizer.defaults['nesterov'] and optimizer.defaults['momentum'] == 0.9
    ckpt = torch.load(Path(runner.work_dir) / 'iter_3.pth', map_location='cpu', weights_only=False)
    assert 'attention.weight' in ckpt['state_dict'] and ckpt['meta']['dataset_meta']['classes'][0] == 'red circle'


@pytest.mark.parametrize('variant', ['fm', 'img'])
def test_only_the_attention_module_receives_gradient(trained_lcam, variant):
    cfg, _ = trained_lcam[variant]
    model = MODELS.build(cfg['model']).train()
    assert not model.classifier.training and model.attention.training  # mmengine's model.train() keeps it frozen
    x, samples, _ = _inputs(4)
    sum(v for k, v in model.loss(x, samples).items() if k.startswith('loss')).backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert all(g is None for n, g in grads.items() if n.startswith('classifier.'))
    assert grads['attention.weight'].abs().sum() > 0 and grads['attention.bias'].abs().sum() > 0


def test_export_and_load_round_trip(trained_lcam, tmp_path: Path):
    cfg, runner = trained_lcam['img']
    trained = zoo.init_model(cfg, str(Path(runner.work_dir) / 'iter_3.pth'))
    trained.save_pretrained(tmp_path / 'export')
    text = (tmp_path / 'export' / 'config.json').read_text()
    config = json.loads(text)
    assert config['architecture'] == 'LCAMClassifier' and config['explainer']['method'] == 'lcam'
    assert 'classifier_checkpoint' not in text and '.safetensors' not in text and '"pretrained": true' not in text
    keys = set(safetensors_header(tmp_path / 'export' / 'model.safetensors'))
    assert {'attention.weight', 'attention.bias'} <= keys and all(k.startswith(('attention.', 'classifier.'))
                                                                  for k in keys)
    loaded = zoo.load(f'local-dir:{tmp_path / "export"}')
    pixels = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    assert type(loaded).__name__ == 'LCAMClassifier' and loaded.class_names == trained.class_names
    assert torch.equal(trained(trained.prepare(pixels)), loaded(loaded.prepare(pixels)))
    assert torch.equal(trained.explain(pixels, method='lcam'), loaded.explain(pixels, method='lcam'))
    assert torch.equal(loaded.attention.weight, runner.model.attention.weight)
    assert not math.isnan(float(loaded.explain(pixels).sum()))
