"""The preflight (zoo.apis.preflight) and the prefetch (tools/prepare_data.py --recipe): every external asset of a
config derived from the config, checked before anything is built, all missing ones in one message; the prefetch
fills a Hugging Face cache from the loopback fake Hub after which the preflight passes offline without a request.

Per-recipe tests (every file of configs/, nothing hand-listed) are in test_preflight_recipes.py.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save as safetensors_bytes

from registry.errors import ConfigError
from tests.hub_fixtures import fake_hub  # noqa: F401
from zoo.apis.config import load_config
from zoo.apis.preflight import check, collect, preflight
from zoo.cli import run_cli
from zoo.core.assets import HubFiles, LocalPath, MissingAssetsError, Need, Package, wordnet

from .conftest import ROOT, load_tool, run_tool

LICO_CUB = str(ROOT / 'configs' / 'resnet50_lico_cub.py')
RESNET = ('timm/resnet50.a1_in1k', ('model.safetensors', 'pytorch_model.bin'))
CLIP = ('timm/vit_base_patch32_clip_224.openai', ('open_clip_model.safetensors', 'open_clip_pytorch_model.bin'))
prepare_tool = load_tool('prepare_data')


def _stand_in() -> bytes:
    """A small valid safetensors file: a stand-in for weights (the fake Hub serves it under the real names)."""
    return safetensors_bytes({'stand_in': torch.arange(4, dtype=torch.float32)})


@pytest.fixture
def offline_empty_cache(monkeypatch, tmp_path):
    from huggingface_hub import constants

    cache = tmp_path / 'empty-hf-cache'
    monkeypatch.setattr(constants, 'HF_HUB_CACHE', str(cache))
    monkeypatch.setattr(constants, 'HF_HUB_OFFLINE', True)
    return cache


def _data_root_options(root: Path) -> list[str]:
    return [f'{split}_dataloader.dataset.data_root={root}' for split in ('train', 'val', 'test')]


# --- the CUB recipe with nothing cached ------------------------------------------------------------------------------

def test_cub_recipe_lists_data_root_and_both_weights_in_one_message_from_a_real_process(tmp_path):
    """The issue's case: no CUB folder, no cached ResNet-50 or CLIP weights. One message, exit 2, no config dump,
    nothing written."""
    out = run_tool(str(ROOT / 'tools' / 'train.py'), LICO_CUB, cwd=tmp_path,
                   env={'HF_HUB_CACHE': str(tmp_path / 'empty-cache')})
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stdout == ''
    err = out.stderr
    assert err.startswith('error: ') and 'Traceback' not in err and 'Config:' not in err
    assert f'{LICO_CUB} needs 3 things that are not on this machine' in err
    for item, fragment in enumerate(["timm 'resnet50.a1_in1k' weights (Hub repo timm/resnet50.a1_in1k",
                                     "CLIP text tower weights (open_clip 'ViT-B-32', 'openai') (Hub repo "
                                     'timm/vit_base_patch32_clip_224.openai',
                                     "CUB200: data_root 'data/CUB_200_2011'"], 1):
        assert f'  {item}. {fragment}' in err, err
    for fix in ('--cfg-options model.backbone.pretrained=False', 'model.text_branch.encoder.pretrained=PATH',
                'train_dataloader.dataset.data_root=PATH val_dataloader.dataset.data_root=PATH',
                f'python tools/prepare_data.py --recipe {LICO_CUB}', 'https://www.vision.caltech.edu/datasets/',
                'HF_HUB_OFFLINE=1'):
        assert fix in err, fix
    assert len(err.splitlines()) < 20
    assert not list(tmp_path.glob('work_dirs/*/*.pth')) and not list(tmp_path.glob('work_dirs/*/2*'))  # no logs


def test_no_runner_is_built(offline_empty_cache, tmp_path, monkeypatch, capsys):
    import zoo.apis.training as training

    def no_runner(*args, **kwargs):
        raise AssertionError('the Runner was built')

    monkeypatch.setattr(training, 'build_runner', no_runner)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        run_cli(load_tool('train').main, [LICO_CUB, '--work-dir', str(tmp_path / 'work')])
    err = capsys.readouterr().err
    assert info.value.code == 2 and 'needs 3 things' in err
    assert not (tmp_path / 'work').exists()  # its lock released, nothing written


def test_one_missing_asset_is_one_line(offline_empty_cache, fake_cub):
    cfg = load_config(LICO_CUB, [*_data_root_options(fake_cub), 'model.backbone.pretrained=False'])
    with pytest.raises(MissingAssetsError) as info:
        preflight(cfg, 'train', config=LICO_CUB)
    text = str(info.value)
    assert '\n' not in text and not info.value.multiline
    assert text.startswith("CLIP text tower weights (open_clip 'ViT-B-32', 'openai')")
    assert [n.keys for n in info.value.needs] == [['model.text_branch.encoder.pretrained']]


# --- the prefetch against the loopback fake Hub -------------------------------------------------------------------

def test_prefetch_fills_the_cache_then_the_preflight_passes_offline_without_a_request(fake_hub, fake_cub,  # noqa: F811
                                                                                      tmp_path, capsys, monkeypatch):
    from huggingface_hub import constants

    for repo, names in (RESNET, CLIP):
        fake_hub.add_model(repo, {names[0]: _stand_in()})  # the safetensors file only, as timm/open_clip repos
    cache = tmp_path / 'cache'
    options = _data_root_options(fake_cub)
    prepare_tool.main(['--recipe', LICO_CUB, '--cache-dir', str(cache), '--cfg-options', *options])
    out = capsys.readouterr().out
    assert '2 fetched, 1 already here, 0 left.' in out, out
    assert 'Ready: it runs offline' in out and f'HF_HUB_CACHE={cache} HF_HUB_OFFLINE=1' in out
    fetched = {path for method, path in fake_hub.requests if method == 'GET' and '/resolve/' in path}
    assert fetched == {f'/{repo}/resolve/main/{names[0]}' for repo, names in (RESNET, CLIP)}

    monkeypatch.setattr(constants, 'HF_HUB_OFFLINE', True)
    before = len(fake_hub.requests)
    cfg = load_config(LICO_CUB, options)
    needs = preflight(cfg, 'train', config=LICO_CUB, cache_dir=str(cache))
    assert {n.asset.kind for n in needs} == {'HubFiles', 'LocalPath'} and all(n.location for n in needs)
    prepare_tool.main(['--recipe', LICO_CUB, '--cache-dir', str(cache), '--check', '--cfg-options', *options])
    assert 'all 3 external assets are here' in capsys.readouterr().out
    # the libraries themselves find the files offline where the prefetch put them
    from open_clip.pretrained import download_pretrained, get_pretrained_cfg
    from timm.models._hub import load_state_dict_from_hf

    state = load_state_dict_from_hf(RESNET[0], cache_dir=str(cache))
    assert torch.equal(state['stand_in'], torch.arange(4, dtype=torch.float32))
    path = download_pretrained(get_pretrained_cfg('ViT-B-32', 'openai'), cache_dir=str(cache))
    assert Path(path).is_file() and Path(path).name == CLIP[1][0] and str(cache) in path
    assert fake_hub.requests[before:] == []


def test_prefetch_says_what_it_cannot_fetch(fake_hub, tmp_path, capsys):  # noqa: F811
    fake_hub.add_model(RESNET[0], {RESNET[1][1]: _stand_in()})  # only the pickle: the second name is taken
    cache = tmp_path / 'cache'
    with pytest.raises(SystemExit) as info:
        run_cli(prepare_tool.main, ['--recipe', str(ROOT / 'configs' / 'resnet50_baseline_cub.py'), '--cache-dir',
                                    str(cache), '--cfg-options', *_data_root_options(tmp_path / 'no-cub')])
    captured = capsys.readouterr()
    assert info.value.code == 2
    assert 'fetched      timm' in captured.out and 'get by hand  CUB200' in captured.out
    assert 'https://www.vision.caltech.edu/datasets/cub_200_2011/' in captured.out
    assert '1 fetched, 0 already here, 1 left.' in captured.out
    err = captured.err
    assert err.startswith('error: CUB200: data_root') and 'does not exist' in err and '\n' not in err.strip()
    assert (cache / 'models--timm--resnet50.a1_in1k').is_dir()


def test_online_the_libraries_download_but_local_assets_still_count(fake_hub, fake_cub, tmp_path):  # noqa: F811
    """With downloads possible (the Hub answers) an uncached Hub file is not missing; a missing folder is."""
    cfg = load_config(LICO_CUB, _data_root_options(fake_cub))
    assert len(preflight(cfg, 'train', cache_dir=str(tmp_path / 'empty'))) == 3
    cfg = load_config(LICO_CUB, _data_root_options(tmp_path / 'nope'))
    with pytest.raises(MissingAssetsError) as info:
        preflight(cfg, 'train', cache_dir=str(tmp_path / 'empty'))
    assert [n.asset.what for n in info.value.needs] == ['CUB200']


def test_an_unreachable_hub_counts_as_offline(fake_hub, fake_cub, tmp_path, monkeypatch):  # noqa: F811
    from huggingface_hub import constants

    monkeypatch.setattr(constants, 'ENDPOINT', 'http://127.0.0.1:9')  # the discard port: nothing listens
    cfg = load_config(LICO_CUB, _data_root_options(fake_cub))
    with pytest.raises(MissingAssetsError, match=r'the Hub \(http://127.0.0.1:9\) cannot be reached') as info:
        preflight(cfg, 'train', cache_dir=str(tmp_path / 'empty'))
    assert len(info.value.needs) == 2


# --- the other entry points -----------------------------------------------------------------------------------

def test_test_checks_its_test_set_and_not_the_training_weights(offline_empty_cache, tmp_path, capsys):
    """tools/test.py loads a checkpoint: no backbone or CLIP weights are needed, only the test set."""
    ckpt = tmp_path / 'model.safetensors'
    ckpt.write_bytes(_stand_in())
    with pytest.raises(SystemExit):
        run_cli(load_tool('test').main, [LICO_CUB, str(ckpt), '--work-dir', str(tmp_path / 'w'), '--cfg-options',
                                         f'test_dataloader.dataset.data_root={tmp_path / "nope"}'])
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: CUB200: data_root') and '\n' not in err and 'test_dataloader.dataset.data_root' in err
    assert not (tmp_path / 'w').exists()


def test_explain_without_checkpoint_needs_the_backbone_weights(offline_empty_cache, tmp_path):
    from zoo.apis.explaining import explain

    image = tmp_path / 'a.png'
    from PIL import Image
    Image.new('RGB', (8, 8)).save(image)
    with pytest.raises(MissingAssetsError, match=r"^timm 'resnet50.a1_in1k' weights") as info:
        explain(LICO_CUB, None, [image], out_dir=tmp_path / 'out')
    assert [n.keys for n in info.value.needs] == [['model.backbone.pretrained']]  # the text branch is training-only
    assert not (tmp_path / 'out').exists()


def test_compare_lists_what_every_config_needs_before_any_run(offline_empty_cache, tmp_path):
    from zoo.apis.compare import compare

    configs = [str(ROOT / 'configs' / 'resnet50_baseline_cub.py'), LICO_CUB]
    with pytest.raises(MissingAssetsError) as info:
        compare(configs, seeds=2, out=str(tmp_path / 'cmp'), cfg_options=_data_root_options(tmp_path / 'nope'),
                progress=False)
    needs = info.value.needs
    assert len(needs) == 3  # ResNet-50 weights, CLIP weights, CUB (asked by both configs, every split)
    cub = next(n for n in needs if n.asset.what == 'CUB200')
    assert cub.sources == configs and set(cub.keys) == {f'{s}_dataloader.dataset.data_root' for s in
                                                        ('train', 'val', 'test')}
    assert str(info.value).startswith(' and '.join(configs) + ' need 3 things')
    assert not (tmp_path / 'cmp' / 'runs').exists()


# --- declarations ----------------------------------------------------------------------------------------------

def test_fashion_mnist_is_looked_for_where_the_dataset_looks(tmp_path, monkeypatch):
    """No data_root: $XZOO_FASHION_MNIST, Debian's folder, data/fashion-mnist; the fix adds the key with '+'."""
    monkeypatch.setenv('XZOO_FASHION_MNIST', str(tmp_path / 'fm'))
    cfg = load_config(dict(train_dataloader=dict(dataset=dict(type='ClutteredFashionMNIST', split='train'))))
    (need,), _ = collect(cfg, splits=('train',), model=False)
    assert need.asset.paths[:1] == (str(tmp_path / 'fm'),) and need.asset.paths[-1] == 'data/fashion-mnist'
    assert need.keys == ['+train_dataloader.dataset.data_root'] and need.asset.maker == 'fashion-mnist'
    assert ('train-images-idx3-ubyte.gz', 'train-images-idx3-ubyte') in need.asset.expect


