"""Image-text models on tiny random open_clip models: the descriptor rule and scores against direct computations,
the text-embedding cache, export/load, where weights come from, and bad input."""
from __future__ import annotations

import json
import os
import sys

import pytest
import torch
import torch.nn.functional as F

import zoo
from registry import MODELS
from registry.errors import CheckpointError, ConfigError, DataError, SecurityError
from tests.hub_fixtures import fake_hub  # noqa: F401
from zoo.models.image_text import CLIPZeroShotClassifier, DescriptorClassifier, ImageTextModel
from zoo.models.image_text.prompts import CaptionSet, connective, descriptor_sentence, resolve_templates

TABLE = {'cat': ['whiskers', 'a long tail', 'has pointed ears'], 'dog': ['floppy ears', 'used for herding'],
         'bird': ['an orange beak', 'typically small', 'can fly']}

# (descriptor, official sentence for class "x"): adjectives, "has", "a/an", verbs and the character-prefix cases
OFFICIAL = [
    ('a seabird', 'x, which is a seabird'),
    ('an orange beak', 'x, which is an orange beak'),
    ('black and white', 'x, which has black and white'),
    ('long, narrow wings', 'x, which has long, narrow wings'),
    ('small', 'x, which has small'),
    ('has a hooked bill', 'x, which has a hooked bill'),
    ('often found near water', 'x, which often found near water'),
    ('typically brown', 'x, which typically brown'),
    ('may have spots', 'x, which may have spots'),
    ('can fly long distances', 'x, which can fly long distances'),
    ('used for cutting', 'x, which is used for cutting'),
    ('flies in flocks', 'x, which has flies in flocks'),
    ('swims underwater', 'x, which has swims underwater'),
    ('usually white', 'x, which has usually white'),
    ('two legs', 'x, which has two legs'),
    ('Alpine habitat', 'x, which has Alpine habitat'),
    ('antennae', 'x, which is antennae'),                 # starts with the character "a"
    ('canvas upper', 'x, which canvas upper'),            # starts with "can"
    ('hasp on the lid', 'x, which hasp on the lid'),      # starts with "has"
    ('mayfly-like wings', 'x, which mayfly-like wings'),  # starts with "may"
]


def tiny_image_text(name: str, **kw) -> dict:
    return dict(type='ImageTextModel', model_name=name, **kw)


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert '\n' not in text and len(text) < 600, text
    return text


@pytest.fixture
def images() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(4, 3, 32, 32)


# --- the sentence rule -------------------------------------------------------------------------------------------
@pytest.mark.parametrize('descriptor, expected', OFFICIAL)
def test_descriptor_sentence_follows_the_official_rule(descriptor, expected):
    assert descriptor_sentence('x', descriptor) == expected


def test_descriptor_sentence_switches():
    assert descriptor_sentence('Black_footed Albatross', 'a seabird') == 'Black footed Albatross, which is a seabird'
    assert descriptor_sentence('x', 'a seabird', inclusion='append') == 'which is a seabird, x'
    assert descriptor_sentence('x', 'a seabird', inclusion='none') == 'which is a seabird'
    assert descriptor_sentence('x', 'red', before='a photo of ', after='.') == 'a photo of x, which has red.'
    assert descriptor_sentence('x', 'red', rule='none') == 'x, red'
    # the first-word reading of the same table fixes the character-prefix cases, and only those
    assert [connective(d, 'first_word') for d in ('antennae', 'canvas upper', 'a seabird', 'has fur', 'used')] == \
        ['which has ', 'which has ', 'which is ', 'which ', 'which is ']
    with pytest.raises(ConfigError, match='inclusion must be one of'):
        descriptor_sentence('x', 'y', inclusion='middle')


def test_templates_and_captions():
    assert len(resolve_templates('openai_imagenet')) == 80
    assert resolve_templates('class_name') == ('{c}',)
    caps = CaptionSet(templates=['a {c}.'], definitions={'Bag': ['a container']}, descriptors={'Bag': ['a flat base']})
    assert caps.for_classes(['Bag']) == [['a Bag.', 'Bag', 'Bag: a container', 'Bag, which is a flat base']]
    shipped = CaptionSet(templates='fashion', definitions='fashion_mnist', descriptors='fashion_mnist')
    from zoo.datasets.cluttered_fmnist import CLASSES

    per_class = shipped.for_classes(list(CLASSES))
    assert len(per_class) == 10 and all(len(c) >= 15 for c in per_class)


