"""Explaining Prototypes (Nauta et al.): how much hue, shape, texture, contrast, saturation and brightness matter to
each prototype of a ProtoPNet.

- **Local score** of image ``x``, prototype ``p``, modification ``m``: ``Δ = sim_p(x) − sim_p(x_m)``, both taken at
  the latent patch nearest to ``p`` in the **original** image (the modified image is read at that same location,
  the official ``forward_particular_patch``). A large Δ: ``p`` stops matching that patch once ``m`` changes it, so
  the characteristic matters to ``p``.
- **Global score** of ``(p, m)``: the similarity-weighted mean over a dataset,
  ``Σ_x Δ·sim_p(x) / Σ_x sim_p(x)`` (the official ``weighted_mean``), so images that ``p`` matches count most.

:func:`score_prototypes` runs a model over batches and writes ``local_scores.csv``, ``global_scores.csv``,
``summary.json``/``summary.md`` (mean global score per modification) and two PNGs: ``prototype_scores.png`` (a
bar chart per prototype, next to its source patch) and ``modification_scores.png`` (the mean over prototypes).

Example:
    >>> import torch
    >>> from registry import MODELS
    >>> model = MODELS.build(dict(type='ProtoPNet', num_classes=2, prototypes_per_class=2, prototype_dim=8,
    ...                           backbone=dict(type='TimmBackbone', model_name='test_resnet'))).eval()
    >>> pixels = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    >>> local = local_scores(model, pixels, {'shape': pixels.flip(-1)})
    >>> tuple(local.delta.shape)                     # [images, modifications, prototypes]
    (3, 1, 4)
"""
from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from registry.errors import ConfigError, DataError

from ...core.fileio import atomic_path, atomic_write_text, ensure_dir, write_json
from ...ops.modules import model_state
from .modifications import MODIFICATIONS, check_settings, modify


@dataclass
class LocalScores:
    """One batch: ``similarity`` ``[B, P]`` (original images, nearest patch), ``delta`` ``[B, M, P]`` and the
    nearest patch ``location`` ``[B, P]`` (flat latent index, reused for the modified images)."""

    similarity: Tensor
    delta: Tensor
    location: Tensor
    modifications: tuple[str, ...]


@torch.no_grad()
def local_scores(model: Any, pixels: Tensor, modified: Mapping[str, Tensor]) -> LocalScores:
    """Local scores of uint8 ``pixels`` ``[B, 3, H, W]`` and their modified copies (``{name: uint8 pixels}``).

    ``sim_p(x_m)`` is read at the latent patch nearest to ``p`` in the original ``x`` (not at ``x_m``'s own
    nearest patch).
    """
    names = tuple(modified)
    with model_state(model, eval_mode=True, freeze=False):
        device = model.device
        dist = model.distances(model.features(model.normalize(pixels.to(device)))).flatten(2)     # [B, P, HW]
        min_d, loc = dist.min(-1)
        sim = model.similarity_of(min_d)
        batch = torch.cat([modified[n].to(device) for n in names])
        dist_m = model.distances(model.features(model.normalize(batch))).flatten(2)           # [M*B, P, HW]
        b, p, hw = dist.shape
        dist_m = dist_m.view(len(names), b, p, hw)
        at = dist_m.gather(3, loc.view(1, b, p, 1).expand(len(names), b, p, 1)).squeeze(3)    # [M, B, P]
        delta = sim.unsqueeze(0) - model.similarity_of(at)
    return LocalScores(similarity=sim.float().cpu(), delta=delta.permute(1, 0, 2).float().cpu(),
                       location=loc.cpu(), modifications=names)


@dataclass
class GlobalScores:
    """Running similarity-weighted means ``Σ Δ·sim / Σ sim`` per (modification, prototype), in float64."""

    modifications: tuple[str, ...]
    num_prototypes: int
    weighted: Tensor = field(init=False)
    weight: Tensor = field(init=False)
    images: int = 0

    def __post_init__(self) -> None:
        self.weighted = torch.zeros(len(self.modifications), self.num_prototypes, dtype=torch.float64)
        self.weight = torch.zeros(self.num_prototypes, dtype=torch.float64)

    def update(self, local: LocalScores) -> None:
        if local.modifications != self.modifications:
            raise DataError(f'local scores of {local.modifications} added to global scores of {self.modifications}.')
        sim = local.similarity.double()
        self.weighted += (local.delta.double() * sim.unsqueeze(1)).sum(0)
        self.weight += sim.sum(0)
        self.images += sim.shape[0]

    @property
    def scores(self) -> Tensor:
        """``[M, P]`` global scores (NaN for a prototype with zero total similarity)."""
        return self.weighted / self.weight.where(self.weight != 0, torch.full_like(self.weight, float('nan')))

    def summary(self) -> dict[str, dict[str, float]]:
        """Per modification: mean, std, median, min and max of the global scores over the prototypes."""
        out = {}
        for m, row in zip(self.modifications, self.scores):
            row = row[~torch.isnan(row)]
            n = row.numel()
            out[m] = {'mean': float(row.mean()) if n else math.nan,
                      'std': float(row.std()) if n > 1 else math.nan,
                      'median': float(row.median()) if n else math.nan,
                      'min': float(row.min()) if n else math.nan, 'max': float(row.max()) if n else math.nan,
                      'prototypes': n}
        return out