def test_hf_text_encoder_declares_transformers_and_the_repo_or_package():
    def needs(name):
        cfg = {'model': dict(type='ImageClassifier', backbone=dict(type='TimmBackbone', model_name='test_resnet'),
                             head=dict(type='LinearClsHead', num_classes=2),
                             text_branch=dict(type='LICOTextBranch', prompt=dict(type='SharedPromptLearner'),
                                              encoder=dict(type='HFTextEncoder', model_name=name)))}
        return {n.asset.kind: n for n in collect(cfg, splits=())[0]}

    hub = needs('lab/tiny-bert')
    assert hub['HubFiles'].asset.repo_id == 'lab/tiny-bert' and hub['HubFiles'].asset.files[0] == ('config.json',)
    assert hub['HubFiles'].keys == ['model.text_branch.encoder.model_name']
    assert hub['Package'].asset.module == 'transformers'
    packaged = needs('all-MiniLM-L6-v2')
    assert set(packaged) == {'Package'}  # transformers and the package shipping the encoder: no Hub file


def test_local_checks_say_what_is_wrong(tmp_path):
    folder = LocalPath(what='Data', arg='data_root', paths=(str(tmp_path),), expect=(('a.txt', 'a.txt.gz'), ('b',)))
    (tmp_path / 'a.txt.gz').write_text('')
    assert folder.problem() == f"Data: data_root '{tmp_path}' is missing b"
    (tmp_path / 'b').mkdir()
    assert folder.problem() is None and folder.locate() == str(tmp_path)
    afile = LocalPath(what='W', arg='pretrained', paths=(str(tmp_path),), file=True)
    assert afile.problem().endswith('is a folder, not a file')
    assert 'is a file, not a folder' in LocalPath(what='D', paths=(str(tmp_path / 'a.txt.gz'),)).problem()
    assert Package(what='x', module='no_such_module_xzoo').problem() == "x (Python package 'no_such_module_xzoo') " \
                                                                        'is not installed'


