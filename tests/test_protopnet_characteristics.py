"""Explaining Prototypes: the modifications, the local score at the original image's patch, the global weighted
mean, and tools/explain_prototypes.py."""
from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from registry import MODELS
from registry.errors import ConfigError
from zoo.models.protopnet.characteristics import GlobalScores, local_scores, score_prototypes
from zoo.models.protopnet.modifications import MODIFICATIONS, PAPER_SETTINGS, modify, sine_warp

from .conftest import load_tool

EPS = 1e-4


def _colour_model():
    """A ProtoPNet whose latent grid is the image's mean colour per 8x8 cell (pixels / 255), with one red and one
    green prototype: its nearest patch is wherever the red (green) block is."""
    model = MODELS.build(dict(type='ProtoPNet', num_classes=2, prototypes_per_class=1, prototype_dim=3,
                              backbone=dict(type='TimmBackbone', model_name='test_resnet'),
                              data_preprocessor=dict(type='ClsDataPreprocessor', mean=[0.0] * 3,
                                                     std=[255.0] * 3))).eval()
    with torch.no_grad():
        model.prototype_vectors.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
    model.features = lambda x: F.avg_pool2d(x, 8)
    return model


def _block_image(cell: tuple[int, int], colour: tuple[int, int, int] = (255, 0, 0)) -> torch.Tensor:
    img = torch.zeros(3, 32, 32, dtype=torch.uint8)
    y, x = cell
    img[:, 8 * y:8 * y + 8, 8 * x:8 * x + 8] = torch.tensor(colour, dtype=torch.uint8).view(3, 1, 1)
    return img


def test_local_score_reads_the_modified_image_at_the_original_patch():
    model = _colour_model()
    x = _block_image((0, 0))[None]
    moved = _block_image((3, 3))[None]          # the "modification" moves the red block to the far corner
    local = local_scores(model, x, {'shape': moved})
    assert int(local.location[0, 0]) == 0       # red prototype: nearest patch (0, 0) of the original
    sim_orig = math.log(1 / EPS)                # d = 0 there
    d_mod = 1.0                                 # the modified image is black at (0, 0): d = |(1,0,0)|^2
    expect = sim_orig - math.log((d_mod + 1) / (d_mod + EPS))
    assert float(local.similarity[0, 0]) == pytest.approx(sim_orig, rel=1e-5)
    assert float(local.delta[0, 0, 0]) == pytest.approx(expect, rel=1e-5)
    # scoring the modified image at its *own* nearest patch would have said "no change"
    with torch.no_grad():
        own = model.similarity_of(model.distances(model.features(model.normalize(moved))).flatten(2).amin(-1))
    assert float(local.similarity[0, 0] - own[0, 0]) == pytest.approx(0.0, abs=1e-4)
    assert float(local.delta[0, 0, 0]) > 8.0


def test_local_score_with_the_real_sine_warp():
    """A 1-pixel-wide feature grid (features = pixels): the warp moves the red pixel, the score reads the old place."""
    model = _colour_model()
    model.features = lambda x: x
    img = torch.zeros(1, 3, 24, 24, dtype=torch.uint8)
    img[0, 0, 10, 5] = 255                                    # one red pixel, row 10: shifted by int(4 sin(pi/2)) = 4
    warped = sine_warp(img, 4, 0.05)
    assert warped[0, 0, 10, 5] == 0 and warped[0, 0].sum() == 255
    local = local_scores(model, img, {'shape': warped})
    assert int(local.location[0, 0]) == 10 * 24 + 5
    assert float(local.delta[0, 0, 0]) == pytest.approx(math.log(1 / EPS) - math.log(2 / (1 + EPS)), rel=1e-5)


