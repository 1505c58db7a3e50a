"""Prompt-CAM: prompts at every block, what trains, the shared head, attention maps read from the block, the greedy
trait ranking against an exhaustive search, the explainer's contract, and export/load."""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch

import zoo
from registry import MODELS
from registry.errors import CheckpointError, ConfigError, SecurityError
from zoo.explainers import build_explainer
from zoo.models.prompt_cam import PROMPT_CAM_PAPER, PromptCAMViT, TraitsExplanation
from zoo.structures import DataSample

C = 5
VIT = dict(type='TimmBackbone', model_name='test_vit', img_size=32, patch_size=8, depth=3, num_heads=4,
           dynamic_img_size=True)


def build(**kwargs) -> PromptCAMViT:
    torch.manual_seed(0)
    cfg = dict(type='PromptCAMViT', num_classes=C, backbone=dict(VIT), class_names=list('abcde'))
    cfg.update(kwargs)
    model = MODELS.build(cfg)
    with torch.no_grad():  # a head that separates the classes a little (random weights are near-flat)
        model.head.weight.mul_(20)
    return model


@pytest.fixture(scope='module')
def model() -> PromptCAMViT:
    return build().eval()


@pytest.fixture(scope='module')
def images() -> torch.Tensor:
    return torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def _block_inputs(model, x):
    """Inputs and outputs of every block during model(x)."""
    seen = []
    hooks = [b.register_forward_hook(lambda _m, args, out: seen.append((args[0].detach(), out.detach())))
             for b in model.vit.blocks]
    try:
        logits = model(x)
    finally:
        for h in hooks:
            h.remove()
    return logits, seen


def test_prompts_are_replaced_at_every_block(model, images):
    _, seen = _block_inputs(model, images)
    assert len(seen) == len(model.vit.blocks) == model.prompts.shape[0]
    for i, (inp, out) in enumerate(seen):
        assert inp.shape[1] == C + 1 + 16  # C prompts, the class token, the 4 x 4 patch grid
        assert torch.equal(inp[:, :C], model.prompts[i].expand(len(images), -1, -1))  # this block's own prompts
        if i + 1 < len(seen):
            nxt = seen[i + 1][0]
            assert torch.equal(nxt[:, C:], out[:, C:])  # the other tokens go on
            assert not torch.allclose(nxt[:, :C], out[:, :C])  # the previous block's prompt outputs are dropped


def test_prompt_dropout_acts_in_training_with_one_mask_per_block():
    model = build(prompt_dropout=0.5).train()
    _, seen = _block_inputs(model, torch.randn(2, 3, 32, 32))
    for i, (inp, _) in enumerate(seen):
        prompts = inp[:, :C]
        assert torch.equal(prompts[0], prompts[1])  # the mask is shared by the batch (as the official code)
        dropped = prompts[0] == 0
        assert dropped.any() and (~dropped).any()
        assert torch.allclose(prompts[0][~dropped], 2 * model.prompts[i][~dropped])


def test_only_prompts_and_head_receive_gradient():
    model = build().train()
    samples = [DataSample().set_gt_label(k) for k in (0, 3, 4)]
    loss = model.loss(torch.randn(3, 3, 32, 32), samples)['loss_cls']
    loss.backward()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {'prompts', 'head.weight', 'head.bias'}
    assert all(p.grad is None for p in model.backbone.parameters())
    per_block = model.prompts.grad.abs().flatten(1).sum(1)
    assert bool((per_block > 0).all())  # every block's prompts get gradient
    assert model.head.weight.grad.abs().sum() > 0 and model.head.bias.grad.abs() > 0


def test_the_head_is_one_weight_vector_shared_by_the_classes(model, images):
    assert tuple(model.head.weight.shape) == (1, model.vit.embed_dim) and tuple(model.head.bias.shape) == (1,)
    logits, seen = _block_inputs(model, images)
    z = seen[-1][1][:, :C]
    by_hand = model.vit.norm(z) @ model.head.weight[0] + model.head.bias[0]
    assert torch.allclose(logits, by_hand, atol=1e-5)
    swapped = build().eval()
    with torch.no_grad():  # exchanging two classes' prompts exchanges their logits: the head knows no class
        swapped.prompts[:, [1, 3]] = swapped.prompts[:, [3, 1]]
        out = swapped(images)
    assert torch.allclose(out[:, [3, 1]], logits[:, [1, 3]], atol=1e-5)
    assert torch.allclose(out[:, [0, 2, 4]], logits[:, [0, 2, 4]], atol=1e-5)


