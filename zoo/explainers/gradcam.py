"""Gradient CAMs: Grad-CAM, Grad-CAM++, XGrad-CAM, LayerCAM, HiResCAM, Grad-CAM element-wise, Shapley-CAM.

Each is the :class:`~zoo.explainers.base.CAMExplainer` template with one override. ``A`` is the target layer's
activation ``[B, C, h, w]``, ``g`` the gradient of the target score (by default the class logit) with respect to it.

Example:
    >>> import timm, torch
    >>> from zoo.explainers import LayerCAM
    >>> model = timm.create_model('resnet18', pretrained=False, num_classes=3)
    >>> tuple(LayerCAM(target_layer='layer4')(model, torch.randn(1, 3, 64, 64), targets=[2]).shape)
    (1, 64, 64)
"""
from __future__ import annotations

import torch
from torch import Tensor

from registry import EXPLAINERS

from .base import CAMExplainer, Capture


@EXPLAINERS.register_module()
class GradCAM(CAMExplainer):
    """Grad-CAM (Selvaraju et al., 2017): ``w_c = mean_ij g_cij``."""

    aliases = ('gradcam', 'grad-cam')

    def channel_weights(self, cap: Capture) -> Tensor:
        return cap.gradients.mean((2, 3))


@EXPLAINERS.register_module()
class GradCAMPlusPlus(CAMExplainer):
    """Grad-CAM++ (Chattopadhay et al., 2018, Eq. 19, exponential-output closed form).

    ``a_cij = g² / (2 g² + (sum_ij A_cij) g³ + 1e-6)`` (0 where ``g == 0``), ``w_c = sum_ij relu(g_cij) a_cij``.
    """

    aliases = ('gradcam++', 'gradcamplusplus', 'grad-cam++')

    def channel_weights(self, cap: Capture) -> Tensor:
        g, a = cap.gradients, cap.activations
        g2 = g.pow(2)
        alpha = g2 / (2 * g2 + a.sum((2, 3), keepdim=True) * g2 * g + 1e-6)
        alpha = torch.where(g != 0, alpha, torch.zeros_like(alpha))
        return (g.clamp_min(0) * alpha).sum((2, 3))


@EXPLAINERS.register_module()
class XGradCAM(CAMExplainer):
    """XGrad-CAM (Fu et al., 2020): ``w_c = sum_ij g_cij A_cij / (sum_ij A_cij + 1e-7)``."""

    aliases = ('xgradcam', 'xgrad-cam')

    def channel_weights(self, cap: Capture) -> Tensor:
        g, a = cap.gradients, cap.activations
        return (g * a / (a.sum((2, 3), keepdim=True) + 1e-7)).sum((2, 3))


@EXPLAINERS.register_module()
class LayerCAM(CAMExplainer):
    """LayerCAM (Jiang et al., 2021): element-wise ``sum_c relu(g_cij) A_cij``."""

    aliases = ('layercam', 'layer-cam')

    def contributions(self, cap: Capture) -> Tensor:
        return cap.gradients.clamp_min(0) * cap.activations


@EXPLAINERS.register_module()
class HiResCAM(CAMExplainer):
    """HiResCAM (Draelos & Carin, 2020): element-wise ``sum_c g_cij A_cij``."""

    aliases = ('hirescam', 'hires-cam')

    def contributions(self, cap: Capture) -> Tensor:
        return cap.gradients * cap.activations


@EXPLAINERS.register_module()
class GradCAMElementWise(CAMExplainer):
    """Grad-CAM element-wise (grad-cam's ``GradCAMElementWise``): ``sum_c relu(g_cij A_cij)``."""

    aliases = ('gradcamelementwise', 'gradcam-elementwise', 'gradcam_elementwise')

    def contributions(self, cap: Capture) -> Tensor:
        return (cap.gradients * cap.activations).clamp_min(0)


@EXPLAINERS.register_module()
class ShapleyCAM(CAMExplainer):
    """Shapley-CAM (Cai et al., 2025): ``w_c = mean_ij (g - ½ H·A)_cij``, ``H·A`` the Hessian-vector product of the
    target score with the activations (a second-order Taylor estimate of each channel's Shapley value).

    With a linear head after global pooling the Hessian of a *logit* is zero and Shapley-CAM equals Grad-CAM; the
    paper pairs it with the ReST score (logit minus cross-entropy), which a callable target gives, e.g.
    ``targets=lambda z: z[:, c] - torch.nn.functional.cross_entropy(z, torch.full((len(z),), c), reduction='none')``.
    """

    aliases = ('shapleycam', 'shapley-cam')
    second_order = True

    def channel_weights(self, cap: Capture) -> Tensor:
        act, grad = cap.raw_activations, cap.raw_gradients
        hvp = None  # a gradient that does not depend on the activations (linear head): H·A = 0
        if grad.requires_grad:
            hvp = torch.autograd.grad(grad, act, grad_outputs=act.detach(), retain_graph=True,
                                      create_graph=self.differentiable, allow_unused=True)[0]
        g = cap.gradients
        weights = g.mean((2, 3)) if hvp is None else (g - 0.5 * cap.to_nchw(hvp)).mean((2, 3))
        return weights if self.differentiable else weights.detach()
