"""``CLIPZeroShotClassifier``: CLIP's zero-shot classifier (Radford et al., ICML 2021) as a zoo model.

Each class is the mean of its L2-normalised prompt embeddings (class name × templates), renormalised (CLIP's
prompt ensembling); logits are ``logit_scale · cos(image, class)``. The class embeddings are computed once and kept
in the model's ``text_embeddings`` buffer (saved with checkpoints and exports), recomputed only when the class names
or templates change. With ``templates='class_name'`` it is the class-name baseline of Menon & Vondrick.

Example:
    >>> import torch
    >>> from registry import MODELS
    >>> tiny = dict(embed_dim=32, vision_cfg=dict(image_size=32, layers=1, width=32, patch_size=16, head_width=16),
    ...             text_cfg=dict(context_length=16, width=32, heads=2, layers=1))
    >>> model = MODELS.build(dict(type='CLIPZeroShotClassifier', class_names=['cat', 'dog'],
    ...                           templates=['a photo of a {c}.'], image_text=dict(type='ImageTextModel',
    ...                                                                            model_cfg=tiny)))
    >>> model(torch.randn(3, 3, 32, 32)).shape                       # logits: scaled cosines
    torch.Size([3, 2])
    >>> model.texts()
    ['a photo of a cat.', 'a photo of a dog.']
"""
from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from registry import MODELS
from registry.errors import ConfigError

from .base import CLIP_PAPER, ImageTextClassifier
from .prompts import resolve_templates, wordify


@MODELS.register_module()
class CLIPZeroShotClassifier(ImageTextClassifier):
    """Zero-shot classification by class prompts on an image-text model.

    Args:
        image_text: config of an ``ImageTextModel`` (or the module).
        num_classes, class_names: the classes (names may be set later, e.g. from the dataset).
        templates: a template set name (``'openai_imagenet'``: CLIP's 80; ``'simple_imagenet'``; ``'class_name'``;
            ``'fashion'``) or a list of format strings with the field ``{c}``.
        data_preprocessor, contrastive, text_batch_size, init_cfg: see :class:`ImageTextClassifier`.
    """

    def __init__(self, image_text: dict | nn.Module, num_classes: int | None = None,
                 class_names: Sequence[str] | None = None, templates: str | Sequence[str] = 'openai_imagenet',
                 data_preprocessor: dict | None = None, contrastive: dict | None = None, text_batch_size: int = 256,
                 init_cfg: dict | None = None) -> None:
        self.templates = resolve_templates(templates)
        super().__init__(image_text, num_classes=num_classes, class_names=class_names,
                         data_preprocessor=data_preprocessor, contrastive=contrastive,
                         text_batch_size=text_batch_size, init_cfg=init_cfg)

    def _text_rows(self) -> int:
        return self.num_classes

    def _text_source(self) -> Any:
        return tuple(self.class_names or ()), self.templates

    def texts(self) -> list[str]:
        """Every class's prompts, class by class (``K × T`` sentences)."""
        if self.class_names is None:
            raise ConfigError('CLIPZeroShotClassifier has no class names: pass class_names, set model.class_names, '
                              "or let ClassNamesHook take them from the dataset's metainfo['classes'].")
        return [t.format(c=wordify(n)) for n in self.class_names for t in self.templates]

    def _reduce_text(self, embeddings: Tensor) -> Tensor:
        per_class = embeddings.view(self.num_classes, len(self.templates), -1)
        return F.normalize(per_class.mean(1), dim=-1)

    def class_scores(self, image_embeddings: Tensor) -> Tensor:
        return image_embeddings @ self.class_text_embeddings().to(image_embeddings.dtype).T

    @classmethod
    def method_info(cls, model_cfg: Mapping[str, Any]) -> dict[str, Any]:
        """``lit-locked-text``/``clip-contrastive`` for a training recipe, else ``zero-shot-clip``."""
        trained = cls._training_method(model_cfg)
        if trained is not None:
            return trained
        return {'method': 'zero-shot-clip', 'tags': ['image-text', 'zero-shot', 'clip'],
                'paper': copy.deepcopy(CLIP_PAPER)}
