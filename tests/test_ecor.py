"""ECOR on tiny random open_clip models: the factorisation against a direct computation, which parameters learn,
conditioning on rationales, the doubly-right metric, the native explanation, export/load and bad input."""
from __future__ import annotations

import json
import sys

import pytest
import torch
import torch.nn.functional as F

import zoo
from registry import MODELS
from registry.errors import ConfigError, DataError
from tests.test_image_text import no_network, one_line, opened_during  # noqa: F401
from zoo.metrics.doubly_right import DoublyRightAccuracy
from zoo.models.image_text import ECOR
from zoo.models.image_text.rationales import RationaleVocabulary, load_rationales
from zoo.structures import DataSample

TABLE = {'cat': ['has whiskers', 'has fur', 'has a long tail'], 'dog': ['has fur', 'has floppy ears'],
         'fish': ['has fins', 'has scales']}


def build(tiny_clip: str, **kw) -> ECOR:
    args = dict(type='ECOR', image_text=dict(type='ImageTextModel', model_name=tiny_clip), rationales=TABLE,
                rationale_prompt=dict(type='SharedPromptLearner', n_ctx=2),
                category_prompt=dict(type='SharedPromptLearner', n_ctx=2))
    args.update(kw)
    torch.manual_seed(0)
    return MODELS.build(args)


def samples(labels: list[int]) -> list[DataSample]:
    return [DataSample().set_gt_label(c) for c in labels]


@pytest.fixture
def images() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(4, 3, 32, 32)


# --- the factorisation -------------------------------------------------------------------------------------------
def test_joint_is_product_on_a_hand_built_example(tiny_clip):
    """Hand-built unit embeddings (D = 48, only the first 3 axes used): the model's joint equals P(r|I)·P(c|r,I)
    computed by hand, sums to 1, and the category rule marginalises it."""
    model = build(tiny_clip, logit_scale=10.0, top_k=None).eval()
    n, k, d = model.num_rationales, model.num_classes, model.image_text.embed_dim
    assert (n, k) == (6, 3)
    g = torch.Generator().manual_seed(1)
    rat = F.normalize(torch.randn(n, 3, generator=g), dim=-1)
    cond = F.normalize(torch.randn(n, k, 3, generator=g), dim=-1)
    table = torch.zeros(n + n * k, d)
    table[:n, :3], table[n:, :3] = rat, cond.reshape(n * k, 3)
    model.refresh_text_embeddings()
    model.text_embeddings.copy_(table)                       # the key stays valid: these are "the" embeddings
    img = torch.zeros(2, d)
    img[:, :3] = F.normalize(torch.tensor([[1.0, 0.2, -0.5], [-0.3, 0.9, 0.1]]), dim=-1)
    p_r = torch.softmax(10 * img[:, :3] @ rat.T, -1)                                     # P(r | I)
    p_c_r = torch.softmax(10 * torch.einsum('bd,nkd->bnk', img[:, :3], cond), -1)        # P(c | r, I)
    joint = model.joint(img)
    torch.testing.assert_close(joint, p_r[:, :, None] * p_c_r)
    torch.testing.assert_close(joint.sum((1, 2)), torch.ones(2))
    torch.testing.assert_close(p_c_r.sum(-1), torch.ones(2, n))
    torch.testing.assert_close(model.class_log_probs(img).exp(), joint.sum(1))          # top_k=None: exact marginal
    model.top_k = 2                                                                      # marginal over the top 2
    top = p_r.topk(2).indices
    w = torch.zeros_like(p_r).scatter(1, top, p_r.gather(1, top))
    expected = (w[:, :, None] * p_c_r).sum(1) / w.sum(1, keepdim=True)
    torch.testing.assert_close(model.class_log_probs(img).exp(), expected)


def test_joint_from_prompts_matches_direct_computation(tiny_clip, images):
    """End to end: the cached prompt embeddings are context ⊕ text through the text tower."""
    model = build(tiny_clip).eval()
    with torch.no_grad():
        img = model.encode_image(images)
        rat = model.embed(model.rationale_prompt, [f'{r}' for r in model.vocab.texts])
        cond = model.embed(model.category_prompt, [f'{c}, which {r}' for r in model.vocab.texts for c in TABLE])
        s = model.logit_scale
        p_r = (s * img @ rat.T).softmax(-1)
        p_c_r = (s * torch.einsum('bd,nkd->bnk', img, cond.view(model.num_rationales, 3, -1))).softmax(-1)
        torch.testing.assert_close(model.joint(img), p_r[:, :, None] * p_c_r, atol=1e-5, rtol=1e-4)
        probs = model(model.prepare((images * 40 + 128).clamp(0, 255).to(torch.uint8))).softmax(-1)
    torch.testing.assert_close(probs.sum(-1), torch.ones(4))


