"""ROAD: RemOve And Debias (Rong, Leemann et al., ICML 2022), batched, with noisy linear imputation.

For each threshold percentile ``p`` the pixels to remove are chosen as ``pytorch_grad_cam.metrics.road`` does:

* most relevant first (MoRF): remove the pixels with ``map >= percentile(map, p)`` (about ``100 − p`` %);
* least relevant first (LeRF): remove the pixels with ``1 − map >= percentile(1 − map, p)`` (about ``100 − p`` %).

Removed pixels are *imputed*: each is the weighted mean of its 8 neighbours (1/6 for the 4 direct, 1/12 for the
diagonal ones; neighbours outside the image drop out), which couples all removed pixels into one sparse linear
system per image. We solve those systems for the whole batch at once with a Jacobi-preconditioned conjugate
gradient on the image grid (the system is symmetric positive definite whenever one pixel is kept), in float64, to a
relative residual of ``tol`` (``solver='cg'``, the GPU default), or exactly with a sparse LU per image
(``solver='direct'``, the CPU default); then Gaussian noise of standard deviation ``noise`` is added to the
imputed pixels.
The result per percentile is the **change** of the scored class's score, ``score(imputed) − score(original)``
(as grad-cam); ``order='combined'`` reports ``(LeRF − MoRF) / 2`` averaged over the percentiles (grad-cam's
``ROADCombined``; higher is better).

Noise is drawn from a private generator seeded with ``seed``, in grad-cam's order (LeRF then MoRF, percentiles
outer, images inner, one ``[C, n_removed]`` draw per image), so on the CPU a seeded run equals grad-cam run after
``torch.manual_seed(seed)``. If every pixel is removed (a constant map), the imputed image is 0 (+ noise) where
grad-cam's solver fails.

Example:
    >>> import timm, torch
    >>> from zoo.metrics import ROAD
    >>> model = timm.create_model('test_resnet', pretrained=False, num_classes=3)
    >>> r = ROAD(percentiles=[20, 80], order='morf')(model, torch.randn(2, 3, 16, 16), torch.rand(2, 16, 16))
    >>> tuple(r.curve.shape), r.conventions['order']
    ((2, 2), 'morf')
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from registry import EXPLANATION_METRICS
from registry.errors import ConfigError

from .base import MetricResult, ScoredMetric, class_scores

NEIGHBOUR_WEIGHTS = ((1 / 12, 1 / 6, 1 / 12), (1 / 6, 0.0, 1 / 6), (1 / 12, 1 / 6, 1 / 12))
"""ROAD's imputation weights of the 3 × 3 neighbourhood (the centre is the unknown)."""


def linear_impute(images: Tensor, keep: Tensor, tol: float = 1e-8, max_iter: int = 5000) -> Tensor:
    """Fill the pixels where ``keep`` is False by ROAD's linear imputation (no noise); keep the others.

    Args:
        images: ``[N, C, H, W]``. keep: bool ``[N, H, W]`` (True = known pixel).
        tol: stop when every system's residual norm is below ``tol`` times its right-hand side's.
        max_iter: at most this many conjugate-gradient iterations.

    Example:
        >>> img = torch.arange(9.).view(1, 1, 3, 3)
        >>> keep = torch.ones(1, 3, 3, dtype=torch.bool); keep[0, 1, 1] = False
        >>> round(float(linear_impute(img, keep)[0, 0, 1, 1]), 6)      # mean of the neighbours
        4.0
    """
    n, c, h, w = images.shape
    x = images.double()
    known = keep[:, None].to(x.dtype)
    unknown = 1 - known
    kernel = torch.tensor(NEIGHBOUR_WEIGHTS, dtype=x.dtype, device=x.device)[None, None]

    def neighbours(z: Tensor) -> Tensor:
        return F.conv2d(z.reshape(-1, 1, h, w), kernel, padding=1).view(z.shape)

    diag = neighbours(torch.ones(1, 1, h, w, dtype=x.dtype, device=x.device))  # weight of in-image neighbours

    def apply(z: Tensor) -> Tensor:  # the system matrix on the unknown pixels (z is zero on known ones)
        return (diag * z - neighbours(z)) * unknown

    rhs = neighbours(x * known) * unknown
    z = torch.zeros_like(x)
    r = rhs.clone()
    pre = r / diag
    p = pre.clone()
    rz = (r * pre).sum((2, 3), keepdim=True)
    target = tol * rhs.flatten(2).norm(dim=2)
    for _ in range(max_iter):
        if bool((r.flatten(2).norm(dim=2) <= target).all()):
            break
        ap = apply(p)
        pap = (p * ap).sum((2, 3), keepdim=True)
        alpha = torch.where(pap > 0, rz / torch.where(pap > 0, pap, torch.ones_like(pap)), torch.zeros_like(pap))
        z = z + alpha * p
        r = r - alpha * ap
        pre = r / diag
        rz_new = (r * pre).sum((2, 3), keepdim=True)
        beta = torch.where(rz > 0, rz_new / torch.where(rz > 0, rz, torch.ones_like(rz)), torch.zeros_like(rz))
        p = pre + beta * p
        rz = rz_new
    return (x * known + z * unknown).to(images.dtype)