def test_wordnet_is_found_through_wnhome(tmp_path, monkeypatch):
    monkeypatch.setenv('WNHOME', str(tmp_path))
    (tmp_path / 'dict').mkdir()
    assert wordnet(folder=str(tmp_path / 'dict')).problem() == f"WordNet 3.0: '{tmp_path / 'dict'}' is missing " \
                                                             'data.noun, index.noun, index.sense'
    for name in ('data.noun', 'index.noun', 'index.sense'):
        (tmp_path / 'dict' / name).write_text('')
    assert wordnet().locate() == str(tmp_path / 'dict')


def test_a_declaration_that_fails_is_a_warning_not_a_refusal(monkeypatch):
    from zoo.models.backbones.timm_backbone import TimmBackbone

    def broken(cls, args):
        raise RuntimeError('library changed')

    monkeypatch.setattr(TimmBackbone, 'required_assets', classmethod(broken))
    cfg = {'model': dict(type='ImageClassifier', backbone=dict(type='TimmBackbone', model_name='resnet50',
                                                                pretrained=True),
                         head=dict(type='LinearClsHead', num_classes=2))}
    with pytest.warns(UserWarning, match='model.backbone: could not work out what TimmBackbone reads'):
        assert preflight(cfg, 'train', offline=True) == []


