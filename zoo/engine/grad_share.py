"""``GradientShareHook``: how much of the backbone's gradient each loss term contributes.

A method that adds auxiliary losses (LICO: ``loss_mm``, ``loss_ot`` next to ``loss_cls``) acts on the learned
features only through the gradient those terms send into the backbone. The logged loss values do not show that (a
small loss can have a large gradient and the other way round). Every ``interval`` iterations, before the training
step, this hook recomputes the step's losses on the same batch, takes the gradient of each term separately with
respect to the trainable backbone parameters, and logs through mmengine's message hub (hence in the console log and
``vis_data/scalars.json``):

- ``grad_l2/<term>``: the L2 norm of that term's gradient over the backbone parameters;
- ``grad_share/<term>``: that norm divided by the sum of all terms' norms (the shares add up to 1).

``<term>`` is the loss key without its ``loss_`` prefix (``cls``, ``mm``, ``ot``). The probe is invisible to
training: the random generators (dropout masks, prompt shuffling) and every buffer (BatchNorm statistics) are saved
before and restored after, so the step that follows draws the same random numbers, and the terms' gradients add up
to the step's backbone gradient. Its cost is one forward pass and one backward pass per term, every ``interval``
iterations.

Example (in a config)::

    custom_hooks = [dict(type='GradientShareHook', interval=50)]
"""
from __future__ import annotations

from typing import Any

import torch
from mmengine.hooks import Hook

from registry import HOOKS
from registry.errors import ConfigError

from .hooks import unwrap
from .resume import capture_rng_state, restore_rng_state


def term_name(key: str) -> str:
    """``'loss_mm'`` -> ``'mm'``; ``'loss'`` stays ``'loss'``."""
    return key[len('loss_'):] if key.startswith('loss_') else key


def gradient_norms(losses: dict[str, Any], params: list[torch.nn.Parameter]) -> dict[str, float]:
    """L2 norm of the gradient of every loss term (keys containing ``'loss'``, as mmengine sums them) w.r.t.
    ``params``; a term that does not reach them has norm 0."""
    terms = {k: (sum(v) if isinstance(v, (list, tuple)) else v) for k, v in losses.items() if 'loss' in k}
    keys = [k for k, v in terms.items() if isinstance(v, torch.Tensor) and v.requires_grad]
    norms = {k: 0.0 for k in terms}
    for i, key in enumerate(keys):
        grads = torch.autograd.grad(terms[key], params, retain_graph=i < len(keys) - 1, allow_unused=True)
        sq = sum(float(g.detach().float().pow(2).sum()) for g in grads if g is not None)
        norms[key] = sq ** 0.5
    return norms


@HOOKS.register_module()
class GradientShareHook(Hook):
    """Log each loss term's share of the gradient norm on the backbone (see the module doc).

    Args:
        interval: probe every ``interval`` training iterations (and at the first).
        module: dotted name of the submodule whose trainable parameters are measured (``'backbone'``).
    """

    priority = 'LOW'

    def __init__(self, interval: int = 50, module: str = 'backbone') -> None:
        if interval < 1:
            raise ConfigError(f'GradientShareHook interval must be >= 1, got {interval}.')
        self.interval, self.module = interval, module

    def _params(self, model: torch.nn.Module) -> list[torch.nn.Parameter]:
        try:
            sub = model.get_submodule(self.module)
        except AttributeError as exc:
            raise ConfigError(f'GradientShareHook: the model has no submodule {self.module!r} '
                              f'(it has {", ".join(n for n, _ in model.named_children())}).') from exc
        return [p for p in sub.parameters() if p.requires_grad]

    def probe(self, runner: Any, data_batch: Any) -> dict[str, float]:
        """Per-term gradient norms for ``data_batch`` at the current weights; training state left untouched."""
        model = unwrap(runner.model)
        params = self._params(model)
        if not params:
            return {}
        rng = capture_rng_state()
        buffers = [(b, b.detach().clone()) for b in model.buffers()]
        try:
            with torch.enable_grad(), runner.optim_wrapper.optim_context(model):
                data = model.data_preprocessor(data_batch, True)
                losses = model._run_forward(data, mode='loss')
            norms = gradient_norms(losses, params)
        finally:
            with torch.no_grad():
                for buf, saved in buffers:
                    buf.copy_(saved)
            restore_rng_state(rng)
        total = sum(norms.values())
        hub = runner.message_hub
        for key, value in norms.items():
            hub.update_scalar(f'train/grad_l2/{term_name(key)}', value)
            hub.update_scalar(f'train/grad_share/{term_name(key)}', value / total if total > 0 else 0.0)
        return norms

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        if data_batch is not None and runner.iter % self.interval == 0:
            self.probe(runner, data_batch)