# --- scores equal a direct computation ---------------------------------------------------------------------------
def _direct_text(name: str, sentences: list[str]) -> torch.Tensor:
    import open_clip

    return open_clip.get_tokenizer(name)(sentences)


def test_descriptor_scores_equal_mean_of_cosines(tiny_clip, images):
    model = MODELS.build(dict(type='DescriptorClassifier', image_text=tiny_image_text(tiny_clip), descriptors=TABLE))
    clip = model.image_text.clip.eval()
    with torch.no_grad():
        img = F.normalize(clip.encode_image(images), dim=-1)
        direct = []
        for name, descs in TABLE.items():
            sentences = [descriptor_sentence(name, d) for d in descs]
            txt = F.normalize(clip.encode_text(_direct_text(tiny_clip, sentences)), dim=-1)
            direct.append((img @ txt.T).mean(1))
        direct = torch.stack(direct, 1)
        ours = model.class_scores(model.encode_image(images))
        logits = model.eval()(images)
    assert model.class_names == list(TABLE)
    assert model.texts()[:3] == ['cat, which has whiskers', 'cat, which is a long tail', 'cat, which has pointed ears']
    torch.testing.assert_close(ours, direct, atol=1e-6, rtol=0)
    torch.testing.assert_close(logits, model.logit_scale * direct, atol=1e-5, rtol=0)
    # max aggregation (the official code's other choice) is the max of the same cosines
    maxed = MODELS.build(dict(type='DescriptorClassifier', image_text=model.image_text, descriptors=TABLE,
                              aggregation='max'))
    with torch.no_grad():
        s = maxed.descriptor_similarities(model.encode_image(images))
        torch.testing.assert_close(maxed.class_scores(model.encode_image(images))[:, 0], s[:, :3].amax(1))


def test_zero_shot_equals_prompt_ensemble(tiny_clip, images):
    templates = ['a photo of a {c}.', 'a drawing of a {c}.']
    model = MODELS.build(dict(type='CLIPZeroShotClassifier', image_text=tiny_image_text(tiny_clip),
                              class_names=['cat', 'dog', 'hot_dog'], templates=templates)).eval()
    clip = model.image_text.clip
    with torch.no_grad():
        img = F.normalize(clip.encode_image(images), dim=-1)
        classes = []
        for name in ['cat', 'dog', 'hot dog']:
            emb = F.normalize(clip.encode_text(_direct_text(tiny_clip, [t.format(c=name) for t in templates])), dim=-1)
            classes.append(F.normalize(emb.mean(0), dim=-1))
        direct = img @ torch.stack(classes).T
        torch.testing.assert_close(model(images), clip.logit_scale.exp() * direct, atol=1e-5, rtol=0)


# --- the text-embedding cache ------------------------------------------------------------------------------------
class TextCalls:
    """Counts forward passes of a model's text tower."""

    def __init__(self, model) -> None:
        self.n = 0
        self.handle = model.image_text.clip.transformer.register_forward_hook(self._hook)

    def _hook(self, *_):
        self.n += 1


def test_text_embeddings_computed_once_and_exported(tiny_clip, images, tmp_path):
    model = MODELS.build(dict(type='CLIPZeroShotClassifier', image_text=tiny_image_text(tiny_clip),
                              class_names=['cat', 'dog'], templates='simple_imagenet')).eval()
    calls = TextCalls(model)
    first = model(images)
    assert calls.n >= 1
    n = calls.n
    second = model(images)
    model.classify(images)
    assert calls.n == n, 'the second prediction ran the text tower'
    assert torch.equal(first, second)
    model.class_names = ['dog', 'cat']                    # new texts: recomputed once
    model(images)
    assert calls.n > n
    n = calls.n
    model(images)
    assert calls.n == n
    model.save_pretrained(tmp_path / 'zs')
    assert calls.n == n                                   # the export carries the cache as it is
    loaded = zoo.load(f'local-dir:{tmp_path / "zs"}')
    loaded_calls = TextCalls(loaded)
    torch.testing.assert_close(loaded(images), model(images), atol=1e-6, rtol=0)
    assert loaded_calls.n == 0, 'the loaded model re-embedded its class prompts'
    assert loaded.text_cache_valid


