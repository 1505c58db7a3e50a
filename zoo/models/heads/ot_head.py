"""``OTAlignmentHead``: LICO's optimal-transport loss between backbone channel maps and projected prompt tokens.

For each sample, the ``C`` channels of the last feature map (each a flattened ``H*W`` vector) form one point cloud
and the sample's prompt tokens, projected to ``H*W`` by an MLP (``D -> 512 -> Dropout(0.5) -> ReLU -> H*W``), form
the other. Both are L2-normalised per row; the cost is the squared Euclidean distance; marginals are uniform; the
entropic OT cost ``<P, C>`` (log-domain Sinkhorn, eps 0.1, at most 100 iterations) averaged over the batch, times
``weight``, is the loss.

Example:
    >>> import torch
    >>> from registry import HEADS
    >>> head = HEADS.build(dict(type='OTAlignmentHead', spatial_size=(2, 2), text_dim=8))
    >>> plan, cost = head.transport(torch.randn(3, 5, 2, 2), torch.randn(3, 4, 8))
    >>> tuple(plan.shape), tuple(cost.shape)
    ((3, 5, 4), (3,))
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from registry import HEADS
from registry.errors import ConfigError

from ...ops import sinkhorn_log
from ..text.base import TextFeatures

_POT_GRAD = {True: 'autodiff', False: 'detach', 'envelope': 'envelope'}


def squared_distances(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``[B, N, M]`` squared Euclidean distances between rows of ``x [B, N, D]`` and ``y [B, M, D]``."""
    d2 = x.pow(2).sum(-1)[:, :, None] + y.pow(2).sum(-1)[:, None, :] - 2 * x @ y.transpose(1, 2)
    return d2.clamp_min(0)


