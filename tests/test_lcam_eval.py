"""L-CAM's evaluation protocol: AD/IC on the top-p % of the map (``drop_Npercent`` exactly), several levels in one
pass, top-1/top-5 beside them; the ImageNet folder dataset; the L-CAM recipes."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import timm
import torch
from PIL import Image

from registry import DATASETS
from registry.errors import DataError
from zoo.apis.config import load_config
from zoo.metrics import AverageDrop, IncreaseInConfidence
from zoo.metrics.confidence import keep_top_share
from zoo.validation import check_components

ROOT = Path(__file__).resolve().parents[1]


def official_drop_npercent(cam: torch.Tensor, percent: float) -> torch.Tensor:
    """bmezaris/L-CAM ``utils/Metrics.drop_Npercent`` as the official code runs it, on one ``[1, 1, H, W]`` map."""
    if percent == 0:
        return cam
    _, _, h, w = cam.size()
    tmp = cam.clone()
    m = torch.kthvalue(torch.flatten(tmp), int(h * w * percent))
    tmp[tmp < m.values] = 0
    k = math.floor(torch.count_nonzero(tmp > 0) - math.ceil((1 - percent) * (h * w)))
    if k >= 1:
        indices = torch.nonzero(tmp == m.values)
        for pi in range(int(k)):
            tmp[tuple(indices[pi])] = 0
    return tmp


@pytest.mark.parametrize('share', [1.0, 0.5, 0.15, 0.3])
def test_lcam_keep_rule_is_drop_npercent(share):
    gen = torch.Generator().manual_seed(0)
    maps = (torch.rand(4, 12, 10, generator=gen) * 6).floor() / 5        # many ties, zeros included
    maps[1] = torch.rand(12, 10, generator=gen)                          # no ties
    ours = keep_top_share(maps, share, 'lcam')
    for i in range(4):
        ref = official_drop_npercent(maps[i][None, None].clone(), 1 - share)[0, 0]
        assert torch.equal(ours[i], ref), (share, i)
    stable = keep_top_share(maps, share, 'stable')
    assert int((stable[1] > 0).sum()) == round(share * 120)
    # drop_Npercent counts in floating point: 15 % of 120 pixels keeps ceil((1 - 0.85) · 120) = ceil(18.000000000000004)
    assert int((ours[1] > 0).sum()) == {1.0: 120, 0.5: 60, 0.15: 19, 0.3: 37}[share]


def test_several_levels_in_one_pass_and_top_k():
    torch.manual_seed(0)
    model = timm.create_model('test_resnet', num_classes=6).eval()
    model.data_preprocessor = torch.nn.Module()
    model.data_preprocessor.register_buffer('mean', torch.full((3, 1, 1), 120.0))
    model.data_preprocessor.register_buffer('std', torch.full((3, 1, 1), 60.0))
    images, maps = torch.randn(5, 3, 32, 32), torch.rand(5, 32, 32)
    targets = torch.tensor([0, 1, 2, 3, 4])
    levels = [1.0, 0.5, 0.15]
    results = {}
    for cls, shares in ((AverageDrop, levels), (IncreaseInConfidence, [0.5])):
        many = cls(keep_top=levels)(model, images, maps, targets=targets)
        results[cls] = many
        assert many.conventions['keep_top'] == levels and many.conventions['keep_rule'] == 'stable'
        assert many.curve.shape == (5, 3) and many.curve_x.tolist() == pytest.approx(levels)
        assert torch.equal(many.per_sample, many.curve[:, 0])
        for share in shares:
            i = levels.index(share)
            one = cls(keep_top=share)(model, images, maps)
            assert one.curve is None and torch.allclose(many.curve[:, i], one.per_sample, atol=1e-5)
            assert many.extras['levels'][str(share)] == pytest.approx(one.aggregate, abs=1e-4)
    res = results[AverageDrop]  # top-1/top-5 on the images and on the explanation images of the first level
    with torch.no_grad():
        logits = model(images)
        out = model(AverageDrop(keep_top=1.0).explanation_images(model, images, maps))
    for name, lg, k in [('top1', logits, 1), ('top5', logits, 5), ('top1_explanation', out, 1),
                        ('top5_explanation', out, 5)]:
        hits = (lg.topk(k, 1).indices == targets[:, None]).any(1).float().mean().item() * 100
        assert res.extras[name] == pytest.approx(hits), name
    assert 'top1' not in AverageDrop()(model, images, maps).extras     # no ground truth, no accuracy
    with pytest.raises(Exception, match='keep_rule'):
        AverageDrop(keep_rule='official')
    with pytest.raises(Exception, match='share of pixels kept'):
        AverageDrop(keep_top=[1.0, 1.5])


def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new('RGB', (10, 8), (200, 10, 10)).save(path)


def test_imagenet_folder_layouts(tmp_path: Path):
    for wnid in ('n02', 'n01', 'n03'):
        _image(tmp_path / 'train' / wnid / 'a.JPEG')
    _image(tmp_path / 'val' / 'n03' / 'x.JPEG')
    _image(tmp_path / 'val' / 'n01' / 'y.jpeg')
    ds = DATASETS.build(dict(type='ImageNetFolder', data_root=str(tmp_path), split='val'))
    assert ds.class_names == ['n01', 'n02', 'n03'] and [ds.get_data_info(i)['gt_label'] for i in range(2)] == [0, 2]
    assert tuple(ds[0]['inputs'].shape) == (3, 8, 10)
    _image(tmp_path / 'flat' / 'ILSVRC2012_val_1.JPEG')
    (tmp_path / 'list.txt').write_text('ILSVRC2012_val_1.JPEG 2 \n\n')
    flat = DATASETS.build(dict(type='ImageNetFolder', data_root=str(tmp_path), split='flat',
                               ann_file=str(tmp_path / 'list.txt')))
    assert flat.class_names == ['n01', 'n02', 'n03'] and flat.get_data_info(0)['gt_label'] == 2
    (tmp_path / 'bad.txt').write_text('ILSVRC2012_val_1.JPEG 7\n')
    with pytest.raises(DataError, match='bad.txt:1'):
        DATASETS.build(dict(type='ImageNetFolder', data_root=str(tmp_path), split='flat',
                            ann_file=str(tmp_path / 'bad.txt')))
    _image(tmp_path / 'val' / 'n09' / 'z.JPEG')
    with pytest.raises(DataError, match='not one of the 3 classes'):
        DATASETS.build(dict(type='ImageNetFolder', data_root=str(tmp_path), split='val'))
    with pytest.raises(DataError, match='is not a folder'):
        DATASETS.build(dict(type='ImageNetFolder', data_root=str(tmp_path), split='test'))


@pytest.mark.parametrize('data', ['imagenet', 'clutteredfmnist'])
def test_recipes(data):
    backbone = 'resnet50' if data == 'imagenet' else 'efficientnetlite0'
    img = load_config(str(ROOT / f'configs/{backbone}_lcam-img_{data}.py'))
    fm = load_config(str(ROOT / f'configs/{backbone}_lcam-fm_{data}.py'))
    for cfg in (img, fm):
        check_components(cfg)
        opt = cfg.optim_wrapper
        assert opt.optimizer.type == 'SGD' and opt.optimizer.nesterov and opt.optimizer.momentum == 0.9
        assert opt.optimizer.weight_decay == 5e-4 and opt.paramwise_cfg.bias_lr_mult == 2.0
        assert cfg.param_scheduler[0].type == 'MultiStepLR' and cfg.param_scheduler[0].gamma == 0.95
        assert cfg.model.type == 'LCAMClassifier' and cfg.model.classifier_checkpoint
    assert (img.model.variant, fm.model.variant) == ('img', 'fm')
    assert img.model.classifier == fm.model.classifier
    if data == 'imagenet':  # the official schedule unchanged
        assert img.optim_wrapper.optimizer.lr == 1e-4 and img.train_cfg.max_epochs == 26
        assert img.param_scheduler[0].milestones == list(range(1, 13)) and img.train_dataloader.batch_size == 64
        assert img.model.classifier.backbone.model_name == 'resnet50.tv_in1k'
    else:  # the same classifier as the demo baseline recipe
        base = load_config(str(ROOT / 'configs/efficientnetlite0_baseline_clutteredfmnist.py'))
        assert img.model.classifier == base.model
        assert img.model.classifier_checkpoint == 'work_dirs/efficientnetlite0_baseline_clutteredfmnist'


@pytest.mark.slow
def test_embedded_recipe_trains_and_tests_through_the_tools(tmp_path: Path):
    """configs/efficientnetlite0_lcam-img_clutteredfmnist.py on a few images: tools/train.py on a classifier
    checkpoint, then tools/test.py --explainers lcam,gradcam with the paper's metrics."""
    import json

    from safetensors.torch import save_file

    from registry import MODELS

    from .conftest import load_tool

    base = load_config(str(ROOT / 'configs/efficientnetlite0_baseline_clutteredfmnist.py'))
    torch.manual_seed(0)
    clf = MODELS.build(dict(base.model, backbone=dict(base.model.backbone, pretrained=False)))
    save_file(clf.state_dict(), str(tmp_path / 'classifier.safetensors'))
    tiny = ['train_dataloader.dataset.num_samples=4', 'train_dataloader.batch_size=2',
            'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
            'test_dataloader.dataset.num_samples=4', 'test_dataloader.batch_size=2',
            'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False']
    recipe = str(ROOT / 'configs/efficientnetlite0_lcam-img_clutteredfmnist.py')
    load_tool('train').main([recipe, '--work-dir', str(tmp_path / 'run'), '--cfg-options', *tiny,
                             f'model.classifier_checkpoint={tmp_path / "classifier.safetensors"}',
                             'train_cfg.max_epochs=1'])
    load_tool('test').main([recipe, str(tmp_path / 'run' / 'epoch_1.pth'), '--work-dir', str(tmp_path / 'test'),
                            '--out', str(tmp_path / 'metrics.json'), '--explainers', 'lcam,gradcam',
                            '--explain-metrics', 'average_drop,increase_in_confidence,pointing_game',
                            '--cfg-options', *tiny])
    metrics = json.loads((tmp_path / 'metrics.json').read_text())['metrics']
    for key in ('explain/lcam/average_drop', 'explain/gradcam/increase_in_confidence',
                'explain/lcam/pointing_game', 'accuracy/top1'):
        assert key in metrics and not math.isnan(metrics[key]), key
    # the frozen classifier is the checkpoint's: Grad-CAM on the L-CAM model = Grad-CAM on the classifier
    trained = torch.load(tmp_path / 'run' / 'epoch_1.pth', map_location='cpu', weights_only=False)['state_dict']
    assert all(torch.equal(trained[f'classifier.{k}'], v) for k, v in clf.state_dict().items())
