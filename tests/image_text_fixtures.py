"""Session fixtures of image-text models, shared by the image-text tests and the methods built on them (ConVis,
ECOR, ...).

Import them into a test module with ``from tests.image_text_fixtures import tiny_lit  # noqa: F401``.

``tiny_lit`` trains the real recipe ``configs/lite0-minilm_lit_clutteredfmnist.py`` (EfficientNet-Lite0 + locked
MiniLM, ImageNet init) made small — 64-px ClutteredFashionMNIST, 48 training images, batch 8, one epoch — once per
test session, exports it, and returns where everything is. It tests the plumbing, not accuracy.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / 'configs' / 'lite0-minilm_lit_clutteredfmnist.py'
TINY_OPTIONS = {
    'train_dataloader.batch_size': 8, 'train_dataloader.num_workers': 0, 'train_dataloader.persistent_workers': False,
    'train_dataloader.dataset.num_samples': 48, '+train_dataloader.dataset.canvas_size': 64,
    '+train_dataloader.dataset.object_size': [24, 40], '+train_dataloader.dataset.clutter_size': [6, 10],
    'val_dataloader.batch_size': 16, 'val_dataloader.num_workers': 0, 'val_dataloader.persistent_workers': False,
    'val_dataloader.dataset.num_samples': 16, '+val_dataloader.dataset.canvas_size': 64,
    '+val_dataloader.dataset.object_size': [24, 40], '+val_dataloader.dataset.clutter_size': [6, 10],
    'param_scheduler.0.end': 2, 'default_hooks.logger.interval': 1,
}
"""``--cfg-options`` that make the recipe tiny (also usable from the command line)."""


@dataclass
class TinyLiT:
    """A tiny trained LiT model: its work dir, checkpoint, export folder and the config overrides used."""

    work_dir: Path
    checkpoint: Path
    export: Path
    options: dict[str, Any]

    def load(self) -> Any:
        """The exported zero-shot classifier, loaded as users do (``zoo.load('local-dir:...')``)."""
        import zoo

        return zoo.load(f'local-dir:{self.export}')


def train_tiny_lit(out: Path, lite0_weights: str) -> TinyLiT:
    """Train, test-load and export the tiny recipe into ``out``."""
    import zoo

    options = dict(TINY_OPTIONS, **{'model.image_text.pretrained.image': lite0_weights})
    work = out / 'work'
    zoo.train(str(RECIPE), work_dir=str(work), cfg_options=options)
    checkpoint = work / 'epoch_1.pth'
    model = zoo.init_model(str(RECIPE), str(checkpoint), cfg_options=options)
    model.save_pretrained(out / 'export')
    return TinyLiT(work, checkpoint, out / 'export', options)


@pytest.fixture(scope='session')
def tiny_lit(tmp_path_factory: pytest.TempPathFactory, lite0_weights: str) -> TinyLiT:
    """The tiny LiT model, trained once per session (see the module docstring)."""
    return train_tiny_lit(tmp_path_factory.mktemp('tiny_lit'), lite0_weights)
