"""What an explainer explains: one score per image, from class indices or from a callable.

``targets`` accepted by every explainer:

* ``None``: each image's predicted class (the argmax of the logits on the unmodified images);
* an int (the whole batch), or one class index per image (a sequence, array or tensor);
* one callable ``f(logits [n, K]) -> scores [n]``, called on whole batches of logits (``lambda z: z.softmax(1)[:, 3]``;
  grad-cam's ``ClassifierOutputTarget(3)`` and ``ClassifierOutputSoftmaxTarget(3)`` accept 2-D outputs too);
* a sequence of callables, one per image (grad-cam's convention): each is called on its image's 1-D logits ``[K]``
  and returns a scalar.

Anything else is refused with a one-line :class:`~registry.errors.ConfigError`. Scores are what gradient methods
differentiate and what perturbation methods (Score-CAM, Ablation-CAM, RISE) compare; the default score of a class
index is its logit.

Example:
    >>> import torch
    >>> logits = torch.tensor([[1., 3., 0.], [2., 0., 5.]])
    >>> target_scores(None, logits)(logits).tolist()
    [3.0, 5.0]
    >>> target_scores(lambda z: z[:, 0], logits)(logits).tolist()
    [1.0, 2.0]
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from registry.errors import ConfigError, shorten
from zoo.ops.tensors import as_class_indices, targets_or_predicted


def _is_callable_target(t: Any) -> bool:
    return callable(t) and not isinstance(t, (Tensor, type))


class DeferredTargets:
    """Targets decided from the logits of the unmodified images (e.g. Finer-CAM's most similar classes): every
    explainer resolves them with :meth:`resolve` on the logits of its own first forward pass."""

    def resolve(self, logits: Tensor) -> TargetScores:
        raise NotImplementedError


def check_targets(targets: Any) -> None:
    """Refuse, in one line, a ``targets`` that is none of the accepted kinds (before any forward pass)."""
    if targets is None or isinstance(targets, (int, Tensor, DeferredTargets)) or _is_callable_target(targets):
        return
    if hasattr(targets, '__array__') and not isinstance(targets, (str, bytes)):
        return  # numpy arrays / scalars: checked as class indices
    if isinstance(targets, Sequence) and not isinstance(targets, (str, bytes)):
        kinds = {_is_callable_target(t) for t in targets}
        if kinds == {True}:
            return
        bad = next((t for t in targets if not _is_callable_target(t) and not isinstance(t, (int, float))
                    and not hasattr(t, '__index__')), None)
        if True in kinds or bad is not None:
            what = type(bad).__name__ if bad is not None else 'a mix of callables and indices'
            raise ConfigError(f'targets must be class indices (one per image) or callables (one per image), got '
                              f'{what}.')
        return
    raise ConfigError(f'targets must be None, a class index, one index per image, or a callable f(logits) -> scores '
                      f'(e.g. ClassifierOutputTarget); got {type(targets).__name__}: {shorten(repr(targets), 60)}.')


class TargetScores:
    """The explained score of each image: ``scores(logits, rows)`` for logits ``[n, K]`` whose row ``i`` comes from
    image ``rows[i]`` (default: row ``i`` is image ``i``).

    Attributes:
        classes: long ``[B]`` class indices when targets are indices (or predicted), ``None`` for callables.
        kind: ``'index'``, ``'callable'`` (one batched callable) or ``'per_image'`` (one callable per image).
    """

    def __init__(self, kind: str, classes: Tensor | None = None, fn: Callable[[Tensor], Any] | None = None,
                 fns: Sequence[Callable[[Tensor], Any]] | None = None) -> None:
        self.kind, self.classes, self.fn, self.fns = kind, classes, fn, fns
        self._checked_for = None

    def __call__(self, logits: Tensor, rows: Tensor | None = None) -> Tensor:
        n = logits.shape[0]
        if self.kind == 'index':
            if self._checked_for != logits.shape[1]:
                as_class_indices(self.classes, len(self.classes), self.classes.device, num_classes=logits.shape[1])
                self._checked_for = logits.shape[1]
            idx = self.classes if rows is None else self.classes[rows]
            return logits.gather(1, idx[:, None].to(logits.device))[:, 0]
        if self.kind == 'callable':
            return self._check(self.fn(logits), n, 'f(logits)')
        which = range(n) if rows is None else rows.tolist()
        return torch.stack([self._check(self.fns[r](logits[i]), 1, f'targets[{r}](logits[{i}])')[0]
                            for i, r in enumerate(which)])

    @staticmethod
    def _check(out: Any, n: int, what: str) -> Tensor:
        if not isinstance(out, Tensor):
            raise ConfigError(f'The target callable {what} returned {type(out).__name__}; it must return a tensor of '
                              'scores computed from the logits (so that gradients reach them).')
        if out.numel() != n or (out.ndim > 1 and out.shape[0] != n):
            raise ConfigError(f'The target callable {what} returned shape {tuple(out.shape)} for {n} row(s) of '
                              f'logits; it must return one score per row ([{n}]).')
        return out.reshape(n).float()

    def sum(self, logits: Tensor) -> Tensor:
        """The sum of the images' scores (what gradient methods differentiate)."""
        return self(logits).sum()

    def repeat(self, times: int) -> TargetScores:
        """The same targets for ``times`` stacked copies of the batch (copy ``k`` of image ``i`` is row
        ``k·B + i``)."""
        if self.kind == 'index':
            return TargetScores('index', classes=self.classes.repeat(times))
        if self.kind == 'per_image':
            return TargetScores('per_image', fns=list(self.fns) * times)
        return self


def target_scores(targets: Any, logits: Tensor | None = None, batch: int | None = None,
                  device: torch.device | str = 'cpu') -> TargetScores | None:
    """:class:`TargetScores` for ``targets`` (see the module docstring). ``logits`` ``[B, K]`` are those of the
    unmodified images: they decide ``None`` (and deferred targets). Without them (give ``batch`` and ``device``), the
    result is ``None`` when they are needed; index ranges are then checked on the first scored logits."""
    if isinstance(targets, TargetScores):
        return targets
    check_targets(targets)
    if logits is None and (targets is None or isinstance(targets, DeferredTargets)):
        return None
    if isinstance(targets, DeferredTargets):
        return targets.resolve(logits.detach())
    batch = logits.shape[0] if logits is not None else batch
    if _is_callable_target(targets):
        return TargetScores('callable', fn=targets)
    if isinstance(targets, Sequence) and not isinstance(targets, (str, bytes)) and targets and all(
            _is_callable_target(t) for t in targets):
        fns = list(targets)
        if len(fns) == 1 and batch > 1:
            fns = fns * batch
        if len(fns) != batch:
            raise ConfigError(f'{len(fns)} target callables for a batch of {batch} images; give one per image (or a '
                              'single callable for all of them).')
        return TargetScores('per_image', fns=fns)
    if logits is None:
        return TargetScores('index', classes=as_class_indices(targets, batch, device))
    return TargetScores('index', classes=targets_or_predicted(targets, logits.detach()))