@dataclass
class PrototypeCharacteristics:
    """The result of :func:`score_prototypes`: global scores, their summary and the files written."""

    global_scores: GlobalScores
    summary: dict[str, Any]
    files: dict[str, Path]


def _image_ids(batch: Mapping[str, Any], offset: int) -> tuple[list[str], list[int | None]]:
    samples = batch.get('data_samples') or []
    ids, labels = [], []
    for i in range(len(batch['inputs'])):
        s = samples[i] if i < len(samples) else None
        get = s.get if s is not None and hasattr(s, 'get') else (lambda _k: None)
        path, idx = get('img_path'), get('sample_idx')
        ids.append(str(path) if path else str(idx if idx is not None else offset + i))
        label = get('gt_label')
        labels.append(None if label is None else int(label))
    return ids, labels


def score_prototypes(model: Any, batches: Iterable[Mapping[str, Any]], out_dir: str | os.PathLike,
                     modifications: Sequence[str] = MODIFICATIONS, settings: Mapping[str, float] | None = None,
                     local_top_k: int | None = None, chart_prototypes: int | Sequence[int] = 8,
                     progress: bool = False, total: int | None = None, title: str = '') -> PrototypeCharacteristics:
    """Local and global scores of every prototype over ``batches`` (``dict(inputs=uint8 [B,3,H,W] or a list,
    data_samples=[...])``, e.g. a Runner dataloader with the test pipeline); writes the files into ``out_dir``.

    Args:
        modifications: which of :data:`~.modifications.MODIFICATIONS`; settings: overrides of the paper's values.
        local_top_k: write local scores of the ``k`` prototypes most similar to each image only (``None``: all,
            as the official code; for CUB's 2,000 prototypes that is 12,000 rows per image).
        chart_prototypes: how many prototypes the per-prototype chart shows (those with the largest total
            similarity), or which ones.
        progress: a progress bar over the batches (``total`` batches, if known).
    """
    if model.similarity != 'log':
        raise ConfigError('Explaining Prototypes weights by similarity, which must be non-negative: the model must use '
                          "similarity='log' (ProtoPNet's default).")
    s = check_settings(list(modifications), settings)
    out = Path(ensure_dir(out_dir))
    names = tuple(modifications)
    acc = GlobalScores(names, model.num_prototypes)
    proto_class = model.prototype_class.cpu()
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=total, desc='explaining prototypes', unit='batch', leave=False)
    local_path = out / 'local_scores.csv'
    offset = 0
    with atomic_path(local_path) as tmp, open(tmp, 'w', newline='', encoding='utf-8') as fh:
        writer = csv.writer(fh)
        writer.writerow(['image', 'label', 'prototype', 'prototype_class', 'modification', 'delta', 'orig_similarity',
                         'patch'])
        for batch in batches:
            raw = batch['inputs']
            pixels = torch.stack(list(raw)) if isinstance(raw, (list, tuple)) else raw
            if pixels.dtype != torch.uint8:
                raise DataError('score_prototypes needs uint8 pixels (a dataloader with PackInputs, before the data '
                                f'preprocessor), got {pixels.dtype}.')
            local = local_scores(model, pixels, modify(pixels, names, s))
            acc.update(local)
            ids, labels = _image_ids(batch, offset)
            k = local.similarity.shape[1] if local_top_k is None else min(int(local_top_k), local.similarity.shape[1])
            top = local.similarity.topk(k, dim=1).indices
            for i in range(pixels.shape[0]):
                for p in top[i].tolist():
                    for j, m in enumerate(names):
                        writer.writerow([ids[i], labels[i], p, int(proto_class[p]), m,
                                         f'{float(local.delta[i, j, p]):.6g}', f'{float(local.similarity[i, p]):.6g}',
                                         int(local.location[i, p])])
            offset += pixels.shape[0]
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    if acc.images == 0:
        raise DataError('score_prototypes got no images.')
    files = {'local_csv': local_path, 'global_csv': out / 'global_scores.csv'}
    _write_global(files['global_csv'], acc, proto_class, model.class_names)
    summary = {'images': acc.images, 'prototypes': model.num_prototypes, 'modifications': list(names),
               'settings': s, 'mean_global_score': acc.summary(), 'title': title}
    files['summary_json'] = out / 'summary.json'
    write_json(files['summary_json'], summary)
    files['summary_md'] = out / 'summary.md'
    atomic_write_text(files['summary_md'], summary_markdown(summary))
    from zoo.viz.files import save_figure

    chosen = _chosen(acc, chart_prototypes)
    files['prototype_chart'] = save_figure(prototype_chart(acc, chosen, model), out / 'prototype_scores.png')
    files['modification_chart'] = save_figure(modification_chart(summary), out / 'modification_scores.png')
    return PrototypeCharacteristics(acc, summary, files)


