"""ProtoPNet: the similarity and loss terms against a direct computation, the push, the native explanation, the
saliency explainer, and the export/load round trip."""
from __future__ import annotations

import json
import math

import pytest
import torch

from registry import DATASETS, MODELS
from registry.errors import ConfigError

EPS = 1e-4


def _model(num_classes: int = 4, per_class: int = 2, dim: int = 8, **kw):
    torch.manual_seed(0)
    return MODELS.build(dict(type='ProtoPNet', num_classes=num_classes, prototypes_per_class=per_class,
                             prototype_dim=dim, backbone=dict(type='TimmBackbone', model_name='test_resnet'),
                             class_names=[f'c{i}' for i in range(num_classes)], **kw)).eval()


def _loader(n: int = 12, size: int = 96, batch: int = 4, split: str = 'train'):
    from mmengine.dataset import pseudo_collate
    from torch.utils.data import DataLoader

    ds = DATASETS.build(dict(type='SyntheticShapes', num_samples=n, image_size=size, split=split,
                             colours=('red', 'green'), shapes=('circle', 'square')))
    return DataLoader(ds, batch_size=batch, shuffle=False, collate_fn=pseudo_collate)


@pytest.fixture(scope='module')
def pushed():
    """A ProtoPNet (random weights) pushed onto 12 synthetic training images, with the push report."""
    from zoo.models.protopnet.push import push_prototypes

    model = _model()
    before = model.prototype_vectors.detach().clone()
    loader = _loader()
    report = push_prototypes(model, loader)
    return model, loader, report, before


# --- the maths, on a hand-made example ----------------------------------------------------------------------------
def _hand_example():
    # two images, 2 channels, a 1 x 2 latent grid; 2 classes x 2 prototypes
    z = torch.tensor([[[[0.0, 1.0]], [[1.0, 0.5]]],
                      [[[0.2, 0.9]], [[0.3, 0.1]]]])
    protos = torch.tensor([[0.0, 1.0], [1.0, 1.0], [0.5, 0.5], [0.9, 0.0]])
    proto_class = torch.tensor([0, 0, 1, 1])
    labels = torch.tensor([0, 1])
    return z, protos, proto_class, labels


def _direct_min_distances(z, protos):
    """min over patches of sum_d (z - p)^2, with Python loops."""
    out = []
    for b in range(z.shape[0]):
        row = []
        for p in protos.tolist():
            ds = [sum((float(z[b, d, h, w]) - p[d]) ** 2 for d in range(len(p)))
                  for h in range(z.shape[2]) for w in range(z.shape[3])]
            row.append(min(ds))
        out.append(row)
    return out


def test_distances_similarity_cluster_separation_equal_a_direct_computation():
    from zoo.models.protopnet import functional as PF

    z, protos, proto_class, labels = _hand_example()
    d = PF.l2_distances(z, protos)
    direct = _direct_min_distances(z, protos)
    assert torch.allclose(d.flatten(2).amin(-1), torch.tensor(direct), atol=1e-6)
    assert float(d[0, 0, 0, 0]) == pytest.approx(0.0, abs=1e-7)            # prototype 0 is image 0's first patch
    sims = PF.log_similarity(torch.tensor(direct), EPS)
    assert sims[1, 2].item() == pytest.approx(math.log((direct[1][2] + 1) / (direct[1][2] + EPS)), rel=1e-6)
    # cluster: own class; separation: other classes (image 0 is class 0 → prototypes 0, 1; image 1 → 2, 3)
    clst = (min(direct[0][0], direct[0][1]) + min(direct[1][2], direct[1][3])) / 2
    sep = (min(direct[0][2], direct[0][3]) + min(direct[1][0], direct[1][1])) / 2
    md = torch.tensor(direct)
    assert PF.cluster_cost(md, labels, proto_class).item() == pytest.approx(clst, rel=1e-6)
    assert PF.separation_cost(md, labels, proto_class).item() == pytest.approx(sep, rel=1e-6)
    # the official max_dist formulation gives the same (all distances <= D here)
    max_dist = 2.0
    own = torch.tensor([[1., 1., 0., 0.], [0., 0., 1., 1.]])
    official = (max_dist - ((max_dist - md) * own).max(1).values).mean()
    assert PF.cluster_cost(md, labels, proto_class).item() == pytest.approx(official.item(), abs=1e-6)
    w = torch.tensor([[1.0, 2.0, -3.0, 0.5], [-1.0, 0.25, 4.0, 5.0]])
    assert PF.wrong_class_l1(w, proto_class).item() == pytest.approx(3.0 + 0.5 + 1.0 + 0.25)