def test_global_score_is_the_similarity_weighted_mean(tmp_path):
    torch.manual_seed(0)
    model = MODELS.build(dict(type='ProtoPNet', num_classes=2, prototypes_per_class=2, prototype_dim=8,
                              backbone=dict(type='TimmBackbone', model_name='test_resnet'))).eval()
    g = torch.Generator().manual_seed(1)
    batches = [dict(inputs=torch.randint(0, 256, (3, 3, 64, 64), dtype=torch.uint8, generator=g)) for _ in range(2)]
    mods = ('contrast', 'hue', 'shape')
    res = score_prototypes(model, batches, tmp_path, modifications=mods, chart_prototypes=2)
    # by hand, from the batches' own local scores
    locals_ = [local_scores(model, b['inputs'], modify(b['inputs'], mods)) for b in batches]
    sims = torch.cat([loc.similarity for loc in locals_]).double()          # [N, P]
    deltas = torch.cat([loc.delta for loc in locals_]).double()             # [N, M, P]
    for j in range(len(mods)):
        for p in range(4):
            hand = sum(float(deltas[n, j, p]) * float(sims[n, p]) for n in range(6)) / sum(float(sims[n, p])
                                                                                          for n in range(6))
            assert float(res.global_scores.scores[j, p]) == pytest.approx(hand, rel=1e-9, abs=1e-12)
    # the CSVs say the same (6 significant digits)
    rows = list(csv.DictReader(open(res.files['global_csv'])))
    assert len(rows) == 4 * 3 and rows[0]['modification'] == 'contrast'
    for r in rows:
        j, p = mods.index(r['modification']), int(r['prototype'])
        assert float(r['global_score']) == pytest.approx(float(res.global_scores.scores[j, p]), rel=1e-4, abs=1e-6)
    local_rows = list(csv.DictReader(open(res.files['local_csv'])))
    assert len(local_rows) == 6 * 4 * 3
    summary = res.summary['mean_global_score']
    assert summary['hue']['mean'] == pytest.approx(float(res.global_scores.scores[1].mean()), rel=1e-9)
    for key in ('prototype_chart', 'modification_chart', 'summary_md', 'summary_json'):
        assert res.files[key].stat().st_size > 100
    assert '| hue |' in res.files['summary_md'].read_text()


def test_global_scores_accumulate_weighted_sums():
    acc = GlobalScores(('hue',), 2)
    from zoo.models.protopnet.characteristics import LocalScores
    acc.update(LocalScores(torch.tensor([[1.0, 0.0]]), torch.tensor([[[2.0, 5.0]]]), torch.zeros(1, 2).long(),
                           ('hue',)))
    acc.update(LocalScores(torch.tensor([[3.0, 0.0]]), torch.tensor([[[-2.0, 1.0]]]), torch.zeros(1, 2).long(),
                           ('hue',)))
    assert acc.scores[0, 0].item() == pytest.approx((2 * 1 - 2 * 3) / 4)
    assert math.isnan(acc.scores[0, 1].item())           # never similar: no score, not 0
    assert acc.images == 2


def _numpy_sine_warp(img: np.ndarray, amplitude: float, frequency: float) -> np.ndarray:
    """The paper's shape modification, written from its definition: rows rolled along the width, then columns along
    the height, by int(A sin(pi i w))."""
    out = img.copy()
    for i in range(out.shape[0]):
        out[i] = np.roll(out[i], int(amplitude * np.sin(np.pi * i * frequency)), axis=0)
    for j in range(out.shape[1]):
        out[:, j] = np.roll(out[:, j], int(amplitude * np.sin(np.pi * j * frequency)), axis=0)
    return out


