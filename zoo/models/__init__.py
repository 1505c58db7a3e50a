"""Models: the model contract, the timm backbone adapter, heads, losses, data preprocessor, ``ImageClassifier`` and
``PromptCAMViT``.

Every zoo model implements :class:`ZooModel` (:mod:`zoo.models.contract`); importing this package registers every
model component (``registry.MODELS`` lists it in ``locations``).
"""
from . import backbones, heads, losses, prompt_cam  # noqa: F401  (register components)
from .classifier import ImageClassifier
from .contract import ZooModel
from .data_preprocessor import ClsDataPreprocessor
from .explanation import Explanation
from .lcam import LCAMClassifier
from .preprocessing import Preprocessing
from .prompt_cam import PromptCAMViT, TraitsExplanation

__all__ = ['ZooModel', 'Preprocessing', 'Explanation', 'ImageClassifier', 'LCAMClassifier', 'ClsDataPreprocessor',
           'PromptCAMViT', 'TraitsExplanation']
