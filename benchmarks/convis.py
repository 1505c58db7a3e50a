"""ConVis: cost (concepts × images per second, one-time vocabulary embedding) and the evaluation on the offline
image-text model (ClutteredFashionMNIST test images).

    python benchmarks/convis.py cost CONFIG CHECKPOINT [--images 8] [--concepts 1 10]
    python benchmarks/convis.py evaluate CONFIG CHECKPOINT [--images 100] [--ood-images 1000] [--out DIR]
        [--grid docs/images/convis_grid.png]

``cost``: the one-time embedding of the vocabulary (cache cleared first; texts per second), then ConVis calls with
warm embeddings for ``--concepts`` concepts on ``--images`` images (median of ``--repeats``), printed as concepts ×
images per second and as a ratio to one Grad-CAM call on the same model and batch (ConVis ÷ Grad-CAM).

``evaluate`` (every figure of the docs' ConVis section): per test image, the ConVis map of its class's synset (the
10 Fashion-MNIST classes mapped to WordNet 3.0 in ``CLASS_SYNSETS``) against the item's mask and box —

* pointing game (map maximum within ``tolerance`` px of the mask; 0 and 15 px) and energy inside the mask and the
  box, each beside its random baseline (a uniformly random point; a uniform map = the region's area fraction) and
  the map of *another* class's synset on the same image (is the map about the concept or about the object?);
* weakly supervised localisation (CAM protocol): the box of the largest connected region of the map above
  ``t × max`` (t = 0.2, 0.35, 0.5) against the ground-truth box, correct when IoU ≥ 0.5, beside the whole-image box;
* the hypernym check: image-level score (mean of the raw max_rank_sim map) of ``footwear.n.02`` per class, shoes
  (Sandal, Sneaker, Ankle boot) against garments, and its AUROC; ``footwear.n.01`` (WordNet 3.0's "clothing worn on
  a person's feet", with no shoes below it) beside it;
* the definitions check: the class synsets embedded as ``'{lemmas}: {definition}'`` or as the lemma alone, used as
  zero-shot class prompts on ``--ood-images`` full images (top-1), and as in-distribution concepts of an OOD
  detector (MCM score: max softmax of the scaled cosines over the in-distribution classes; AUROC, two splits of the
  10 classes into 5 seen + 5 unseen).

Results go to ``<out>/results.json`` and a markdown summary is printed. All calls run on CPU unless ``--device``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

import numpy as np  # noqa: E402
import torch  # noqa: E402

VOCABULARY = 'hyponyms:covering.n.02+hyponyms:container.n.01'
CLASS_SYNSETS = ['jersey.n.03', 'trouser.n.01', 'pullover.n.01', 'dress.n.01', 'coat.n.01', 'sandal.n.01',
                 'shirt.n.01', 'gym_shoe.n.01', 'bag.n.01', 'boot.n.01']
"""Fashion-MNIST classes → WordNet 3.0 (T-shirt: jersey.n.03 'T-shirt, tee shirt'; Sneaker: gym_shoe.n.01;
Ankle boot has no synset: boot.n.01)."""
SHOES, GARMENTS = (5, 7, 9), (0, 1, 2, 3, 4, 6)
SPLITS = ((0, 1, 2, 3, 4), (5, 6, 7, 8, 9))
COST_CONCEPTS = ['footwear.n.02', 'shirt.n.01', 'bag.n.01', 'coat.n.01', 'dress.n.01', 'sandal.n.01', 'boot.n.01',
                 'trouser.n.01', 'a striped shirt', 'a leather bag']


def load_model(config: str, checkpoint: str, device: str):
    import zoo

    return zoo.init_model(config, None if checkpoint.lower() == 'none' else checkpoint, device=device).eval()


def test_images(n: int, seed: int = 0):
    """``n`` seeded ClutteredFashionMNIST test images: uint8 [n, 3, 128, 128], labels, masks [n, H, W], boxes."""
    from zoo.datasets.cluttered_fmnist import ClutteredFashionMNIST

    ds = ClutteredFashionMNIST(split='test', num_samples=n, seed=seed, lazy_init=False, pipeline=[])
    items = [ds.render(ds.get_data_info(i)) for i in range(n)]
    pixels = torch.stack([torch.from_numpy(it['img']).permute(2, 0, 1) for it in items])
    labels = torch.tensor([it['gt_label'] for it in items])
    masks = torch.stack([torch.from_numpy(it['gt_mask']) for it in items])
    boxes = torch.tensor([it['gt_box'] for it in items])
    return pixels, labels, masks, boxes


def auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties counted half (Mann-Whitney)."""
    pos, neg = np.asarray(pos, float)[:, None], np.asarray(neg, float)[None, :]
    return float((pos > neg).mean() + 0.5 * (pos == neg).mean())