def test_hub_files_of_a_group_any_one_is_enough(tmp_path, fake_hub):  # noqa: F811
    from huggingface_hub import hf_hub_download

    fake_hub.add_model('lab/w', {'pytorch_model.bin': b'x'})
    hf_hub_download('lab/w', 'pytorch_model.bin', cache_dir=str(tmp_path))
    asset = HubFiles(what='w', repo_id='lab/w', files=(('model.safetensors', 'pytorch_model.bin'),))
    (need,) = check([Need(asset)], str(tmp_path))
    assert need.problem is None and need.location.endswith('pytorch_model.bin')
    asset = HubFiles(what='w', repo_id='lab/w', files=(('pytorch_model.bin',), ('config.json',)))
    (need,) = check([Need(asset)], str(tmp_path))
    assert need.problem.endswith(f': config.json not in the Hugging Face cache ({tmp_path})')


def test_prepare_data_refuses_to_download_offline(offline_empty_cache, capsys):
    with pytest.raises(SystemExit):
        run_cli(prepare_tool.main, ['--recipe', LICO_CUB])
    assert 'HF_HUB_OFFLINE=1 is set, so nothing can be downloaded' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        prepare_tool.parse_args(['--check'])  # needs --recipe


@pytest.mark.slow
def test_a_hub_text_tower_is_prefetched_and_then_built_offline(fake_hub, tmp_path, monkeypatch):  # noqa: F811
    """HFTextEncoder with a Hub id: the prefetch gets config, weights and tokenizer files (a tiny BERT served by the
    fake Hub), after which the encoder builds with HF_HUB_OFFLINE=1 from the cache and asks the Hub nothing."""
    from huggingface_hub import constants
    from transformers import BertConfig, BertModel, BertTokenizerFast

    from registry import TEXT_ENCODERS
    from zoo.apis.assets import prefetch

    src = tmp_path / 'tiny-bert'
    vocab = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'a', 'photo', 'of', 'bird', 'x', '.']
    src.mkdir()
    (src / 'vocab.txt').write_text('\n'.join(vocab) + '\n')
    BertTokenizerFast(vocab_file=str(src / 'vocab.txt')).save_pretrained(src)
    BertModel(BertConfig(vocab_size=len(vocab), hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=16, max_position_embeddings=32)).save_pretrained(src)
    fake_hub.add_model('lab/tiny-bert', {p.name: p.read_bytes() for p in src.iterdir() if p.is_file()})
    cfg = {'model': dict(type='ImageClassifier', backbone=dict(type='TimmBackbone', model_name='test_resnet'),
                         head=dict(type='LinearClsHead', num_classes=2),
                         text_branch=dict(type='LICOTextBranch', prompt=dict(type='SharedPromptLearner'),
                                          encoder=dict(type='HFTextEncoder', model_name='lab/tiny-bert')))}
    needs, _ = collect(cfg, splits=())
    done = prefetch(check(needs))
    assert [d.status for d in done] == ['present', 'fetched']  # transformers is installed; the repo is fetched
    monkeypatch.setattr(constants, 'HF_HUB_OFFLINE', True)
    before = len(fake_hub.requests)
    assert preflight(cfg, 'train')
    enc = TEXT_ENCODERS.build(dict(type='HFTextEncoder', model_name='lab/tiny-bert'))
    assert enc.encode_text(['a photo of a bird']).sentence.shape == (1, 8)
    assert fake_hub.requests[before:] == []


