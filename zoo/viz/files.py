"""Writing pictures: every PNG of xzoo goes through :func:`save_figure` or :func:`save_pixels`, atomic writes of
:mod:`zoo.core.fileio` (a killed run never leaves half a PNG).

Example:
    >>> import os, tempfile
    >>> import numpy as np
    >>> path = save_pixels(os.path.join(tempfile.mkdtemp(), 'a.png'), np.zeros((4, 4, 3), np.uint8))
    >>> path.name
    'a.png'
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from zoo.core.fileio import atomic_path


def save_figure(fig: Any, path: str | Path, dpi: float | None = None) -> Path:
    """A matplotlib ``Figure`` as a PNG at ``path`` (parent folders created); the Agg canvas is attached here, so
    nothing touches pyplot's global state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path = Path(path)
    FigureCanvasAgg(fig)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format='png', dpi=dpi)
    return path


def save_pixels(path: str | Path, pixels: Any) -> Path:
    """An RGB uint8 array ``[H, W, 3]`` as a PNG at ``path`` (parent folders created)."""
    from PIL import Image

    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(pixels).save(tmp, format='PNG')
    return path
