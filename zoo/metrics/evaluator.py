"""``ExplanationQuality``: explainers × explanation metrics inside mmengine's test loop (registry ``METRICS``).

It collects the chosen test samples as the test loop passes them and, every ``batch_size`` samples (and at the
end), normalises them with the model's data preprocessor, explains them with each explainer and scores the maps with
each metric, using the samples' ``gt_label``, ``gt_mask``, ``gt_box`` and ``has_object``. Explaining in full batches
rather than per test batch (where a subset leaves a few images per batch) keeps the cost of the explanation
metrics' forward passes at the model's full-batch rate. It keeps one record per test sample in ``self.results``, so
mmengine's ``collect_results`` gathers them across ranks exactly like accuracy's: under a distributed Runner each
rank explains its own share.
On the main process :meth:`ExplanationQuality.compute_metrics` reduces the records (per-class where a metric says
so), returns ``{'<explainer>/<metric>': number}`` (plus ``<explainer>/overall`` = insertion − deletion) and, when
it has an ``out_dir``, writes ``results.json``, ``results.md``, ``curves.png`` and ``examples_<explainer>.png``.

The metric needs the model: :class:`ExplanationHook` (``custom_hooks``) hands it over before the test;
``zoo.apis.testing`` adds both when asked for explainers.

Example (a config)::

    custom_imports = dict(imports=['zoo.metrics'])
    custom_hooks = [dict(type='ExplanationHook')]
    test_evaluator = [dict(type='Accuracy'),
                      dict(type='ExplanationQuality', explainers=['gradcam', 'eigencam'],
                           metrics=['insertion', 'deletion', dict(type='PointingGame', tolerance=15)], subset=200)]
"""
from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np
import torch
from mmengine.dist import get_rank, get_world_size
from mmengine.evaluator import BaseMetric
from mmengine.hooks import Hook
from torch import Tensor

from registry import HOOKS, METRICS
from registry.errors import ConfigError
from zoo.ops.tensors import stack_field

from .base import ExplanationMetric, build_explanation_metric


def _unique(base: str, used: set[str]) -> str:
    label, k = base, 2
    while label in used:
        label, k = f'{base}_{k}', k + 1
    used.add(label)
    return label


