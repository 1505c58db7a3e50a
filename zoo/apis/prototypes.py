"""``explain_prototypes()``: what ``tools/explain_prototypes.py`` runs — Explaining Prototypes (Nauta et al.) for a
trained ProtoPNet, over its training (push) images or its test images.

Example::

    from zoo.apis.prototypes import explain_prototypes
    res = explain_prototypes('configs/efficientnetlite0_protopnet_clutteredfmnist.py',
                             'work_dirs/protopnet/epoch_8.pth', split='train', subset=500)
    res.summary['mean_global_score']['hue']['mean'], res.files['global_csv']
"""
from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from registry.errors import ConfigError

from .config import load_config

SPLITS = ('train', 'test')


def dataloader_config(cfg: Mapping[str, Any], split: str) -> dict[str, Any]:
    """The dataloader config of ``split``: ``'test'`` → ``test_dataloader``; ``'train'`` → the training images with
    the test pipeline: the config's ``push_dataloader`` (top level, or the ``ProtoPNetStages`` hook's), else
    ``train_dataloader`` with ``test_dataloader``'s pipeline."""
    if split not in SPLITS:
        raise ConfigError(f"split must be 'train' or 'test', got {split!r}.")
    if split == 'test':
        loader = cfg.get('test_dataloader')
        if not loader:
            raise ConfigError('The config has no test_dataloader.')
        return copy.deepcopy(dict(loader))
    loader = cfg.get('push_dataloader')
    for hook in cfg.get('custom_hooks') or []:
        if loader is None and isinstance(hook, Mapping) and hook.get('type') == 'ProtoPNetStages':
            loader = hook.get('push_dataloader')
    if loader:
        return copy.deepcopy(dict(loader))
    train, test = cfg.get('train_dataloader'), cfg.get('test_dataloader')
    if not train or not test:
        raise ConfigError('The config has no push_dataloader, and not both train_dataloader and test_dataloader to '
                          'make one; add push_dataloader (the training images with the test pipeline).')
    loader = copy.deepcopy(dict(train))
    loader['dataset'] = dict(loader['dataset'], pipeline=copy.deepcopy(test['dataset'].get('pipeline') or []))
    return loader


def explain_prototypes(config: Any, checkpoint: str, out_dir: str | None = None, split: str = 'train',
                       subset: int | None = None, seed: int = 0, batch_size: int | None = None,
                       modifications: Sequence[str] | None = None, settings: Mapping[str, float] | None = None,
                       local_top_k: int | None = None, chart_prototypes: int | Sequence[int] = 8,
                       device: str = 'cpu', cfg_options: Iterable[str] | Mapping[str, Any] | None = None,
                       progress: bool = True) -> Any:
    """Local and global prototype scores of a trained ProtoPNet (``config`` + ``checkpoint``) over ``split``.

    Args:
        out_dir: where the CSVs, summary and PNGs go (default: ``<checkpoint folder>/explain_prototypes_<split>``).
        subset: score a seeded random choice of this many images (``None``: all).
        batch_size: images per batch (each batch runs ``1 + len(modifications)`` forwards); default the
            dataloader's.
        modifications, settings: which modifications, and overrides of the paper's settings (see
            :mod:`zoo.models.protopnet.modifications`).
        local_top_k, chart_prototypes: see :func:`zoo.models.protopnet.characteristics.score_prototypes`.

    Returns a :class:`~zoo.models.protopnet.characteristics.PrototypeCharacteristics` (summary and file paths).
    """
    import torch
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import DefaultScope
    from torch.utils.data import DataLoader, Subset

    from registry import DATASETS, SCOPE
    from zoo.models.protopnet.characteristics import score_prototypes
    from zoo.models.protopnet.modifications import MODIFICATIONS

    from .inference import init_model

    cfg = load_config(config, cfg_options)
    model = init_model(cfg, checkpoint, device=device)
    if not hasattr(model, 'prototype_vectors'):
        raise ConfigError(f'explain_prototypes explains prototype networks (ProtoPNet); {config} builds a '
                          f'{type(model).__name__}.')
    if not model.is_pushed:
        raise ConfigError(f'{checkpoint}: the prototypes were never pushed onto training patches (no push stage has '
                          'run), so they explain nothing yet. Use a checkpoint saved after a push stage.')
    loader_cfg = dataloader_config(cfg, split)
    with DefaultScope.overwrite_default_scope(SCOPE):
        dataset = DATASETS.build(loader_cfg['dataset'])
    indices = list(range(len(dataset)))
    if subset is not None:
        if subset < 1:
            raise ConfigError(f'subset must be a positive number of images, got {subset}.')
        g = torch.Generator().manual_seed(seed)
        indices = sorted(torch.randperm(len(dataset), generator=g)[:subset].tolist())
    loader = DataLoader(Subset(dataset, indices), batch_size=batch_size or loader_cfg.get('batch_size', 16),
                        shuffle=False, num_workers=0, collate_fn=pseudo_collate)
    if out_dir is None:
        out_dir = os.path.join(os.path.dirname(os.path.abspath(checkpoint)), f'explain_prototypes_{split}')
    title = f'{os.path.basename(str(config))} · {split} ({len(indices)} images)'
    return score_prototypes(model, loader, out_dir, modifications=tuple(modifications or MODIFICATIONS),
                            settings=settings, local_top_k=local_top_k, chart_prototypes=chart_prototypes,
                            progress=progress, total=len(loader), title=title)
