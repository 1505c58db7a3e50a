"""Models: the timm backbone adapter, heads, losses, data preprocessor and ``ImageClassifier``.

Importing this package registers every model component (``registry.MODELS`` lists it in ``locations``).
"""
from . import backbones, heads, losses  # noqa: F401  (register components)
from .classifier import ImageClassifier
from .data_preprocessor import ClsDataPreprocessor

__all__ = ['ImageClassifier', 'ClsDataPreprocessor']