def test_descriptor_embeddings_do_not_depend_on_class_order(tiny_clip, images):
    model = MODELS.build(dict(type='DescriptorClassifier', image_text=tiny_image_text(tiny_clip),
                              descriptors=TABLE)).eval()
    calls = TextCalls(model)
    scores = model(images)
    n = calls.n
    model.class_names = ['bird', 'cat', 'dog']           # sentences are the same: no text forward pass
    torch.testing.assert_close(model(images), scores[:, [2, 0, 1]])
    assert calls.n == n


def test_contrastive_step_with_locked_text_keeps_the_cache(tiny_clip, images):
    from zoo.structures import DataSample

    model = MODELS.build(dict(type='CLIPZeroShotClassifier', image_text=tiny_image_text(tiny_clip, lock_text=True),
                              class_names=['cat', 'dog'], templates=['a {c}.'],
                              contrastive=dict(captions=dict(templates=['a photo of a {c}.'], class_name=True))))
    model(images)
    calls = TextCalls(model)
    samples = [DataSample().set_gt_label(i % 2) for i in range(4)]
    losses = model.train()(images, samples, mode='loss')
    losses['loss_contrastive'].backward()
    assert calls.n == 1                                   # the caption pool, once per run
    model(images, samples, mode='loss')
    assert calls.n == 1 and model.text_cache_valid        # locked text tower: class embeddings stay valid
    assert model.image_text.clip.visual.conv1.weight.grad is not None
    assert all(p.grad is None for p in model.image_text.text_parameters())
    unlocked = MODELS.build(dict(type='CLIPZeroShotClassifier', image_text=tiny_image_text(tiny_clip),
                                 class_names=['cat', 'dog'], templates=['a {c}.'],
                                 contrastive=dict(captions=dict(templates=['a photo of a {c}.']), positives='pair')))
    unlocked(images)
    unlocked.train()(images, samples, mode='loss')['loss_contrastive'].backward()
    assert not unlocked.text_cache_valid                  # a trainable text tower invalidates the cache
    assert unlocked.image_text.clip.token_embedding.weight.grad is not None


# --- export / load -----------------------------------------------------------------------------------------------
@pytest.fixture
def no_network(monkeypatch):
    import socket

    def refuse(*args, **kwargs):
        raise OSError('network access during a test that must stay offline')

    monkeypatch.setattr(socket.socket, 'connect', refuse)
    monkeypatch.setattr(socket, 'create_connection', refuse)


_OPENED: list[str] | None = None


def _audit(event: str, args: tuple) -> None:
    if _OPENED is not None and event == 'open' and isinstance(args[0], (str, bytes, os.PathLike)):
        _OPENED.append(os.fsdecode(args[0]))


sys.addaudithook(_audit)


def opened_during(fn):
    global _OPENED
    _OPENED = []
    try:
        result = fn()
    finally:
        paths, _OPENED = _OPENED, None
    return result, paths


@pytest.mark.parametrize('kind', ['zero_shot', 'descriptor'])
def test_export_load_round_trip(tiny_clip, images, tmp_path, kind, no_network):
    it = tiny_image_text(tiny_clip, freeze_image_until='transformer')
    if kind == 'zero_shot':
        model = MODELS.build(dict(type='CLIPZeroShotClassifier', image_text=it, class_names=list(TABLE),
                                  templates=['a photo of a {c}.', 'a {c}.']))
    else:
        path = tmp_path / 'descriptors.json'
        path.write_text(json.dumps(TABLE))
        model = MODELS.build(dict(type='DescriptorClassifier', image_text=it, descriptor_file=str(path)))
    model.eval().save_pretrained(tmp_path / 'export')
    config = json.loads((tmp_path / 'export' / 'config.json').read_text())
    assert config['model_args']['image_text']['pretrained'] is False
    assert 'descriptor_file' not in config['model_args'] and str(tmp_path) not in json.dumps(config)
    loaded, paths = opened_during(lambda: zoo.load(f'local-dir:{tmp_path / "export"}'))
    installed = (sys.prefix, sys.base_prefix, '/proc/', '/sys/', '/dev/')
    outside = [p for p in paths if not p.startswith(str(tmp_path / 'export')) and 'site-packages' not in p
               and not p.startswith(installed) and not p.endswith(('.py', '.pyc', '.so'))]
    assert any(p.endswith('config.json') for p in paths)  # the audit sees the loader's reads
    assert not outside, f'loading read files outside the export: {outside[:3]}'
    assert type(loaded) is type(model)
    pixels = (images * 40 + 128).clamp(0, 255).to(torch.uint8)
    torch.testing.assert_close(loaded(loaded.prepare(pixels)), model(model.prepare(pixels)), atol=1e-6, rtol=0)
    torch.testing.assert_close(loaded.explain(pixels, method='gradcam'), model.explain(pixels, method='gradcam'),
                               atol=1e-5, rtol=0)
    if kind == 'descriptor':
        ours, theirs = model.explain(pixels, method='native'), loaded.explain(pixels, method='descriptors')
        assert ours.records == theirs.records or all(
            a['class'] == b['class'] and [d['descriptor'] for d in a['descriptors']] ==
            [d['descriptor'] for d in b['descriptors']] for a, b in zip(ours.records, theirs.records))


