"""The tensor maths of a prototype network (ProtoPNet, Chen et al. 2019), as plain functions of tensors.

- :func:`l2_distances`: squared L2 distance of every 1×1 prototype to every latent patch, ``[B, P, H, W]``;
- :func:`log_similarity`: ProtoPNet's similarity ``log((d + 1) / (d + ε))`` (``'linear'``: ``-d``);
- :func:`cluster_cost`, :func:`separation_cost`: for each image, the smallest distance to a prototype of its own
  class / of another class, averaged over the batch (the paper's Clst and, with a negative coefficient, Sep);
- :func:`wrong_class_l1`: the L1 norm of the last layer's weights from prototypes to the classes they do not
  belong to;
- :func:`high_activation_box`: the box around the pixels of an upsampled similarity map at or above a percentile
  (how ProtoPNet draws a prototype's patch in its source image).

Example:
    >>> import torch
    >>> z = torch.tensor([[[[0.]], [[1.]]]])            # one image, 2 channels, a 1x1 feature map
    >>> p = torch.tensor([[0., 1.], [1., 1.]])           # two prototypes
    >>> l2_distances(z, p).flatten().tolist()
    [0.0, 1.0]
    >>> round(float(log_similarity(torch.tensor(1.0), 1e-4)), 4)   # log(2 / 1.0001)
    0.693
"""
from __future__ import annotations

import torch
from torch import Tensor

SIMILARITIES = ('log', 'linear')


def l2_distances(features: Tensor, prototypes: Tensor) -> Tensor:
    """``‖z_hw − p‖²`` for features ``[B, D, H, W]`` and 1×1 prototypes ``[P, D]`` → ``[B, P, H, W]``.

    Computed as ``‖z‖² − 2 z·p + ‖p‖²`` and clamped at 0, as ProtoPNet's ``_l2_convolution`` (one matrix product
    instead of a difference tensor of size B·P·D·H·W).
    """
    z2 = features.pow(2).sum(1, keepdim=True)                        # [B, 1, H, W]
    zp = torch.einsum('bdhw,pd->bphw', features, prototypes)           # [B, P, H, W]
    p2 = prototypes.pow(2).sum(1).view(1, -1, 1, 1)                    # [1, P, 1, 1]
    return (z2 - 2 * zp + p2).clamp_min(0)


def log_similarity(distances: Tensor, epsilon: float = 1e-4, kind: str = 'log') -> Tensor:
    """ProtoPNet's distance → similarity: ``log((d + 1) / (d + ε))`` (``kind='log'``) or ``-d`` (``'linear'``)."""
    if kind == 'log':
        return torch.log((distances + 1) / (distances + epsilon))
    if kind == 'linear':
        return -distances
    raise ValueError(f"similarity must be one of {SIMILARITIES}, got {kind!r}")


def own_class_mask(labels: Tensor, prototype_class: Tensor) -> Tensor:
    """Bool ``[B, P]``: prototype ``p`` belongs to the class of image ``b``."""
    return labels.view(-1, 1) == prototype_class.view(1, -1)


def cluster_cost(min_distances: Tensor, labels: Tensor, prototype_class: Tensor) -> Tensor:
    """Mean over the batch of the smallest distance from the image to a prototype of its own class.

    ``min_distances``: ``[B, P]``, each prototype's distance to its nearest patch of the image. ProtoPNet's code
    computes ``max_dist − max((max_dist − d) · own)`` with ``max_dist = D``; the two are equal whenever every
    distance is at most ``D`` (always so for sigmoid features and prototypes in [0, 1]).
    """
    own = own_class_mask(labels, prototype_class)
    return min_distances.masked_fill(~own, float('inf')).min(1).values.mean()


def separation_cost(min_distances: Tensor, labels: Tensor, prototype_class: Tensor) -> Tensor:
    """Mean over the batch of the smallest distance from the image to a prototype of *another* class (the loss
    weights it with a negative coefficient, so training pushes it up)."""
    own = own_class_mask(labels, prototype_class)
    return min_distances.masked_fill(own, float('inf')).min(1).values.mean()


def wrong_class_l1(weight: Tensor, prototype_class: Tensor) -> Tensor:
    """``‖W ⊙ (1 − identityᵀ)‖₁`` for the last layer's weight ``[C, P]``: its connections from each prototype to
    the classes it does not belong to."""
    classes = torch.arange(weight.shape[0], device=weight.device).view(-1, 1)
    return weight.masked_fill(classes == prototype_class.view(1, -1), 0).abs().sum()


def class_connection_weights(prototype_class: Tensor, num_classes: int, incorrect: float = -0.5) -> Tensor:
    """The last layer's initial weight ``[C, P]``: 1 from a prototype to its class, ``incorrect`` to the others."""
    classes = torch.arange(num_classes, device=prototype_class.device).view(-1, 1)
    own = classes == prototype_class.view(1, -1)
    return torch.where(own, torch.ones((), device=own.device), torch.full((), float(incorrect), device=own.device))


def high_activation_boxes(maps: Tensor, percentile: float = 95.0, chunk: int = 64) -> Tensor:
    """Long ``[N, 4]`` boxes ``(x1, y1, x2, y2)`` (pixels, end exclusive) around the pixels of each map ``[N, H, W]``
    at or above its ``percentile``-th percentile (linear interpolation, as ``numpy.percentile``): ProtoPNet's
    ``find_high_activation_crop``. Every box lies inside its map; a map without finite values gets the whole map."""
    n, h, w = maps.shape
    out = torch.empty(n, 4, dtype=torch.long)
    q = min(max(float(percentile), 0.0), 100.0) / 100.0
    for start in range(0, n, chunk):  # sorting H*W values per map: bounded memory
        part = maps[start:start + chunk].detach().float()
        values = part.flatten(1).sort(1).values
        pos = q * (values.shape[1] - 1)
        lo, frac = int(pos), pos - int(pos)
        hi = min(lo + 1, values.shape[1] - 1)
        threshold = values[:, lo] + (values[:, hi] - values[:, lo]) * frac
        mask = part >= threshold.view(-1, 1, 1)
        rows, cols = mask.any(2), mask.any(1)                                     # [n, H], [n, W]
        ar_h = torch.arange(h, device=part.device)
        ar_w = torch.arange(w, device=part.device)
        y1 = torch.where(rows, ar_h, h).amin(1)
        y2 = torch.where(rows, ar_h, -1).amax(1) + 1
        x1 = torch.where(cols, ar_w, w).amin(1)
        x2 = torch.where(cols, ar_w, -1).amax(1) + 1
        box = torch.stack([x1, y1, x2, y2], 1)
        empty = ~rows.any(1)
        box[empty] = torch.tensor([0, 0, w, h], device=box.device)
        out[start:start + chunk] = box.cpu()
    return out


def high_activation_box(similarity_map: Tensor, percentile: float = 95.0) -> tuple[int, int, int, int]:
    """:func:`high_activation_boxes` of one map ``[H, W]`` as a tuple."""
    x1, y1, x2, y2 = high_activation_boxes(similarity_map[None], percentile)[0].tolist()
    return x1, y1, x2, y2