def _write_global(path: Path, acc: GlobalScores, proto_class: Tensor, names: Sequence[str] | None) -> None:
    scores = acc.scores
    with atomic_path(path) as tmp, open(tmp, 'w', newline='', encoding='utf-8') as fh:
        writer = csv.writer(fh)
        writer.writerow(['prototype', 'class', 'class_name', 'modification', 'global_score', 'similarity_sum',
                         'images'])
        for p in range(acc.num_prototypes):
            c = int(proto_class[p])
            for j, m in enumerate(acc.modifications):
                writer.writerow([p, c, names[c] if names else '', m, f'{float(scores[j, p]):.6g}',
                                 f'{float(acc.weight[p]):.6g}', acc.images])


def summary_markdown(summary: Mapping[str, Any]) -> str:
    """The table of mean global scores per modification (over prototypes)."""
    rows = ['| modification | mean global score | std | median | min | max |', '|---|---|---|---|---|---|']
    for m, v in summary['mean_global_score'].items():
        rows.append(f"| {m} | {v['mean']:.4f} | {v['std']:.4f} | {v['median']:.4f} | {v['min']:.4f} | "
                    f"{v['max']:.4f} |")
    head = f"# Explaining prototypes{': ' + summary['title'] if summary.get('title') else ''}\n\n"
    return (head + f"{summary['prototypes']} prototypes, {summary['images']} images; settings: "
            + ', '.join(f'{k}={v:g}' for k, v in summary['settings'].items()) + '.\n\n' + '\n'.join(rows) + '\n')


def _chosen(acc: GlobalScores, chart_prototypes: int | Sequence[int]) -> list[int]:
    if isinstance(chart_prototypes, int):
        return acc.weight.topk(min(chart_prototypes, acc.num_prototypes)).indices.tolist()
    chosen = [int(p) for p in chart_prototypes]
    bad = [p for p in chosen if not 0 <= p < acc.num_prototypes]
    if bad:
        raise ConfigError(f'chart_prototypes: prototype {bad[0]} does not exist (0..{acc.num_prototypes - 1}).')
    return chosen


def prototype_chart(acc: GlobalScores, prototypes: Sequence[int], model: Any, columns: int = 2) -> Any:
    """A figure: for each prototype, its source patch and a bar per modification (its global score)."""
    from matplotlib.figure import Figure

    rows = max(1, math.ceil(len(prototypes) / columns))
    fig = Figure(figsize=(4.2 * columns, 1.5 * rows + 0.3), dpi=100)
    axes = fig.subplots(rows, 2 * columns, squeeze=False, gridspec_kw={'width_ratios': [1, 2.4] * columns})
    scores = acc.scores
    names = model.class_names
    limit = float(scores[:, prototypes].abs().nan_to_num().max()) if prototypes else 1.0
    for k in range(rows * columns):
        ax_img, ax_bar = axes[k // columns][2 * (k % columns)], axes[k // columns][2 * (k % columns) + 1]
        if k >= len(prototypes):
            ax_img.axis('off')
            ax_bar.axis('off')
            continue
        p = prototypes[k]
        ax_img.set_xticks([])
        ax_img.set_yticks([])
        if hasattr(model, 'push_patch') and int(model.push_index[p]) >= 0:
            ax_img.imshow(model.push_patch[p].cpu().permute(1, 2, 0).numpy())
        else:
            ax_img.text(0.5, 0.5, 'not pushed', ha='center', va='center', fontsize=7)
        c = int(model.prototype_class[p])
        ax_img.set_title(f'prototype {p}\n{names[c] if names else c}', fontsize=7)
        values = scores[:, p].nan_to_num().tolist()
        ax_bar.barh(range(len(values)), values, color=['tab:red' if v > 0 else 'tab:blue' for v in values])
        ax_bar.set_yticks(range(len(values)))
        ax_bar.set_yticklabels(acc.modifications, fontsize=7)
        ax_bar.invert_yaxis()
        ax_bar.axvline(0, color='black', lw=0.5)
        ax_bar.set_xlim(-1.05 * limit, 1.05 * limit if limit > 0 else 1)
        ax_bar.tick_params(axis='x', labelsize=6)
    fig.suptitle('global score per modification (similarity-weighted mean of sim(x) − sim(x_mod))', fontsize=8)
    fig.tight_layout()
    return fig


def modification_chart(summary: Mapping[str, Any]) -> Any:
    """A figure: the mean global score of each modification over the prototypes (± std)."""
    from matplotlib.figure import Figure

    stats = summary['mean_global_score']
    names = list(stats)
    fig = Figure(figsize=(4.6, 2.6), dpi=100)
    ax = fig.subplots()
    means = [stats[m]['mean'] for m in names]
    stds = [0.0 if math.isnan(stats[m]['std']) else stats[m]['std'] for m in names]
    ax.bar(range(len(names)), means, yerr=stds, capsize=3, color='tab:gray')
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, fontsize=8)
    ax.axhline(0, color='black', lw=0.5)
    ax.set_ylabel('mean global score', fontsize=8)
    ax.set_title(f"{summary['prototypes']} prototypes, {summary['images']} images (± std over prototypes)",
                 fontsize=8)
    fig.tight_layout()
    return fig