def test_untrusted_export_cannot_name_files_or_remote_towers(tiny_clip, tmp_path, no_network):
    model = MODELS.build(dict(type='DescriptorClassifier', image_text=tiny_image_text(tiny_clip), descriptors=TABLE))
    model.save_pretrained(tmp_path / 'export')
    cfg_path = tmp_path / 'export' / 'config.json'
    original = json.loads(cfg_path.read_text())

    def attempt(mutate, error):
        config = json.loads(json.dumps(original))
        mutate(config['model_args'])
        cfg_path.write_text(json.dumps(config))
        with pytest.raises(error) as info:
            zoo.load(f'local-dir:{tmp_path / "export"}')
        return one_line(info.value)

    assert 'file path' in attempt(lambda a: a.update(descriptor_file='/etc/passwd'), SecurityError)
    assert 'pretrained' in attempt(lambda a: a['image_text'].update(pretrained='openai'), SecurityError)
    assert 'fetch' in attempt(lambda a: a['image_text'].update(model_name='hf-hub:evil/clip'), SecurityError)
    text_cfg = {'hf_model_name': 'bert-base-uncased', 'hf_proj_type': 'linear'}
    tower = dict(embed_dim=48, vision_cfg=dict(image_size=32, layers=1, width=32, patch_size=16, head_width=16),
                 text_cfg=text_cfg)
    msg = attempt(lambda a: a['image_text'].update(model_name=None, model_cfg=tower), ConfigError)
    assert "not one xzoo builds offline" in msg and 'all-MiniLM-L6-v2' in msg
    tiny = open_clip_config(tiny_clip)
    bpe = json.loads(json.dumps(tiny))
    bpe['text_cfg']['tokenizer_kwargs'] = {'bpe_path': 'vocab.txt.gz'}  # relative: would read the working dir
    assert 'bpe_path is refused' in attempt(lambda a: a['image_text'].update(model_name=None, model_cfg=bpe),
                                            ConfigError)
    timm_tower = dict(embed_dim=48, vision_cfg=dict(timm_model_name='test_resnet', timm_kwargs={
        'checkpoint_path': 'weights.pth'}), text_cfg=tiny['text_cfg'])
    assert 'checkpoint_path is refused' in attempt(
        lambda a: a['image_text'].update(model_name=None, model_cfg=timm_tower), ConfigError)


# --- where weights come from -------------------------------------------------------------------------------------
def test_pretrained_from_local_open_clip_and_xzoo_checkpoints(tiny_clip, images, tmp_path):
    import open_clip
    from safetensors.torch import save_file

    reference = open_clip.create_model(tiny_clip).eval()
    torch.save(reference.state_dict(), tmp_path / 'open_clip.pt')
    save_file(reference.state_dict(), str(tmp_path / 'open_clip.safetensors'))
    with torch.no_grad():
        expected = reference.encode_image(images, normalize=True)
        for name in ('open_clip.pt', 'open_clip.safetensors'):
            model = ImageTextModel(model_name=tiny_clip, pretrained=str(tmp_path / name)).eval()
            torch.testing.assert_close(model.encode_image(images), expected)
        wrapped = MODELS.build(dict(type='CLIPZeroShotClassifier', image_text=tiny_image_text(tiny_clip),
                                    class_names=['a', 'b']))
        wrapped.image_text.clip.load_state_dict(reference.state_dict())
        torch.save({'meta': {'epoch': 1}, 'state_dict': wrapped.state_dict()}, tmp_path / 'epoch_1.pth')
        model = ImageTextModel(model_name=tiny_clip, pretrained=str(tmp_path / 'epoch_1.pth')).eval()
        torch.testing.assert_close(model.encode_image(images), expected)
    with pytest.raises(ConfigError, match='neither a file nor an open_clip tag') as info:
        ImageTextModel(model_name=tiny_clip, pretrained='laion-nonsense')
    one_line(info.value)


