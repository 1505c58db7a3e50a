"""Prompt-CAM against the fully trained ViT it freezes, on the embedded ClutteredFashionMNIST recipe.

Accuracy of both models on the recipe's test images, and the localisation of their maps against the exact object
masks: pointing game (mask, 15 px tolerance, plain mean over images) and the share of the map's energy inside the
object mask and inside its box. Maps explain the ground-truth class of each image:

- ``promptcam_top1``: Prompt-CAM's top trait (the most important head by greedy head blurring);
- ``promptcam_top2`` and ``promptcam_mean``: the mean of the top two heads, of every head;
- ``gradcam_vit``: Grad-CAM on the fully trained ViT classifier (stage 1; last block's ``norm1``, the default);
- ``gradcam_promptcam``: Grad-CAM on the Prompt-CAM model (the same frozen ViT with its prompts);
- ``random``: uniform noise on the 8 x 8 patch grid, upsampled as the attention maps are (seeded).

Each number comes with a 95 % percentile-bootstrap interval over images (2,000 resamples, seeded), and every map
with its paired difference to ``gradcam_vit`` (the same resampled images on both sides).

Usage (after training both stages of the recipe):
    python benchmarks/prompt_cam.py --out work_dirs/prompt_cam_report [--n 1000] [--figure docs/images/x.png]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STAGE1 = 'configs/vit-tiny_baseline_clutteredfmnist.py'
STAGE2 = 'configs/vit-tiny_promptcam_clutteredfmnist.py'
REFERENCE = 'gradcam_vit'


def bootstrap(values: torch.Tensor, reps: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean of the finite values and its 95 % percentile-bootstrap interval."""
    values = values[torch.isfinite(values)].double()
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, len(values), (reps, len(values)), generator=g)
    means = values[idx].mean(1)
    return float(values.mean()), float(means.quantile(0.025)), float(means.quantile(0.975))


