"""``DoublyRightAccuracy``: right category for the right reasons (Mao et al., CVPR 2023), registry ``METRICS``.

Every image falls in one of four cells: **RR** (right category, right rationale), **RW** (right category, wrong
rationale), **WR** (wrong category, right rationale), **WW** (both wrong); the four sum to 100 % and RR + RW is
plain top-1. The rationale criterion is a switch:

- ``criterion='top1'`` (default): the rationale is right when the most probable rationale is one of the image's right
  rationales (for class-derived labels: one of its class's rationales);
- ``criterion='topk'``: when at least ``min_overlap`` of the ``k`` most probable rationales are right (DROR's
  evaluation looks for a right rationale in the top 5 retrieved "c because there is r" prompts).

It reads, per data sample, ``pred_score`` ``[K]`` and ``gt_label`` (the category), ``pred_rationale_score`` ``[N]``
and ``gt_rationale_mask`` (bool ``[N]``, the right rationales) — what ``ECOR.predict`` writes.

Example:
    >>> import torch
    >>> from zoo.structures import DataSample
    >>> s = DataSample().set_gt_label(0).set_pred_score(torch.tensor([0.9, 0.1]))
    >>> s.pred_rationale_score, s.gt_rationale_mask = torch.tensor([0.2, 0.7, 0.1]), torch.tensor([True, False, False])
    >>> m = DoublyRightAccuracy()
    >>> m.process({}, [s])
    >>> m.compute_metrics(m.results)
    {'RR': 0.0, 'RW': 100.0, 'WR': 0.0, 'WW': 0.0, 'top1': 100.0, 'rationale_right': 0.0}
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from mmengine.evaluator import BaseMetric

from registry import METRICS
from registry.errors import ConfigError, DataError

CRITERIA = ('top1', 'topk')


@METRICS.register_module()
class DoublyRightAccuracy(BaseMetric):
    """RR / RW / WR / WW in percent, with top-1 and the rationale accuracy (see the module docstring).

    Args:
        criterion: ``'top1'`` or ``'topk'`` (the rationale criterion).
        k: rationales looked at with ``'topk'``.
        min_overlap: right rationales needed among those ``k``.

    After :meth:`compute_metrics`, ``last_per_sample`` holds per image ``sample_idx``, ``label``, ``pred`` and
    ``correct`` (``{'top1': [...], 'RR': [...], 'rationale_right': [...]}``, 0/1).
    """

    default_prefix = 'doubly_right'

    def __init__(self, criterion: str = 'top1', k: int = 3, min_overlap: int = 1, collect_device: str = 'cpu',
                 prefix: str | None = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if criterion not in CRITERIA:
            raise ConfigError(f'criterion must be one of {CRITERIA}, got {criterion!r}.')
        if int(k) < 1 or int(min_overlap) < 1 or int(min_overlap) > int(k):
            raise ConfigError(f'Need 1 <= min_overlap <= k, got k={k}, min_overlap={min_overlap}.')
        self.criterion, self.k, self.min_overlap = criterion, int(k), int(min_overlap)
        self.last_per_sample: dict[str, Any] | None = None

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        for sample in data_samples:
            get = sample.get if hasattr(sample, 'get') else sample.__getitem__
            fields = {f: get(f) for f in ('pred_score', 'gt_label', 'pred_rationale_score', 'gt_rationale_mask')}
            missing = [f for f, v in fields.items() if v is None]
            if missing:
                raise DataError(f'DoublyRightAccuracy needs {", ".join(missing)} in every data sample; a model with '
                                'rationales (ECOR) writes them in predict().')
            scores, mask = fields['pred_rationale_score'].detach().cpu(), torch.as_tensor(fields['gt_rationale_mask'])
            if mask.shape != scores.shape:
                raise DataError(f'gt_rationale_mask has shape {tuple(mask.shape)} but pred_rationale_score has '
                                f'{tuple(scores.shape)}.')
            idx = get('sample_idx')
            self.results.append((int(fields['pred_score'].argmax()), int(fields['gt_label']), scores,
                                 mask.bool().cpu(), None if idx is None else int(idx)))

    def rationale_right(self, scores: torch.Tensor, mask: torch.Tensor) -> bool:
        if self.criterion == 'top1':
            return bool(mask[int(scores.argmax())])
        top = scores.topk(min(self.k, scores.numel())).indices
        return int(mask[top].sum()) >= self.min_overlap

    def compute_metrics(self, results: list) -> dict[str, float]:
        cat = torch.tensor([r[0] == r[1] for r in results])
        rat = torch.tensor([self.rationale_right(r[2], r[3]) for r in results])
        n = max(len(results), 1)

        def pct(x: torch.Tensor) -> float:
            return round(float(x.sum()) * 100 / n, 4)

        self.last_per_sample = dict(sample_idx=[r[4] for r in results], label=[r[1] for r in results],
                                    pred=[r[0] for r in results],
                                    correct={'top1': cat.int().tolist(), 'RR': (cat & rat).int().tolist(),
                                             'rationale_right': rat.int().tolist()})
        return {'RR': pct(cat & rat), 'RW': pct(cat & ~rat), 'WR': pct(~cat & rat), 'WW': pct(~cat & ~rat),
                'top1': pct(cat), 'rationale_right': pct(rat)}
