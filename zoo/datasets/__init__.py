"""Datasets (registry ``DATASETS``) returning image, label and, where known, object box and mask."""
from . import transforms  # noqa: F401  (register transforms)
from .base import ClsDataset
from .cluttered_fmnist import ClutteredFashionMNIST
from .cub import CUB200
from .imagenet import ImageNetFolder
from .synthetic_shapes import SyntheticShapes

__all__ = ['ClsDataset', 'CUB200', 'ClutteredFashionMNIST', 'ImageNetFolder', 'SyntheticShapes']
