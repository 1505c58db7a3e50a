"""What models with a timm backbone and a ``ClsDataPreprocessor`` share: preprocessing and the exported mean/std.

:class:`TimmInputMixin` goes before :class:`~zoo.models.contract.ZooModel` in a family's bases; the family needs a
``backbone`` with timm's ``pretrained_cfg`` and a ``data_preprocessor`` with ``mean``/``std`` (0–255 scale).

Example:
    >>> from zoo.models.input_stats import TimmInputMixin
    >>> from zoo.models import ImageClassifier
    >>> issubclass(ImageClassifier, TimmInputMixin)
    True
"""
from __future__ import annotations

from typing import Any

from .preprocessing import Preprocessing


class TimmInputMixin:
    """``default_preprocessing`` from the backbone's timm ``pretrained_cfg`` with the data preprocessor's mean/std,
    and an ``inference_config`` that writes that mean/std out (they may have been filled from timm at build time)."""

    backbone: Any
    data_preprocessor: Any

    def timm_pretrained_cfg(self) -> dict[str, Any]:
        """The timm ``pretrained_cfg`` the preprocessing starts from (a family may adjust it, e.g. the input size)."""
        return dict(getattr(self.backbone, 'pretrained_cfg', {}) or {})

    def default_preprocessing(self) -> Preprocessing:
        """The backbone's timm preprocessing (size, crop, interpolation) with the data preprocessor's mean/std."""
        cfg = self.timm_pretrained_cfg()
        pre = self.data_preprocessor
        cfg['mean'] = [float(m) / 255 for m in pre.mean.flatten().tolist()]
        cfg['std'] = [float(s) / 255 for s in pre.std.flatten().tolist()]
        return Preprocessing.from_timm(cfg)

    def inference_config(self) -> dict[str, Any]:
        """The contract's inference config, with the data preprocessor's mean/std written out."""
        cfg = super().inference_config()  # type: ignore[misc]
        pre = dict(cfg.get('data_preprocessor') or {'type': 'ClsDataPreprocessor'})
        if pre.get('mean') is None or pre.get('std') is None:
            pre.update(mean=[float(v) for v in self.data_preprocessor.mean.flatten()],
                       std=[float(v) for v in self.data_preprocessor.std.flatten()])
        cfg['data_preprocessor'] = pre
        return cfg
