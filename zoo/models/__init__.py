"""Models: the model contract, the timm backbone adapter, heads, losses, data preprocessor and ``ImageClassifier``.

Every zoo model implements :class:`ZooModel` (:mod:`zoo.models.contract`); importing this package registers every
model component (``registry.MODELS`` lists it in ``locations``).
"""
from . import backbones, heads, losses  # noqa: F401  (register components)
from .classifier import ImageClassifier
from .contract import ZooModel
from .data_preprocessor import ClsDataPreprocessor
from .explanation import Explanation
from .lcam import LCAMClassifier
from .preprocessing import Preprocessing

__all__ = ['ZooModel', 'Preprocessing', 'Explanation', 'ImageClassifier', 'LCAMClassifier', 'ClsDataPreprocessor']
