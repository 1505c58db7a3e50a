"""The offline image-text model end to end: the LiT recipe trains (made tiny), is evaluated zero-shot by
tools/test.py, exports, loads by ``local-dir:`` with no text forward pass and nothing read outside the export, and a
DescriptorClassifier on its image-text weights explains with ranked descriptors through tools/explain.py."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.conftest import ROOT, load_tool
from tests.image_text_fixtures import tiny_lit  # noqa: F401

pytestmark = pytest.mark.slow
DESCRIPTORS = ROOT / 'configs' / 'lite0-minilm_descriptors_clutteredfmnist.py'


def _samples(n: int = 3):
    from registry import DATASETS

    ds = DATASETS.build(dict(type='ClutteredFashionMNIST', split='test', num_samples=n, canvas_size=64,
                             object_size=(24, 40), clutter_size=(6, 10)))
    return [ds[i] for i in range(n)]


def test_recipe_trains_exports_and_loads(tiny_lit):  # noqa: F811
    import zoo

    log = next(tiny_lit.work_dir.glob('*/*.log')).read_text()
    assert 'loss_contrastive' in log and 'accuracy/top1' in log
    config = json.loads((tiny_lit.export / 'config.json').read_text())
    it = config['model_args']['image_text']
    assert it['pretrained'] is False and it['model_cfg']['text_cfg']['hf_model_name'] == 'all-MiniLM-L6-v2'
    assert config['class_names'][7] == 'Sneaker' and config['architecture'] == 'CLIPZeroShotClassifier'
    loaded = tiny_lit.load()
    trained = zoo.init_model(str(ROOT / 'configs' / 'lite0-minilm_lit_clutteredfmnist.py'), str(tiny_lit.checkpoint),
                             cfg_options=tiny_lit.options)
    calls = []
    loaded.image_text.clip.text.register_forward_hook(lambda *_: calls.append(1))
    pixels = torch.stack([s['inputs'] for s in _samples()])
    torch.testing.assert_close(loaded.classify(pixels), trained.classify(pixels), atol=1e-6, rtol=0)
    assert calls == [], 'the loaded model re-embedded its class prompts'
    # only the image tower above blocks.4, its projection and the logit scale were trained
    assert not loaded.image_text.text_trainable
    # a DescriptorClassifier on the loaded image-text model exports and loads too (class names with '/' included)
    from registry import MODELS

    described = MODELS.build(dict(type='DescriptorClassifier', image_text=loaded.image_text,
                                  descriptors='fashion_mnist')).eval()
    described.save_pretrained(tiny_lit.export.parent / 'described')
    again = zoo.load(f'local-dir:{tiny_lit.export.parent / "described"}')
    assert again.class_names[0] == 'T-shirt/top'
    torch.testing.assert_close(again.classify(pixels), described.classify(pixels), atol=1e-6, rtol=0)
    # the MiniLM tower as a prompt-learning text encoder gives encode_text's features
    enc = loaded.image_text.text_encoder()
    with torch.no_grad():
        ours = F.normalize(enc.encode_text(['a photo of a Bag.', 'Sneaker']).sentence, dim=-1)
        torch.testing.assert_close(ours, loaded.encode_text(['a photo of a Bag.', 'Sneaker']), atol=1e-5, rtol=0)


def test_zero_shot_and_descriptor_evaluation_without_training_step(tiny_lit, tmp_path):  # noqa: F811
    from zoo.apis.testing import test

    common = {'test_dataloader.dataset.num_samples': 16, '+test_dataloader.dataset.canvas_size': 64,
              '+test_dataloader.dataset.object_size': [24, 40], 'test_dataloader.num_workers': 0,
              'test_dataloader.persistent_workers': False}
    zero_shot = test(str(ROOT / 'configs' / 'lite0-minilm_lit_clutteredfmnist.py'), str(tiny_lit.checkpoint),
                     work_dir=str(tmp_path / 'zs'), cfg_options=common)
    described = test(str(DESCRIPTORS), None, work_dir=str(tmp_path / 'desc'),
                     cfg_options={**common, 'model.image_text.pretrained': str(tiny_lit.checkpoint)})
    for metrics in (zero_shot, described):
        assert 0.0 <= metrics['accuracy/top1'] <= 100.0 and 'accuracy/top5' in metrics


def test_descriptor_explanations_through_the_explain_tool(tiny_lit, tmp_path):  # noqa: F811
    from PIL import Image

    for i, sample in enumerate(_samples()):
        Image.fromarray(sample['inputs'].permute(1, 2, 0).numpy().astype(np.uint8)).save(tmp_path / f'img{i}.png')
    out = tmp_path / 'out'
    argv = [str(DESCRIPTORS), 'none', str(tmp_path / 'img0.png'), str(tmp_path / 'img1.png'), '--method',
            'native,gradcam', '--out', str(out), '--no-progress', '--cfg-options',
            f'model.image_text.pretrained={tiny_lit.checkpoint}', '+test_dataloader.dataset.canvas_size=64']
    assert load_tool('explain').main(argv) == 0
    names = sorted(p.name for p in out.iterdir())
    assert {'img0_descriptors.png', 'img1_descriptors.png', 'img0_gradcam.png', 'grid.png', 'native.json'} <= \
        set(names)
    records = json.loads((out / 'native.json').read_text())
    assert len(records) == 2 and records[0]['image'].endswith('img0.png')
    sims = [d['similarity'] for d in records[0]['descriptors']]
    assert sims == sorted(sims, reverse=True) and len(sims) == 7
    assert abs(sum(d['contribution'] for d in records[0]['descriptors']) - records[0]['score']) < 1e-5
