"""Runner hooks (registry ``HOOKS``).

Example (in a config)::

    custom_hooks = [dict(type='ClassNamesHook')]
"""
from __future__ import annotations

from typing import Any

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from registry import HOOKS
from registry.errors import ConfigError


def unwrap(model: Any) -> Any:
    return model.module if is_model_wrapper(model) else model


def sync_class_names(model: Any, dataset: Any, where: str) -> None:
    """Check that ``dataset``'s classes fit the model's head and give the model the dataset's class names."""
    model = unwrap(model)
    classes = list(getattr(dataset, 'metainfo', {}).get('classes') or [])
    num_classes = getattr(model, 'num_classes', None)
    if not classes or num_classes is None:
        return
    if len(classes) != num_classes:
        raise ConfigError(f'The {where} dataset has {len(classes)} classes but the model head predicts '
                          f'{num_classes} (model.head.num_classes={num_classes}). Set --cfg-options '
                          f'model.head.num_classes={len(classes)}, or use a dataset with {num_classes} classes.')
    if getattr(model, 'class_names', None) is None:
        model.class_names = classes


@HOOKS.register_module()
class ClassNamesHook(Hook):
    """Fail early when dataset and head disagree on the number of classes; set the model's class names."""

    priority = 'VERY_HIGH'

    def before_train(self, runner: Any) -> None:
        sync_class_names(runner.model, runner.train_dataloader.dataset, 'training')

    def before_val(self, runner: Any) -> None:
        sync_class_names(runner.model, runner.val_dataloader.dataset, 'validation')

    def before_test(self, runner: Any) -> None:
        sync_class_names(runner.model, runner.test_dataloader.dataset, 'test')
