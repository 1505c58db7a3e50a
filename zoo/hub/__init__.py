"""The model zoo and the Hugging Face Hub: loading, listing, exporting and publishing explainable classifiers.

Public names are imported on first use (listing never imports torch):

- :func:`load`, :func:`download` (``zoo.hub.api``);
- :func:`list_models`, :func:`register_index`, :func:`get_entry` (``zoo.hub.index``);
- :func:`save_pretrained`, :func:`export_checkpoint` (``zoo.hub.export``), :func:`build_card` (``zoo.hub.card``);
- :func:`push_to_hub` (``zoo.hub.publish``);
- :func:`register_model` (``zoo.hub.local_zoo``: a trained model into the local zoo), :func:`local_zoo_dir`;
- :func:`find_evaluation` (``zoo.hub.results``: a work dir's evaluation outputs for a card).

Example:
    >>> from zoo import hub
    >>> hub.list_models('lico-*')
    ['lico-efficientnetlite0-clutteredfmnist', 'lico-resnet50-cub']
"""
from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, str] = {
    'load': 'zoo.hub.api',
    'download': 'zoo.hub.api',
    'parse_name': 'zoo.hub.api',
    'list_models': 'zoo.hub.index',
    'register_index': 'zoo.hub.index',
    'get_entry': 'zoo.hub.index',
    'save_pretrained': 'zoo.hub.export',
    'export_checkpoint': 'zoo.hub.export',
    'build_card': 'zoo.hub.card',
    'push_to_hub': 'zoo.hub.publish',
    'register_model': 'zoo.hub.local_zoo',
    'local_zoo_dir': 'zoo.hub.index',
    'find_evaluation': 'zoo.hub.results',
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'zoo.hub' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = list(_LAZY)