def _publish_tiny(hub_api, repo: str, clip, cfg: dict, preprocess: dict | None = None) -> None:
    from safetensors.torch import save

    hub_api.create_repo(repo)
    body = {'model_cfg': cfg, **({'preprocess_cfg': preprocess} if preprocess else {})}
    hub_api.upload_file(path_or_fileobj=json.dumps(body).encode(), path_in_repo='open_clip_config.json', repo_id=repo)
    hub_api.upload_file(path_or_fileobj=save(clip.state_dict()), path_in_repo='open_clip_model.safetensors',
                        repo_id=repo)


def test_hf_hub_model_and_tag_load_then_export_offline(fake_hub, tiny_clip, images, tmp_path,  # noqa: F811
                                                       monkeypatch):
    import open_clip
    from huggingface_hub import HfApi
    from open_clip import pretrained as oc_pretrained

    cfg = open_clip.get_model_config(tiny_clip)
    source = open_clip.create_model(tiny_clip).eval()
    api = HfApi()
    _publish_tiny(api, 'lab/tiny-clip', source, cfg, {'mean': [0.5] * 3, 'std': [0.5] * 3})
    hub = MODELS.build(dict(type='CLIPZeroShotClassifier', class_names=['a', 'b'], templates=['{c}'],
                            image_text=dict(type='ImageTextModel', model_name='hf-hub:lab/tiny-clip'))).eval()
    with torch.no_grad():
        torch.testing.assert_close(hub.encode_image(images), source.encode_image(images, normalize=True))
    assert hub.preprocessing.mean == (0.5, 0.5, 0.5)
    hub.save_pretrained(tmp_path / 'hub_export')
    exported = json.loads((tmp_path / 'hub_export' / 'config.json').read_text())['model_args']['image_text']
    assert exported['model_name'] is None and exported['model_cfg']['embed_dim'] == cfg['embed_dim']
    before = len(fake_hub.requests)
    loaded = zoo.load(f'local-dir:{tmp_path / "hub_export"}')
    assert len(fake_hub.requests) == before                # nothing asked of the Hub
    torch.testing.assert_close(loaded(images), hub(images), atol=1e-6, rtol=0)

    # an open_clip pretrained tag (how 'openai' works), served by the fake Hub; the tag asks for QuickGELU
    quick = open_clip.create_model(tiny_clip, force_quick_gelu=True).eval()
    _publish_tiny(api, 'lab/tiny-tag', quick, cfg)
    tag = oc_pretrained._pcfg(hf_hub='lab/tiny-tag/', quick_gelu=True)
    monkeypatch.setitem(oc_pretrained._PRETRAINED, tiny_clip, {'xzootest': tag})
    model = ImageTextModel(model_name=tiny_clip, pretrained='xzootest').eval()
    reference = open_clip.create_model(tiny_clip, pretrained='xzootest', force_quick_gelu=True).eval()
    assert model.quick_gelu
    with torch.no_grad():
        torch.testing.assert_close(model.encode_image(images), reference.encode_image(images, normalize=True))
    offline = ImageTextModel.offline_args(dict(model_name=tiny_clip, pretrained='xzootest'))
    assert offline['pretrained'] is False and offline['quick_gelu'] is True


def test_preprocessing_matches_open_clip_transform(tiny_clip):
    import numpy as np
    import open_clip
    from PIL import Image

    model = MODELS.build(dict(type='CLIPZeroShotClassifier', class_names=['a', 'b'],
                              image_text=tiny_image_text(tiny_clip, preprocess_cfg=dict(size=48))))
    rgb = np.random.default_rng(0).integers(0, 256, (70, 90, 3), dtype=np.uint8)
    ours = model.prepare([rgb])
    theirs = open_clip.image_transform(48, is_train=False)(Image.fromarray(rgb))[None]
    assert ours.shape == theirs.shape == (1, 3, 48, 48)
    assert (ours - theirs).abs().mean() < 0.02              # torchvision tensor vs PIL resize of the same pixels


