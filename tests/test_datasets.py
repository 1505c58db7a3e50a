"""Datasets return image, label, box and mask; boxes and masks survive the transforms."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from registry import DATASETS
from registry.errors import DataError
from zoo.datasets.cluttered_fmnist import CLASSES


def _mask_box(mask: torch.Tensor) -> torch.Tensor:
    ys, xs = torch.nonzero(mask, as_tuple=True)
    return torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32)


def test_cub_reads_the_official_layout(fake_cub):
    train = DATASETS.build(dict(type='CUB200', data_root=str(fake_cub), split='train'))
    test = DATASETS.build(dict(type='CUB200', data_root=str(fake_cub), test_mode=True))
    assert len(train) == 8 and len(test) == 8 and test.split == 'test'
    assert len(train.class_names) == 200 and train.class_names[0] == 'Black footed Albatross'
    assert train.class_names[1] == 'Bird number 2'
    sample = train[0]['data_samples']
    assert sample.gt_label.item() == 0 and bool(sample.has_object)
    # the fake tree's segmentation is exactly the box
    assert torch.equal(_mask_box(sample.gt_mask), sample.gt_box)
    assert train[0]['inputs'].dtype == torch.uint8 and train[0]['inputs'].shape == (3, 72, 96)


def test_box_and_mask_stay_aligned_through_random_transforms(fake_cub):
    pipeline = [dict(type='Resize', size=(80, 80)), dict(type='RandomResizedCrop', size=48, scale=(0.5, 1.0)),
                dict(type='RandomHorizontalFlip', p=1.0), dict(type='PackInputs')]
    ds = DATASETS.build(dict(type='CUB200', data_root=str(fake_cub), split='train', pipeline=pipeline))
    torch.manual_seed(0)
    checked = 0
    for i in range(len(ds)):
        s = ds[i]['data_samples']
        assert s.gt_mask.shape == (48, 48) and s.img_shape == (48, 48)
        if s.gt_mask.sum() > 20:
            assert torch.allclose(_mask_box(s.gt_mask), s.gt_box, atol=1.5)
            checked += 1
    assert checked >= 4


def test_cub_without_segmentations_has_boxes_only(tmp_path):
    from .conftest import make_fake_cub
    root = make_fake_cub(tmp_path / 'CUB', with_segmentations=False)
    s = DATASETS.build(dict(type='CUB200', data_root=str(root)))[0]['data_samples']
    assert s.get('gt_mask') is None and s.gt_box.shape == (4,) and bool(s.has_object)


def test_cub_errors_name_what_is_missing(tmp_path, fake_cub):
    with pytest.raises(DataError, match=r"data_root '.*nope' does not exist.*data_root=PATH"):
        DATASETS.build(dict(type='CUB200', data_root=str(tmp_path / 'nope')))
    (fake_cub / 'train_test_split.txt').unlink()
    with pytest.raises(DataError, match=r"train_test_split.txt' is missing"):
        DATASETS.build(dict(type='CUB200', data_root=str(fake_cub)))


def test_unreadable_image_error_names_the_file(fake_cub):
    ds = DATASETS.build(dict(type='CUB200', data_root=str(fake_cub)))
    path = ds.get_data_info(0)['img_path']
    data = open(path, 'rb').read()
    open(path, 'wb').write(data[: len(data) // 3])  # truncated JPEG
    with pytest.raises(DataError, match=f'Cannot read image {path!r}.*truncated'):
        ds[0]


@pytest.mark.parametrize('mode', ['L', 'RGBA', 'P', 'CMYK', 'I;16'])
def test_non_rgb_images_are_converted_to_rgb(fake_cub, mode):
    ds = DATASETS.build(dict(type='CUB200', data_root=str(fake_cub)))
    path = ds.get_data_info(1)['img_path']
    img = Image.open(path).convert('RGB')
    img = img.convert('L').convert('I;16') if mode == 'I;16' else img.convert(mode)
    img.save(path, format='JPEG' if mode == 'CMYK' else 'PNG')  # a PNG behind a .jpg name, as in real scrapes
    out = ds[1]['inputs']
    assert out.shape[0] == 3 and out.dtype == torch.uint8


def test_cluttered_fashion_mnist_is_deterministic_with_exact_masks(fashion_mnist_dir):
    cfg = dict(type='ClutteredFashionMNIST', data_root=fashion_mnist_dir, split='test', num_samples=16)
    a, b = DATASETS.build(cfg), DATASETS.build(cfg)
    c = DATASETS.build(dict(cfg, seed=1))
    assert a.class_names == list(CLASSES)
    same = different = 0
    for i in range(16):
        sa, sb = a[i], b[i]
        assert torch.equal(sa['inputs'], sb['inputs']) and torch.equal(sa['data_samples'].gt_mask,
                                                                       sb['data_samples'].gt_mask)
        different += not torch.equal(sa['inputs'], c[i]['inputs'])
        s = sa['data_samples']
        assert sa['inputs'].shape == (3, 128, 128) and s.gt_mask.shape == (128, 128)
        assert torch.equal(_mask_box(s.gt_mask), s.gt_box)  # the box is the mask's tight box
        frac = s.gt_mask.float().mean().item()
        assert 0.02 < frac < 0.3, frac
        same += 1
    assert same == 16 and different == 16


def test_cluttered_labels_are_the_real_fashion_mnist_labels(fashion_mnist_dir):
    from zoo.datasets.cluttered_fmnist import load_fashion_mnist
    ds = DATASETS.build(dict(type='ClutteredFashionMNIST', data_root=fashion_mnist_dir, split='train',
                             num_samples=50))
    _, labels = load_fashion_mnist(fashion_mnist_dir, 'train')
    for i in range(50):
        info = ds.get_data_info(i)
        assert info['gt_label'] == int(labels[info['src']])
    counts = np.bincount([ds.get_data_info(i)['gt_label'] for i in range(50)], minlength=10)
    assert (counts > 0).sum() >= 8  # a seeded random subset, not the first 50 files


def test_cluttered_val_split_is_carved_from_train_and_never_trained_on(fashion_mnist_dir):
    build = lambda split, **kw: DATASETS.build(dict(type='ClutteredFashionMNIST', data_root=fashion_mnist_dir,
                                                    split=split, **kw))
    train, val = build('train'), build('val')
    src = lambda ds: {ds.get_data_info(i)['src'] for i in range(len(ds))}
    assert len(train) == 54000 and len(val) == 6000 and not src(train) & src(val)
    # the training subset of the recipes is what it was before the split existed: the first items of the same order
    assert [build('train', num_samples=5).get_data_info(i)['src'] for i in range(5)] == \
        [train.get_data_info(i)['src'] for i in range(5)]
    assert not torch.equal(build('val', num_samples=1)[0]['inputs'], build('train', num_samples=1)[0]['inputs'])
    with pytest.raises(DataError, match="'val' split is empty"):
        build('val', val_fraction=0.0)


def test_cub_val_split_is_a_seeded_share_of_each_class(tmp_path):
    from .conftest import make_fake_cub
    root = make_fake_cub(tmp_path / 'CUB', classes_with_images=3, per_class=20, size=(16, 16),
                         with_segmentations=False)
    build = lambda split, **kw: DATASETS.build(dict(type='CUB200', data_root=str(root), split=split, **kw))
    ids = lambda ds: sorted(ds.get_data_info(i)['img_path'] for i in range(len(ds)))
    train, val, trainval = build('train'), build('val'), build('trainval')
    assert len(trainval) == 30 and len(val) == 3 and len(train) == 27  # 10 % of each class's 10 training images
    assert sorted(ids(train) + ids(val)) == ids(trainval) and not set(ids(train)) & set(ids(test := build('test')))
    assert sorted(val.get_data_info(i)['gt_label'] for i in range(3)) == [0, 1, 2] and len(test) == 30
    assert ids(build('val')) == ids(val) and ids(build('val', split_seed=1)) != ids(val)
    with pytest.raises(DataError, match="'val' split is empty"):
        build('val', val_fraction=0.01)


def test_cluttered_canvas_gives_an_8x8_map_at_stride_16(fashion_mnist_dir):
    from registry import BACKBONES
    ds = DATASETS.build(dict(type='ClutteredFashionMNIST', data_root=fashion_mnist_dir, split='test',
                             num_samples=1))
    bb = BACKBONES.build(dict(type='TimmBackbone', model_name='tf_efficientnet_lite0', output_stride=16))
    assert bb(ds[0]['inputs'][None].float()).feature_map.shape[-2:] == (8, 8)


def test_cluttered_without_files_says_how_to_get_them(tmp_path, monkeypatch):
    import zoo.datasets.cluttered_fmnist as cf
    monkeypatch.setattr(cf, 'DEBIAN_DIR', str(tmp_path / 'none'))
    monkeypatch.setattr(cf, 'LOCAL_DIR', str(tmp_path / 'none2'))
    monkeypatch.delenv('XZOO_FASHION_MNIST', raising=False)
    with pytest.raises(DataError, match='make data.*apt-get install dataset-fashion-mnist.*zalandoresearch'):
        DATASETS.build(dict(type='ClutteredFashionMNIST'))
    with pytest.raises(DataError, match='no Fashion-MNIST files in data_root'):
        DATASETS.build(dict(type='ClutteredFashionMNIST', data_root=str(tmp_path)))


def test_synthetic_shapes_masks_cover_the_coloured_shape():
    ds = DATASETS.build(dict(type='SyntheticShapes', num_samples=12, image_size=48, seed=3))
    assert ds.class_names == [f'{c} {s}' for c in ('red', 'green', 'blue') for s in ('circle', 'square',
                                                                                    'triangle')]
    for i in range(12):
        item = ds[i]
        img, s = item['inputs'].int(), item['data_samples']
        colour = ds.class_names[int(s.gt_label)].split()[0]
        channel = ('red', 'green', 'blue').index(colour)
        inside = img[channel][s.gt_mask].float().mean()
        assert inside > 180  # the shape's pixels carry the class colour
        assert torch.equal(_mask_box(s.gt_mask), s.gt_box)
    again = DATASETS.build(dict(type='SyntheticShapes', num_samples=12, image_size=48, seed=3))
    assert torch.equal(ds[5]['inputs'], again[5]['inputs'])
    with pytest.raises(DataError, match="unknown colour/shape 'purple'"):
        DATASETS.build(dict(type='SyntheticShapes', colours=['purple']))