def test_model_loss_terms_are_the_weighted_direct_terms():
    from zoo.structures import DataSample

    z, protos, proto_class, labels = _hand_example()
    model = MODELS.build(dict(type='ProtoPNet', num_classes=2, prototypes_per_class=2, prototype_dim=2,
                              backbone=dict(type='TimmBackbone', model_name='test_resnet')))
    with torch.no_grad():
        model.prototype_vectors.copy_(protos)
    model.features = lambda x: z  # the hand-made latent grid instead of backbone + add-on
    samples = [DataSample().set_gt_label(int(t)) for t in labels]
    losses = model.loss(torch.zeros(2, 3, 8, 8), samples)
    direct = torch.tensor(_direct_min_distances(z, protos))
    logits = model.last_layer(torch.log((direct + 1) / (direct + EPS)))
    # class connections: +1 own class, -0.5 others; L1 = 4 wrong-class weights of 0.5 each
    assert model.last_layer.weight.tolist() == [[1.0, 1.0, -0.5, -0.5], [-0.5, -0.5, 1.0, 1.0]]
    assert losses['loss_ce'].item() == pytest.approx(torch.nn.functional.cross_entropy(logits, labels).item(), rel=1e-5)
    assert losses['loss_cluster'].item() == pytest.approx(0.8 * losses['cluster'].item(), rel=1e-6)
    assert losses['cluster'].item() == pytest.approx(
        (min(direct[0, :2]) + min(direct[1, 2:])).item() / 2, rel=1e-5)
    assert losses['loss_separation'].item() == pytest.approx(
        -0.08 * (min(direct[0, 2:]) + min(direct[1, :2])).item() / 2, rel=1e-5)
    assert losses['loss_l1'].item() == pytest.approx(1e-4 * 2.0)
    assert torch.allclose(model(torch.zeros(2, 3, 8, 8)), logits, atol=1e-5)


def test_loss_weights_are_switches_and_are_checked():
    from zoo.structures import DataSample

    model = _model(loss_weights=dict(cluster=0, separation=0.0))
    losses = model.loss(torch.randn(2, 3, 32, 32), [DataSample().set_gt_label(1), DataSample().set_gt_label(0)])
    assert losses['loss_cluster'].item() == 0 and losses['loss_separation'].item() == 0
    assert losses['loss_ce'].item() > 0
    with pytest.raises(ConfigError, match="unknown term 'clst'"):
        _model(loss_weights=dict(clst=1.0))
    with pytest.raises(ConfigError, match="add_on must be 'regular' or 'bottleneck'"):
        _model(add_on='wide')
    bottleneck = _model(add_on='bottleneck', dim=16)
    assert bottleneck.features(torch.randn(1, 3, 64, 64)).shape[1] == 16


def test_model_metadata_and_method_info():
    model = _model()
    assert model.prototype_class.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert model.num_prototypes == 8 and model.num_classes == 4 and not model.is_pushed
    assert model.explain_meta['target_layer'] == 'backbone.model.layer4'
    info = type(model).method_info(model.build_config)
    assert info['method'] == 'protopnet' and 'Chen' in info['paper']['bibtex']
    assert '@inproceedings{nauta2021looks' in info['explanation_paper']['bibtex']
    assert 'loss_weights' not in model.inference_config()  # training only