def test_text_encoder_adapter_matches_encode_text(tiny_clip):
    from registry import TEXT_ENCODERS

    model = ImageTextModel(model_name=tiny_clip).eval()
    enc = model.text_encoder()
    texts = ['a photo of a cat', 'a bird']
    with torch.no_grad():
        torch.testing.assert_close(F.normalize(enc.encode_text(texts).sentence, dim=-1), model.encode_text(texts),
                                   atol=1e-5, rtol=0)
        learner = TEXT_ENCODERS.build(dict(type='SharedPromptLearner', n_ctx=3),
                                      default_args=dict(width=enc.width, num_classes=2))
        names = [enc.tokenize_piece(n) for n in ('cat', 'dog')]
        feats = enc.encode(learner(enc, names, enc.tokenize_piece('.'), torch.arange(2)))
    assert feats.sentence.shape == (2, 1, model.embed_dim)
    assert not any(n.startswith('tower') for n, _ in enc.named_parameters())  # shared, not copied


def test_explain_images_draws_native_explanations(tiny_clip, tmp_path):
    import numpy as np
    from PIL import Image

    from zoo.apis.explaining import explain_images

    model = MODELS.build(dict(type='DescriptorClassifier', image_text=tiny_image_text(tiny_clip), descriptors=TABLE))
    rng = np.random.default_rng(0)
    for name in ('a', 'b', 'c'):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(tmp_path / f'{name}.png')
    res = explain_images(model, [tmp_path], methods=['native', 'gradcam'], out_dir=tmp_path / 'out', batch_size=2,
                         target='dog', progress=False)
    names = sorted(p.name for p in res.files)
    assert names == ['a_descriptors.png', 'a_gradcam.png', 'b_descriptors.png', 'b_gradcam.png',
                     'c_descriptors.png', 'c_gradcam.png', 'grid.png', 'native.json']
    assert [r['class'] for r in res.native_records] == ['dog'] * 3 and len(res.native) == 2  # two batches
    assert set(res.maps) == {'gradcam'}
    plain = MODELS.build(dict(type='ImageClassifier', backbone=dict(type='TimmBackbone', model_name='test_resnet'),
                              head=dict(type='LinearClsHead', num_classes=2)))
    with pytest.raises(ConfigError, match='has no explanation of its own') as info:
        explain_images(plain, [tmp_path], methods=['native'], progress=False)
    one_line(info.value)


# --- bad input ---------------------------------------------------------------------------------------------------
def test_bad_input_is_one_line(tiny_clip, tmp_path):
    it = tiny_image_text(tiny_clip)
    path = tmp_path / 'desc.json'
    path.write_text(json.dumps({'cat': ['whiskers'], 'dgo': ['floppy ears']}))
    with pytest.raises(DataError) as info:
        MODELS.build(dict(type='DescriptorClassifier', image_text=it, descriptor_file=str(path),
                          class_names=['cat', 'dog']))
    assert "no descriptors for class 'dog'" in one_line(info.value) and "Did you mean 'dgo'" in str(info.value)
    path.write_text(json.dumps({'cat': ['whiskers'], 'dog': []}))
    with pytest.raises(DataError) as info:
        MODELS.build(dict(type='DescriptorClassifier', image_text=it, descriptor_file=str(path)))
    assert "class 'dog' has an empty descriptors list" in one_line(info.value)
    with pytest.raises(DataError) as info:
        MODELS.build(dict(type='DescriptorClassifier', image_text=it, descriptor_file=str(tmp_path / 'nope.json')))
    assert 'does not exist' in one_line(info.value)
    with pytest.raises(ConfigError) as info:
        MODELS.build(dict(type='CLIPZeroShotClassifier', image_text=it, class_names=['a'],
                          templates=['a photo of a {class}.']))
    assert 'Unknown template field {class}' in one_line(info.value)
    with pytest.raises(ConfigError) as info:
        MODELS.build(dict(type='DescriptorClassifier', image_text=it, descriptors='fashion_mnst'))
    assert "Did you mean 'fashion_mnist'" in one_line(info.value)