def test_modifications_match_their_definitions():
    import torchvision.transforms.v2 as T
    from skimage.restoration import denoise_nl_means

    g = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (2, 3, 40, 48), dtype=torch.uint8, generator=g)
    out = modify(pixels)
    assert tuple(out) == MODIFICATIONS and all(v.dtype == torch.uint8 and v.shape == pixels.shape
                                               for v in out.values())
    for i in range(2):
        ref = _numpy_sine_warp(pixels[i].permute(1, 2, 0).numpy(), 4, 0.05)
        assert np.array_equal(out['shape'][i].permute(1, 2, 0).numpy(), ref)
    jitter = {'contrast': T.ColorJitter(contrast=(0.45, 0.45)), 'saturation': T.ColorJitter(saturation=(0.7, 0.7)),
              'hue': T.ColorJitter(hue=(0.1, 0.1)), 'brightness': T.ColorJitter(brightness=(0.8, 0.8))}
    for name, tf in jitter.items():
        assert torch.equal(out[name], tf(pixels)), name
    den = denoise_nl_means(pixels[0].permute(1, 2, 0).numpy() / 255.0, patch_size=7, patch_distance=10,
                           h=4 / 255.0, fast_mode=True, channel_axis=-1)
    assert np.abs(out['texture'][0].permute(1, 2, 0).numpy().astype(float) - den * 255).max() <= 0.5 + 1e-6
    smooth = torch.full((1, 3, 32, 32), 120, dtype=torch.uint8) + torch.randint(0, 6, (1, 3, 32, 32),
                                                                               dtype=torch.uint8, generator=g)
    assert modify(smooth, ('texture',))['texture'].float().std() < smooth.float().std()   # denoised
    assert PAPER_SETTINGS['contrast'] == 0.45 and PAPER_SETTINGS['shape_amplitude'] == 4
    with pytest.raises(ConfigError, match='Unknown modification'):
        modify(pixels, ('blur',))
    with pytest.raises(ConfigError, match='hue shift must be in'):
        modify(pixels, ('hue',), {'hue': 0.9})


def test_explain_prototypes_tool(tmp_path, capsys):
    """CONFIG CHECKPOINT → CSVs, summary and PNGs; a never-pushed checkpoint is refused in one line."""
    from mmengine.dataset import pseudo_collate
    from torch.utils.data import DataLoader

    from registry import DATASETS
    from zoo.models.protopnet.push import push_prototypes

    shapes = "dict(type='SyntheticShapes', image_size=64, colours=('red', 'green'), shapes=('circle', 'square'))"
    (tmp_path / 'cfg.py').write_text(f"""
default_scope = 'zoo'
model = dict(type='ProtoPNet', num_classes=4, prototypes_per_class=2, prototype_dim=8,
             backbone=dict(type='TimmBackbone', model_name='test_resnet'))
push_dataloader = dict(batch_size=4, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
                       dataset=dict({shapes}, num_samples=8, split='train'))
test_dataloader = dict(batch_size=4, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
                       dataset=dict({shapes}, num_samples=6, split='test'))
""")
    torch.manual_seed(0)
    model = MODELS.build(dict(type='ProtoPNet', num_classes=4, prototypes_per_class=2, prototype_dim=8,
                              backbone=dict(type='TimmBackbone', model_name='test_resnet')))
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, tmp_path / 'raw.pth')
    ds = DATASETS.build(dict(type='SyntheticShapes', image_size=64, colours=('red', 'green'),
                             shapes=('circle', 'square'), num_samples=8, split='train'))
    push_prototypes(model, DataLoader(ds, batch_size=4, collate_fn=pseudo_collate))
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, tmp_path / 'pushed.pth')
    tool = load_tool('explain_prototypes')
    with pytest.raises(SystemExit) as err:
        from zoo.cli import run_cli
        run_cli(tool.main, [str(tmp_path / 'cfg.py'), str(tmp_path / 'raw.pth'), '--no-progress'])
    assert err.value.code == 2 and 'never pushed' in capsys.readouterr().err
    tool.main([str(tmp_path / 'cfg.py'), str(tmp_path / 'pushed.pth'), '--split', 'test', '--subset', '5',
               '--modifications', 'hue,shape', '--hue', '0.2', '--local-top-k', '2', '--out-dir',
               str(tmp_path / 'out'), '--no-progress'])
    printed = capsys.readouterr().out
    assert '| hue |' in printed and 'global_csv' in printed
    rows = list(csv.DictReader(open(tmp_path / 'out' / 'local_scores.csv')))
    assert len(rows) == 5 * 2 * 2 and {r['modification'] for r in rows} == {'hue', 'shape'}
    assert '"hue": 0.2' in (tmp_path / 'out' / 'summary.json').read_text()
    assert (tmp_path / 'out' / 'prototype_scores.png').is_file()