# --- the push --------------------------------------------------------------------------------------------------------
def test_push_makes_every_prototype_a_latent_training_patch_of_its_class(pushed):
    model, loader, report, before = pushed
    assert model.is_pushed and report.unpushed == [] and int(model.push_count) == 1
    ds = loader.dataset
    grid = None
    with torch.no_grad():
        for p in range(model.num_prototypes):
            item = ds[int(model.push_index[p])]
            assert int(item['data_samples'].gt_label) == int(model.prototype_class[p])   # its own class
            x = model.normalize(item['inputs'][None])
            z = model.features(x)
            grid = z.shape[-2:]
            d = model.distances(z)[0, p]
            h, w = model.push_location[p].tolist()
            assert float(d[h, w]) == pytest.approx(0.0, abs=1e-5)                       # distance 0
            assert torch.allclose(model.prototype_vectors[p], z[0, :, h, w], atol=1e-5)  # that very patch
            x1, y1, x2, y2 = model.push_box[p].tolist()
            H, W = item['inputs'].shape[-2:]
            assert 0 <= x1 < x2 <= W and 0 <= y1 < y2 <= H                               # box inside the image
            crop = item['inputs'][:, y1:y2, x1:x2].float()[None]
            expect = torch.nn.functional.interpolate(crop, size=model.push_patch.shape[-2:], mode='bilinear',
                                                     antialias=True, align_corners=False)[0].round().to(torch.uint8)
            assert torch.equal(model.push_patch[p], expect)
    assert tuple(grid) == (3, 3)


def test_push_picks_the_nearest_own_class_patch_of_the_whole_set(pushed):
    """Brute force over every own-class patch of every image: none was nearer to the old prototype."""
    model, loader, report, before = pushed
    best = torch.full((model.num_prototypes,), float('inf'))
    with torch.no_grad():
        for batch in loader:
            x = model.data_preprocessor(batch)['inputs']
            labels = torch.stack([s.gt_label for s in batch['data_samples']])
            z = model.features(x)
            from zoo.models.protopnet.functional import l2_distances
            d = l2_distances(z, before).flatten(2).amin(-1)                                # [B, P]
            own = labels.view(-1, 1) == model.prototype_class.view(1, -1)
            best = torch.minimum(best, d.masked_fill(~own, float('inf')).amin(0))
    assert torch.allclose(report.distances, best, atol=1e-5)


def test_prototype_sources_and_paths_are_recorded(tmp_path):
    from mmengine.dataset import pseudo_collate
    from PIL import Image
    from torch.utils.data import DataLoader

    from zoo.models.protopnet.push import push_prototypes

    from .conftest import make_fake_cub

    root = make_fake_cub(tmp_path / 'CUB_200_2011', n_classes=2, classes_with_images=2, per_class=4,
                         with_segmentations=False)
    ds = DATASETS.build(dict(type='CUB200', data_root=str(root), split='train',
                             pipeline=[dict(type='Resize', size=(64, 64))]))
    model = _model(num_classes=2, source_path_bytes=24)
    push_prototypes(model, DataLoader(ds, batch_size=2, collate_fn=pseudo_collate))
    sources = model.prototype_sources()
    for src in sources:
        info = ds.get_data_info(src['index'])
        rel = info['img_path'][len(str(root)) + 1:]
        assert src['path'] == rel.encode()[:24].decode('utf-8', errors='ignore')   # relative, truncated to 24 bytes
        assert Image.open(info['img_path']).size  # a real file
        assert src['class'] == info['gt_label']