# --- what learns, and conditioning -------------------------------------------------------------------------------
def test_contexts_receive_gradient_and_towers_stay_frozen(tiny_clip, images):
    model = build(tiny_clip).train()
    assert tuple(model.rationale_prompt.ctx.shape[:2]) == (1, 1)    # one context shared by every rationale
    assert model.image_text.training is True and model.image_text.clip.visual.training is False
    losses = model.loss(images, samples([0, 1, 2, 0]))
    assert set(losses) == {'loss_rationale', 'loss_category'}
    losses['loss_rationale'].backward(retain_graph=True)
    assert model.rationale_prompt.ctx.grad.abs().sum() > 0
    assert model.category_prompt.ctx.grad is None                    # P(r|I) does not depend on Prompt_{c|R}
    model.rationale_prompt.ctx.grad = None
    losses['loss_category'].backward()
    assert model.category_prompt.ctx.grad.abs().sum() > 0
    assert model.rationale_prompt.ctx.grad is None                   # P(c|R,I) does not depend on Prompt_R
    trainable = sorted(n for n, p in model.named_parameters() if p.requires_grad)
    assert trainable == ['category_prompt.ctx', 'rationale_prompt.ctx']
    assert all(p.grad is None for n, p in model.named_parameters() if n.startswith('image_text.'))
    unfrozen = build(tiny_clip, train_text_tower=True)
    assert any(p.requires_grad for p in unfrozen.image_text.text_parameters())
    assert not any(p.requires_grad for p in unfrozen.image_text.clip.visual.parameters())


def test_training_steps_lower_both_losses(tiny_clip, images):
    model = build(tiny_clip).train()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.05)
    data = samples([0, 1, 2, 0])
    first = None
    for _ in range(15):
        torch.manual_seed(0)
        losses = model.loss(images, data)
        first = first or {k: float(v.detach()) for k, v in losses.items()}
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
    last = {k: float(v.detach()) for k, v in model.loss(images, data).items()}
    assert all(last[k] < first[k] for k in first), (first, last)


def test_changing_rationales_changes_the_category_distribution(tiny_clip, images):
    model = build(tiny_clip).eval()
    with torch.no_grad():
        img = model.encode_image(images)
        p = model.conditional_logits(img).softmax(-1)                 # [B, N, K]
        assert (p[:, 0] - p[:, 4]).abs().max() > 1e-4                  # 'has whiskers' vs 'has fins'
        sets = model.set_logits(img, torch.tensor([[0, 1]] * 4)).softmax(-1)
        other = model.set_logits(img, torch.tensor([[4, 5]] * 4)).softmax(-1)
    assert (sets - other).abs().max() > 1e-4
    assert model.category_texts([0, 1]) == ['cat, which has whiskers and has fur', 'dog, which has whiskers and has '
                                            'fur', 'fish, which has whiskers and has fur']
    set_model = build(tiny_clip, condition='set', top_k=2).eval()
    with torch.no_grad():
        assert set_model(images).shape == (4, 3)
    losses = set_model.train().loss(images, samples([0, 1, 2, 2]))
    assert set(losses) == {'loss_rationale', 'loss_category'}


def test_baselines_are_switches(tiny_clip, images):
    zs = build(tiny_clip, rationale_prompt=None, category_prompt=None, condition='none').eval()
    assert zs.texts()[-3:] == ['cat', 'dog', 'fish']
    with torch.no_grad():
        img = zs.encode_image(images)
        direct = (zs.logit_scale * img @ zs.image_text.encode_text(['cat', 'dog', 'fish']).T).softmax(-1)
        torch.testing.assert_close(zs(images).softmax(-1), direct, atol=1e-5, rtol=1e-4)
    with pytest.raises(ConfigError, match='nothing to train'):
        zs.loss(images, samples([0, 1, 2, 0]))
    coop = build(tiny_clip, rationale_prompt=None, condition='none').train()
    assert set(coop.loss(images, samples([0, 1, 2, 0]))) == {'loss_category'}
    assert ECOR.method_info({'condition': 'none', 'category_prompt': None})['method'] == 'zero-shot-clip'
    assert ECOR.method_info({'condition': 'none'})['method'] == 'coop'          # the default context
    assert ECOR.method_info({'condition': 'none', 'category_prompt': {'type': 'SharedPromptLearner'}})['method'] \
        == 'coop'
    info = ECOR.method_info({})
    assert info['method'] == 'ecor' and '2404.12839' in info['paper']['bibtex']


