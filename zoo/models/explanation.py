"""``Explanation``: a model family's own explanation of a batch, as records and figures.

Families whose explanation is more than a saliency map (a prototype network's "this looks like that", a
descriptor classifier's ranked descriptors, ECOR's rationales) return one from ``model.explain(method='native')``;
``tools/explain.py --method native`` writes its figures.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor


@dataclass
class Explanation:
    """A model family's own explanation of a batch (prototypes, descriptors, rationales, ...).

    Attributes:
        kind: what it is (``'prototypes'``, ``'descriptors'``, ``'rationales'``).
        predicted: the class explained for each image (index).
        records: one JSON-ready dict per image (what the family says, with scores).
        maps: saliency ``[B, H, W]`` in [0, 1] when the family has one (metrics can score it), else ``None``.

    A family subclasses it and overrides :meth:`figure` (one matplotlib ``Figure`` per image); the tools call
    :meth:`save_figures`.
    """

    kind: str
    predicted: list[int]
    records: list[dict[str, Any]]
    maps: Tensor | None = None

    def __len__(self) -> int:
        return len(self.records)

    def figure(self, index: int, image: Tensor | None = None, class_names: Sequence[str] | None = None) -> Any:
        """The figure of image ``index`` (``image``: its uint8 ``[3, H, W]`` pixels)."""
        raise NotImplementedError(f'{type(self).__name__} draws no figure.')

    def save_figures(self, out_dir: str | os.PathLike, stems: Sequence[str], images: Tensor | None = None,
                     class_names: Sequence[str] | None = None) -> list[Any]:
        """``<out_dir>/<stem>_<kind>.png`` for every image; returns the paths."""
        from pathlib import Path

        from zoo.viz.files import save_figure

        out = []
        for i, stem in enumerate(stems):
            fig = self.figure(i, None if images is None else images[i], class_names)
            out.append(save_figure(fig, Path(out_dir) / f'{stem}_{self.kind}.png'))
        return out
