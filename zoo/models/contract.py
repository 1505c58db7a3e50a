"""The model contract: what every zoo model is, whichever family (classifier, image-text, prototype network, ...).

A zoo model is an mmengine ``BaseModel`` that also derives from :class:`ZooModel`. Modelled on timm's
``pretrained_cfg`` and huggingface_hub's ``ModelHubMixin``, the contract gives every model, however it was made
(``MODELS.build``, ``init_model(config, checkpoint)``, ``zoo.load(name)``), the same interface — nothing is patched
onto a model after it is built:

- ``model(x)`` (mmengine's ``mode='tensor'``) returns class logits ``[B, num_classes]`` for normalised images;
  ``predict``/``loss`` follow mmengine's protocol;
- ``preprocessing``: a :class:`Preprocessing` owned by the model (input size, resize, crop, interpolation,
  mean/std, the exact test pipeline), convertible to timm's ``pretrained_cfg``; ``test_transform`` and
  ``prepare(images)`` are the one preprocessing route for files, PIL images, arrays and tensors;
- ``class_names``, ``num_classes``, ``explain_meta`` (what explainers read), ``explainer_defaults``;
- ``explain(images, method=None, targets=None, **kw)``: saliency maps ``[B, H, W]`` from any registered explainer;
  families that carry their own explanation (prototypes, descriptors, rationales) set ``native_explanation``
  and implement ``explain_native``, which ``explain(method='native')`` returns as an :class:`Explanation`
  (JSON-ready records and PNG figures the tools write);
- ``training_only``: the **one** declaration of what is training-only — constructor arguments whose submodule
  (same attribute name) never reaches inference, export or loading (LICO's ``alignment_heads``/``text_branch``);
- ``build_config``: the ``type`` and arguments the model was built with, captured at construction (as
  huggingface_hub's mixin captures ``__init__`` arguments); ``inference_config()`` is what an export stores;
- ``save_pretrained(folder)`` writes ``config.json`` + ``model.safetensors``; ``from_pretrained(folder)`` (any
  subclass, or ``ZooModel`` itself) reads them back, JSON and safetensors only (see :mod:`zoo.models.serialization`).

Example:
    >>> import torch
    >>> from registry import MODELS
    >>> model = MODELS.build(dict(type='ImageClassifier', class_names=['a', 'b'],
    ...                           backbone=dict(type='TimmBackbone', model_name='resnet18'),
    ...                           head=dict(type='LinearClsHead', num_classes=2)))
    >>> model.build_config['backbone']['model_name'], model.preprocessing.input_size
    ('resnet18', (3, 224, 224))
    >>> tuple(model.explain(torch.zeros(1, 3, 64, 64, dtype=torch.uint8), method='gradcam').shape)
    (1, 64, 64)
"""
from __future__ import annotations

import copy
import functools
import inspect
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from registry.errors import ConfigError, DataError, did_you_mean, shorten

from .explanation import Explanation
from .preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing, interpolation_name


def _capture_init(init: Callable[..., None]) -> Callable[..., None]:
    """Wrap ``__init__`` so that the outermost call records its arguments as the model's build config."""
    signature = inspect.signature(init)

    @functools.wraps(init)
    def wrapped(self: Any, *args: Any, **kwargs: Any) -> None:
        outermost = '_build_args' not in self.__dict__
        if outermost:
            self.__dict__['_build_args'] = None  # claimed: inner (super) __init__ calls do not record
        init(self, *args, **kwargs)
        if outermost:
            bound = signature.bind(self, *args, **kwargs)
            arguments = dict(bound.arguments)
            arguments.pop('self', None)
            for name, param in signature.parameters.items():
                if param.kind is param.VAR_KEYWORD and name in arguments:
                    arguments.update(arguments.pop(name))
                elif param.kind is param.VAR_POSITIONAL:
                    arguments.pop(name, None)
            self.__dict__['_build_args'] = _plain(arguments)

    wrapped.__signature__ = signature  # registry argument checks read the real signature
    return wrapped


