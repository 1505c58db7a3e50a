"""What a loaded zoo model carries: class names, preprocessing, explainer defaults, and ``model.explain``.

After :func:`attach`, a model has ``class_names``, ``preprocessing`` (input size, resize, crop, interpolation,
mean/std in 0-1), ``pretrained_cfg`` (the same in timm's keys, so ``timm.data.resolve_data_config(model=model)``
works), ``input_size`` ``(H, W)``, ``explainer_defaults``, ``test_transform`` (RGB uint8 ``[H, W, 3]`` → uint8
``[3, h, w]``), ``zoo_config`` (the config.json), ``zoo_source`` and ``model.explain(images, method=...)``.

Example:
    >>> import torch, zoo
    >>> model = zoo.load('baseline-efficientnetlite0-clutteredfmnist', pretrained=False)
    >>> model.input_size, model.preprocessing['interpolation'], model.explainer_defaults['method']
    ((128, 128), 'bilinear', 'gradcam')
    >>> tuple(model.explain(torch.zeros(2, 3, 128, 128, dtype=torch.uint8)).shape)
    (2, 128, 128)
"""
from __future__ import annotations

import inspect
import os
import types
from collections.abc import Mapping, Sequence
from typing import Any


def _test_transform(pre: Mapping[str, Any]) -> Any:
    """The config's test pipeline as a callable; images of another size are first resized to the input size."""
    from mmengine.config import Config

    from zoo.apis.inference import build_test_transform

    steps = [dict(s) for s in pre.get('pipeline') or []]
    kinds = {str(s.get('type', '')).rsplit('.', 1)[-1] for s in steps}
    if not kinds & {'Resize', 'CenterCrop', 'RandomResizedCrop'}:
        steps.insert(0, {'type': 'Resize', 'size': list(pre['input_size'][1:])})
    return build_test_transform(Config({'test_dataloader': {'dataset': {'pipeline': steps}}}))


def attach(model: Any, config: Mapping[str, Any], source: str, files: Mapping[str, Any] | None = None) -> Any:
    """Give ``model`` the metadata of its ``config.json`` and a bound ``explain`` method; return it."""
    pre = dict(config['preprocessing'])
    names = config.get('class_names')
    if names and hasattr(model, 'class_names'):
        model.class_names = list(names)
    model.preprocessing = pre
    model.input_size = (int(pre['input_size'][1]), int(pre['input_size'][2]))
    model.pretrained_cfg = {'input_size': tuple(pre['input_size']), 'interpolation': pre.get('interpolation'),
                            'crop_pct': pre.get('crop_pct', 1.0), 'crop_mode': pre.get('crop_mode'),
                            'mean': tuple(pre['mean']), 'std': tuple(pre['std']),
                            'num_classes': config['num_classes'], 'label_names': names}
    model.explainer_defaults = dict(config['explainer'])
    model.zoo_config = dict(config)
    model.zoo_source = source
    model.zoo_files = dict(files or {})
    model.test_transform = _test_transform(pre)
    if not hasattr(type(model), 'explain'):
        model.explain = types.MethodType(explain, model)
    return model


def _as_input(model: Any, images: Any) -> Any:
    """Image files, uint8 pixels or already-normalised floats → the model's normalised float input."""
    import torch

    from zoo.apis.inference import load_images

    if isinstance(images, (str, os.PathLike)) or (isinstance(images, Sequence) and images
                                                  and isinstance(images[0], (str, os.PathLike))):
        images = load_images(model, [images] if isinstance(images, (str, os.PathLike)) else list(images))
    if not isinstance(images, torch.Tensor):
        from registry.errors import DataError
        raise DataError(f'model.explain takes image files, a uint8 [B, 3, H, W] tensor (pixels) or a float one '
                        f'(already normalised), got {type(images).__name__}.')
    if images.ndim == 3:
        images = images[None]
    device = next((p.device for p in model.parameters()), torch.device('cpu'))
    images = images.to(device)
    if not images.is_floating_point():
        images = model.data_preprocessor.normalize(images)
    return images


def explain(model: Any, images: Any, method: str | Mapping[str, Any] | None = None, targets: Any = None,
            **kwargs: Any) -> Any:
    """Saliency maps ``[B, H, W]`` in [0, 1] for ``images`` with an explainer of :mod:`zoo.explainers`.

    Args:
        images: image files, uint8 pixels ``[B, 3, H, W]`` (normalised with the model's mean/std) or float
            tensors already normalised (what ``model(x)`` takes).
        method: explainer alias/name/config (``'gradcam'``, ``'eigencam'``, ...); default from the config.json.
        targets: ``None`` (predicted class), one class index, or one per image.
        **kwargs: explainer arguments (e.g. ``target_layer='backbone.model.layer3'``).
    """
    try:
        from registry import EXPLAINERS
        from zoo.explainers import build_explainer, resolve_name
    except ImportError as exc:  # pragma: no cover - explainers ship with xzoo
        from registry.errors import ConfigError
        raise ConfigError(f'model.explain needs zoo.explainers, which failed to import: {exc}') from exc
    defaults = dict(getattr(model, 'explainer_defaults', None) or {})
    method = method or defaults.get('method') or 'gradcam'
    options: dict[str, Any] = {}
    if isinstance(method, str) and method == defaults.get('method'):
        options.update(defaults.get('kwargs') or {})
    kind = method.get('type') if isinstance(method, Mapping) else method
    cls = EXPLAINERS.get(resolve_name(kind)) if isinstance(kind, str) else kind
    layer_given = 'target_layer' in kwargs or (isinstance(method, Mapping) and 'target_layer' in method)
    if defaults.get('target_layer') and not layer_given and 'target_layer' in inspect.signature(cls).parameters:
        options['target_layer'] = defaults['target_layer']  # the model's default layer, for every CAM method
    options.update(kwargs)
    explainer = build_explainer(method, **options)
    return explainer(model, _as_input(model, images), targets)
