"""Grids: one row per image, the image then one overlay column per method (or per anything you name).

Uses ``matplotlib.figure.Figure`` with the Agg canvas directly, so nothing touches pyplot's global state.

Example:
    >>> import torch, tempfile, os
    >>> from zoo.viz import save_grid
    >>> imgs = torch.rand(2, 3, 16, 16)
    >>> path = save_grid(os.path.join(tempfile.mkdtemp(), 'g.png'), imgs,
    ...                  {'gradcam': torch.rand(2, 16, 16), 'eigencam': torch.rand(2, 16, 16)},
    ...                  row_labels=['cat 0.91', 'dog 0.55'], title='random maps')
    >>> path.suffix
    '.png'
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import Tensor

from registry.errors import DataError

from .files import save_figure
from .overlay import overlay, to_display


def grid_figure(images: Tensor | Sequence[Tensor], maps: Mapping[str, Tensor | Sequence[Tensor]],
                row_labels: Sequence[str] | None = None, title: str | None = None, alpha: float = 0.5,
                cmap: str = 'jet', show_image: bool = True, cell_inches: float = 2.0) -> Any:
    """A matplotlib ``Figure``: rows = images, columns = (image,) + one overlay per key of ``maps``.

    Args:
        images: ``[N, 3, H, W]`` (float in [0, 1] or uint8) or a list of ``[3, H, W]``.
        maps: column title → ``[N, h, w]`` maps (resized to each image).
        row_labels: text under each row's first panel (e.g. file name and prediction).
        title: figure title. show_image: include the plain image column.
    """
    from matplotlib.figure import Figure

    n = len(images)
    for key, value in maps.items():
        if len(value) != n:
            raise DataError(f'maps[{key!r}] has {len(value)} maps for {n} images.')
    if row_labels is not None and len(row_labels) != n:
        raise DataError(f'{len(row_labels)} row labels for {n} images.')
    cols = int(show_image) + len(maps)
    if n == 0 or cols == 0:
        raise DataError('nothing to draw: give at least one image and one map column (or show_image=True).')
    fig = Figure(figsize=(cell_inches * cols, cell_inches * n + (0.4 if title else 0)), dpi=100)
    axes = fig.subplots(n, cols, squeeze=False)
    for r in range(n):
        panels = ([('image', to_display(images[r]))] if show_image else []) + [
            (key, overlay(images[r], value[r], alpha=alpha, cmap=cmap)) for key, value in maps.items()]
        for c, (name, pic) in enumerate(panels):
            ax = axes[r][c]
            ax.imshow(pic.permute(1, 2, 0).numpy())
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=9)
        if row_labels is not None:
            axes[r][0].set_xlabel(row_labels[r], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def save_grid(path: str | Path, images: Tensor | Sequence[Tensor], maps: Mapping[str, Tensor | Sequence[Tensor]],
              row_labels: Sequence[str] | None = None, title: str | None = None, alpha: float = 0.5,
              cmap: str = 'jet', show_image: bool = True, cell_inches: float = 2.0) -> Path:
    """:func:`grid_figure` written as a PNG to ``path`` (parent folders created)."""
    fig = grid_figure(images, maps, row_labels=row_labels, title=title, alpha=alpha, cmap=cmap,
                      show_image=show_image, cell_inches=cell_inches)
    return save_figure(fig, path)