def _near(mask: np.ndarray, tol: float) -> np.ndarray:
    from scipy.ndimage import distance_transform_edt

    return mask if tol <= 0 else distance_transform_edt(~mask) < tol


def pointing(maps: torch.Tensor, masks: torch.Tensor, tol: float) -> tuple[float, float]:
    """(hit rate of the maps' maxima, expected hit rate of a uniformly random point) within ``tol`` px."""
    hits, chance = [], []
    for m, mask in zip(maps, masks.numpy()):
        near = _near(mask, tol)
        y, x = divmod(int(m.flatten().argmax()), m.shape[-1])
        hits.append(bool(near[y, x]))
        chance.append(float(near.mean()))
    return float(np.mean(hits)), float(np.mean(chance))


def box_masks(boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    ys, xs = torch.arange(size[0])[:, None] + 0.5, torch.arange(size[1])[None, :] + 0.5
    return torch.stack([(ys >= b[1]) & (ys < b[3]) & (xs >= b[0]) & (xs < b[2]) for b in boxes.tolist()])


def energy(maps: torch.Tensor, region: torch.Tensor) -> tuple[float, float]:
    """(mean share of the map's mass inside the region, mean area fraction of the region)."""
    share = (maps * region).flatten(1).sum(1) / maps.flatten(1).sum(1).clamp_min(1e-12)
    return float(share.mean()), float(region.float().flatten(1).mean(1).mean())


def map_box(m: np.ndarray, t: float) -> list[float]:
    """Box (x0, y0, x1, y1) of the largest connected component of ``m >= t · max`` (the CAM protocol)."""
    from scipy.ndimage import label

    lab, n = label(m >= t * m.max())
    if n == 0:
        return [0.0, 0.0, float(m.shape[1]), float(m.shape[0])]
    biggest = 1 + int(np.argmax(np.bincount(lab.ravel())[1:]))
    ys, xs = np.nonzero(lab == biggest)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


def iou(a: list[float], b: list[float]) -> float:
    iw, ih = max(0.0, min(a[2], b[2]) - max(a[0], b[0])), max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def minmax(maps: torch.Tensor) -> torch.Tensor:
    flat = maps.flatten(1)
    lo, hi = flat.min(1).values[:, None, None], flat.max(1).values[:, None, None]
    return (maps - lo) / (hi - lo).clamp_min(1e-12)


def localisation(raw: torch.Tensor, labels: torch.Tensor, masks: torch.Tensor, boxes: torch.Tensor) -> dict:
    """Pointing game, energy and WSOL of the class synsets' maps (``raw`` [N, K, H, W], first 10 = classes)."""
    n = len(labels)
    own = minmax(raw[torch.arange(n), labels])
    other_cls = (labels + 1 + torch.randint(0, 9, (n,), generator=torch.Generator().manual_seed(0))) % 10
    other = minmax(raw[torch.arange(n), other_cls])
    bmask = box_masks(boxes, tuple(masks.shape[-2:]))
    res: dict = {}
    for tol in (0, 15):
        hit, chance = pointing(own, masks, tol)
        res[f'pointing_mask_tol{tol}'] = {'class_synset': hit, 'other_class_synset': pointing(other, masks, tol)[0],
                                          'random_point': chance}
    for name, region in (('mask', masks), ('box', bmask)):
        share, area = energy(own, region)
        res[f'energy_{name}'] = {'class_synset': share, 'other_class_synset': energy(other, region)[0],
                                 'uniform_map': area}
    full = [0.0, 0.0, float(masks.shape[-1]), float(masks.shape[-2])]
    res['wsol_iou50'] = {f't{t}': float(np.mean([iou(map_box(m.numpy(), t), b) >= 0.5 for m, b in
                                                 zip(own, boxes.tolist())])) for t in (0.2, 0.35, 0.5)}
    res['wsol_iou50']['whole_image_box'] = float(np.mean([iou(full, b) >= 0.5 for b in boxes.tolist()]))
    return res


def hypernym_scores(score: torch.Tensor, labels: torch.Tensor) -> dict:
    """Per-class mean of an image-level score, shoes vs garments, AUROC."""
    shoes = score[torch.isin(labels, torch.tensor(SHOES))].numpy()
    garments = score[torch.isin(labels, torch.tensor(GARMENTS))].numpy()
    return {'per_class_mean': {int(c): float(score[labels == c].mean()) for c in labels.unique()},
            'shoes_mean': float(shoes.mean()), 'garments_mean': float(garments.mean()),
            'auroc_shoes_vs_garments': auroc(shoes, garments)}


SETTINGS = {'max_rank_sim (defaults)': {}, 'rank_sim (hyponyms=none)': dict(hyponyms='none'),
            'max_rank_sim, standardize=vocabulary': dict(standardize='vocabulary'),
            'cosine (ablation)': dict(score='cosine')}


def evaluate(args: argparse.Namespace) -> dict:
    from tqdm.auto import tqdm

    from zoo.concepts import LEMMA_TEMPLATE, encode_texts, synset_text, wordnet
    from zoo.explainers import ConVis

    model = load_model(args.config, args.checkpoint, args.device)
    pixels, labels, masks, boxes = test_images(args.images, args.seed)
    size = tuple(pixels.shape[-2:])
    concepts = CLASS_SYNSETS + ['footwear.n.02', 'footwear.n.01']
    variants = {k: ConVis(vocabulary=args.vocabulary, normalize=False, batch_size=args.batch_size, progress=False,
                          **kw) for k, kw in SETTINGS.items()}
    whole = ConVis(vocabulary=args.vocabulary, scales=(1.0,), standardize='vocabulary', normalize=False)
    first = next(iter(variants.values()))
    start = time.perf_counter()
    vocab_emb = first.vocabulary_embeddings(model)
    vocab_s = time.perf_counter() - start
    resolved = {k: v.resolve_concepts(model, concepts) for k, v in variants.items()}   # hyponyms switch applies here
    raw: dict = {k: [] for k in variants}
    image_level = []
    region_s = 0.0
    for i in tqdm(range(0, len(pixels), args.batch), desc='convis'):
        with torch.no_grad():
            x = model.normalize(pixels[i:i + args.batch].to(args.device))
            start = time.perf_counter()
            region = first.region_embeddings(model, x)
            region_s += time.perf_counter() - start
            for k, v in variants.items():
                raw[k].append(v.maps_from_regions(region, vocab_emb, *resolved[k], size).cpu())
            image_level.append(whole.explain_concepts(model, x, concepts[-2:])[:, :, 0, 0].cpu())
    raw = {k: torch.cat(v) for k, v in raw.items()}
    image_level = torch.cat(image_level)
    res: dict = {'images': len(labels), 'vocabulary': args.vocabulary, 'vocabulary_size': len(first.vocab),
                 'convis': first.config(), 'seconds': {'vocabulary_embedding': vocab_s, 'region_encoding': region_s},
                 'settings': {}}
    for k, maps in raw.items():
        row = localisation(maps, labels, masks, boxes)
        row['footwear.n.02_map_mean'] = hypernym_scores(maps[:, 10].flatten(1).mean(1), labels)
        row['footwear.n.02_map_max'] = hypernym_scores(maps[:, 10].flatten(1).amax(1), labels)
        res['settings'][k] = row
    res['footwear.n.02_whole_image'] = hypernym_scores(image_level[:, 0], labels)
    res['footwear.n.01_whole_image'] = hypernym_scores(image_level[:, 1], labels)
    res['definitions_check'] = definitions_check(model, args, encode_texts, synset_text, wordnet, LEMMA_TEMPLATE)
    if args.grid:
        from zoo.viz import grid_figure, save_figure

        pick = [int((labels == c).nonzero()[0]) for c in (5, 0, 8, 1) if (labels == c).any()][:4]
        cols = {'footwear.n.02': 10, 'shirt.n.01': 6, 'bag.n.01': 8, 'trouser.n.01': 1}
        maps = raw['max_rank_sim (defaults)']
        names = model.explain_meta['class_names']
        fig = grid_figure(pixels[pick], {k: minmax(maps[pick, j]) for k, j in cols.items()},
                          row_labels=[names[int(labels[i])] for i in pick],
                          title='ConVis (max_rank_sim), offline LiT model', cell_inches=1.3)
        save_figure(fig, args.grid, dpi=75)
        res['grid'] = args.grid
    return res


def definitions_check(model, args, encode_texts, synset_text, wordnet, lemma_template) -> dict:
    """Zero-shot top-1 and MCM OOD AUROC with class synset texts: definitions vs lemma only."""
    pixels, labels, _, _ = test_images(args.ood_images, args.seed + 1)
    feats = []
    with torch.no_grad():
        for i in range(0, len(pixels), 64):
            feats.append(model.encode_image(model.normalize(pixels[i:i + 64].to(args.device)), normalize=True).cpu())
    feats = torch.cat(feats)
    scale = float(model.logit_scale.detach())                             # exp'd already (at most 100)
    out = {'images': len(labels), 'logit_scale': scale}
    for name, template in (('definitions', '{lemmas}: {definition}'), ('lemma_only', lemma_template)):
        texts = [synset_text(wordnet.synset(s), template) for s in CLASS_SYNSETS]
        with torch.no_grad():
            text = encode_texts(model, texts).cpu()
        cos = feats @ text.T
        row = {'top1': float((cos.argmax(1) == labels).float().mean()), 'texts': texts}
        for split in SPLITS:
            seen = torch.isin(labels, torch.tensor(split))
            mcm = (scale * cos[:, list(split)]).softmax(1).max(1).values
            row[f'mcm_auroc_seen{split[0]}-{split[-1]}'] = auroc(mcm[seen].numpy(), mcm[~seen].numpy())
        out[name] = row
    return out


def cost(args: argparse.Namespace) -> dict:
    from zoo.concepts import embeddings as emb_mod
    from zoo.concepts import encode_texts
    from zoo.explainers import ConVis, build_explainer

    model = load_model(args.config, args.checkpoint, args.device)
    pixels = test_images(args.images, args.seed)[0]
    x = model.normalize(pixels.to(args.device))
    convis = ConVis(vocabulary=args.vocabulary, batch_size=args.batch_size, progress=False, cache=None)
    texts = list(convis.vocab.texts)
    emb_mod.clear_memory()
    start = time.perf_counter()
    encode_texts(model, texts)
    vocab_s = time.perf_counter() - start
    res = {'vocabulary': args.vocabulary, 'vocabulary_size': len(texts), 'vocabulary_embedding_s': vocab_s,
           'texts_per_s': len(texts) / vocab_s, 'images': args.images, 'regions_per_image':
           len(convis.boxes(tuple(x.shape[-2:]))[0]), 'calls': {}}
    convis.vocabulary_embeddings(model)
    gradcam = build_explainer('gradcam')
    gradcam(model, x)
    grad_s = statistics.median(_time(lambda: gradcam(model, x)) for _ in range(args.repeats))
    for k in args.concepts:
        concepts = (COST_CONCEPTS * (k // len(COST_CONCEPTS) + 1))[:k]
        convis.explain_concepts(model, x, concepts)
        sec = statistics.median(_time(lambda c=concepts: convis.explain_concepts(model, x, c))
                                for _ in range(args.repeats))
        res['calls'][k] = {'seconds': sec, 'concepts_x_images_per_s': k * args.images / sec,
                           'ratio_to_gradcam': sec / grad_s}
    res['gradcam_s'] = grad_s
    return res


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def report(kind: str, res: dict) -> str:
    if kind == 'cost':
        lines = [f"vocabulary {res['vocabulary']} ({res['vocabulary_size']} texts): one-time embedding "
                 f"{res['vocabulary_embedding_s']:.1f} s ({res['texts_per_s']:.0f} texts/s)",
                 f"{res['images']} images, {res['regions_per_image']} regions each; Grad-CAM on the same batch "
                 f"{res['gradcam_s']:.2f} s", '| concepts | s per call | concepts × images / s | ConVis ÷ Grad-CAM |',
                 '|---|---|---|---|']
        lines += [f"| {k} | {v['seconds']:.2f} | {v['concepts_x_images_per_s']:.2f} | {v['ratio_to_gradcam']:.1f} |"
                  for k, v in res['calls'].items()]
        return '\n'.join(lines)
    f = lambda d: ' | '.join(f'{v:.3f}' for v in d.values())  # noqa: E731
    r3 = lambda d: json.dumps({k: round(v, 3) for k, v in d.items()})  # noqa: E731
    lines = [f"{res['images']} test images, vocabulary {res['vocabulary']} ({res['vocabulary_size']} synsets); "
             f"seconds {r3(res['seconds'])}"]
    for name, row in res['settings'].items():
        lines += [f'{name}', '| metric | class synset | other class synset | baseline |', '|---|---|---|---|']
        for key in ('pointing_mask_tol0', 'pointing_mask_tol15', 'energy_mask', 'energy_box'):
            lines.append(f'| {key} | {f(row[key])} |')
        lines.append(f"WSOL IoU>=0.5: {r3(row['wsol_iou50'])}")
        for key in ('footwear.n.02_map_mean', 'footwear.n.02_map_max'):
            d = row[key]
            lines.append(f"{key}: shoes {d['shoes_mean']:.3f} vs garments {d['garments_mean']:.3f}, AUROC "
                         f"{d['auroc_shoes_vs_garments']:.3f}; per class {r3(d['per_class_mean'])}")
    for key in ('footwear.n.02_whole_image', 'footwear.n.01_whole_image'):
        d = res[key]
        lines.append(f"{key}: shoes {d['shoes_mean']:.3f} vs garments {d['garments_mean']:.3f}, AUROC "
                     f"{d['auroc_shoes_vs_garments']:.3f}; per class {r3(d['per_class_mean'])}")
    dc = res['definitions_check']
    for name in ('definitions', 'lemma_only'):
        row = {k: round(v, 3) for k, v in dc[name].items() if k != 'texts'}
        lines.append(f"{name} ({dc['images']} images): {json.dumps(row)}")
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('kind', choices=('cost', 'evaluate'))
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('--images', type=int, default=None, help='test images (cost: 8, evaluate: 100)')
    p.add_argument('--ood-images', type=int, default=1000, help='evaluate: images of the definitions check')
    p.add_argument('--vocabulary', default=VOCABULARY, help=f'ConVis vocabulary (default {VOCABULARY})')
    p.add_argument('--concepts', type=int, nargs='+', default=[1, 10], help='cost: concepts per call')
    p.add_argument('--batch', type=int, default=8, help='images per ConVis call')
    p.add_argument('--batch-size', type=int, default=64, help='region images per image-encoder call')
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--seed', type=int, default=1, help='image subset (defaults were explored on seed 0)')
    p.add_argument('--device', default='cpu')
    p.add_argument('--out', default='work_dirs/convis_eval')
    p.add_argument('--grid', default=None, help='evaluate: write the example grid PNG here')
    args = p.parse_args(argv)
    args.images = args.images or (8 if args.kind == 'cost' else 100)
    torch.manual_seed(args.seed)
    res = cost(args) if args.kind == 'cost' else evaluate(args)
    from zoo.core.fileio import write_json

    write_json(os.path.join(args.out, f'{args.kind}.json'), res)
    print(report(args.kind, res))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
