"""``Accuracy``: top-k accuracy for mmengine's evaluator (registry ``METRICS``).

Example:
    >>> import torch
    >>> from zoo.structures import DataSample
    >>> m = Accuracy(topk=(1, 2))
    >>> m.process({}, [DataSample().set_gt_label(1).set_pred_score(torch.tensor([0.2, 0.5, 0.3]))])
    >>> m.compute_metrics(m.results)
    {'top1': 100.0, 'top2': 100.0}
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from mmengine.evaluator import BaseMetric

from registry import METRICS


@METRICS.register_module()
class Accuracy(BaseMetric):
    """Top-k accuracy in percent, as mmpretrain reports it (``accuracy/top1``, ``accuracy/top5``).

    Args:
        topk: the k values; a k larger than the number of classes is reported as 100 % (every class is in it).

    After :meth:`compute_metrics`, ``last_per_sample`` holds the per-image outcome: ``sample_idx``, ``label``,
    ``pred`` (top-1 class) and ``correct`` (``{'top1': [0/1, ...]}``), in the order of the gathered results.
    """

    default_prefix = 'accuracy'

    def __init__(self, topk: int | Sequence[int] = (1,), collect_device: str = 'cpu',
                 prefix: str | None = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.topk = (topk,) if isinstance(topk, int) else tuple(topk)
        self.last_per_sample: dict[str, Any] | None = None

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        for sample in data_samples:
            get = sample.get if hasattr(sample, 'get') else sample.__getitem__
            idx = sample.get('sample_idx') if hasattr(sample, 'get') else None
            self.results.append((get('pred_score').detach().cpu(), int(get('gt_label')),
                                 None if idx is None else int(idx)))

    def compute_metrics(self, results: list) -> dict[str, float]:
        scores = torch.stack([r[0] for r in results])
        labels = torch.tensor([r[1] for r in results])
        out, correct = {}, {}
        for k in self.topk:
            kk = min(k, scores.shape[1])
            hit = (scores.topk(kk, dim=1).indices == labels[:, None]).any(1)
            correct[f'top{k}'] = hit.int().tolist()
            out[f'top{k}'] = round(float(hit.float().mean()) * 100, 4)
        self.last_per_sample = dict(sample_idx=[r[2] for r in results], label=labels.tolist(),
                                    pred=scores.argmax(1).tolist(), correct=correct)
        return out