# --- evaluation --------------------------------------------------------------------------------------------------
def test_doubly_right_cells():
    def sample(label, pred, rat, right):
        s = DataSample().set_gt_label(label).set_pred_score(torch.nn.functional.one_hot(torch.tensor(pred), 3).float())
        s.pred_rationale_score = torch.tensor(rat)
        s.gt_rationale_mask = torch.tensor(right)
        return s

    batch = [sample(0, 0, [0.6, 0.3, 0.1], [True, False, False]),    # RR
             sample(0, 0, [0.1, 0.6, 0.3], [True, False, False]),    # RW (right one is 3rd... 2nd-ranked: topk RR)
             sample(1, 2, [0.1, 0.2, 0.7], [False, False, True]),    # WR
             sample(1, 2, [0.7, 0.2, 0.1], [False, False, True])]    # WW
    top1 = DoublyRightAccuracy()
    top1.process({}, batch)
    assert top1.compute_metrics(top1.results) == {'RR': 25.0, 'RW': 25.0, 'WR': 25.0, 'WW': 25.0, 'top1': 50.0,
                                                  'rationale_right': 50.0}
    topk = DoublyRightAccuracy(criterion='topk', k=3)
    topk.process({}, batch)
    assert topk.compute_metrics(topk.results)['RR'] == 50.0
    with pytest.raises(DataError, match='pred_rationale_score') as info:
        DoublyRightAccuracy().process({}, [DataSample().set_gt_label(0).set_pred_score(torch.ones(2))])
    one_line(info.value)


def test_predict_writes_what_the_metric_reads(tiny_clip, images):
    model = build(tiny_clip).eval()
    out = model.predict(images, samples([0, 1, 2, 2]))
    assert out[0].pred_rationale_score.shape == (6,)
    assert out[3].gt_rationale_mask.tolist() == [False, False, False, False, True, True]     # fish: fins, scales
    own = samples([0, 1])
    own[0].gt_rationales = [1]                                       # per-image labels override the class's
    assert model.gt_rationales(own)[0].tolist() == [False, True, False, False, False, False]
    metric = DoublyRightAccuracy()
    metric.process({}, out)
    assert set(metric.compute_metrics(metric.results)) == {'RR', 'RW', 'WR', 'WW', 'top1', 'rationale_right'}


def test_native_explanation_and_saliency(tiny_clip, images, tmp_path):
    model = build(tiny_clip).eval()
    pixels = (images * 40 + 128).clamp(0, 255).to(torch.uint8)
    exp = model.explain(pixels, method='native', targets='dog', top_k=4)
    rec = exp.records[0]
    assert exp.kind == 'rationales' and rec['class'] == 'dog' and len(rec['rationales']) == 4
    probs = [r['probability'] for r in rec['rationales']]
    assert probs == sorted(probs, reverse=True)
    with torch.no_grad():
        img = model.encode_image(model.prepare(pixels))
        joint = model.joint(img)
    first = rec['rationales'][0]
    assert first['joint'] == pytest.approx(float(joint[0, first['id'], 1]), abs=1e-6)
    assert [r['in_class'] for r in rec['rationales']] == [r['id'] in (1, 3) for r in rec['rationales']]
    files = exp.save_figures(tmp_path, ['a', 'b', 'c', 'd'])
    assert [p.name for p in files][0] == 'a_rationales.png' and files[0].stat().st_size > 1000
    maps = model.explain(pixels, method='gradcam')
    assert maps.shape[0] == 4 and torch.isfinite(maps).all() and model.explain_meta['target_layer'].startswith(
        'image_text.')