def direct_impute(images: Tensor, keep: Tensor) -> Tensor:
    """:func:`linear_impute` by a sparse direct solve per image (SciPy's SuperLU, on the CPU): exact, and on a CPU
    much faster than the iterative solver for large holes.

    Example:
        >>> img = torch.arange(9.).view(1, 1, 3, 3)
        >>> keep = torch.ones(1, 3, 3, dtype=torch.bool); keep[0, 1, 1] = False
        >>> round(float(direct_impute(img, keep)[0, 0, 1, 1]), 6)
        4.0
    """
    import numpy as np
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import spsolve

    n, c, h, w = images.shape
    out = images.detach().double().cpu().clone()
    weights = np.asarray(NEIGHBOUR_WEIGHTS)
    ys, xs = np.mgrid[0:h, 0:w]
    for i in range(n):
        known = keep[i].cpu().numpy()
        unknown_idx = np.flatnonzero(~known)
        if unknown_idx.size == 0:
            continue
        if unknown_idx.size == h * w:
            out[i] = 0.0  # nothing to interpolate from (the system is singular)
            continue
        var = np.full(h * w, -1)
        var[unknown_idx] = np.arange(unknown_idx.size)
        uy, ux = ys.ravel()[unknown_idx], xs.ravel()[unknown_idx]
        flat = out[i].reshape(c, -1).numpy()
        diag = np.zeros(unknown_idx.size)
        rhs = np.zeros((unknown_idx.size, c))
        rows, cols, vals = [], [], []
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                wgt = weights[dy + 1, dx + 1]
                if wgt == 0:
                    continue
                ny, nx = uy + dy, ux + dx
                inside = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
                diag[inside] += wgt
                nb = ny[inside] * w + nx[inside]
                eq = np.flatnonzero(inside)
                is_known = known.ravel()[nb]
                rhs[eq[is_known]] += wgt * flat[:, nb[is_known]].T
                rows.append(eq[~is_known])
                cols.append(var[nb[~is_known]])
                vals.append(np.full(int((~is_known).sum()), -wgt))
        m = unknown_idx.size
        a = coo_matrix((np.concatenate([diag, *vals]), (np.concatenate([np.arange(m), *rows]),
                                                         np.concatenate([np.arange(m), *cols]))), shape=(m, m))
        sol = spsolve(a.tocsc(), rhs).reshape(m, c)
        flat[:, unknown_idx] = sol.T
    return out.to(images.dtype).to(images.device)