@HEADS.register_module()
class OTAlignmentHead(nn.Module):
    """Sinkhorn OT between backbone channel maps and projected prompt tokens (training only).

    Args:
        spatial_size: ``H*W`` (or ``(H, W)``) of the backbone's last feature map at the training resolution,
            e.g. 49 for a ResNet at 224 px, 196 at 448 px: the MLP's output width. Usually given once per recipe
            as ``model.alignment_defaults=dict(spatial_size=...)``.
        text_dim: width of the text features (filled in from the classifier's text branch).
        weight: beta, the loss weight (LICO: 1).
        eps, max_iter, tol: Sinkhorn settings (:func:`zoo.ops.sinkhorn_log`).
        grad: ``True`` back-propagates through the Sinkhorn iterations (paper, both reproductions); ``False`` is the
            released code (``torch.no_grad``: the loss is logged but trains nothing); ``'envelope'`` differentiates
            ``<P, C>`` with the plan held fixed (cheap approximation).
        text_points: ``'eot_variants'`` one point per prompt variant (the sentence features of the sample's class;
            released Oct-2024 code with ``RolledPromptLearner``) or ``'per_token'`` one point per prompt token (the
            paper's figure; reproduction 2).
        token_positions: which tokens are points with ``'per_token'``: ``'class_dependent'`` (default) only those
            whose features depend on the class, i.e. not the start token and not a context shared by all classes
            that a causal encoder (CLIP) reads before the class name (their outputs are the same for every class,
            so aligning feature maps with them aligns with something no class owns); ``'after_start'`` every token
            after the start token (reproduction 2; with the class name at the end of a shared context, 12 of the
            ~16 points are then class-independent).
        hidden_dim, dropout: the projection MLP (512, 0.5 as the released code).
        solver: ``'native'`` (:func:`zoo.ops.sinkhorn_log`) or ``'pot'`` (``ot.batch.solve_batch``, log-domain).
        loss_name: key of the loss in the returned dict.
    """

    def __init__(self, spatial_size: int | Sequence[int] | None = None, text_dim: int = 512, weight: float = 1.0,
                 eps: float = 0.1, max_iter: int = 100, tol: float = 1e-6, grad: bool | str = True,
                 text_points: str = 'eot_variants', token_positions: str = 'class_dependent', hidden_dim: int = 512,
                 dropout: float = 0.5, solver: str = 'native', loss_name: str = 'loss_ot') -> None:
        super().__init__()
        if spatial_size is None:
            raise ConfigError('OTAlignmentHead needs spatial_size = H*W of the backbone\'s last feature map at the '
                              'training resolution (7*7=49 for a ResNet at 224 px, 14*14=196 at 448 px): set it on '
                              'the head or as model.alignment_defaults=dict(spatial_size=...).')
        size = spatial_size if isinstance(spatial_size, int) else int(torch.tensor(list(spatial_size)).prod())
        if size < 1:
            raise ConfigError(f'OTAlignmentHead spatial_size must be H*W >= 1, got {spatial_size!r}.')
        if grad not in _POT_GRAD:
            raise ConfigError(f"OTAlignmentHead grad must be True, False or 'envelope', got {grad!r}.")
        if text_points not in ('eot_variants', 'per_token'):
            raise ConfigError(f"text_points must be 'eot_variants' or 'per_token', got {text_points!r}.")
        if token_positions not in ('class_dependent', 'after_start'):
            raise ConfigError("OTAlignmentHead token_positions must be 'class_dependent' or 'after_start', got "
                              f'{token_positions!r}.')
        if solver not in ('native', 'pot'):
            raise ConfigError(f"OTAlignmentHead solver must be 'native' or 'pot', got {solver!r}.")
        self.spatial_size, self.weight, self.eps, self.max_iter, self.tol = size, weight, eps, max_iter, tol
        self.grad, self.text_points, self.solver, self.loss_name = grad, text_points, solver, loss_name
        self.token_positions = token_positions
        self.projection = nn.Sequential(nn.Linear(text_dim, hidden_dim), nn.Dropout(dropout), nn.ReLU(),
                                        nn.Linear(hidden_dim, size))

    def _solve(self, cost: torch.Tensor, b: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.solver == 'native':
            return sinkhorn_log(cost, b=b, eps=self.eps, max_iter=self.max_iter, tol=self.tol, grad=self.grad)
        from ot.batch import solve_batch

        a = cost.new_full(cost.shape[:2], 1.0 / cost.shape[1])
        b = cost.new_full((cost.shape[0], cost.shape[2]), 1.0 / cost.shape[2]) if b is None else b
        res = solve_batch(cost, reg=self.eps, a=a, b=b, max_iter=self.max_iter, tol=self.tol,
                          method='log_sinkhorn', grad=_POT_GRAD[self.grad])
        return res.plan, res.value_linear

    def transport(self, feature_map: torch.Tensor, points: torch.Tensor,
                  weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Plan ``[B, C, M]`` and cost ``[B]`` between channel maps ``[B, C, H, W]`` and text points ``[B, M, D]``.

        ``weights`` ``[B, M]`` is the text marginal (uniform when None; zero entries mark padding tokens).
        """
        maps = feature_map.flatten(2)
        if maps.shape[-1] != self.spatial_size:
            h, w = feature_map.shape[-2:]
            raise ConfigError(f'OTAlignmentHead projects text to spatial_size={self.spatial_size} values but the '
                              f'backbone feature map is {h}x{w}={h * w}: set spatial_size={h * w} (it depends on '
                              'the training resolution: input size / backbone stride, squared).')
        with torch.autocast(maps.device.type, enabled=False), torch.set_grad_enabled(
                torch.is_grad_enabled() and self.grad is not False):
            img = F.normalize(maps.float(), dim=-1)
            txt = F.normalize(self.projection(points.float()), dim=-1)
            cost = squared_distances(img, txt)
            return self._solve(cost, weights)

    def text_points_of(self, text: TextFeatures) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The text point cloud ``[B, M, D]`` and its marginal (``None`` = uniform) per sample."""
        if self.text_points == 'eot_variants':
            return text.sentence, None
        mask = text.class_dependent() if self.token_positions == 'class_dependent' else text.mask.clone()
        mask[:, 0] = False  # the start token is identical for every prompt
        count = mask.sum(1, keepdim=True)
        if not bool((count > 0).all()):
            raise ConfigError('OTAlignmentHead found a prompt without class-dependent tokens: the prompt learner '
                              'must place a class name in every prompt.')
        return text.tokens[:, 0], mask.float() / count

    def loss(self, features, labels: torch.Tensor, data_samples: list | None = None,
             text: TextFeatures | None = None) -> dict[str, torch.Tensor]:
        """``{loss_name: weight * mean_b <P_b, C_b>}`` from backbone features and the text branch's output."""
        if text is None:
            raise ConfigError('OTAlignmentHead needs text features: give the classifier a text branch, '
                              "e.g. model.text_branch=dict(type='LICOTextBranch', encoder=..., prompt=...).")
        points, weights = self.text_points_of(text)
        _, cost = self.transport(features.feature_map, points, weights)
        return {self.loss_name: self.weight * cost.mean()}