def test_weights_timm_takes_from_a_url_go_to_torchs_cache(fake_hub, tmp_path, monkeypatch):  # noqa: F811
    """A timm model without a Hub repo (e.g. gcvit) loads from torch's hub folder; the prefetch downloads there."""
    from zoo.apis.assets import prefetch
    from zoo.core.assets import UrlFile
    from zoo.models.assets import timm_weights

    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    (declared,) = timm_weights('gcvit_tiny', True)
    assert isinstance(declared, UrlFile) and declared.path.startswith(str(tmp_path / 'torch' / 'hub' / 'checkpoints'))
    fake_hub.add_model('lab/w', {'w.pth': b'weights'})
    asset = UrlFile(what='w', url=f'{fake_hub.endpoint}/lab/w/resolve/main/w.pth', path=str(tmp_path / 'c' / 'w.pth'))
    (need,) = check([Need(asset)])
    assert need.problem == f'w ({asset.url}) is not in {asset.path}'
    (done,) = prefetch([need])
    assert done.status == 'fetched' and Path(asset.path).read_bytes() == b'weights'
    assert check([Need(asset)])[0].problem is None


def test_an_unknown_pretrained_tag_is_a_config_error():
    cfg = {'model': dict(type='ImageClassifier', backbone=dict(type='TimmBackbone', model_name='resnet18.nope',
                                                                pretrained=True),
                         head=dict(type='LinearClsHead', num_classes=2))}
    with pytest.raises(ConfigError, match=r"timm model 'resnet18.nope': Invalid pretrained tag.*resnet18.a1_in1k"):
        collect(cfg, splits=())
