"""Image-text models: an open_clip model as a zoo component, and the classifiers built on it.

- :class:`ImageTextModel` (``MODELS``): an open_clip model (``encode_image``, ``encode_text``, ``tokenize``,
  ``logit_scale``, ``text_encoder()`` for prompt learning, preprocessing from open_clip's transforms), built from
  open_clip names or an inline config, with weights from a tag, the Hub, a file, or none (offline);
- :class:`CLIPZeroShotClassifier` (``MODELS``): class names × templates, CLIP's zero-shot classifier;
- :class:`DescriptorClassifier` (``MODELS``): classification by description (Menon & Vondrick, ICLR 2023), with
  its own explanation (ranked descriptors);
- :class:`ECOR` (``MODELS``): explainable object recognition as the joint distribution of a category and
  rationales (Rasekh et al., 2024), with two learned prompt contexts; its own explanation is the rationales;
- :mod:`~zoo.models.image_text.prompts`: templates, the official descriptor-sentence rule, descriptor files,
  captions for contrastive (LiT-style) training.

Importing this package is cheap: open_clip and transformers are imported when a model is built. See
docs/image_text.md.
"""
from .base import ImageTextClassifier
from .descriptor import DescriptorClassifier, DescriptorExplanation
from .ecor import ECOR
from .ecor_explanation import RationaleExplanation
from .model import ImageTextModel
from .prompts import CaptionSet, descriptor_sentence, load_class_texts
from .rationales import RationaleVocabulary, load_rationales
from .towers import TEXT_TOWERS, register_text_tower
from .zero_shot import CLIPZeroShotClassifier

__all__ = ['ImageTextModel', 'ImageTextClassifier', 'CLIPZeroShotClassifier', 'DescriptorClassifier',
           'DescriptorExplanation', 'CaptionSet', 'descriptor_sentence', 'load_class_texts', 'TEXT_TOWERS',
           'register_text_tower', 'ECOR', 'RationaleExplanation', 'RationaleVocabulary', 'load_rationales']
