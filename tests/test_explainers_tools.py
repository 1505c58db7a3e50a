"""Pictures (zoo.viz), the explain API (zoo.apis.explaining) and the tools/explain.py command line."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

import zoo.apis
from registry import MODELS
from registry.errors import ConfigError, DataError
from zoo.apis.explaining import explain_images, find_images, input_size
from zoo.cli import run_cli
from zoo.viz import colorize, denormalize, overlay, save_grid, save_overlay

from .conftest import ROOT, load_tool


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    return MODELS.build(dict(type='ImageClassifier', class_names=['cat', 'dog', 'bird'],
                             backbone=dict(type='TimmBackbone', model_name='test_resnet'),
                             head=dict(type='LinearClsHead', num_classes=3)))


@pytest.fixture()
def image_dir(tmp_path: Path) -> Path:
    (tmp_path / 'imgs' / 'sub').mkdir(parents=True)
    Image.new('RGB', (50, 40), 'red').save(tmp_path / 'imgs' / 'a.png')
    Image.new('L', (30, 60), 128).save(tmp_path / 'imgs' / 'sub' / 'b.jpg')
    Image.new('RGB', (20, 20), 'blue').save(tmp_path / 'a.png')  # same stem as imgs/a.png
    (tmp_path / 'imgs' / 'notes.txt').write_text('not an image')
    return tmp_path


# --- zoo.viz ---------------------------------------------------------------------------------------------------
def test_overlay_and_colorize():
    img = torch.rand(3, 20, 30)
    col = colorize(torch.linspace(-3, 5, 600).reshape(20, 30))
    assert col.shape == (3, 20, 30) and float(col.min()) >= 0 and float(col.max()) <= 1
    assert torch.equal(overlay(img, torch.rand(20, 30), alpha=0.0), img)
    assert overlay((img * 255).to(torch.uint8), torch.rand(5, 6)).shape == (3, 20, 30)  # uint8, resized map
    assert overlay(torch.rand(1, 20, 30), torch.zeros(20, 30)).shape == (3, 20, 30)  # grey, constant map
    assert overlay(img, torch.rand(1, 20, 30)).shape == (3, 20, 30)  # a batch of one map
    with pytest.raises(DataError, match=r'\[H, W\]'):
        overlay(img, torch.rand(2, 20, 30))
    x = torch.rand(2, 3, 4, 4)
    mean, std = (120.0, 110.0, 100.0), (60.0, 50.0, 40.0)
    normed = (x * 255 - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    torch.testing.assert_close(denormalize(normed, mean, std), x)


def test_png_writers(tmp_path: Path):
    p = save_overlay(tmp_path / 'deep' / 'o.png', torch.rand(3, 24, 32), torch.rand(6, 8))
    assert Image.open(p).size == (32, 24)
    g = save_grid(tmp_path / 'g.png', torch.rand(3, 3, 16, 16), {'a': torch.rand(3, 16, 16), 'b': torch.rand(3, 4, 4)},
                  row_labels=['x', 'y', 'z'], title='t')
    assert Image.open(g).size == (600, 640)  # 3 columns x 3 rows of 2 inches at 100 dpi, plus the title
    with pytest.raises(DataError, match='2 maps for 3 images'):
        save_grid(tmp_path / 'bad.png', torch.rand(3, 3, 8, 8), {'a': torch.rand(2, 8, 8)})


# --- zoo.apis.explaining --------------------------------------------------------------------------------------------
def test_explain_images_writes_overlays_and_grid(model, image_dir: Path):
    out = image_dir / 'out'
    res = explain_images(model, [image_dir / 'imgs', image_dir / 'a.png'], methods=['gradcam', 'gradcam++'],
                         target='dog', out_dir=out, size=64, batch_size=2, progress=False)
    assert [p.name for p in res.paths] == ['a.png', 'b.jpg', 'a.png']
    assert set(res.maps) == {'gradcam', 'gradcam++'} and res.maps['gradcam'].shape == (3, 64, 64)
    names = sorted(p.name for p in out.iterdir())
    assert names == ['a_2_gradcam.png', 'a_2_gradcampp.png', 'a_gradcam.png', 'a_gradcampp.png', 'b_gradcam.png',
                     'b_gradcampp.png', 'grid.png']
    assert Image.open(out / 'b_gradcam.png').size == (64, 64)
    assert len(res.pred_labels) == len(res.pred_scores) == 3
    direct = explain_images(model, [image_dir / 'imgs' / 'a.png'], methods=['gradcam'], target=1, size=64,
                            progress=False)
    torch.testing.assert_close(direct.maps['gradcam'][0], res.maps['gradcam'][0])
    assert direct.files == []  # out_dir=None writes nothing


def test_explain_images_errors(model, image_dir: Path):
    with pytest.raises(DataError, match='does not exist'):
        find_images([image_dir / 'missing'])
    (image_dir / 'empty').mkdir()
    with pytest.raises(DataError, match='No images'):
        find_images([image_dir / 'empty'])
    with pytest.raises(ConfigError, match="Did you mean 'dog'"):
        explain_images(model, [image_dir / 'a.png'], target='dgo', size=32, progress=False)
    with pytest.raises(ConfigError, match='out of range'):
        explain_images(model, [image_dir / 'a.png'], target=7, size=32, progress=False)
    (image_dir / 'broken.png').write_bytes(b'not a png')
    with pytest.raises(DataError, match='Cannot read image'):
        explain_images(model, [image_dir / 'broken.png'], size=32, progress=False)
    for bad in (0, -1, 2.5, True):  # the Python API checks what the CLI's argparse would
        with pytest.raises(ConfigError, match='batch_size must be a positive integer'):
            explain_images(model, [image_dir / 'a.png'], size=32, batch_size=bad, progress=False)
    assert input_size(model) == (160, 160) and input_size(model, 96) == (96, 96)


# --- tools/explain.py ---------------------------------------------------------------------------------------------
def _exit_code(tool, argv) -> int:
    try:
        return run_cli(tool.main, argv)
    except SystemExit as exc:
        return int(exc.code)


def test_cli_with_a_model_loader(model, image_dir: Path, monkeypatch, capsys):
    calls = []

    def fake_init_model(config, checkpoint, device='cpu', cfg_options=None):
        calls.append((config, checkpoint, device, cfg_options))
        return model

    monkeypatch.setattr(zoo.apis, 'init_model', fake_init_model)
    tool = load_tool('explain')
    out = image_dir / 'cli'
    code = _exit_code(tool, ['cfg.py', 'ckpt.pth', str(image_dir / 'imgs'), '--method', 'gradcam,eigencam',
                             '--method', 'layercam', '--target', 'bird', '--out', str(out), '--size', '48',
                             '--no-progress', '--cfg-options', 'model.head.num_classes=3'])
    assert code == 0
    assert calls == [('cfg.py', 'ckpt.pth', 'cpu', ['model.head.num_classes=3'])]
    assert (out / 'grid.png').exists() and (out / 'b_layercam.png').exists() and (out / 'a_eigencam.png').exists()
    assert '2 image(s) x 3 method(s) -> 7 PNG(s)' in capsys.readouterr().out
    assert _exit_code(tool, ['cfg.py', 'none', str(image_dir / 'nope'), '--out', str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: ') and 'does not exist' in err and '\n' not in err
    assert calls[-1][1] is None  # 'none' means no checkpoint
    assert _exit_code(tool, ['cfg.py', 'c.pth', str(image_dir / 'a.png'), '--method', 'gradcma', '--out',
                             str(out)]) == 2
    assert "Did you mean 'gradcam'" in capsys.readouterr().err


SMALL_CUB = ['model.backbone.pretrained=False', 'model.backbone.model_name=test_resnet', 'model.head.num_classes=3',
             'test_dataloader.dataset.pipeline.0.size=(72,72)', 'test_dataloader.dataset.pipeline.1.size=64']


def test_cli_end_to_end_with_a_config_and_checkpoint(image_dir: Path, capsys):
    """The real loader: config + cfg-options + checkpoint (class names from its meta) + the test pipeline."""
    config = str(ROOT / 'configs' / 'resnet50_baseline_cub.py')
    net = zoo.apis.init_model(config, None, cfg_options=SMALL_CUB)
    ckpt = image_dir / 'model.pth'
    torch.save({'state_dict': net.state_dict(), 'meta': {'dataset_meta': {'classes': ['ant', 'bee', 'cow']}}}, ckpt)
    out = image_dir / 'e2e'
    explain_tool = load_tool('explain')
    code = _exit_code(explain_tool, [config, str(ckpt), str(image_dir / 'imgs'), '--method', 'gradcam', '--method',
                                     'scorecam', '--target', 'cow', '--out', str(out), '--no-progress',
                                     '--cfg-options', *SMALL_CUB])
    assert code == 0, capsys.readouterr().err
    assert Image.open(out / 'a_gradcam.png').size == (64, 64)  # Resize 72 + CenterCrop 64 from the config
    assert sorted(p.name for p in out.iterdir()) == ['a_gradcam.png', 'a_scorecam.png', 'b_gradcam.png',
                                                    'b_scorecam.png', 'grid.png']
    assert _exit_code(explain_tool, [config, str(ckpt), str(image_dir / 'imgs'), '--target', 'dog', '--out', str(out),
                                     '--cfg-options', *SMALL_CUB]) == 2
    assert "Unknown target class 'dog'" in capsys.readouterr().err
