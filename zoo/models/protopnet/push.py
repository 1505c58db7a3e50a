"""The push (prototype projection) of ProtoPNet: every prototype becomes its nearest latent training patch of its
own class, and the model records where that patch came from.

For each prototype ``p`` of class ``c`` the push searches the latent patches of every image of class ``c`` for the
one nearest to ``p`` (squared L2), copies that patch's latent vector into ``p`` and stores, in the model's buffers,
the image's index in the push dataset, its path (when the dataset has files), the latent cell, the box of the
pixels at or above the ``box_percentile``-th percentile of the upsampled similarity map (always inside the image)
and the source patch's pixels (the box, resized). Under DDP each process searches its shard of the data and the
nearest patch over all processes wins.

Example::

    from zoo.models.protopnet.push import push_prototypes
    report = push_prototypes(model, push_dataloader)   # batches as the Runner's dataloaders yield them
    report.max_distance                                # largest prototype-to-patch distance before the push
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from registry.errors import DataError

from ...ops.modules import model_state
from ...ops.tensors import resize_maps, stack_field
from .functional import high_activation_boxes


@dataclass
class PushReport:
    """What a push did: each prototype's distance to its new patch *before* the projection (``inf`` when its class
    had no image), the prototypes left unchanged, and how many images were searched."""

    distances: Tensor
    unpushed: list[int] = field(default_factory=list)
    images: int = 0

    @property
    def max_distance(self) -> float:
        finite = self.distances[torch.isfinite(self.distances)]
        return float(finite.max()) if finite.numel() else float('nan')


def _relative(path: str | None, root: str | None) -> str:
    if not path:
        return ''
    if root:
        try:
            rel = os.path.relpath(path, root)
            if not rel.startswith('..'):
                return rel
        except ValueError:  # another drive
            pass
    return path


def _gather_best(best: dict[str, Tensor]) -> dict[str, Tensor]:
    """Under DDP: per prototype, the record of the process that found the smallest distance."""
    from mmengine.dist import all_gather, get_world_size

    if get_world_size() == 1:
        return best
    gathered = {k: torch.stack(all_gather(v)) for k, v in best.items()}        # [world, P, ...]
    winner = gathered['distance'].argmin(0)                                    # [P]
    idx = torch.arange(winner.numel(), device=winner.device)
    return {k: v[winner, idx] for k, v in gathered.items()}


@torch.no_grad()
def push_prototypes(model: Any, dataloader: Iterable[dict], progress: bool = False,
                    root: str | None = None) -> PushReport:
    """Project every prototype of ``model`` (a ``ProtoPNet``) onto its nearest latent patch of its own class in the
    images of ``dataloader`` (batches of ``inputs`` uint8 + ``data_samples`` with ``gt_label``; use the training
    images with the *test* pipeline, unaugmented) and record the source; returns a :class:`PushReport`.

    ``root``: paths are stored relative to it when they lie inside (default: the dataset's ``data_root``).
    """
    dataset = getattr(dataloader, 'dataset', None)
    root = root if root is not None else (getattr(dataset, 'data_root', None) or None)
    device = model.device
    num, dim = model.prototype_vectors.shape
    proto_class = model.prototype_class.to(device)
    size = model.push_patch.shape[-1] if hasattr(model, 'push_patch') else 0
    best: dict[str, Tensor] = {
        'distance': torch.full((num,), float('inf'), device=device),
        'vector': model.prototype_vectors.detach().clone(),
        'index': torch.full((num,), -1, dtype=torch.long, device=device),
        'location': torch.full((num, 2), -1, dtype=torch.long, device=device),
        'box': torch.full((num, 4), -1, dtype=torch.long, device=device),
    }
    if size:
        best['patch'] = torch.zeros(num, 3, size, size, dtype=torch.uint8, device=device)
    if hasattr(model, 'push_path'):
        best['path'] = torch.zeros_like(model.push_path, device=device)
    seen = 0
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(dataloader) if hasattr(dataloader, '__len__') else None, desc='push', unit='batch',
                   leave=False)
    with model_state(model, eval_mode=True, freeze=False):
        for batch in dataloader:
            data = model.data_preprocessor(batch, False)
            x, samples = data['inputs'], data['data_samples']
            labels = stack_field(samples or [], 'gt_label')
            if labels is None:
                raise DataError('The push needs gt_label in every sample of the push dataloader.')
            labels = labels.to(device).view(-1)
            raw = batch['inputs']
            raw = torch.stack(list(raw)) if isinstance(raw, (list, tuple)) else raw
            z = model.features(x)                                                    # [B, D, H, W]
            d = model.distances(z)                                                   # [B, P, H, W]
            b, _, h, w = d.shape
            own = labels.view(-1, 1) == proto_class.view(1, -1)                      # [B, P]
            flat = d.masked_fill(~own[:, :, None, None], float('inf')).permute(1, 0, 2, 3).reshape(num, -1)
            value, arg = flat.min(1)
            better = (value < best['distance']).nonzero().flatten()
            if better.numel():
                bi, hw = arg[better] // (h * w), arg[better] % (h * w)
                hi, wi = hw // w, hw % w
                best['distance'][better] = value[better]
                best['vector'][better] = z[bi, :, hi, wi].to(best['vector'].dtype)
                index = [s.get('sample_idx') for s in samples]
                index = [seen + i if v is None else int(v) for i, v in enumerate(index)]
                best['index'][better] = torch.as_tensor(index, device=device)[bi]
                best['location'][better] = torch.stack([hi, wi], 1)
                sims = model.similarity_of(d[bi, better])                            # [U, H, W]
                boxes = high_activation_boxes(resize_maps(sims.float(), tuple(raw.shape[-2:])),
                                              model.box_percentile).to(device)
                best['box'][better] = boxes
                for k, p in enumerate(better.tolist()):
                    sample = int(bi[k])
                    if size:
                        x1, y1, x2, y2 = boxes[k].tolist()
                        crop = raw[sample, :, y1:y2, x1:x2].float()[None]
                        best['patch'][p] = F.interpolate(crop, size=(size, size), mode='bilinear', antialias=True,
                                                         align_corners=False)[0].round().clamp(0, 255).to(torch.uint8)
                    if 'path' in best:
                        path = _relative(samples[sample].get('img_path'), root)
                        best['path'][p] = model.encode_path(path).to(device)
            seen += b
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    best = _gather_best(best)
    pushed = torch.isfinite(best['distance'])
    with torch.no_grad():
        model.prototype_vectors[pushed] = best['vector'][pushed].to(model.prototype_vectors.dtype)
        for name in ('index', 'location', 'box', 'patch', 'path'):
            if name in best:
                getattr(model, f'push_{name}')[pushed] = best[name][pushed].to(getattr(model, f'push_{name}').device)
        model.push_count += 1
    return PushReport(distances=best['distance'].cpu(), unpushed=(~pushed).nonzero().flatten().tolist(), images=seen)