def load_test_set(n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(pixels uint8 [N, 3, H, W], labels [N], masks bool [N, H, W], boxes [N, 4])`` of the recipe's test set."""
    from registry import DATASETS
    from zoo.apis.config import load_config

    cfg = load_config(ROOT / STAGE2).test_dataloader.dataset
    dataset = DATASETS.build(dict(cfg, num_samples=n))
    items = [dataset[i] for i in range(len(dataset))]
    pixels = torch.stack([it['inputs'] for it in items])
    labels = torch.stack([it['data_samples'].gt_label for it in items])
    masks = torch.stack([torch.as_tensor(it['data_samples'].gt_mask) for it in items]).bool()
    boxes = torch.stack([torch.as_tensor(it['data_samples'].gt_box).float().reshape(4) for it in items])
    return pixels, labels, masks, boxes


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--stage1', default='work_dirs/vit-tiny_baseline_clutteredfmnist/epoch_2.pth')
    p.add_argument('--stage2', default='work_dirs/vit-tiny_promptcam_clutteredfmnist/epoch_6.pth')
    p.add_argument('--n', type=int, default=1000, help='test images (default 1000, the recipe test set)')
    p.add_argument('--batch', type=int, default=50)
    p.add_argument('--out', default='work_dirs/prompt_cam_report', help='results.json and results.md go here')
    p.add_argument('--figure', default=None, help='also draw the top traits of a few test images to this PNG')
    args = p.parse_args(argv)

    from tqdm.auto import tqdm

    from zoo.apis.inference import init_model
    from zoo.core.fileio import atomic_write_text, write_json
    from zoo.explainers import build_explainer
    from zoo.metrics import EnergyPointingGame, PointingGame
    from zoo.ops.tensors import resize_maps

    torch.manual_seed(0)
    vit = init_model(ROOT / STAGE1, args.stage1)
    pcam = init_model(ROOT / STAGE2, args.stage2)
    pixels, labels, masks, boxes = load_test_set(args.n)
    # one greedy ranking per image gives the three Prompt-CAM maps (as top_traits=1, top_traits=2 and the mean)
    ranker, post = build_explainer('promptcam', normalize=False, resize=False), build_explainer('promptcam')
    explainers = {'gradcam_vit': (vit, build_explainer('gradcam')),
                  'gradcam_promptcam': (pcam, build_explainer('gradcam'))}
    prompt_cam = ('promptcam_top1', 'promptcam_top2', 'promptcam_mean')
    metrics = {'pointing_game': PointingGame(region='mask', per_class=False),
               'energy_in_mask': EnergyPointingGame(region='mask'),
               'energy_in_box': EnergyPointingGame(region='box')}
    names = [*prompt_cam, *explainers, 'random']
    scores = {m: {e: [] for e in names} for m in metrics}
    correct = {'vit': [], 'promptcam': []}
    seconds = {e: 0.0 for e in ('promptcam_ranking', *explainers)}
    g = torch.Generator().manual_seed(0)
    for start in tqdm(range(0, len(pixels), args.batch), desc='evaluating', unit='batch'):
        sl = slice(start, start + args.batch)
        px, y, mk, bx = pixels[sl], labels[sl], masks[sl], boxes[sl]
        x = {id(vit): vit.normalize(px), id(pcam): pcam.normalize(px)}
        with torch.no_grad():
            correct['vit'].append((vit(x[id(vit)]).argmax(1) == y).float())
            correct['promptcam'].append((pcam(x[id(pcam)]).argmax(1) == y).float())
        t0 = time.perf_counter()
        rank = ranker.rank_traits(pcam, x[id(pcam)], y)
        seconds['promptcam_ranking'] += time.perf_counter() - t0
        order, size, rows = rank.order, tuple(px.shape[-2:]), torch.arange(len(px))
        top2 = rank.maps.gather(1, order[:, :2, None, None].expand(-1, -1, *rank.maps.shape[-2:]))
        maps = {'promptcam_top1': post.postprocess(rank.maps[rows, order[:, 0]], size),
                'promptcam_top2': post.postprocess(top2.mean(1), size),
                'promptcam_mean': post.postprocess(rank.maps.mean(1), size)}
        for name, (model, explainer) in explainers.items():
            t0 = time.perf_counter()
            maps[name] = explainer(model, x[id(model)], y)
            seconds[name] += time.perf_counter() - t0
        grid = tuple(side // patch for side, patch in zip(px.shape[-2:], pcam.patch_size))
        maps['random'] = resize_maps(torch.rand(len(px), *grid, generator=g), tuple(px.shape[-2:]))
        for mname, metric in metrics.items():
            for name, m in maps.items():
                scores[mname][name].append(metric(None, x[id(pcam)], m, y, masks=mk, boxes=bx).per_sample)

    results = {'n_images': len(pixels), 'class_explained': 'ground truth', 'bootstrap': '95% percentile, 2000 '
               'resamples over images, seed 0', 'accuracy': {}, 'localisation': {}, 'paired_difference_vs': REFERENCE,
               'seconds_per_image_busy_machine': {k: v / len(pixels) for k, v in seconds.items()}}
    for k, v in correct.items():
        results['accuracy'][k] = bootstrap(torch.cat(v))
    results['accuracy']['promptcam_minus_vit'] = bootstrap(torch.cat(correct['promptcam']) -
                                                           torch.cat(correct['vit']))
    for mname in metrics:
        per = {e: torch.cat(v) for e, v in scores[mname].items()}
        results['localisation'][mname] = {
            e: {'value': bootstrap(v), 'minus_' + REFERENCE: bootstrap(v - per[REFERENCE]) if e != REFERENCE else None}
            for e, v in per.items()}
    out = Path(args.out)
    write_json(out / 'results.json', results)
    atomic_write_text(out / 'results.md', markdown(results))
    print(markdown(results))
    if args.figure:
        traits_figure(pcam, pixels, labels, Path(args.figure))
    return results


def _fmt(triple: tuple[float, float, float] | None, scale: float = 1.0) -> str:
    if triple is None:
        return '—'
    m, lo, hi = (scale * v for v in triple)
    return f'{m:.3f} [{lo:.3f}, {hi:.3f}]'


def markdown(res: dict) -> str:
    acc = res['accuracy']
    lines = [f"Test images: {res['n_images']}; maps explain the {res['class_explained']} class; intervals: "
             f"{res['bootstrap']}.", '',
             '| model | top-1 accuracy |', '|---|---|',
             f"| ViT trained as a classifier (stage 1) | {_fmt(acc['vit'])} |",
             f"| Prompt-CAM on the frozen ViT (stage 2) | {_fmt(acc['promptcam'])} |",
             f"| difference (Prompt-CAM − ViT, paired) | {_fmt(acc['promptcam_minus_vit'])} |", '']
    names = list(next(iter(res['localisation'].values())))
    head = '| map | ' + ' | '.join(f'{m} | Δ vs {res["paired_difference_vs"]}' for m in res['localisation']) + ' |'
    lines += [head, '|---|' + '---|---|' * len(res['localisation'])]
    for e in names:
        cells = []
        for m in res['localisation']:
            entry = res['localisation'][m][e]
            cells += [_fmt(entry['value']), _fmt(entry['minus_' + res['paired_difference_vs']])]
        lines.append(f'| {e} | ' + ' | '.join(cells) + ' |')
    secs = ', '.join(f'{k} {1000 * v:.1f} ms' for k, v in res['seconds_per_image_busy_machine'].items())
    lines += ['', f'Explainer time per image (busy 2-core machine): {secs}.']
    return '\n'.join(lines) + '\n'


def traits_figure(model, pixels: torch.Tensor, labels: torch.Tensor, path: Path, rows: int = 3) -> Path:
    """The top four traits of the first correctly classified test image of ``rows`` different classes."""
    from matplotlib.figure import Figure

    from zoo.viz.files import save_figure

    with torch.no_grad():
        pred = torch.cat([model(model.normalize(pixels[i:i + 100])).argmax(1) for i in range(0, 300, 100)])
    picked, seen = [], set()
    for i in range(len(pred)):
        if pred[i] == labels[i] and int(labels[i]) not in seen:
            picked.append(i)
            seen.add(int(labels[i]))
        if len(picked) == rows:
            break
    exp = model.explain(pixels[picked], method='native', targets=labels[picked].tolist(), top_traits=4)
    fig = Figure(figsize=(10, 2.3 * len(picked)), layout='constrained')
    for row, sub in enumerate(fig.subfigures(len(picked), 1, squeeze=False)[:, 0]):
        exp.figure(row, pixels[picked[row]], model.class_names, fig=sub)
    return save_figure(fig, path, dpi=64)


if __name__ == '__main__':
    main()
