"""Export: plain-JSON config, inference-only safetensors, model card; local round trip; the push tool's dry run."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from safetensors import safe_open
from torch import nn

import zoo
from tests.conftest import run_tool
from tests.hub_fixtures import CLASSES, copy_export, exported, logits, probe_images, trained  # noqa: F401


def test_export_folder(exported, trained):  # noqa: F811
    assert sorted(p.name for p in exported.iterdir()) == ['README.md', 'config.json', 'model.safetensors']
    config = json.loads((exported / 'config.json').read_text())
    assert config['format'] == 'xzoo-classifier' and config['architecture'] == 'ImageClassifier'
    assert config['class_names'] == CLASSES and config['num_classes'] == 4
    assert config['model_args']['backbone'] == {'type': 'TimmBackbone', 'model_name': 'test_resnet',
                                                'pretrained': False}
    assert 'alignment_heads' not in config['model_args'] and 'text_branch' not in config['model_args']
    pre = config['preprocessing']
    assert pre['input_size'] == [3, 32, 32] and pre['resize'] == [40, 40] and pre['crop_pct'] == 0.8
    assert pre['mean'] == [0.5] * 3 and pre['pipeline'] == [{'type': 'Resize', 'size': [40, 40]},
                                                            {'type': 'CenterCrop', 'size': 32}]
    assert config['explainer']['method'] == 'gradcam'
    assert config['training']['alignment_heads'] == ['ToyAlignmentHead']
    assert config['training']['recipe'] == 'tiny_shapes.py'


def test_exported_weights_hold_no_training_only_tensor(exported, trained):  # noqa: F811
    """The training checkpoint has alignment-head weights; the exported file must not."""
    ckpt = torch.load(trained / 'iter_3.pth', map_location='cpu', weights_only=False)
    assert any(k.startswith('alignment_heads.') for k in ckpt['state_dict'])
    with safe_open(exported / 'model.safetensors', 'pt') as fh:
        keys = list(fh.keys())
        assert fh.metadata()['producer'].startswith('xzoo')
    assert keys and not any(k.startswith(('alignment_heads.', 'text_branch.')) for k in keys)
    assert {k for k in ckpt['state_dict'] if not k.startswith('alignment_heads.')} == set(keys)


def test_text_branch_is_dropped_too(tmp_path):
    """A LICO-style classifier (text branch + alignment heads, in the config and as modules) exports neither."""
    from mmengine.config import Config

    from zoo.hub.export import save_pretrained

    cfg = Config(dict(model=dict(
        type='ImageClassifier', backbone=dict(type='TimmBackbone', model_name='test_resnet'),
        head=dict(type='LinearClsHead', num_classes=2), alignment_heads=[dict(type='OTAlignmentHead')],
        text_branch=dict(type='LICOTextBranch', encoder=dict(type='OpenCLIPTextEncoder', pretrained='openai')),
        alignment_defaults=dict(spatial_size=4)),
        test_dataloader=dict(dataset=dict(type='SyntheticShapes', pipeline=[dict(type='PackInputs')]))))
    from registry import MODELS
    model = MODELS.build(dict(type='ImageClassifier', backbone=dict(type='TimmBackbone', model_name='test_resnet'),
                              head=dict(type='LinearClsHead', num_classes=2), alignment_heads=[nn.Linear(3, 3)]))
    model.text_branch = nn.Linear(5, 5)  # what the LICO classifier holds
    res = save_pretrained(model, tmp_path / 'out', cfg, class_names=['a', 'b'])
    with safe_open(tmp_path / 'out' / 'model.safetensors', 'pt') as fh:
        assert not any(k.startswith(('alignment_heads.', 'text_branch.')) for k in fh.keys())
    assert set(res.config['model_args']) == {'backbone', 'head', 'data_preprocessor'}
    assert res.config['training']['method'] == 'lico'
    assert res.config['training']['text_branch'] == 'LICOTextBranch'
    assert res.config['preprocessing']['input_size'] == [3, 64, 64]  # SyntheticShapes' default image_size
    assert 'author    = {Lei' in (tmp_path / 'out' / 'README.md').read_text()


def test_local_dir_round_trip_gives_equal_outputs(exported, trained):  # noqa: F811
    from zoo.hub.export import load_trained

    original, _ = load_trained(trained)
    model = zoo.load(f'local-dir:{exported}')
    assert model.class_names == CLASSES and model.preprocessing.hw == (32, 32)
    images = probe_images()
    assert torch.equal(logits(original, images), logits(model, images))
    maps = model.explain(images, targets=1)
    assert tuple(maps.shape) == (4, 32, 32) and 0 <= float(maps.min()) and float(maps.max()) <= 1


def test_model_card(exported):  # noqa: F811
    card = ModelCard.load(exported / 'README.md')
    assert card.data.library_name == 'xzoo' and card.data.pipeline_tag == 'image-classification'
    assert 'explainability' in card.data.tags
    (result,) = card.data.eval_results
    assert (result.metric_type, result.metric_value) == ('accuracy_top1', 50.0)
    assert "zoo.load('hf-hub:xzoo-test/tiny-shapes')" in card.text and '## Citation' in card.text
    assert 'model.safetensors' in card.text and 'never unpickles' in card.text


def test_card_with_explanation_metrics_and_figure(exported, tmp_path):  # noqa: F811
    from zoo.hub.card import build_card

    config = json.loads((exported / 'config.json').read_text())
    metrics = {'metrics': {'accuracy/top1': 71.25, 'deletion_auc': {
        'value': 0.123, 'explainer': 'gradcam', 'steps': 100, 'conventions': {'baseline': 'blur'}}}}
    card = build_card(config, repo_id='lab/m', metrics=metrics, figure='saliency.png',
                      dataset={'name': 'CUB-200-2011', 'hf_id': 'cub_200_2011', 'split': 'test'}, license='mit')
    results = {r.metric_type: r for r in card.data.eval_results}
    assert results['deletion_auc'].metric_args == {'explainer': 'gradcam', 'steps': 100, 'baseline': 'blur'}
    assert results['accuracy_top1'].dataset_split == 'test' and card.data.license == 'mit'
    assert '![gradcam saliency overlays](saliency.png)' in card.text
    assert '| deletion_auc | 0.123 | explainer: gradcam; steps: 100; baseline: blur |' in card.text
    reloaded = ModelCard(str(card))  # the YAML round-trips through huggingface_hub
    assert len(reloaded.data.eval_results) == 2


def test_existing_card_is_kept_unless_overwrite(exported, tmp_path, trained):  # noqa: F811
    from zoo.hub.export import load_trained, save_pretrained

    folder = copy_export(exported, tmp_path / 'again')
    (folder / 'README.md').write_text('# my own card\n')
    model, cfg = load_trained(trained)
    save_pretrained(model, folder, cfg)
    assert (folder / 'README.md').read_text() == '# my own card\n'
    images = [tmp_path / 'a.png']
    from PIL import Image
    Image.new('RGB', (48, 40), 'red').save(images[0])
    res = save_pretrained(model, folder, cfg, overwrite_card=True, example_images=[str(p) for p in images])
    assert (folder / 'README.md').read_text().startswith('---')
    assert 'saliency.png' in res.files and (folder / 'saliency.png').stat().st_size > 0
    assert '(saliency.png)' in (folder / 'README.md').read_text()


def test_push_tool_dry_run_and_errors(trained, tmp_path):  # noqa: F811
    out = tmp_path / 'export'
    proc = run_tool('tools/push_to_hub.py', str(trained), '--repo-id', 'lab/tiny', '--dry-run', str(out),
                    timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert 'dry run, nothing pushed' in proc.stdout and f"local-dir:{out}" in proc.stdout
    assert {p.name for p in out.iterdir()} == {'README.md', 'config.json', 'model.safetensors'}
    proc = run_tool('tools/push_to_hub.py', str(tmp_path / 'nope'), '--repo-id', 'lab/tiny', '--dry-run',
                    str(out), timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith('error: ') and 'does not exist' in proc.stderr
    proc = run_tool('tools/push_to_hub.py', str(trained), '--repo-id', 'no-org', timeout=120)
    assert proc.returncode == 2 and 'must be ORG/NAME' in proc.stderr


def test_find_checkpoint(trained, tmp_path):  # noqa: F811
    from registry.errors import CheckpointError, ConfigError
    from zoo.hub.export import find_checkpoint

    config, ckpt = find_checkpoint(trained)
    assert Path(config).name == 'tiny_shapes.py' and Path(ckpt).name == 'iter_3.pth'
    assert find_checkpoint(trained / 'iter_3.pth') == (config, str(trained / 'iter_3.pth'))
    with pytest.raises(CheckpointError, match='holds no checkpoint'):
        find_checkpoint(tmp_path)
    torch.save({'state_dict': {}}, tmp_path / 'iter_1.pth')  # a complete checkpoint, but no config dump
    with pytest.raises(ConfigError, match='no config dump.*--config'):
        find_checkpoint(tmp_path)
