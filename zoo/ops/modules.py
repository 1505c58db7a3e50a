"""Helpers on any ``nn.Module`` shared by explainers, metrics and models: device, mode/flag restore, logits.

Example:
    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Dropout(0.5), torch.nn.Linear(4, 3)).train()
    >>> with model_state(model):
    ...     logits = forward_logits(model, torch.ones(2, 1, 2, 2))
    >>> tuple(logits.shape), model.training, model[2].weight.requires_grad
    ((2, 3), True, True)
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from registry.errors import ConfigError, XZooError


def model_device(model: nn.Module | None, default: torch.device | str = 'cpu') -> torch.device:
    """The device of the model's first parameter or buffer (``default`` for a model with neither), where the model
    will compute: a model on the ``meta`` device (no data) is a :class:`ConfigError`."""
    if model is not None:
        for t in (*model.parameters(), *model.buffers()):
            if t.device.type == 'meta':
                raise ConfigError("The model is on the 'meta' device: its tensors hold no data, so it cannot "
                                  "compute. Load its weights first (model.to_empty(device='cpu') then "
                                  'load_state_dict, or zoo.load / init_model).')
            return t.device
    return torch.device(default)


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a ``torch.device`` if models can run there on this machine; else a one-line
    :class:`ConfigError` (not a torch device, ``meta``, a CUDA device this machine lacks, no MPS).

    Example:
        >>> check_device('cpu')
        device(type='cpu')
        >>> try:
        ...     check_device('meta')
        ... except ConfigError as exc:
        ...     print(str(exc)[:44])
        --device 'meta' holds no data: a model there
    """
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"--device {str(device)[:80]!r} is not a torch device; use 'cpu', 'cuda', 'cuda:N' or "
                          "'mps'.") from None
    if dev.type == 'meta':
        raise ConfigError("--device 'meta' holds no data: a model there cannot compute. Use 'cpu' or 'cuda'.")
    if dev.type == 'cuda':
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f'--device {str(device)!r}: this machine has no usable CUDA GPU '
                              '(torch.cuda.is_available() is False). Use --device cpu.')
        if dev.index is not None and dev.index >= count:
            raise ConfigError(f'--device {str(device)!r}: this machine has {count} CUDA device(s), cuda:0 to '
                              f'cuda:{count - 1}.')
    if dev.type == 'mps' and not (getattr(torch.backends, 'mps', None) and torch.backends.mps.is_available()):
        raise ConfigError(f'--device {str(device)!r}: MPS is not available on this machine. Use --device cpu.')
    return dev


@contextmanager
def model_state(model: nn.Module | None, eval_mode: bool = True, freeze: bool = True) -> Iterator[None]:
    """Eval mode and frozen parameters inside; every module's mode and every ``requires_grad`` flag restored on
    exit, even on error."""
    if model is None:
        yield
        return
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        if eval_mode:
            model.eval()
        if freeze:
            for p, _ in flags:
                p.requires_grad_(False)
        yield
    finally:
        for m, mode in modes:
            m.training = mode
        for p, flag in flags:
            p.requires_grad_(flag)


@contextmanager
def eval_mode(model: nn.Module | None) -> Iterator[None]:
    """Eval mode and no gradient inside; every module's previous mode restored on exit."""
    with model_state(model, eval_mode=True, freeze=False), torch.no_grad():
        yield


def _first_conv(model: nn.Module) -> nn.Module | None:
    return next((m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Conv1d, nn.Conv3d))), None)


def forward_logits(model: nn.Module, images: Tensor, check_finite: bool = True) -> Tensor:
    """``model(images)`` as float ``[B, num_classes]`` logits (the first element when it returns a tuple), with a
    one-line error for the usual misuses (wrong channel count, a forward that does not return logits, NaN)."""
    try:
        out = model(images)
    except Exception as exc:
        conv = _first_conv(model)
        if conv is not None and getattr(conv, 'in_channels', images.shape[1]) != images.shape[1]:
            raise ConfigError(f'The model takes {conv.in_channels}-channel images but the batch has '
                              f'{images.shape[1]} channels (shape {tuple(images.shape)}). Convert the images '
                              f'(e.g. grey → RGB) first.') from exc
        raise
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], Tensor):
        out = out[0]
    if not isinstance(out, Tensor) or out.ndim != 2 or out.shape[0] != images.shape[0]:
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ConfigError(f'model(images) must return logits [B, num_classes]; got {shape}. Wrap the model so '
                          'that its forward returns class scores.')
    if check_finite and not bool(torch.isfinite(out).all()):
        raise XZooError('The model returned NaN or Inf logits for finite images; scores and explanations would be '
                        'meaningless. Check the weights (a diverged checkpoint?) and the input scale.')
    return out.float()