def _plain(value: Any) -> Any:
    """A copy with new containers (mmengine ``ConfigDict``s as plain dicts, tuples kept) and the same leaves: a
    module or tensor passed instead of a config is referenced, not copied (the JSON conversion on export refuses
    it with a message)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    return value


class ZooModel:
    """The contract every zoo model implements (see the module docstring); mix in before mmengine's ``BaseModel``.

    A family sets the class attributes and overrides what differs:

    - ``training_only``: constructor arguments (and submodules of the same name) used only for training;
    - ``default_explainer``: the explainer ``explain()`` uses by default (an alias such as ``'gradcam'``);
    - :meth:`default_preprocessing`: the preprocessing of a model built without one (e.g. from timm's config);
    - ``native_explanation`` + :meth:`explain_native`: the family's own explanation (``explain(method='native')``);
    - :meth:`method_info`: how the family is recognised in a training config and which paper it cites.
    """

    training_only: ClassVar[tuple[str, ...]] = ()
    default_explainer: ClassVar[str] = 'gradcam'
    native_explanation: ClassVar[str | None] = None
    """The kind of the family's own explanation (``'prototypes'``, ...), or ``None``: see :meth:`explain_native`."""
    _preprocessing: Preprocessing | None = None
    _explainer_defaults: dict[str, Any] | None = None
    pretrained_source: str | None = None
    """Where :meth:`from_pretrained` (``zoo.load``) read the model from (``'local-dir:...'``, a zoo name, ...)."""
    pretrained_files: dict[str, Any] | None = None
    """The files it read: ``{'config': path, 'weights': path, 'sha256': digest or None}``."""
    pretrained_config: dict[str, Any] | None = None
    """The ``config.json`` it was built from (validated)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if '__init__' in cls.__dict__:
            cls.__init__ = _capture_init(cls.__dict__['__init__'])  # type: ignore[misc]

    # --- build config ---------------------------------------------------------------------------------------
    @property
    def build_config(self) -> dict[str, Any]:
        """``{'type': <registered name>, **constructor arguments}`` as the model was built (a deep copy)."""
        args = self.__dict__.get('_build_args')
        if args is None:
            raise ConfigError(f'{type(self).__name__} was not built through its constructor, so its build config '
                              'is unknown.')
        return {'type': type(self).__name__, **_plain(args)}

    @classmethod
    def inference_args(cls, args: Mapping[str, Any]) -> dict[str, Any]:
        """Constructor arguments an inference copy is built with: ``training_only`` and ``init_cfg`` dropped, and
        every nested ``pretrained`` switched off (exported weights replace any initialisation)."""
        def strip(node: Any) -> Any:
            if isinstance(node, Mapping):
                out = {k: strip(v) for k, v in node.items() if k != 'init_cfg'}
                if out.get('pretrained') not in (None, False):
                    out['pretrained'] = False
                return out
            if isinstance(node, (list, tuple)):
                return [strip(v) for v in node]
            return node

        return strip({k: v for k, v in dict(args).items() if k not in (*cls.training_only, 'type')})

    def inference_config(self) -> dict[str, Any]:
        """The build config of this model's inference copy (what ``config.json`` stores as the architecture)."""
        cfg = self.build_config
        return {'type': cfg.pop('type'), **self.inference_args(cfg)}

    @classmethod
    def training_only_prefixes(cls) -> tuple[str, ...]:
        """State-dict prefixes of the training-only submodules (``'alignment_heads.'``, ...)."""
        return tuple(f'{name}.' for name in cls.training_only)

    def inference_state_dict(self) -> dict[str, Tensor]:
        """The weights inference needs: the state dict without training-only submodules."""
        prefixes = self.training_only_prefixes()
        return {k: v for k, v in self.state_dict().items() if not (prefixes and k.startswith(prefixes))}

    @classmethod
    def method_info(cls, model_cfg: Mapping[str, Any]) -> dict[str, Any]:
        """How a *training* config of this family is described: ``{'method': str, 'tags': [...], 'paper': {...}}``.

        ``paper`` holds ``title``, ``authors``, ``venue``, ``arxiv``, ``url`` and ``bibtex`` (or is ``None``).
        The default describes the family by its class name; families override it (e.g. LICO when alignment heads
        are present).
        """
        return {'method': cls.__name__.lower(), 'tags': [cls.__name__.lower()], 'paper': None}

    # --- metadata -------------------------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        raise NotImplementedError

    @property
    def class_names(self) -> list[str] | None:
        return self.__dict__.get('_class_names')

    @class_names.setter
    def class_names(self, names: Sequence[str]) -> None:
        names = [str(n) for n in names]
        if len(names) != self.num_classes:
            what = 'the head' if 'head' in getattr(self, '_modules', {}) else 'the model'
            raise ConfigError(f'{len(names)} class names given but {what} predicts {self.num_classes} classes '
                              f'(model.head.num_classes={self.num_classes}). Give {self.num_classes} names, or set '
                              f'model.head.num_classes={len(names)}.')
        self.__dict__['_class_names'] = names
        self.on_class_names(names)

    def on_class_names(self, names: list[str]) -> None:
        """Called when class names are set (a family passes them to its text branch, prompts, ...)."""

    @property
    def dataset_meta(self) -> dict[str, Any]:
        return {'classes': self.class_names}

    @property
    def explain_meta(self) -> dict[str, Any]:
        """What explainers read: ``target_layer`` (dotted name), ``patch_size``, ``num_prefix_tokens``,
        ``output_fmt`` and ``class_names`` (see docs/architecture.md)."""
        return {'target_layer': None, 'patch_size': None, 'num_prefix_tokens': 0, 'output_fmt': 'NCHW',
                'class_names': self.class_names}

    @property
    def explainer_defaults(self) -> dict[str, Any]:
        """``{'method', 'target_layer', 'kwargs'}``: what :meth:`explain` uses when not told otherwise."""
        if self._explainer_defaults is not None:
            return copy.deepcopy(self._explainer_defaults)
        return {'method': self.default_explainer, 'target_layer': self.explain_meta.get('target_layer'),
                'kwargs': {}}

    def set_explainer_defaults(self, method: str, target_layer: str | None = None,
                               kwargs: Mapping[str, Any] | None = None) -> None:
        """Change the default explainer (a registered explainer name or alias; checked now)."""
        from zoo.explainers import resolve_name

        resolve_name(method)
        self._explainer_defaults = {'method': method, 'target_layer': target_layer, 'kwargs': dict(kwargs or {})}

    # --- preprocessing --------------------------------------------------------------------------------------
    def default_preprocessing(self) -> Preprocessing:
        """The preprocessing of a model that was given none (override: e.g. the backbone's timm config)."""
        return Preprocessing()

    @property
    def preprocessing(self) -> Preprocessing:
        return self._preprocessing if self._preprocessing is not None else self.default_preprocessing()

    @preprocessing.setter
    def preprocessing(self, value: Preprocessing) -> None:
        if not isinstance(value, Preprocessing):
            raise ConfigError(f'preprocessing must be a Preprocessing, got {type(value).__name__}.')
        self._preprocessing = value
        self.__dict__.pop('_transform', None)
        pre = getattr(self, 'data_preprocessor', None)
        if pre is not None and hasattr(pre, 'set_mean_std'):
            pre.set_mean_std(value.mean_255, value.std_255)

    @property
    def pretrained_cfg(self) -> dict[str, Any]:
        """timm-style ``pretrained_cfg`` of the model (``timm.data.resolve_data_config(model=model)`` reads it)."""
        return self.preprocessing.to_pretrained_cfg(self.num_classes, self.class_names)

    @property
    def test_transform(self) -> Callable[[Any], Tensor]:
        """The test pipeline as ``f(RGB uint8 [H, W, 3]) -> uint8 [3, h, w]``."""
        transform = self.__dict__.get('_transform')
        if transform is None:
            transform = self.__dict__['_transform'] = self.preprocessing.build_transform()
        return transform

    def normalize(self, pixels: Tensor) -> Tensor:
        """0-255 pixels ``[B, 3, H, W]`` → normalised float input (the data preprocessor's mean/std)."""
        pre = getattr(self, 'data_preprocessor', None)
        if pre is not None and hasattr(pre, 'normalize'):
            return pre.normalize(pixels.to(self.device))
        p = self.preprocessing
        mean = torch.tensor(p.mean_255, device=pixels.device).view(1, -1, 1, 1)
        std = torch.tensor(p.std_255, device=pixels.device).view(1, -1, 1, 1)
        return (pixels.float() - mean) / std

    @property
    def device(self) -> torch.device:
        for t in (*self.parameters(), *self.buffers()):  # type: ignore[attr-defined]
            return t.device
        return torch.device('cpu')

    def load_images(self, images: Any, size: int | Sequence[int] | None = None) -> Tensor:
        """uint8 ``[B, 3, H, W]`` from files, PIL images or RGB arrays, through the test pipeline (``size``:
        resize + centre crop to that size instead)."""
        from zoo.datasets.base import read_rgb

        items = [images] if isinstance(images, (str, os.PathLike)) or not isinstance(images, Sequence) else images
        transform = self.test_transform if size is None else self.preprocessing.with_size(size).build_transform()
        pics = []
        for item in items:
            if isinstance(item, (str, os.PathLike)):
                rgb = read_rgb(os.fspath(item))
            elif hasattr(item, 'convert'):  # PIL
                rgb = np.array(item.convert('RGB'), dtype=np.uint8)
            else:
                rgb = np.asarray(item)
                if rgb.dtype != np.uint8:
                    if rgb.size and float(np.nanmax(rgb)) <= 1.0:
                        rgb = rgb * 255.0
                    rgb = np.clip(np.nan_to_num(rgb), 0, 255).astype(np.uint8)
            pics.append(torch.as_tensor(transform(rgb)))
        shapes = {tuple(p.shape) for p in pics}
        if len(shapes) > 1:
            raise DataError(f'The test pipeline gives images of different sizes ({sorted(shapes)[:3]}); it has no '
                            'crop. Pass size= (or --size) to resize and centre-crop every image to one size.')
        return torch.stack(pics)

    def prepare(self, images: Any) -> Tensor:
        """Normalised float ``[B, 3, H, W]`` on the model's device from what people have: image files, PIL
        images, uint8 tensors/arrays (pixels) or float tensors (already normalised)."""
        from zoo.ops.modules import model_device

        model_device(self)  # a model on the 'meta' device cannot compute: one-line error
        if isinstance(images, Tensor):
            x = images[None] if images.ndim == 3 else images
            if x.ndim != 4:
                raise DataError(f'images must be [B, 3, H, W] (or one [3, H, W]), got shape {tuple(images.shape)}.')
            if x.shape[0] == 0:
                raise DataError('images is an empty batch (shape[0] == 0); pass at least one image.')
            return self.normalize(x) if not x.is_floating_point() else x.to(self.device)
        if isinstance(images, np.ndarray) and images.ndim == 4:
            return self.prepare(torch.as_tensor(images).permute(0, 3, 1, 2) if images.shape[-1] == 3
                                else torch.as_tensor(images))
        if isinstance(images, (str, os.PathLike, np.ndarray)) or hasattr(images, 'convert') or (
                isinstance(images, Sequence) and images):
            return self.normalize(self.load_images(images))
        raise DataError(f'images must be image files, PIL images, a uint8 [B, 3, H, W] tensor (pixels) or a float '
                        f'one (already normalised), got {type(images).__name__}.')

    # --- inference ------------------------------------------------------------------------------------------
    def resolve_targets(self, targets: Any) -> Any:
        """Targets as class indices: ``None``, an int, a class name, or one of those per image."""
        names = self.class_names or []

        def one(t: Any) -> Any:
            if isinstance(t, str):
                if t.lstrip('-').isdigit():
                    return int(t)
                if t not in names:
                    known = (f' Classes: {", ".join(names[:20])}{" ..." if len(names) > 20 else ""}.' if names
                             else ' The model has no class names; pass an index.')
                    raise ConfigError(f'Unknown target class {shorten(t)!r}.{did_you_mean(t, names)}{known}')
                return names.index(t)
            if isinstance(t, float) and not float(t).is_integer():
                raise ConfigError(f'A target must be a class index or name, got {t!r} (a fraction).')
            if isinstance(t, bool) or not isinstance(t, (int, float, np.integer, np.floating)):
                raise ConfigError(f'A target must be a class index or a class name, got {type(t).__name__}.')
            return int(t)

        if targets is None or isinstance(targets, Tensor) or callable(targets):
            if isinstance(targets, Tensor) and targets.is_floating_point() and bool(
                    (targets != targets.round()).any()):
                raise ConfigError('targets must be class indices; got fractional values.')
            return targets
        if isinstance(targets, (str, int, float, np.integer, np.floating)):
            return one(targets)
        if isinstance(targets, Sequence) and targets and all(callable(t) for t in targets):
            return list(targets)
        return [one(t) for t in targets]

    @torch.no_grad()
    def classify(self, images: Any) -> Tensor:
        """Class probabilities ``[B, num_classes]`` (eval mode; every module's mode restored afterwards)."""
        from zoo.ops.modules import model_state

        x = self.prepare(images)
        with model_state(self, eval_mode=True, freeze=False):  # type: ignore[arg-type]
            return self(x).float().softmax(-1)  # type: ignore[operator]

    def explain(self, images: Any, method: str | Mapping[str, Any] | None = None, targets: Any = None,
                **kwargs: Any) -> Any:
        """Saliency maps ``[B, H, W]`` in [0, 1] from a registered explainer (``'gradcam'``, ``'scorecam'``, ...).

        Args:
            images: files, PIL images, uint8 pixels ``[B, 3, H, W]`` or normalised floats (see :meth:`prepare`).
            method: explainer alias, registered name or config dict; default ``explainer_defaults['method']``;
                ``'native'`` (or the family's ``native_explanation``): :meth:`explain_native`.
            targets: ``None`` (predicted class), a class index or name, one per image, or a callable
                ``f(logits) -> [B]`` scores.
            **kwargs: explainer arguments (``target_layer='backbone.model.layer3'``, ...).
        """
        from zoo.explainers import build_explainer, explainer_class

        if isinstance(method, str) and method in ('native', self.native_explanation):
            return self.explain_native(images, targets=targets, **kwargs)
        defaults = self.explainer_defaults
        method = method or defaults.get('method') or 'gradcam'
        options: dict[str, Any] = {}
        if isinstance(method, str) and method == defaults.get('method'):
            options.update(defaults.get('kwargs') or {})
        cls = explainer_class(method)
        layer_given = 'target_layer' in kwargs or (isinstance(method, Mapping) and 'target_layer' in method)
        if defaults.get('target_layer') and not layer_given and 'target_layer' in inspect.signature(cls).parameters:
            options['target_layer'] = defaults['target_layer']
        options.update(kwargs)
        explainer = build_explainer(method, **options)
        return explainer(self, self.prepare(images), self.resolve_targets(targets))

    def explain_native(self, images: Any, targets: Any = None, **kwargs: Any) -> Explanation:
        """The family's own explanation (:class:`Explanation`); families with ``native_explanation`` implement it."""
        raise ConfigError(f"{type(self).__name__} has no explanation of its own (method='native'); use a saliency "
                          "explainer such as method='gradcam'.")

    # --- export / load --------------------------------------------------------------------------------------
    def save_pretrained(self, folder: str | os.PathLike, **kwargs: Any) -> Any:
        """Write ``config.json`` + ``model.safetensors`` into ``folder`` (see :func:`zoo.models.serialization.
        save_model`); returns an :class:`~zoo.models.serialization.SavedModel`."""
        from .serialization import save_model

        return save_model(self, folder, **kwargs)

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, *, weights: str | os.PathLike | None = None,
                        pretrained: bool = True, device: str | torch.device = 'cpu', source: str | None = None,
                        sha256: str | None = None, trust_pickle: bool = False,
                        config_path: str | os.PathLike | None = None, confined: bool = True) -> Any:
        """A model from an exported folder (``config.json`` + ``model.safetensors``), in eval mode.

        Reads JSON and safetensors only (a pickle only with ``trust_pickle=True``); see
        :func:`zoo.models.serialization.load_model`. Names (zoo entries, ``hf-hub:``) go through ``zoo.load``.
        """
        from zoo.ops.modules import check_device

        from .serialization import load_model

        check_device(device)
        model = load_model(folder, weights=weights, pretrained=pretrained, source=source, sha256=sha256,
                           trust_pickle=trust_pickle, config_path=config_path, confined=confined)
        if cls is not ZooModel and not isinstance(model, cls):
            raise ConfigError(f'{source or os.fspath(folder)} holds a {type(model).__name__}, not a {cls.__name__}; '
                              f'load it with zoo.load or {type(model).__name__}.from_pretrained.')
        return model.to(device).eval()

    def _set_pretrained_source(self, source: str, files: Mapping[str, Any], config: Mapping[str, Any]) -> None:
        """Record where :func:`~zoo.models.serialization.load_model` read this model from (and its config.json)."""
        self.pretrained_source = source
        self.pretrained_files = dict(files)
        self.pretrained_config = dict(config)


def is_zoo_model(model: Any) -> bool:
    return isinstance(model, ZooModel)


__all__ = ['Explanation', 'Preprocessing', 'ZooModel', 'is_zoo_model', 'IMAGENET_MEAN', 'IMAGENET_STD',
           'interpolation_name']
