"""Projection CAMs: Eigen-CAM (linear PCA), KPCA-CAM (kernel PCA) and Eigen-Grad-CAM (PCA of gradient × activation).

Each centres its ``hw × C`` matrix (the activations, or ``g ⊙ A`` for Eigen-Grad-CAM) over spatial positions and
projects it onto its first (kernel) principal component. The sign of a principal component is arbitrary; with
``sign_correction=True`` (default) each map is flipped so that its largest-magnitude entry is positive
(scikit-learn's ``svd_flip`` rule; Seg-Eigen-CAM's Eq. 13, which grad-cam applies in ``SegEigenCAM`` — a projection
of ``|g| ⊙ A`` — but not in ``EigenCAM``/``EigenGradCAM``). Eigen-CAM and KPCA-CAM ignore ``targets`` and stop the
forward pass at the target layer.

Example:
    >>> import timm, torch
    >>> from zoo.explainers import EigenCAM
    >>> model = timm.create_model('resnet18', pretrained=False, num_classes=3)
    >>> tuple(EigenCAM(target_layer='layer4')(model, torch.randn(2, 3, 64, 64)).shape)
    (2, 64, 64)
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from registry import EXPLAINERS
from registry.errors import ConfigError

from ._pca import centred_rows, positive_peak
from .base import CAMExplainer, Capture

KERNELS = ('sigmoid', 'rbf', 'poly', 'linear', 'cosine')


class _ProjectionCAM(CAMExplainer):
    uses_gradients = False
    needs_logits = False

    def __init__(self, target_layer: str | nn.Module | Sequence[str | nn.Module] | None = None,
                 sign_correction: bool = True, patch_size: int | Sequence[int] | None = None,
                 num_prefix_tokens: int | None = None, output_fmt: str | None = None, relu: bool = True,
                 normalize: bool = True, resize: bool = True, differentiable: bool = False, eval_mode: bool = True,
                 aug_smooth: bool = False) -> None:
        super().__init__(target_layer=target_layer, patch_size=patch_size, num_prefix_tokens=num_prefix_tokens,
                         output_fmt=output_fmt, relu=relu, aug_smooth=aug_smooth, normalize=normalize,
                         resize=resize, differentiable=differentiable, eval_mode=eval_mode)
        self.sign_correction = sign_correction

    def stack(self, cap: Capture) -> Tensor:
        """The ``[B, C, h, w]`` stack whose spatial positions are projected (the activations)."""
        return cap.activations

    def projection(self, rows: Tensor) -> Tensor:
        """First principal-component scores ``[B, hw]`` of centred rows ``[B, hw, C]``."""
        raise NotImplementedError

    def cam(self, cap: Capture) -> Tensor:
        stack = self.stack(cap)
        b, _, h, w = stack.shape
        proj = self.projection(centred_rows(stack))
        if self.sign_correction:
            proj = positive_peak(proj)
        return proj.reshape(b, h, w)


@EXPLAINERS.register_module()
class EigenCAM(_ProjectionCAM):
    """Eigen-CAM (Muhammad & Yeasin, 2020): the activations projected on their first right singular vector.

    Args:
        sign_correction: make the largest-magnitude value positive (default: grad-cam's ``EigenCAM`` projection with
            grad-cam's own Seg-Eigen-CAM sign correction, ``get_2d_projection_with_sign_correction``); ``False`` keeps
            the SVD's arbitrary sign (grad-cam's ``EigenCAM`` keeps numpy's, which may differ from torch's: the two
            are then equal up to sign).
        other arguments: see :class:`~zoo.explainers.base.CAMExplainer` (``eigen_smooth`` does not apply: the map
            is a projection already).
    """

    aliases = ('eigencam', 'eigen-cam')

    def projection(self, rows: Tensor) -> Tensor:
        u, s, _ = torch.linalg.svd(rows, full_matrices=False)
        return u[..., 0] * s[..., :1]


@EXPLAINERS.register_module()
class EigenGradCAM(EigenCAM):
    """Eigen-Grad-CAM (grad-cam's ``EigenGradCAM``): Eigen-CAM's projection of ``g ⊙ A`` (class-specific).

    Args: see :class:`EigenCAM`.
    """

    aliases = ('eigengradcam', 'eigen-grad-cam', 'eigen-gradcam')
    uses_gradients = True
    needs_logits = True

    def stack(self, cap: Capture) -> Tensor:
        return cap.gradients * cap.activations


@EXPLAINERS.register_module()
class KPCACAM(_ProjectionCAM):
    """KPCA-CAM (Karmani et al., 2024): the first kernel-PCA component of the spatial positions.

    Same as scikit-learn's ``KernelPCA(n_components=1, kernel=..., gamma=...).fit_transform`` (what grad-cam's
    ``KPCA_CAM`` calls), computed with a dense batched ``eigh`` of the centred ``hw × hw`` kernel matrix.

    Args:
        kernel: ``'sigmoid'`` (default, ``tanh(γ x·y + coef0)``), ``'rbf'``, ``'poly'``, ``'linear'``, ``'cosine'``.
        gamma: kernel coefficient; ``None`` is ``1 / C``. coef0, degree: as in scikit-learn.
        other arguments: see :class:`EigenCAM`.
    """

    aliases = ('kpcacam', 'kpca-cam', 'kpca_cam')

    def __init__(self, target_layer: str | nn.Module | Sequence[str | nn.Module] | None = None,
                 kernel: str = 'sigmoid',
                 gamma: float | None = None, coef0: float = 1.0, degree: int = 3, sign_correction: bool = True,
                 patch_size: int | Sequence[int] | None = None, num_prefix_tokens: int | None = None,
                 output_fmt: str | None = None, relu: bool = True, normalize: bool = True, resize: bool = True,
                 differentiable: bool = False, eval_mode: bool = True, aug_smooth: bool = False) -> None:
        if kernel not in KERNELS:
            raise ConfigError(f"KPCACAM kernel must be one of {', '.join(KERNELS)}; got {kernel!r}.")
        super().__init__(target_layer=target_layer, sign_correction=sign_correction, patch_size=patch_size,
                         num_prefix_tokens=num_prefix_tokens, output_fmt=output_fmt, relu=relu, aug_smooth=aug_smooth,
                         normalize=normalize, resize=resize, differentiable=differentiable, eval_mode=eval_mode)
        self.kernel, self.gamma, self.coef0, self.degree = kernel, gamma, coef0, degree

    def kernel_matrix(self, x: Tensor) -> Tensor:
        """``[B, n, n]`` kernel between the rows of ``x`` ``[B, n, C]``."""
        gamma = 1.0 / x.shape[-1] if self.gamma is None else self.gamma
        if self.kernel == 'rbf':
            return torch.exp(-gamma * torch.cdist(x, x).pow(2))
        if self.kernel == 'cosine':
            x = x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        dot = x @ x.transpose(1, 2)
        if self.kernel == 'sigmoid':
            return torch.tanh(gamma * dot + self.coef0)
        if self.kernel == 'poly':
            return (gamma * dot + self.coef0).pow(self.degree)
        return dot

    def projection(self, rows: Tensor) -> Tensor:
        k = self.kernel_matrix(rows)
        k = k - k.mean(1, keepdim=True) - k.mean(2, keepdim=True) + k.mean((1, 2), keepdim=True)
        evals, evecs = torch.linalg.eigh(k)
        return evecs[..., -1] * evals[..., -1:].clamp_min(0).sqrt()
