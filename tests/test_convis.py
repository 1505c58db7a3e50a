"""ConVis on a tiny random open_clip model: scores equal a direct computation on a hand-built vocabulary."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from registry import MODELS
from registry.errors import ConfigError
from tests.image_text_fixtures import tiny_lit  # noqa: F401  (session fixture)
from zoo.concepts import ConceptVocabulary, wordnet
from zoo.explainers import ConVis, build_explainer
from zoo.explainers.convis import region_boxes

TINY = dict(embed_dim=32, vision_cfg=dict(image_size=32, layers=1, width=32, patch_size=16, head_width=16),
            text_cfg=dict(context_length=24, width=32, heads=2, layers=1))
CONCEPTS = {'footwear': 'covering for a person\'s feet', 'shoe': 'footwear shaped to fit the foot',
            'sandal': 'a shoe consisting of a sole fastened by straps', 'boot': 'footwear that covers the lower leg',
            'coat': 'an outer garment that has sleeves', 'shirt': 'a garment worn on the upper half of the body',
            'bag': 'a flexible container with a single opening'}
HYPONYMS = {'footwear': ['shoe', 'boot'], 'shoe': ['sandal']}


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    return MODELS.build(dict(type='ImageTextModel', model_cfg=TINY)).eval()


@pytest.fixture(scope='module')
def vocab():
    return ConceptVocabulary.custom(CONCEPTS, hyponyms=HYPONYMS)


@pytest.fixture(scope='module')
def images():
    return torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def direct_region_embeddings(model, images, boxes, regions='crops'):
    out = []
    for y0, x0, y1, x1 in boxes.tolist():
        if regions == 'crops':
            x = F.interpolate(images[:, :, y0:y1, x0:x1], size=images.shape[-2:], mode='bilinear',
                              align_corners=False)
        else:
            x = torch.zeros_like(images)
            x[:, :, y0:y1, x0:x1] = images[:, :, y0:y1, x0:x1]
        with torch.no_grad():
            out.append(model.encode_image(x, normalize=True))
    return torch.stack(out, 1)                                               # [B, R, D]


def direct_rank_sim(sims_vocab: list[float], own: float, own_index: int | None) -> float:
    """1 - (number of *other* vocabulary concepts more similar than the concept) / (number of others)."""
    others = [s for i, s in enumerate(sims_vocab) if i != own_index]
    return 1 - sum(s > own for s in others) / len(others)


def test_windows_tile_the_image_at_every_scale():
    boxes, which = region_boxes((32, 48), (0.5, 0.25), 0.5)
    for s in (0, 1):
        cover = torch.zeros(32, 48)
        for y0, x0, y1, x1 in boxes[which == s].tolist():
            cover[y0:y1, x0:x1] += 1
        assert bool((cover > 0).all())
    assert int((which == 0).sum()) == 3 * 3 and int((which == 1).sum()) == 7 * 7
    assert region_boxes((32, 32), (1.0,), 0.5)[0].tolist() == [[0, 0, 32, 32]]


@pytest.mark.parametrize('regions', ['crops', 'masks'])
def test_region_embeddings_are_the_encoded_windows(model, images, regions):
    convis = ConVis(vocabulary={'a': 'a'}, regions=regions, scales=(0.5, 0.25), batch_size=5, cache=None)
    boxes, _ = convis.boxes((32, 32))
    got = convis.region_embeddings(model, images)
    assert got.shape == (3, len(boxes), 32)
    torch.testing.assert_close(got, direct_region_embeddings(model, images, boxes, regions), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('standardize', ['image', 'none'])
@pytest.mark.parametrize('hyponyms', ['none', 'max'])
def test_rank_sim_and_max_rank_sim_equal_a_direct_computation(model, vocab, images, hyponyms, standardize):
    # stride 1: non-overlapping windows, so each pixel's value is its window's score
    convis = ConVis(vocabulary=vocab, hyponyms=hyponyms, standardize=standardize, scales=(0.5,), stride=1.0,
                    normalize=False, cache=None)
    targets = ['footwear', 'shoe', 'coat', 'a red umbrella']
    maps = convis.explain_concepts(model, images, targets)                 # [B, K, H, W]
    boxes, _ = convis.boxes((32, 32))
    regions = direct_region_embeddings(model, images, boxes, convis.regions)
    with torch.no_grad():
        texts = model.encode_text(list(CONCEPTS.values()) + ['a red umbrella'], normalize=True)
    names = list(CONCEPTS)
    for b in range(3):
        cos = regions[b] @ texts.T                                           # [R, V + 1]
        if standardize == 'image':                                           # per concept, over the 4 regions
            cos = (cos - cos.mean(0)) / cos.std(0, unbiased=False)
        for r, (y0, x0, _, _) in enumerate(boxes.tolist()):
            sims = cos[r, :-1].tolist()
            rank = {n: direct_rank_sim(sims, sims[i], i) for i, n in enumerate(names)}
            expected = {
                'footwear': max(rank[n] for n in ('footwear', 'shoe', 'boot', 'sandal')) if hyponyms == 'max'
                else rank['footwear'],
                'shoe': max(rank['shoe'], rank['sandal']) if hyponyms == 'max' else rank['shoe'],
                'coat': rank['coat'],
                'a red umbrella': direct_rank_sim(sims, float(cos[r, -1]), None),
            }
            for k, t in enumerate(targets):
                assert maps[b, k, y0, x0].item() == pytest.approx(expected[t], abs=1e-6), (b, r, t)


@pytest.mark.parametrize('standardize', ['vocabulary', 'image'])
def test_z_score_equals_a_direct_computation(model, vocab, images, standardize):
    convis = ConVis(vocabulary=vocab, score='z', standardize=standardize, hyponyms='none', scales=(0.5,),
                    stride=1.0, normalize=False, cache=None)
    maps = convis.explain_concepts(model, images, ['bag'])
    boxes, _ = convis.boxes((32, 32))
    regions = direct_region_embeddings(model, images, boxes, convis.regions)
    with torch.no_grad():
        sims = regions @ model.encode_text(list(CONCEPTS.values()), normalize=True).T     # [B, R, V]
    dim = -1 if standardize == 'vocabulary' else 1
    z = ((sims - sims.mean(dim, keepdim=True)) / sims.std(dim, unbiased=False, keepdim=True))[..., 6]
    for r, (y0, x0, _, _) in enumerate(boxes.tolist()):
        torch.testing.assert_close(maps[:, 0, y0, x0], z[:, r], atol=1e-5, rtol=1e-5)


def test_hypernym_map_is_the_max_of_its_hyponym_maps_with_hyponym_max_map(model, vocab, images):
    kw = dict(vocabulary=vocab, scales=(0.5, 0.25), normalize=False, cache=None)
    alone = ConVis(hyponyms='none', **kw).explain_concepts(model, images, ['footwear', 'shoe', 'boot', 'sandal'])
    at_map = ConVis(hyponyms='max', hyponym_max='map', **kw).explain_concepts(model, images, ['footwear'])
    torch.testing.assert_close(at_map[:, 0], alone.amax(1))
    # per region (the paper's max_rank_sim) then averaged: the mean of maxima is never below the max of means
    at_region = ConVis(hyponyms='max', **kw).explain_concepts(model, images, ['footwear'])[:, 0]
    assert bool((at_region >= at_map[:, 0] - 1e-6).all())


def test_maps_batched_normalised_and_model_state_restored(model, vocab, images):
    convis = build_explainer('convis', vocabulary=vocab, cache=None)
    model.train()
    grid = convis.explain_concepts(model, images, ['footwear', 'coat'])
    per_image = convis(model, images, ['coat', 'footwear', 'coat'])
    assert model.training and all(m.training for m in model.modules())
    model.eval()
    assert grid.shape == (3, 2, 32, 32) and per_image.shape == (3, 32, 32)
    assert float(grid.min()) >= 0 and float(grid.max()) <= 1
    torch.testing.assert_close(per_image, grid[torch.arange(3), torch.tensor([1, 0, 1])])
    torch.testing.assert_close(ConVis(concept='coat', vocabulary=vocab, cache=None)(model, images), grid[:, 1])


def test_synset_targets_use_wordnet_hyponyms_in_the_vocabulary(model, images, tmp_path, monkeypatch):
    monkeypatch.setenv('XZOO_CACHE', str(tmp_path))                     # the vocabulary JSON goes there
    vocab = ['footwear.n.02', 'shoe.n.01', 'sandal.n.01', 'boot.n.01', 'coat.n.01', 'shirt.n.01']
    convis = ConVis(vocabulary=vocab, cache=None)
    resolved, extra = convis.resolve_concepts(model, ['footwear.n.02', 'gym_shoe.n.01', 'clog.n.01', 'a hat'])
    assert resolved[0].members[0] == 0 and set(resolved[0].members) == {0, 1, 2, 3}   # itself + its closure
    assert resolved[1].members == (6,)                                   # not in the vocabulary: its own text
    assert resolved[2].members == (7,) and resolved[3].members == (8,) and extra.shape == (3, 32)
    shoe_text = ConVis(vocabulary=vocab, cache=None)
    assert shoe_text.resolve_concepts(model, ['footwear.n.01'])[0][0].members == (6,)   # hosiery etc. not in it
    with pytest.raises(ConfigError, match=r"no synset 'footwear\.n\.05'"):
        convis.resolve_concepts(model, ['footwear.n.05'])
    assert wordnet.is_synset_name('gym_shoe.n.01')


def test_class_index_targets_of_a_zero_shot_classifier(vocab, images):
    torch.manual_seed(0)
    clf = MODELS.build(dict(type='CLIPZeroShotClassifier', class_names=['shoe', 'coat'], templates=['a {c}.'],
                            image_text=dict(type='ImageTextModel', model_cfg=TINY))).eval()
    convis = ConVis(vocabulary=vocab, normalize=False, cache=None)
    by_index = convis(clf, images, 1)
    with torch.no_grad():
        class_emb = clf.class_text_embeddings()[1]
    concepts, extra = convis.resolve_concepts(clf, [1])
    assert concepts[0].label == 'coat' and torch.allclose(extra[0], class_emb)
    torch.testing.assert_close(by_index, convis.raw_concept_maps(clf, images, concepts, extra)[:, 0])
    predicted = clf(images).argmax(1)
    torch.testing.assert_close(convis(clf, images), convis(clf, images, predicted))


def test_errors_are_one_line_and_say_what_to_do(model, vocab, images):
    with pytest.raises(ConfigError, match="score must be one of 'rank', 'z', 'cosine'"):
        ConVis(score='softmax')
    with pytest.raises(ConfigError, match=r'scales .* in \(0, 1\]'):
        ConVis(scales=(0.5, 2.0))
    convis = ConVis(vocabulary=vocab, cache=None)
    with pytest.raises(ConfigError, match='needs a zero-shot classifier'):
        convis(model, images, 3)
    with pytest.raises(ConfigError, match='2 targets for 3 images'):
        convis(model, images, ['coat', 'bag'])
    with pytest.raises(ConfigError, match='needs a concept'):
        convis(model, images)


def test_explain_tool_gives_an_images_x_concepts_grid(vocab, tmp_path):
    from PIL import Image

    from tests.conftest import load_tool
    from zoo.apis.explaining import explain_images

    tool = load_tool('explain')
    methods = tool.concept_methods(['convis', 'gradcam'], ['footwear', 'a red coat'], None, None)
    assert methods == [dict(type='ConVis', concept='footwear'), dict(type='ConVis', concept='a red coat'), 'gradcam']
    with pytest.raises(ConfigError, match='not both'):
        tool.concept_methods(['convis'], ['footwear'], None, '3')
    with pytest.raises(ConfigError, match='for --method convis'):
        tool.concept_methods(['gradcam'], ['footwear'], None, None)
    args = tool.parse_args(['c.py', 'none', 'x.png', '--method', 'convis', '--concept', 'footwear.n.02',
                            '--concept', 'boot.n.01', '--vocabulary', 'nouns', '--out', str(tmp_path)])
    assert args.concept == ['footwear.n.02', 'boot.n.01'] and args.vocabulary == 'nouns'
    torch.manual_seed(0)
    clf = MODELS.build(dict(type='CLIPZeroShotClassifier', class_names=['shoe', 'coat'], templates=['a {c}.'],
                            image_text=dict(type='ImageTextModel', model_cfg=TINY))).eval()
    for name, colour in (('a', 'red'), ('b', 'blue')):
        Image.new('RGB', (40, 40), colour).save(tmp_path / f'{name}.png')
    methods = [dict(m, vocabulary=vocab, cache=None) for m in methods[:2]]
    res = explain_images(clf, [tmp_path / 'a.png', tmp_path / 'b.png'], methods=methods, out_dir=tmp_path / 'out',
                         size=32, progress=False)
    assert set(res.maps) == {'ConVis_footwear', 'ConVis_a red coat'}
    assert res.maps['ConVis_footwear'].shape == (2, 32, 32)
    names = sorted(p.name for p in (tmp_path / 'out').iterdir())
    assert names == ['a_ConVis_aredcoat.png', 'a_ConVis_footwear.png', 'b_ConVis_aredcoat.png',
                     'b_ConVis_footwear.png', 'grid.png']


@pytest.mark.slow
def test_convis_on_the_tiny_trained_lit_export(tiny_lit, tmp_path, monkeypatch):  # noqa: F811
    """The real recipe made tiny, loaded as users do; a WordNet vocabulary shipped beside the export."""
    from zoo.concepts import embeddings as emb_mod
    from zoo.concepts import save_vocabulary_embeddings, wordnet_vocabulary

    monkeypatch.setenv('XZOO_CACHE', str(tmp_path / 'cache'))
    model = tiny_lit.load()
    vocab = wordnet_vocabulary('hyponyms:footwear.n.02+hyponyms:garment.n.01')
    save_vocabulary_embeddings(model, vocab, tiny_lit.export / 'concepts')
    emb_mod.clear_memory()
    x = torch.randn(2, 3, 64, 64)
    maps = ConVis(vocabulary=vocab, cache=None).explain_concepts(model, x, ['footwear.n.02', 'a red coat', 3])
    assert maps.shape == (2, 3, 64, 64) and bool(torch.isfinite(maps).all())
    emb_mod.clear_memory()
    monkeypatch.setattr(emb_mod, 'encode_texts', lambda *a, **k: pytest.fail('recomputed instead of read'))
    assert emb_mod.vocabulary_embeddings(model, vocab, cache=None).shape[0] == len(vocab)   # from the export
