"""The zoo's shipped configs (``zoo/hub/configs/*.json``), generated from the training recipes in ``configs/``.

``python tools/zoo_configs.py`` rewrites them; ``--check`` (and a test) makes sure they do not drift from the recipes.

Example:
    >>> from zoo.hub.recipes import recipe_config
    >>> cfg = recipe_config('configs/efficientnetlite0_baseline_clutteredfmnist.py')
    >>> cfg['architecture'], cfg['preprocessing']['input_size'], cfg['explainer']['method']
    ('ImageClassifier', [3, 128, 128], 'gradcam')
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from zoo.core.fileio import write_json

from .export import training_info

_DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data')
KNOWN_CLASS_NAMES = {'CUB200': os.path.join(_DATA_DIR, 'cub200_classes.txt')}
"""Class names shipped with xzoo for datasets whose names are read from the data (CUB-200-2011: from torchmeta's
assets, the official folder names with underscores as spaces, as ``zoo.datasets.cub`` reads them)."""


def recipe_config(recipe: str | os.PathLike, class_names: Sequence[str] | None = None,
                  recipe_name: str | None = None, method: str | None = None) -> dict[str, Any]:
    """The ``config.json`` of a recipe's model, built with random weights (what the shipped zoo configs are).

    Class names come from ``class_names``, the dataset class's ``METAINFO``, or a list shipped with xzoo.
    """
    import copy

    from registry import DATASETS
    from zoo.apis.config import load_config
    from zoo.apis.inference import inference_model_config, init_model
    from zoo.models.serialization import export_config

    cfg = load_config(recipe)
    training = training_info(cfg, None, recipe_name or os.fspath(recipe), method)
    build = copy.deepcopy(cfg)
    build.model = inference_model_config(cfg.model, has_checkpoint=True)  # random weights: nothing downloaded
    model = init_model(build, None)
    if class_names is None:
        dtype = ((cfg.get('test_dataloader') or {}).get('dataset') or {}).get('type')
        meta = getattr(DATASETS.get(dtype), 'METAINFO', None) if isinstance(dtype, str) else None
        if meta and meta.get('classes'):
            class_names = list(meta['classes'])
        elif dtype in KNOWN_CLASS_NAMES:
            with open(KNOWN_CLASS_NAMES[dtype], encoding='utf-8') as fh:
                class_names = [line.strip() for line in fh if line.strip()]
    return export_config(model, training, class_names)


def index_configs(index: str | None = None, root: str = '.', write: bool = False) -> dict[str, str]:
    """Regenerate (``write=True``) or check the config JSONs of an index from its entries' recipes.

    An entry's config comes from its ``recipe``; its ``training`` block names the recipe and method. Returns
    ``{name: status}`` with
    status ``'ok'``, ``'written'``, ``'differs'`` or ``'skipped: ...'``.
    """
    import json

    from .index import DEFAULT_INDEX, read_index

    status: dict[str, str] = {}
    for entry in read_index(index or DEFAULT_INDEX):
        recipe = entry.recipe
        if not entry.config or not recipe:
            status[entry.name] = 'skipped: no config path or recipe in the index'
            continue
        if not os.path.isfile(os.path.join(root, recipe)):
            status[entry.name] = f'skipped: recipe {recipe} not found'
            continue
        fresh = recipe_config(os.path.join(root, recipe), recipe_name=entry.recipe, method=entry.method)
        fresh.pop('xzoo_version', None)
        old = None
        if os.path.isfile(entry.config):
            with open(entry.config, encoding='utf-8') as fh:
                old = json.load(fh)
            old.pop('xzoo_version', None)
        if old == fresh:
            status[entry.name] = 'ok'
        elif write:
            write_json(entry.config, fresh)
            status[entry.name] = 'written'
        else:
            status[entry.name] = 'differs'
    return status