def test_mismatched_embedding_widths_are_one_line(tiny_clip, tmp_path):
    minilm = dict(embed_dim=256, vision_cfg=dict(image_size=32, layers=1, width=32, patch_size=16, head_width=16),
                  text_cfg=dict(hf_model_name='all-MiniLM-L6-v2', hf_proj_type=None, hf_pooler_type='mean_pooler'))
    with pytest.raises(ConfigError) as info:
        ImageTextModel(model_cfg=minilm)
    assert 'gives 384-d features but embed_dim is 256' in one_line(info.value)
    small = MODELS.build(dict(type='CLIPZeroShotClassifier', image_text=tiny_image_text(tiny_clip),
                              class_names=['a', 'b'], templates=['{c}']))
    small.save_pretrained(tmp_path / 'export')
    cfg_path = tmp_path / 'export' / 'config.json'
    config = json.loads(cfg_path.read_text())
    other = open_clip_config(tiny_clip, embed_dim=40)
    config['model_args']['image_text'].update(model_name=None, model_cfg=other)
    cfg_path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError) as info:
        zoo.load(f'local-dir:{tmp_path / "export"}')
    assert 'text_embeddings' in one_line(info.value) or 'shape' in str(info.value)


def open_clip_config(name: str, **changes) -> dict:
    import open_clip

    return {**open_clip.get_model_config(name), **changes}


def test_zero_shot_needs_classes_and_loss_needs_captions(tiny_clip, images):
    from zoo.structures import DataSample

    with pytest.raises(ConfigError, match='needs class_names') as info:
        MODELS.build(dict(type='CLIPZeroShotClassifier', image_text=tiny_image_text(tiny_clip)))
    one_line(info.value)
    model = MODELS.build(dict(type='CLIPZeroShotClassifier', image_text=tiny_image_text(tiny_clip), num_classes=2))
    with pytest.raises(ConfigError, match='no class names') as info:
        model(images)
    with pytest.raises(ConfigError, match='without contrastive settings'):
        model(images, [DataSample().set_gt_label(0)] * 4, mode='loss')


def test_method_info_and_contract(tiny_clip):
    zs = CLIPZeroShotClassifier.method_info({'image_text': {}})
    assert zs['method'] == 'zero-shot-clip' and '2103.00020' in zs['paper']['bibtex']
    lit = CLIPZeroShotClassifier.method_info({'image_text': {'lock_text': True}, 'contrastive': {'captions': {}}})
    assert lit['method'] == 'lit-locked-text' and lit['paper']['arxiv'] == '2111.07991'
    desc = DescriptorClassifier.method_info({})
    assert desc['method'] == 'classification-by-description' and '@inproceedings{menon2023visual' in \
        desc['paper']['bibtex']
    assert DescriptorClassifier.training_only == ('contrastive',)
    assert DescriptorClassifier.component_args['image_text'] == 'MODELS'


def test_image_text_model_declares_what_it_reads():
    """The preflight learns from the component what it would read: Hub files, tags, tower weights, packages."""
    from zoo.core.assets import HubFiles, LocalPath, Package
    from zoo.models.image_text.model import ImageTextModel

    hub = ImageTextModel.required_assets({'model_name': 'hf-hub:org/clip', 'pretrained': None})
    assert [type(a) for a in hub] == [HubFiles] and hub[0].repo_id == 'org/clip'
    assert ImageTextModel.required_assets({'model_name': 'hf-hub:org/clip', 'pretrained': False}) == []
    openai = ImageTextModel.required_assets({'model_name': 'ViT-B-32', 'pretrained': 'openai'})
    assert len(openai) == 1 and 'openai' in openai[0].what
    assert ImageTextModel.required_assets({'model_name': 'ViT-B-32', 'pretrained': None}) == []
    lit = ImageTextModel.required_assets({'model_name': None, 'pretrained': dict(image='w.safetensors', text=True),
                                          'model_cfg': dict(embed_dim=8, vision_cfg=dict(timm_model_name='resnet18'),
                                                            text_cfg=dict(hf_model_name='all-MiniLM-L6-v2'))})
    assert [type(a) for a in lit] == [LocalPath, Package] and lit[0].paths == ('w.safetensors',)
