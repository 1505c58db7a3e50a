"""``ManifoldAlignmentHead``: LICO's manifold-matching loss (KL between two in-batch distance softmaxes).

For a batch of ``B`` samples, ``A_img = softmax(s * D(e) / tau)`` and ``A_txt = softmax(s * D(t) / tau)`` row-wise,
where ``D`` is the ``B x B`` matrix of Euclidean distances between (L2-normalised) pooled image features ``e`` and
between the text features ``t`` of the samples' class prompts, and ``s = +1`` (released code) or ``-1`` (the paper's
Eq. 1 as reproduction 1 read it). The loss is ``weight * KL(A_txt || A_img)`` with ``reduction='batchmean'``.

Under distributed training the batch is the *global* one (``gather=True``): each process computes the rows of its
own samples against the features of every process's samples, gathered with gradient
(:func:`zoo.ops.distributed.gather_with_grad`); with DDP's gradient averaging this trains exactly like the loss
over the global batch in one process. The released code has one process and a batch of 128; a recipe with 8 per
process would otherwise compare 8 samples.

Example:
    >>> import torch
    >>> from registry import HEADS
    >>> head = HEADS.build(dict(type='ManifoldAlignmentHead', sign=-1))
    >>> img, txt = torch.randn(4, 16), torch.randn(4, 8)
    >>> bool(head.manifold_loss(img, txt) >= 0)
    True
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from mmengine.logging import MessageHub
from torch import nn

from registry import HEADS
from registry.errors import ConfigError
from zoo.ops.distributed import gather_with_grad

from ..text.base import TextFeatures


def pairwise_distances(x: torch.Tensor, normalize: bool = True, min_sq: float = 1e-4,
                       y: torch.Tensor | None = None) -> torch.Tensor:
    """``[B, N]`` Euclidean distances between the rows of ``x`` and of ``y`` (default ``x``), as
    ``sqrt(clamp(d², min_sq))``: a sample's distance to itself is 0.01.

    Example:
        >>> d = pairwise_distances(torch.eye(2), normalize=False)
        >>> [[round(v, 4) for v in row] for row in d.tolist()]
        [[0.01, 1.4142], [1.4142, 0.01]]
    """
    x = x.flatten(1).float()
    y = x if y is None else y.flatten(1).float()
    if normalize:
        x, y = F.normalize(x, dim=1), F.normalize(y, dim=1)
    d2 = x.pow(2).sum(1)[:, None] + y.pow(2).sum(1)[None, :] - 2 * x @ y.T
    return d2.clamp_min(min_sq).sqrt()


@HEADS.register_module()
class ManifoldAlignmentHead(nn.Module):
    """Manifold matching between image features and class-prompt text features (training only).

    Args:
        weight: alpha, the loss weight (LICO: 10).
        sign: ``+1`` softmax of ``+d/tau`` (released code; farther pairs weigh more), ``-1`` softmax of ``-d/tau``
            (the paper's reading: nearer pairs weigh more).
        normalize: L2-normalise features before the distances (released code: yes; reproduction 1: no).
        temperature_init: the temperature parameter's (initial) value (LICO: log(1/0.07) = 2.659).
        learn_temperature: ``True`` (released code) makes the temperature a learnable parameter; in ``'divide'``
            mode its gradient raises tau, flattening both matrices towards uniform and shrinking the loss (the term
            then trains less and less). ``False`` keeps it fixed at ``temperature_init``.
        temperature_mode: ``'divide'`` uses the parameter directly as tau (released code: ``d / 2.659``);
            ``'exp_scale'`` multiplies by ``exp(param)`` clamped to 100, the CLIP logit-scale convention
            (reproduction 2).
        image_feature: ``'pooled'`` pooled backbone features (released code) or ``'flat_map'`` the flattened last
            feature map (reproduction 2).
        variant: which prompt variant's sentence feature is the text feature (released code: 0).
        gather: under distributed training, compare each sample with the samples of every process (the global
            batch), with gradient through the gather; ``False`` compares within each process's batch only.
        loss_name: key of the loss in the returned dict.
    """

    def __init__(self, weight: float = 10.0, sign: int = 1, normalize: bool = True,
                 temperature_init: float = math.log(1 / 0.07), learn_temperature: bool = True,
                 temperature_mode: str = 'divide', image_feature: str = 'pooled', variant: int = 0,
                 gather: bool = True, loss_name: str = 'loss_mm') -> None:
        super().__init__()
        if sign not in (1, -1):
            raise ConfigError(f'ManifoldAlignmentHead sign must be +1 (released code) or -1 (paper), got {sign!r}.')
        if temperature_mode not in ('divide', 'exp_scale'):
            raise ConfigError(f"temperature_mode must be 'divide' or 'exp_scale', got {temperature_mode!r}.")
        if image_feature not in ('pooled', 'flat_map'):
            raise ConfigError(f"image_feature must be 'pooled' or 'flat_map', got {image_feature!r}.")
        self.weight, self.sign, self.normalize = weight, sign, normalize
        self.temperature_mode, self.image_feature, self.variant = temperature_mode, image_feature, variant
        self.gather, self.loss_name = gather, loss_name
        t = torch.tensor(float(temperature_init))
        if learn_temperature:
            self.temperature = nn.Parameter(t)
        else:
            self.register_buffer('temperature', t)

    def scale(self) -> torch.Tensor:
        """The factor multiplying ``sign * d``: ``1 / tau`` or ``exp(param)``."""
        if self.temperature_mode == 'divide':
            return 1.0 / self.temperature
        return self.temperature.exp().clamp(max=100.0)

    def similarity_logits(self, x: torch.Tensor, others: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, N]`` logits ``sign * d / tau`` of the rows of ``x`` against ``others`` (default ``x``), whose
        row-softmax is the similarity matrix."""
        return self.sign * pairwise_distances(x, self.normalize, y=others) * self.scale()

    def manifold_loss(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """``weight * KL(A_txt || A_img)`` (batchmean) for image features ``[B, ...]`` and text features ``[B, D]``;
        the columns are the global batch when distributed with ``gather``."""
        image_all = gather_with_grad(image) if self.gather else image
        text_all = gather_with_grad(text) if self.gather else text
        log_img = F.log_softmax(self.similarity_logits(image, image_all), dim=1)
        log_txt = F.log_softmax(self.similarity_logits(text, text_all), dim=1)
        return self.weight * F.kl_div(log_img, log_txt, reduction='batchmean', log_target=True)

    def loss(self, features, labels: torch.Tensor, data_samples: list | None = None,
             text: TextFeatures | None = None) -> dict[str, torch.Tensor]:
        """``{loss_name: ...}`` from backbone features and the text branch's output for ``labels``."""
        if text is None:
            raise ConfigError('ManifoldAlignmentHead needs text features: give the classifier a text branch, '
                              "e.g. model.text_branch=dict(type='LICOTextBranch', encoder=..., prompt=...).")
        image = features.pooled if self.image_feature == 'pooled' else features.feature_map
        if self.training and isinstance(self.temperature, nn.Parameter):  # watch a learnable tau move
            MessageHub.get_current_instance().update_scalar('train/mm_temperature', float(self.temperature.detach()))
        return {self.loss_name: self.manifold_loss(image, text.sentence[:, self.variant])}