# --- explanations --------------------------------------------------------------------------------------------------
def test_native_explanation_this_looks_like_that(pushed, tmp_path):
    model, loader, _, _ = pushed
    batch = next(iter(loader))
    pixels = torch.stack(batch['inputs'])
    exp = model.explain(pixels, method='native', top_classes=2, top_prototypes=3)
    assert exp.kind == 'prototypes' and len(exp) == 4 and exp.maps.shape == (4, 96, 96)
    assert exp.similarity_maps.shape == (4, 2, 3, 96, 96) and exp.source_patches.shape[:3] == (4, 2, 3)
    assert torch.equal(exp.pixels, pixels)
    with torch.no_grad():
        logits, sims = model.prototype_maps(model.prepare(pixels))
    for i, rec in enumerate(exp.records):
        first = rec['classes'][0]
        assert first['class'] == int(logits[i].argmax()) == rec['predicted']
        contrib = [p['contribution'] for p in first['prototypes']]
        assert contrib == sorted(contrib, reverse=True)
        for k, p in enumerate(first['prototypes']):
            assert p['similarity'] == pytest.approx(float(sims[i, p['prototype']].max()), rel=1e-5)
            assert p['contribution'] == pytest.approx(p['weight'] * p['similarity'], rel=1e-5)
            assert p['source']['index'] == int(model.push_index[p['prototype']])
            assert torch.equal(exp.source_patches[i, 0, k], model.push_patch[p['prototype']])
            x1, y1, x2, y2 = p['box']
            assert 0 <= x1 < x2 <= 96 and 0 <= y1 < y2 <= 96
    json.dumps(exp.records)  # JSON-ready
    files = exp.save_figures(tmp_path, ['a', 'b', 'c', 'd'], class_names=model.class_names)
    assert [f.name for f in files][0] == 'a_prototypes.png' and files[0].stat().st_size > 1000
    target = model.explain(pixels[:2], method='native', targets=[3, 'c1'])
    assert [r['classes'][0]['class'] for r in target.records] == [3, 1]


def test_prototype_similarity_explainer(pushed):
    from zoo.explainers import build_explainer, list_explainers

    model, loader, _, _ = pushed
    assert list_explainers()['protosim'] == 'PrototypeSimilarity'
    pixels = torch.stack(next(iter(loader))['inputs'])
    x = model.prepare(pixels)
    with torch.no_grad():
        logits, sims = model.prototype_maps(x)
    t = logits.argmax(1)
    raw = build_explainer('protosim', normalize=False, resize=False)(model, x)
    manual = torch.einsum('bp,bphw->bhw', model.prototype_weights[t].clamp_min(0), sims)
    assert torch.allclose(raw, manual, atol=1e-5)
    top = build_explainer(dict(type='PrototypeSimilarity', reduction='top'), normalize=False, resize=False)
    best = (model.prototype_weights[t] * sims.flatten(2).amax(-1)).argmax(1)
    assert torch.allclose(top(model, x, targets=t), sims[torch.arange(4), best], atol=1e-6)
    maps = model.explain(pixels, method='protosim')
    assert maps.shape == (4, 96, 96) and float(maps.max()) == pytest.approx(1.0)
    assert model.explain(pixels, method='gradcam').shape == (4, 96, 96)      # explain_meta: Grad-CAM works too
    assert model.training is False


def test_prototype_similarity_refuses_other_models():
    import timm

    from zoo.explainers import build_explainer

    other = timm.create_model('test_resnet', num_classes=3)
    with pytest.raises(ConfigError, match='explains prototype networks') as err:
        build_explainer('protosim')(other, torch.randn(1, 3, 32, 32))
    assert '\n' not in str(err.value)
    with pytest.raises(ConfigError, match="reduction must be one of"):
        build_explainer('protosim', reduction='mean')


# --- export / load -------------------------------------------------------------------------------------------------
def test_export_load_keeps_prototypes_classes_and_sources(pushed, tmp_path):
    import zoo

    model, loader, _, _ = pushed
    model.save_pretrained(tmp_path / 'export')
    config = json.loads((tmp_path / 'export' / 'config.json').read_text())
    assert config['architecture'] == 'ProtoPNet' and 'loss_weights' not in config['model_args']
    loaded = zoo.load(f'local-dir:{tmp_path / "export"}')
    assert type(loaded).__name__ == 'ProtoPNet' and loaded.is_pushed
    mine, theirs = model.state_dict(), loaded.state_dict()
    for name in ('prototype_vectors', 'prototype_class', 'push_index', 'push_box', 'push_location', 'push_patch',
                 'push_path', 'push_count', 'last_layer.weight'):
        assert torch.equal(mine[name], theirs[name]), name
    assert loaded.prototype_sources() == model.prototype_sources()
    pixels = torch.stack(next(iter(loader))['inputs'])
    assert torch.equal(model(model.prepare(pixels)), loaded(loaded.prepare(pixels)))
    a, b = model.explain(pixels, method='native'), loaded.explain(pixels, method='native')
    assert a.records == b.records and torch.equal(a.source_patches, b.source_patches)