# --- export and bad input ----------------------------------------------------------------------------------------
def test_export_load_round_trip(tiny_clip, images, tmp_path, no_network):  # noqa: F811
    path = tmp_path / 'rationales.json'
    path.write_text(json.dumps(TABLE))
    model = build(tiny_clip, rationales=None, rationale_file=str(path), max_conditions=2).eval()
    with torch.no_grad():
        model.rationale_prompt.ctx.add_(0.5)                         # a "trained" context, not the init
    model.save_pretrained(tmp_path / 'export')
    config = json.loads((tmp_path / 'export' / 'config.json').read_text())
    args = config['model_args']
    assert args['image_text']['pretrained'] is False and args['rationales'] == TABLE
    assert 'rationale_file' not in args and 'max_conditions' not in args and str(tmp_path) not in json.dumps(config)
    loaded, paths = opened_during(lambda: zoo.load(f'local-dir:{tmp_path / "export"}'))
    installed = (sys.prefix, sys.base_prefix, '/proc/', '/sys/', '/dev/')
    outside = [p for p in paths if not p.startswith(str(tmp_path / 'export')) and 'site-packages' not in p
               and not p.startswith(installed) and not p.endswith(('.py', '.pyc', '.so'))]
    assert not outside, f'loading read files outside the export: {outside[:3]}'
    assert type(loaded) is ECOR
    torch.testing.assert_close(loaded.rationale_prompt.ctx, model.rationale_prompt.ctx)
    torch.testing.assert_close(loaded.category_prompt.ctx, model.category_prompt.ctx)
    assert loaded.text_cache_valid                                   # saved embeddings match the saved contexts
    pixels = (images * 40 + 128).clamp(0, 255).to(torch.uint8)
    torch.testing.assert_close(loaded(loaded.prepare(pixels)), model(model.prepare(pixels)), atol=1e-5, rtol=0)
    ours, theirs = model.explain(pixels, method='native'), loaded.explain(pixels, method='native')
    assert [[r['id'] for r in a['rationales']] for a in ours.records] == \
        [[r['id'] for r in b['rationales']] for b in theirs.records]


def test_bad_input_is_one_line(tiny_clip, tmp_path, images):
    path = tmp_path / 'r.json'
    path.write_text(json.dumps({'cat': ['has fur'], 'dog': []}))
    with pytest.raises(DataError, match="class 'dog' has an empty rationales list") as info:
        load_rationales(rationale_file=str(path))
    one_line(info.value)
    path.write_text(json.dumps({'cat': ['has fur'], 'dgo': ['has floppy ears']}))
    with pytest.raises(DataError, match="has no rationales for class 'dog'.*dgo") as info:
        build(tiny_clip, rationales=None, rationale_file=str(path), class_names=['cat', 'dog'])
    one_line(info.value)
    model = build(tiny_clip)
    with pytest.raises(DataError, match='no rationales for class') as info:
        model.class_names = ['cat', 'horse', 'fish']
    one_line(info.value)
    model = build(tiny_clip)
    bad = samples([0, 1])
    bad[1].gt_rationales = [0, 6]
    with pytest.raises(DataError, match='rationale id 6, out of range for a vocabulary of 6') as info:
        model.loss(images[:2], bad)
    one_line(info.value)
    bad[1].gt_rationales = []
    with pytest.raises(DataError, match='empty') as info:
        model.gt_rationales(bad)
    one_line(info.value)
    for kwargs, match in [(dict(condition='joint'), 'condition must be one of'),
                          (dict(category_template='{c} {x}'), 'exactly the fields'),
                          (dict(rationales='fashion'), "Unknown rationale set 'fashion'.*fashion_mnist"),
                          (dict(category_prompt=dict(type='ClassSpecificPromptLearner', n_ctx=2)), 'one context')]:
        with pytest.raises((ConfigError, DataError), match=match) as info:
            build(tiny_clip, **kwargs)
        one_line(info.value)
    with pytest.raises(DataError, match='does not exist') as info:
        build(tiny_clip, rationales=None, rationale_file=str(tmp_path / 'missing.json'))
    one_line(info.value)


def test_shipped_rationales():
    table = load_rationales('fashion_mnist')
    assert list(table)[:3] == ['T-shirt/top', 'Trouser', 'Pullover'] and len(table) == 10
    vocab = RationaleVocabulary.from_table(table)
    shoe = vocab.texts.index('is a shoe')
    targets = vocab.targets(list(table))
    assert targets[:, shoe].nonzero().flatten().tolist() == [5, 7, 9]      # sandal, sneaker, ankle boot
    assert all(r.startswith(('has ', 'is ')) for r in vocab.texts)
    assert len({tuple(row.tolist()) for row in targets}) == 10             # no two classes share all rationales