@pytest.mark.parametrize('size', [(32, 32), (32, 48)])
def test_per_head_maps_are_the_block_attention_probabilities(model, size):
    x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(2))
    attn = model.vit.blocks[-1].attn
    seen = []
    fused = attn.fused_attn
    attn.fused_attn = False  # timm's explicit path, whose softmax output enters attn_drop
    hook = attn.attn_drop.register_forward_hook(lambda _m, args, _out: seen.append(args[0].detach()))
    try:
        logits = model(x)
    finally:
        hook.remove()
        attn.fused_attn = fused
    targets = [2, 4]
    maps = build_explainer('promptcam', normalize=False, resize=False).head_maps(model, x, targets)
    grid = (size[0] // 8, size[1] // 8)
    probs = seen[0]  # [B, heads, N, N], read from the block itself
    expected = torch.stack([probs[i, :, t, C + 1:] for i, t in enumerate(targets)]).reshape(2, 4, *grid)
    assert tuple(maps.shape) == (2, 4, *grid)
    assert torch.allclose(maps, expected, atol=1e-6)
    out = model.prompt_attention(x)
    assert torch.allclose(out['logits'], logits, atol=1e-5) and out['grid'] == grid
    assert torch.equal(out['targets'], logits.argmax(1))


def _reference_target_probs(model, x, targets, blur):
    """Target probabilities with the heads in ``blur`` [B, heads] blurred for the target prompt's query row,
    through the model's ordinary forward: a hook zeroes that row's query vector in those heads (the pre-softmax
    logits q·k then are all 0; the tiny ViT has no q-norm)."""
    attn = model.vit.blocks[-1].attn
    dim, hd = attn.num_heads * attn.head_dim, attn.head_dim

    def zero_q(_m, _args, out):
        out = out.clone()
        for i, t in enumerate(targets):
            for h in blur[i].nonzero().flatten().tolist():
                out[i, t, h * hd:(h + 1) * hd] = 0  # q of head h (qkv = [q | k | v], each [heads x hd])
        assert out.shape[-1] == 3 * dim
        return out

    hook = attn.qkv.register_forward_hook(zero_q)
    try:
        with torch.no_grad():
            return model(x).softmax(-1)[torch.arange(len(x)), targets]
    finally:
        hook.remove()


def test_greedy_ranking_equals_an_exhaustive_search():
    model = build().double().eval()
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    targets = torch.tensor([0, 1, 2, 3])
    heads = model.num_heads
    assert heads == 4
    # the target probability of every subset of blurred heads, by the reference
    subsets = list(itertools.product([False, True], repeat=heads))
    table = torch.stack([_reference_target_probs(model, x, targets, torch.tensor([s] * len(x))) for s in subsets])
    prob = {s: table[k] for k, s in enumerate(subsets)}

    def trajectory(perm, i):  # probabilities after blurring perm[0], then perm[:2], ...
        return [float(prob[tuple(h in perm[:j + 1] for h in range(heads))][i]) for j in range(heads)]

    ranking = build_explainer('promptcam').rank_traits(model, x, targets)
    for i in range(len(x)):
        scored = sorted(((trajectory(p, i), p) for p in itertools.permutations(range(heads))), reverse=True)
        best_traj, best = scored[0]
        assert best_traj > scored[1][0]  # a unique optimum: the comparison means something
        # exhaustive: the blurring order whose probability sequence is the best in order of steps
        assert tuple(ranking.blur_order[i].tolist()) == best
        assert torch.allclose(ranking.probability_without[i].flip(0), torch.tensor(best_traj, dtype=torch.float64))
        assert ranking.order[i].tolist() == list(reversed(best))
        # and its first step is the best single head to blur among all four
        singles = [float(prob[tuple(h == k for h in range(heads))][i]) for k in range(heads)]
        assert best[0] == max(range(heads), key=lambda k: singles[k])
    assert torch.allclose(ranking.probability, _reference_target_probs(model, x, targets, torch.zeros(4, heads,
                                                                                                       dtype=bool)))


def test_explainer_maps_top_traits_and_state(model, images):
    model.train()
    flags = [p.requires_grad for p in model.parameters()]
    maps = build_explainer('promptcam')(model, images, targets=1)
    assert model.training and flags == [p.requires_grad for p in model.parameters()]  # restored
    assert tuple(maps.shape) == (3, 32, 32) and float(maps.min()) >= 0 and float(maps.max()) <= 1
    model.eval()
    raw = build_explainer('promptcam', normalize=False, resize=False)
    per_head = raw.head_maps(model, images, 1)
    assert torch.allclose(raw(model, images, 1), per_head.mean(1), atol=1e-6)
    ranking = raw.rank_traits(model, images, 1)
    top1 = build_explainer('promptcam', top_traits=1, normalize=False, resize=False)(model, images, 1)
    assert torch.allclose(top1, per_head[torch.arange(3), ranking.order[:, 0]], atol=1e-6)
    top2 = build_explainer('promptcam', top_traits=2, normalize=False, resize=False)(model, images, 1)
    assert torch.allclose(top2, per_head.gather(1, ranking.order[:, :2, None, None].expand(-1, -1, 4, 4)).mean(1),
                          atol=1e-6)
    with pytest.raises(ConfigError, match='at most'):
        build_explainer('promptcam', top_traits=5)(model, images)
    with pytest.raises(ConfigError, match='positive integer'):
        build_explainer('promptcam', top_traits=0)


def test_explainer_refuses_other_models(images):
    classifier = MODELS.build(dict(type='ImageClassifier', backbone=dict(VIT),
                                   head=dict(type='LinearClsHead', num_classes=3)))
    with pytest.raises(ConfigError, match='Prompt-CAM models only'):
        build_explainer('promptcam')(classifier, images)


def test_refuses_a_backbone_that_is_not_a_vit():
    with pytest.raises(ConfigError, match='VisionTransformer'):
        MODELS.build(dict(type='PromptCAMViT', num_classes=2,
                          backbone=dict(type='TimmBackbone', model_name='test_resnet')))


def test_contract_metadata_and_gradcam_on_the_same_vit(model, images):
    info = PromptCAMViT.method_info({})
    assert info['method'] == 'promptcam' and info['paper'] == PROMPT_CAM_PAPER
    assert '@inproceedings' in info['paper']['bibtex'] and '2501.09333' in info['paper']['bibtex']
    pre = model.default_preprocessing()
    assert pre.input_size == (3, 32, 32) and pre.mean == (0.5, 0.5, 0.5)  # test_vit's timm config, its img_size
    meta = model.explain_meta
    assert meta['num_prefix_tokens'] == C + 1 and meta['patch_size'] == (8, 8)
    assert meta['target_layer'] == 'backbone.model.blocks.2.norm1'
    cam = model.explain(images, method='gradcam', targets=[0, 1, 2])
    assert tuple(cam.shape) == (3, 32, 32) and bool((cam.flatten(1).amax(1) > 0).all())
    assert tuple(model.explain(images).shape) == (3, 32, 32)  # default explainer: promptcam


def test_native_explanation_draws_the_top_traits(model, images, tmp_path):
    pixels = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    exp = model.explain(pixels, method='native', top_traits=2)
    assert isinstance(exp, TraitsExplanation) and exp.kind == 'traits' and len(exp) == 2
    assert tuple(exp.head_maps.shape) == (2, 2, 32, 32) and tuple(exp.maps.shape) == (2, 32, 32)
    assert torch.allclose(exp.maps, model.explain(pixels, method='promptcam', top_traits=2), atol=1e-6)
    per_head = build_explainer('promptcam').head_maps(model, model.prepare(pixels))
    assert torch.allclose(exp.head_maps[0], per_head[0, exp.records[0]['ranking'][:2]], atol=1e-6)
    record = exp.records[0]
    assert [t['rank'] for t in record['traits']] == [1, 2] and sorted(record['ranking']) == [0, 1, 2, 3]
    assert record['traits'][0]['head'] == record['ranking'][0] and record['class_name'] == 'abcde'[record['class']]
    json.dumps(exp.records)
    files = exp.save_figures(tmp_path, ['a', 'b'], pixels, model.class_names)
    assert [Path(f).name for f in files] == ['a_traits.png', 'b_traits.png'] and all(Path(f).stat().st_size for f
                                                                                     in files)


def _classifier_checkpoint(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(5)
    classifier = MODELS.build(dict(type='ImageClassifier', backbone=dict(VIT),
                                   head=dict(type='LinearClsHead', num_classes=C)))
    path = tmp_path / 'epoch_1.pth'
    torch.save({'state_dict': classifier.state_dict(), 'meta': {}}, path)
    return path, classifier


def test_backbone_checkpoint_of_a_classifier_is_loaded_and_never_exported(tmp_path):
    path, classifier = _classifier_checkpoint(tmp_path)
    model = build(backbone_checkpoint=str(path))
    for key, value in classifier.backbone.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[key], value)
    saved = model.save_pretrained(tmp_path / 'export')
    assert 'backbone_checkpoint' not in saved.config['model_args']
    bad = dict(saved.config, model_args=dict(saved.config['model_args'], backbone_checkpoint=str(path)))
    (tmp_path / 'export' / 'config.json').write_text(json.dumps(bad))
    with pytest.raises(SecurityError):
        zoo.load(f'local-dir:{tmp_path / "export"}')
    with pytest.raises(CheckpointError, match='does not fit'):
        build(backbone_checkpoint=str(path), backbone=dict(VIT, depth=2))
    with pytest.raises(CheckpointError, match='does not exist'):
        build(backbone_checkpoint=str(tmp_path / 'nope.pth'))


def test_export_round_trip_equal_outputs_and_maps(tmp_path):
    from safetensors.torch import save_file

    weights = tmp_path / 'vit.safetensors'  # timm-format backbone weights, as a downloaded pretrained file
    import timm
    save_file(timm.create_model('test_vit', img_size=32, patch_size=8, depth=3, num_heads=4,
                                num_classes=0).state_dict(), str(weights))
    model = build(backbone=dict(VIT, pretrained=str(weights)))
    with torch.no_grad():
        model.prompts.normal_()  # "trained" prompts
    saved = model.save_pretrained(tmp_path / 'export')
    config = json.loads((tmp_path / 'export' / 'config.json').read_text())
    backbone = config['model_args']['backbone']
    assert config['architecture'] == 'PromptCAMViT' and backbone['model_name'] == 'test_vit'
    assert backbone['pretrained'] is False and config['explainer']['method'] == 'promptcam'
    assert set(saved.files) == {'config.json', 'model.safetensors'}
    loaded = zoo.load(f'local-dir:{tmp_path / "export"}')
    assert type(loaded) is PromptCAMViT and not loaded.training
    model.eval()
    pixels = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    assert torch.equal(model(model.prepare(pixels)), loaded(loaded.prepare(pixels)))
    assert torch.equal(model.explain(pixels), loaded.explain(pixels))
    assert torch.equal(model.explain(pixels, method='promptcam', top_traits=2),
                       loaded.explain(pixels, method='promptcam', top_traits=2))
    x = model.prepare(pixels)
    explainer = build_explainer('promptcam')
    assert torch.equal(explainer.head_maps(model, x), explainer.head_maps(loaded, x))
    assert model.explain(pixels, method='native').records == loaded.explain(pixels, method='native').records

    # the traits tool on the export: one PNG per image and the ranking as JSON
    from PIL import Image

    from .conftest import load_tool
    for name in ('a', 'b'):
        Image.fromarray(torch.randint(0, 256, (40, 40, 3), dtype=torch.uint8).numpy()).save(tmp_path / f'{name}.png')
    out = tmp_path / 'traits'
    load_tool('explain_traits').main(['--model', f'local-dir:{tmp_path / "export"}', str(tmp_path / 'a.png'),
                                      str(tmp_path / 'b.png'), '--out', str(out), '--top-traits', '2',
                                      '--size', '32', '--target', 'c'])
    records = json.loads((out / 'traits.json').read_text())
    assert sorted(p.name for p in out.glob('*.png')) == ['a_traits.png', 'b_traits.png']
    assert [r['class_name'] for r in records] == ['c', 'c'] and len(records[0]['traits']) == 2


def test_docs_example_runs():
    import re

    from .conftest import ROOT
    blocks = re.findall(r'```python\n(.*?)```', (ROOT / 'docs' / 'prompt_cam.md').read_text(), flags=re.S)
    assert blocks and 'PromptCAMViT' in blocks[0]
    exec(compile('\n'.join(blocks), 'docs/prompt_cam.md', 'exec'), {})