@EXPLANATION_METRICS.register_module()
class ROAD(ScoredMetric):
    """ROAD with noisy linear imputation, over a list of threshold percentiles.

    Args:
        percentiles: threshold percentiles ``p`` (grad-cam's meaning: about ``100 − p`` % of pixels are removed).
        order: ``'morf'`` (lower is better), ``'lerf'`` (higher is better) or ``'combined'`` = (LeRF − MoRF) / 2
            (default; higher is better).
        scored_class: ``'predicted'`` (default) or ``'target'``.
        use_softmax: score probabilities (default) or logits (grad-cam's ``ClassifierOutputTarget``).
        noise: standard deviation of the noise added to imputed pixels, in normalised units (ROAD: 0.01).
        seed: seed of the noise generator (deterministic results).
        solver: ``'direct'`` (sparse LU per image with SciPy, exact; fastest on a CPU), ``'cg'`` (batched conjugate
            gradient in torch; fastest on a GPU) or ``'auto'`` (default: ``'cg'`` on CUDA, else ``'direct'``).
        tol, max_iter: the conjugate-gradient stopping rule (relative residual, iterations).
        batch_size: images per solve and per forward pass (speed/memory only).
    """

    name = 'road'
    aliases = ('road_combined',)

    def __init__(self, percentiles: Sequence[float] = (10, 20, 30, 40, 50, 60, 70, 80, 90), order: str = 'combined',
                 scored_class: str = 'predicted', use_softmax: bool = True, noise: float = 0.01, seed: int = 0,
                 solver: str = 'auto', tol: float = 1e-8, max_iter: int = 5000, batch_size: int = 64) -> None:
        super().__init__(scored_class=scored_class, use_softmax=use_softmax, batch_size=batch_size)
        if order not in ('morf', 'lerf', 'combined'):
            raise ConfigError(f"ROAD: order must be 'morf', 'lerf' or 'combined', got {order!r}.")
        if not percentiles or any(not 0 <= float(p) <= 100 for p in percentiles):
            raise ConfigError(f'ROAD: percentiles must be a non-empty list of values in [0, 100], got {percentiles!r}.')
        self.percentiles = tuple(float(p) for p in percentiles)
        self.order = order
        if solver not in ('auto', 'direct', 'cg'):
            raise ConfigError(f"ROAD: solver must be 'auto', 'direct' or 'cg', got {solver!r}.")
        self.noise, self.seed, self.solver = float(noise), int(seed), solver
        self.tol, self.max_iter = float(tol), int(max_iter)
        self.higher_is_better = order != 'morf'

    def keep_masks(self, maps: Tensor, order: str, percentile: float) -> Tensor:
        """Bool ``[B, H, W]``: the pixels kept (not imputed) at ``percentile`` for ``order``."""
        m = maps if order == 'morf' else 1 - maps
        flat = m.flatten(1)
        thr = torch.quantile(flat.double(), percentile / 100, dim=1).to(flat.dtype)
        return (flat < thr[:, None]).view_as(maps)

    def draw_noise(self, keep: Tensor, channels: int, generator: torch.Generator) -> Tensor:
        """Noise ``[N, C, H, W]`` on the removed pixels, drawn image by image as grad-cam's imputer draws it."""
        out = torch.zeros(keep.shape[0], channels, keep[0].numel(), device=keep.device)
        for i, k in enumerate(keep.flatten(1)):
            missing = (~k).nonzero()[:, 0]
            draw = torch.empty(channels, len(missing), device=keep.device).normal_(0, 1, generator=generator)
            out[i][:, missing] = draw
        return out.view(keep.shape[0], channels, *keep.shape[1:])

    def changes(self, model: nn.Module, images: Tensor, maps: Tensor, classes: Tensor, base: Tensor, order: str,
                generator: torch.Generator) -> Tensor:
        """``[B, P]`` score changes after imputing at each percentile."""
        cols = []
        maps = maps.float()
        solver = self.solver if self.solver != 'auto' else ('cg' if images.is_cuda else 'direct')
        for pct in self.percentiles:
            keep = self.keep_masks(maps, order, pct)
            col = []
            for s in range(0, images.shape[0], self.batch_size):
                sl = slice(s, s + self.batch_size)
                if solver == 'cg':
                    imputed = linear_impute(images[sl], keep[sl], self.tol, self.max_iter)
                else:
                    imputed = direct_impute(images[sl], keep[sl])
                noise = self.draw_noise(keep[sl], images.shape[1], generator)
                x = imputed + self.noise * noise
                col.append(class_scores(model, x, classes[sl], self.use_softmax, self.batch_size) - base[sl])
            cols.append(torch.cat(col))
        return torch.stack(cols, 1)

    def compute(self, model: nn.Module, images: Tensor, maps: Tensor, targets: Tensor | None,
                masks: Tensor | None, boxes: Tensor | None) -> MetricResult:
        classes, base = self.scored(model, images, targets)
        generator = torch.Generator(device=images.device).manual_seed(self.seed)
        orders = ('lerf', 'morf') if self.order == 'combined' else (self.order,)
        curves = {o: self.changes(model, images, maps, classes, base, o, generator) for o in orders}
        if self.order == 'combined':
            curve = (curves['lerf'] - curves['morf']) / 2
            extras = dict(morf_curve=curves['morf'].cpu(), lerf_curve=curves['lerf'].cpu())
        else:
            curve, extras = curves[self.order], {}
        x = 1 - torch.tensor(self.percentiles) / 100
        res = self.result(curve.mean(1), curve=curve, curve_x=x, classes=classes, **extras)
        res.conventions['removed_fraction'] = x.tolist()
        return res