@METRICS.register_module()
class ExplanationQuality(BaseMetric):
    """Explanation-quality metrics of each explainer over the test set.

    Args:
        explainers: aliases (``'gradcam'``) or config dicts of ``EXPLAINERS``; a dict may carry ``label``.
        metrics: aliases (``'insertion'``, ``'pointing_game'``) or config dicts of ``EXPLANATION_METRICS``.
        subset: explain only this many test samples, a seeded random choice over the whole set (``None``: all).
        seed: seed of that choice.
        explain_class: which class the maps explain: ``'predicted'`` (default) or ``'target'`` (ground truth).
        out_dir: where results.json, results.md and PNGs go (``None``: the hook's ``<work_dir>/explain``).
        num_examples: best and worst examples per explainer in the example grid.
        rank_by: the metric ranking those examples (default: the first one).
        progress: show a progress bar (main process only).
        batch_size: chosen samples explained together (speed and memory only: the numbers do not depend on it);
            ``None`` explains each test batch's chosen samples as the batch passes.
    """

    default_prefix = 'explain'

    def __init__(self, explainers: Sequence[Any] = ('gradcam',),
                 metrics: Sequence[Any] = ('insertion', 'deletion', 'pointing_game'), subset: int | None = None,
                 seed: int = 0, explain_class: str = 'predicted', out_dir: str | None = None, num_examples: int = 3,
                 rank_by: str | None = None, progress: bool = True, batch_size: int | None = 32,
                 collect_device: str = 'cpu', prefix: str | None = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        from zoo.explainers import build_explainer

        if explain_class not in ('predicted', 'target'):
            raise ConfigError(f"ExplanationQuality: explain_class must be 'predicted' or 'target', got "
                              f'{explain_class!r}.')
        if not explainers or not metrics:
            raise ConfigError('ExplanationQuality needs at least one explainer and one metric, e.g. '
                              "explainers=['gradcam'], metrics=['insertion', 'deletion'].")
        used: set[str] = set()
        self.explainers = {}
        for e in explainers:
            cfg = e if isinstance(e, str) else {k: v for k, v in dict(e).items() if k != 'label'}
            base = e if isinstance(e, str) else str(dict(e).get('label') or cfg.get('type', 'explainer')).lower()
            self.explainers[_unique(base, used)] = build_explainer(cfg)
        used = set()
        self.metrics: dict[str, ExplanationMetric] = {}
        for m in metrics:
            metric = build_explanation_metric(m if isinstance(m, str) else
                                              {k: v for k, v in dict(m).items() if k != 'label'})
            base = metric.name if isinstance(m, str) else str(dict(m).get('label') or metric.name)
            self.metrics[_unique(base, used)] = metric
        self.rank_by = rank_by or next(iter(self.metrics))
        if self.rank_by not in self.metrics:
            raise ConfigError(f'ExplanationQuality: rank_by={rank_by!r} is not one of the metrics '
                              f'{list(self.metrics)}.')
        self.subset = None if subset is None else int(subset)
        self.seed, self.explain_class, self.out_dir = int(seed), explain_class, out_dir
        self.num_examples, self.progress = int(num_examples), bool(progress)
        if batch_size is not None and int(batch_size) < 1:
            raise ConfigError(f'ExplanationQuality: batch_size must be >= 1 (or None), got {batch_size}.')
        self.batch_size = None if batch_size is None else int(batch_size)
        self._pending: list[tuple[Tensor, Any, dict]] = []
        self._progress = Fraction(0)
        self.seconds = 0.0
        """Wall time this process spent explaining and scoring (recorded in results.json as ``seconds``)."""
        self.model: torch.nn.Module | None = None
        self.dataset_len: int | None = None
        self._chosen: set[int] | None = None
        self._seen = 0
        self._bar: Any = None
        self._keep: dict[str, list[tuple[float, dict]]] = {}
        self.last_summary: dict[str, Any] | None = None

    # --- set-up --------------------------------------------------------------------------------------------
    def attach(self, model: torch.nn.Module, dataset_len: int | None = None, out_dir: str | None = None) -> None:
        """Give the metric the model to explain (and the test-set size, and a default output folder)."""
        from mmengine.model import is_model_wrapper

        self.model = model.module if is_model_wrapper(model) else model
        self.dataset_len = dataset_len
        if self.out_dir is None:
            self.out_dir = out_dir
        self._chosen, self._seen, self._keep, self._pending, self._progress = None, 0, {}, [], Fraction(0)
        self.seconds = 0.0
        if self.subset is not None and dataset_len:
            g = torch.Generator().manual_seed(self.seed)
            self._chosen = set(torch.randperm(dataset_len, generator=g)[:self.subset].tolist())
        self._bar = None  # opened when the first batch is explained (not while the test loop's bar runs)

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _open_bar(self) -> None:
        if self._bar is not None or not self.progress or get_rank() != 0:
            return
        from tqdm.auto import tqdm

        n = self.dataset_len if self.subset is None else min(self.subset, self.dataset_len or self.subset)
        total = math.ceil(n / get_world_size()) if n else None
        self._bar = tqdm(total=total, desc=f"explaining ({', '.join(self.explainers)})", unit='img', leave=False)

    def conventions(self) -> dict[str, Any]:
        """How the maps were made and scored (explainer configs and the model's default target layer, metric
        fields, the class explained, the subset)."""
        meta = getattr(self.model, 'explain_meta', None) or {}
        return dict(explainers={k: e.config() for k, e in self.explainers.items()},
                    default_target_layer=meta.get('target_layer'),
                    metrics={k: m.conventions() for k, m in self.metrics.items()},
                    explain_class=self.explain_class, subset=self.subset, subset_seed=self.seed)

    def _selected(self, samples: Sequence[Any]) -> list[int]:
        out = []
        for i, s in enumerate(samples):
            idx = s.get('sample_idx')
            if self._chosen is not None and idx is not None:
                ok = int(idx) in self._chosen
            else:  # no index or size known: the first subset / world_size samples of this rank
                ok = self.subset is None or self._seen < math.ceil(self.subset / get_world_size())
            if ok:
                self._seen += 1
                out.append(i)
        return out

    # --- per batch ------------------------------------------------------------------------------------------
    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        if self.model is None:
            raise ConfigError('ExplanationQuality has no model to explain: add custom_hooks=[dict(type='
                              "'ExplanationHook')] to the config (tools/test.py --explainers adds it).")
        records: list[dict | None] = [None] * len(data_samples)
        for i in self._selected(data_samples):
            # a placeholder now (mmengine collects self.results in order), filled in when its batch is explained
            records[i] = dict(sample_idx=data_samples[i].get('sample_idx'))
            raw = data_batch['inputs'][i]
            if self._pending and tuple(raw.shape) != tuple(self._pending[0][0].shape):
                self.flush()  # another image size: the pending batch cannot be stacked with it
            self._pending.append((raw, data_samples[i], records[i]))
        self.results.extend(records)
        if self.batch_size is None or len(self._pending) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        """Explain and score the collected samples (called every ``batch_size`` samples and before evaluating)."""
        start = time.perf_counter()
        if self._pending:
            self._open_bar()
        try:
            while self._pending:
                n = len(self._pending) if self.batch_size is None else self.batch_size
                chunk, self._pending = self._pending[:n], self._pending[n:]
                raw = [c[0] for c in chunk]
                for rec, new in zip((c[2] for c in chunk), self._explain(raw, [c[1] for c in chunk])):
                    rec.update(new)
        except BaseException:
            self._close_bar()  # the error message starts on a clean line
            raise
        self.seconds += time.perf_counter() - start

    def evaluate(self, size: int) -> dict:
        self.flush()
        return super().evaluate(size)

    def _stage_done(self, images: int) -> None:
        """Advance the bar (in images) by this stage's share: explaining and each metric are one stage each."""
        if self._bar is not None:
            self._progress += Fraction(images, len(self.explainers) * (1 + len(self.metrics)))
            whole = int(self._progress) - self._bar.n
            if whole > 0:
                self._bar.update(whole)

    def _explain(self, raw: list[Tensor], samples: list[Any]) -> list[dict]:
        model = self.model
        images = model.data_preprocessor(dict(inputs=list(raw), data_samples=list(samples)), False)['inputs']
        labels = stack_field(samples, 'gt_label')
        has = stack_field(samples, 'has_object')
        masks, boxes = stack_field(samples, 'gt_mask'), stack_field(samples, 'gt_box')
        if has is not None:
            if masks is not None:
                masks = masks.bool() & has.bool().reshape(-1, 1, 1)
            if boxes is not None:
                boxes = torch.where(has.bool().reshape(-1, 1), boxes.float(), torch.zeros_like(boxes.float()))
        records = [dict(sample_idx=s.get('sample_idx'), label=None if labels is None else int(labels[k]),
                        values={}, classes={}, curves={}, curve_x={}, conventions={}, payload={})
                   for k, s in enumerate(samples)]
        targets = labels.to(images.device) if (self.explain_class == 'target' and labels is not None) else None
        if self.explain_class == 'target' and labels is None:
            raise ConfigError("ExplanationQuality: explain_class='target' needs gt_label in the test samples.")
        for ename, explainer in self.explainers.items():
            with torch.enable_grad():
                maps = explainer(model, images, targets=targets)
            self._stage_done(len(samples))
            for mname, metric in self.metrics.items():
                res = metric(model, images, maps, targets=labels, masks=masks, boxes=boxes)
                for k, rec in enumerate(records):
                    rec['values'].setdefault(ename, {})[mname] = float(res.per_sample[k])
                    rec['classes'].setdefault(ename, {})[mname] = None if res.classes is None else \
                        int(res.classes[k])
                    if res.curve is not None:
                        rec['curves'].setdefault(ename, {})[mname] = res.curve[k].numpy().astype(np.float32)
                        rec['curve_x'][mname] = res.curve_x.tolist()
                    rec['conventions'][mname] = res.conventions
                self._stage_done(len(samples))
            self._keep_examples(ename, records, raw, maps)
        return records

    def _keep_examples(self, ename: str, records: list[dict], raw: list[torch.Tensor], maps: torch.Tensor) -> None:
        """Keep the image and map of this rank's best and worst ``num_examples`` only (memory stays small)."""
        if self.num_examples <= 0:
            return
        pool = self._keep.setdefault(ename, [])
        for rec, img, m in zip(records, raw, maps):
            v = rec['values'][ename][self.rank_by]
            if not math.isnan(v):
                rec['payload'][ename] = dict(image=img.detach().cpu().to(torch.uint8),
                                             map=(m.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu())
                pool.append((v, rec))
        pool.sort(key=lambda t: t[0])
        k = self.num_examples
        keep = pool if len(pool) <= 2 * k else pool[:k] + pool[-k:]
        for _, rec in pool:
            if not any(rec is r for _, r in keep):
                rec['payload'].pop(ename, None)
        self._keep[ename] = keep

    # --- after the test set ---------------------------------------------------------------------------------
    def compute_metrics(self, results: list) -> dict[str, float]:
        from .report import summarize, write_report

        self._close_bar()
        records = [r for r in results if r is not None]
        summary = summarize(self, records)
        summary['seconds'] = round(self.seconds, 3)  # the main process's explaining time
        self.last_summary = summary
        if self.out_dir:
            summary['files'] = write_report(summary, records, self.out_dir, self)
        out: dict[str, float] = {}
        for ename, per_metric in summary['results'].items():
            for mname, entry in per_metric.items():
                out[f'{ename}/{mname}'] = entry['aggregate']
        return out


@HOOKS.register_module()
class ExplanationHook(Hook):
    """Hand the model (and the dataset size and ``<work_dir>/explain``) to every ``ExplanationQuality`` metric of
    the test loop (and of the validation loop, with ``<work_dir>/explain_val``)."""

    priority = 'NORMAL'

    def before_test(self, runner: Any) -> None:
        self._attach(runner, runner.test_loop, 'explain')

    def before_val(self, runner: Any) -> None:
        self._attach(runner, runner.val_loop, 'explain_val')

    @staticmethod
    def _attach(runner: Any, loop: Any, folder: str) -> None:
        dataset = loop.dataloader.dataset
        for metric in getattr(loop.evaluator, 'metrics', []):
            if isinstance(metric, ExplanationQuality):
                metric.attach(runner.model, len(dataset), os.path.join(runner.work_dir, folder))
