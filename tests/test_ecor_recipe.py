"""The ECOR recipe end to end on the tiny offline image-text model (MiniLM text tower): it trains (made tiny) with
both loss terms logged, tests with doubly-right accuracy, exports and loads, and tools/explain.py draws the
rationales under the image."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.conftest import ROOT, load_tool
from tests.image_text_fixtures import TINY_OPTIONS, tiny_lit  # noqa: F401

pytestmark = pytest.mark.slow
RECIPE = ROOT / 'configs' / 'lite0-minilm_ecor_clutteredfmnist.py'


def test_recipe_trains_tests_exports_and_explains(tiny_lit, tmp_path):  # noqa: F811
    from PIL import Image

    import zoo
    from registry import DATASETS
    from zoo.apis.testing import test

    options = {k: v for k, v in TINY_OPTIONS.items() if k != 'param_scheduler.0.end'}
    options.update({'model.image_text.pretrained': str(tiny_lit.checkpoint), 'train_dataloader.dataset.num_samples': 32,
                    'val_dataloader.dataset.num_samples': 16})
    zoo.train(str(RECIPE), work_dir=str(tmp_path / 'work'), cfg_options=options)
    log = next((tmp_path / 'work').glob('*/*.log')).read_text()
    assert 'loss_rationale' in log and 'loss_category' in log and 'doubly_right/RR' in log
    checkpoint = tmp_path / 'work' / 'epoch_1.pth'
    test_opts = {k.replace('val_dataloader', 'test_dataloader'): v for k, v in options.items()
                 if k.startswith(('model.', '+val_dataloader', 'val_dataloader'))}
    metrics = test(str(RECIPE), str(checkpoint), work_dir=str(tmp_path / 'test'), cfg_options=test_opts)
    cells = [metrics[f'doubly_right/{c}'] for c in ('RR', 'RW', 'WR', 'WW')]
    assert abs(sum(cells) - 100.0) < 1e-6 and metrics['doubly_right/top1'] == metrics['accuracy/top1']
    model = zoo.init_model(str(RECIPE), str(checkpoint), cfg_options=options)
    assert model.class_names[7] == 'Sneaker' and model.num_rationales == 27
    model.save_pretrained(tmp_path / 'export')
    loaded = zoo.load(f'local-dir:{tmp_path / "export"}')
    ds = DATASETS.build(dict(type='ClutteredFashionMNIST', split='test', num_samples=2, canvas_size=64,
                             object_size=(24, 40), clutter_size=(6, 10)))
    pixels = torch.stack([ds[i]['inputs'] for i in range(2)])
    torch.testing.assert_close(loaded.classify(pixels), model.classify(pixels), atol=1e-5, rtol=0)
    for i in range(2):
        Image.fromarray(pixels[i].permute(1, 2, 0).numpy().astype(np.uint8)).save(tmp_path / f'img{i}.png')
    out = tmp_path / 'out'
    argv = [str(RECIPE), str(checkpoint), str(tmp_path / 'img0.png'), str(tmp_path / 'img1.png'), '--method',
            'native,gradcam', '--out', str(out), '--no-progress', '--cfg-options',
            f'model.image_text.pretrained={tiny_lit.checkpoint}', '+test_dataloader.dataset.canvas_size=64']
    assert load_tool('explain').main(argv) == 0
    assert {'img0_rationales.png', 'img1_rationales.png', 'img0_gradcam.png', 'native.json'} <= \
        {p.name for p in out.iterdir()}
    records = json.loads((out / 'native.json').read_text())
    probs = [r['probability'] for r in records[0]['rationales']]
    assert len(probs) == 3 and probs == sorted(probs, reverse=True)
