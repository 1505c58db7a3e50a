"""Text for image-text classifiers: prompt templates, descriptor sentences, descriptor files and training captions.

- **Templates** are format strings with one field, ``{c}`` (the class name): ``'a photo of a {c}.'``. Named sets:
  ``'openai_imagenet'`` (CLIP's 80 ImageNet templates, from open_clip), ``'simple_imagenet'`` (open_clip's 7),
  ``'class_name'`` (``'{c}'`` alone: the baseline of Menon & Vondrick) and ``'fashion'`` (product photos on
  textures, for ClutteredFashionMNIST).
- **Descriptors** (Menon & Vondrick, ICLR 2023) come as the official repository's JSON, ``{"class": ["descriptor",
  ...]}``: a dict, a name shipped with xzoo (``'fashion_mnist'``) or, in a training config, a file. Each becomes a
  sentence by the official rule: ``"{c}, which (is|has|...) {d}"`` (:func:`descriptor_sentence`).
- **Captions** for contrastive (LiT) training: class names, templates, WordNet-style definitions and descriptor
  sentences per class (:class:`CaptionSet`).

Example:
    >>> descriptor_sentence('Sneaker', 'laces on top')
    'Sneaker, which has laces on top'
    >>> descriptor_sentence('Bag', 'used for carrying things')
    'Bag, which is used for carrying things'
    >>> fill_templates(['a photo of a {c}.'], 'Coat')
    ['a photo of a Coat.']
    >>> sorted(load_class_texts('fashion_mnist'))[:2]
    ['Ankle boot', 'Bag']
"""
from __future__ import annotations

import json
import os
import string
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from registry.errors import ConfigError, DataError, did_you_mean, shorten

DATA_DIR = Path(__file__).resolve().parent / 'descriptors'
PACKAGED_DESCRIPTORS = {'fashion_mnist': 'fashion_mnist.json'}
"""Descriptor sets shipped with xzoo (name -> file in ``zoo/models/image_text/descriptors``)."""
PACKAGED_DEFINITIONS = {'fashion_mnist': 'fashion_mnist_definitions.json'}
"""Definition sets shipped with xzoo (WordNet 3.0 glosses of the classes' synsets)."""

FASHION_TEMPLATES = ('a photo of a {c}.', 'a product photo of a {c}.', 'a {c} on a textured background.',
                     'a tinted photo of a {c}.', 'a small {c} among clutter.', 'a grayscale photo of a {c}.',
                     'a picture of a {c}.', 'an item of clothing: {c}.')

INCLUSION_MODES = ('prepend', 'append', 'none')
CONNECTIVES = ('official', 'first_word', 'none')


def _open_clip_templates(name: str) -> tuple[str, ...]:
    from open_clip import zero_shot_metadata as meta

    return tuple(t('{c}') for t in getattr(meta, name))


def template_set(name: str) -> tuple[str, ...]:
    """The templates of a named set (``'openai_imagenet'``, ``'simple_imagenet'``, ``'class_name'``,
    ``'fashion'``)."""
    sets = {'openai_imagenet': lambda: _open_clip_templates('OPENAI_IMAGENET_TEMPLATES'),
            'simple_imagenet': lambda: _open_clip_templates('SIMPLE_IMAGENET_TEMPLATES'),
            'class_name': lambda: ('{c}',), 'fashion': lambda: FASHION_TEMPLATES}
    if name not in sets:
        raise ConfigError(f'Unknown template set {shorten(name)!r}.{did_you_mean(name, sets)} Known: '
                          f'{", ".join(sets)}; or give a list of format strings with the field {{c}}.')
    return sets[name]()


def check_template(template: Any) -> str:
    """``template`` if it is a string whose only format field is ``{c}`` (present at least once)."""
    if not isinstance(template, str) or not template.strip():
        raise ConfigError(f'A template must be a non-empty string such as "a photo of a {{c}}.", got '
                          f'{shorten(repr(template))}.')
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise ConfigError(f'Template {shorten(template)!r} is not a valid format string ({exc}); write a literal '
                          'brace as {{ or }}.') from None
    unknown = sorted({f for f in fields if f != 'c'})
    if unknown:
        raise ConfigError(f'Unknown template field {{{shorten(unknown[0], 40)}}} in {shorten(template)!r}; '
                          'templates have one field, {c}, the class name (e.g. "a photo of a {c}.").')
    if not fields:
        raise ConfigError(f'Template {shorten(template)!r} has no {{c}} field for the class name.')
    return template


def resolve_templates(templates: str | Sequence[str]) -> tuple[str, ...]:
    """A named set or a list of templates, each checked (:func:`check_template`)."""
    items = template_set(templates) if isinstance(templates, str) else tuple(templates)
    if not items:
        raise ConfigError('templates is empty; give at least one, e.g. ["a photo of a {c}."], or a set name.')
    return tuple(check_template(t) for t in items)


def wordify(name: str) -> str:
    """A class name as text: underscores read as spaces (as the official code and CoOp do)."""
    return name.replace('_', ' ')


def fill_templates(templates: Sequence[str], name: str) -> list[str]:
    return [t.format(c=wordify(name)) for t in templates]


# --- descriptor sentences (Menon & Vondrick) ---------------------------------------------------------------------
_OFFICIAL_PREFIXES = ((('a', 'an'), 'which is '), (('has', 'often', 'typically', 'may', 'can'), 'which '),
                      (('used',), 'which is '))


def connective(descriptor: str, rule: str = 'official') -> str:
    """The words put before a descriptor: ``'which is '``, ``'which '`` or ``'which has '`` (``rule='none'``: none).

    ``'official'`` is the released code's test, ``str.startswith`` on characters: ``'a'``/``'an'`` give "which
    is", ``'has'``/``'often'``/``'typically'``/``'may'``/``'can'`` give "which", ``'used'`` gives "which is", anything
    else "which has". Because it tests characters, ``'antennae'`` also gets "which is" and ``'canvas upper'``
    "which". ``'first_word'`` applies the same table to the descriptor's whole first word instead.
    """
    if rule not in CONNECTIVES:
        raise ConfigError(f'connective must be one of {CONNECTIVES}, got {shorten(repr(rule))}.')
    if rule == 'none':
        return ''
    word = descriptor.split(maxsplit=1)[0] if descriptor.split() else ''
    for starts, words in _OFFICIAL_PREFIXES:
        if (rule == 'official' and descriptor.startswith(starts)) or (rule == 'first_word' and word in starts):
            return words
    return 'which has '


def descriptor_sentence(name: str, descriptor: str, inclusion: str = 'prepend', rule: str = 'official',
                        before: str = '', between: str = ', ', after: str = '') -> str:
    """The sentence that is embedded for ``descriptor`` of class ``name`` (the official ``load_gpt_descriptions``).

    ``inclusion``: ``'prepend'`` (default) ``before + name + between + which... + after``; ``'append'``
    ``which... + between + name``; ``'none'`` the modified descriptor alone.
    """
    if inclusion not in INCLUSION_MODES:
        raise ConfigError(f'inclusion must be one of {INCLUSION_MODES}, got {shorten(repr(inclusion))}.')
    modified = connective(descriptor, rule) + descriptor
    if inclusion == 'prepend':
        return f'{before}{wordify(name)}{between}{modified}{after}'
    if inclusion == 'append':
        return f'{modified}{between}{wordify(name)}'
    return modified


# --- descriptor / definition files -------------------------------------------------------------------------------
def _read_json_file(path: str, what: str) -> Any:
    from zoo.core.limits import read_json

    if not os.path.isfile(path):
        raise DataError(f'{what} file {path!r} does not exist.')
    return read_json(path, f'{what} file {path!r}')


def check_class_texts(data: Any, source: str, what: str = 'descriptors') -> dict[str, list[str]]:
    """``{class: [text, ...]}`` in the official JSON layout; a non-list, non-string or empty list is an error."""
    if not isinstance(data, Mapping) or not data:
        raise DataError(f'{source}: {what} must be a non-empty JSON object {{"class": ["{what[:-1]}", ...]}}, got '
                        f'{type(data).__name__}.')
    out: dict[str, list[str]] = {}
    for name, items in data.items():
        if not isinstance(name, str) or not name.strip():
            raise DataError(f'{source}: a class name must be a non-empty string, got {shorten(repr(name))}.')
        if isinstance(items, str) or not isinstance(items, Sequence):
            raise DataError(f'{source}: {what} of {shorten(name)!r} must be a list of strings, got '
                            f'{type(items).__name__}.')
        if not items:
            raise DataError(f'{source}: class {shorten(name)!r} has an empty {what} list; give at least one (the '
                            'score is the mean over them).')
        bad = next((t for t in items if not isinstance(t, str) or not t.strip()), None)
        if bad is not None or any(t is None for t in items):
            raise DataError(f'{source}: {what} of {shorten(name)!r} must be non-empty strings, got '
                            f'{shorten(repr(bad))}.')
        out[name] = [str(t).strip() for t in items]
    return out


def load_class_texts(source: str | Mapping[str, Sequence[str]] | None = None, file: str | None = None,
                     what: str = 'descriptors') -> dict[str, list[str]]:
    """Class texts from a dict, a name shipped with xzoo, or (``file=``) a JSON file of the official layout."""
    packaged = PACKAGED_DESCRIPTORS if what == 'descriptors' else PACKAGED_DEFINITIONS
    if (source is None) == (file is None):
        raise ConfigError(f'Give {what} (a dict or one of {", ".join(packaged)}) or {what[:-1]}_file (a JSON '
                          'file), exactly one.')
    if file is not None:
        return check_class_texts(_read_json_file(os.path.expanduser(str(file)), what.capitalize()), repr(file),
                                 what)
    if isinstance(source, str):
        if source not in packaged:
            hint = (f' For a file, use {what[:-1]}_file={source!r}.' if source.endswith('.json') or '/' in source
                    else '')
            raise ConfigError(f'Unknown {what} set {shorten(source)!r}.{did_you_mean(source, packaged)} Shipped: '
                              f'{", ".join(packaged)}.{hint}')
        return check_class_texts(_read_json_file(str(DATA_DIR / packaged[source]), what.capitalize()),
                                 f'{what} set {source!r}', what)
    return check_class_texts(source, f'{what} dict', what)


def select_classes(texts: Mapping[str, list[str]], names: Sequence[str], source: str,
                   what: str = 'descriptors') -> list[list[str]]:
    """The entries of ``names`` in order; a class missing from ``texts`` is an error with a did-you-mean."""
    missing = [n for n in names if n not in texts]
    if missing:
        first = missing[0]
        raise DataError(f'{source} has no {what} for class {shorten(first)!r}'
                        f'{f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""}.'
                        f'{did_you_mean(first, list(texts))} Its classes must match the model\'s class names '
                        'exactly.')
    return [list(texts[n]) for n in names]


# --- captions for contrastive training ---------------------------------------------------------------------------
class CaptionSet:
    """Captions per class for contrastive image-text training (the ``contrastive.captions`` of a recipe).

    Args:
        templates: a template set name or list (``{c}`` = class name), or ``None`` for none.
        class_name: include the bare class name.
        definitions: definitions per class (a dict, ``'fashion_mnist'`` or ``None``), captioned by
            ``definition_template`` (fields ``{c}`` and ``{d}``); ``definition_file``: a JSON file instead.
        descriptors: descriptors per class (dict, name or ``None``), as :func:`descriptor_sentence` sentences;
            ``descriptor_file``: a JSON file instead.

    Example:
        >>> caps = CaptionSet(templates=['a photo of a {c}.'], descriptors={'Bag': ['a flat base']})
        >>> caps.for_classes(['Bag'])
        [['a photo of a Bag.', 'Bag', 'Bag, which is a flat base']]
    """

    def __init__(self, templates: str | Sequence[str] | None = 'simple_imagenet', class_name: bool = True,
                 definitions: str | Mapping[str, Sequence[str]] | None = None, definition_file: str | None = None,
                 definition_template: str = '{c}: {d}', descriptors: str | Mapping[str, Sequence[str]] | None = None,
                 descriptor_file: str | None = None, inclusion: str = 'prepend', connective: str = 'official') -> None:
        self.templates = resolve_templates(templates) if templates is not None else ()
        self.class_name = bool(class_name)
        self.definitions = (load_class_texts(definitions, definition_file, 'definitions')
                            if definitions is not None or definition_file is not None else None)
        fields = {f for _, f, _, _ in string.Formatter().parse(definition_template) if f is not None}
        if not fields <= {'c', 'd'} or 'd' not in fields:
            raise ConfigError(f'definition_template {shorten(definition_template)!r} must use {{d}} (the '
                              'definition) and may use {c} (the class name), nothing else.')
        self.definition_template = definition_template
        self.descriptors = (load_class_texts(descriptors, descriptor_file)
                            if descriptors is not None or descriptor_file is not None else None)
        descriptor_sentence('x', 'y', inclusion, connective)  # checks the two switches
        self.inclusion, self.connective = inclusion, connective
        if not (self.templates or self.class_name or self.definitions or self.descriptors):
            raise ConfigError('The captions are empty: enable templates, class_name, definitions or descriptors.')

    def for_classes(self, names: Sequence[str]) -> list[list[str]]:
        """Captions of each class, in class order (duplicates removed, order kept)."""
        defs = select_classes(self.definitions, names, 'definitions', 'definitions') if self.definitions else None
        descs = select_classes(self.descriptors, names, 'descriptors') if self.descriptors else None
        out = []
        for i, name in enumerate(names):
            caps = fill_templates(self.templates, name)
            if self.class_name:
                caps.append(wordify(name))
            for d in defs[i] if defs else []:
                caps.append(self.definition_template.format(c=wordify(name), d=d))
            for d in descs[i] if descs else []:
                caps.append(descriptor_sentence(name, d, self.inclusion, self.connective))
            out.append(list(dict.fromkeys(caps)))
        return out


def texts_digest(texts: Sequence[str], *context: Any) -> bytes:
    """sha256 of a list of texts (and context such as the text tower's identity): the key of cached embeddings."""
    import hashlib

    payload = json.dumps([list(texts), [str(c) for c in context]], ensure_ascii=False)
    return hashlib.sha256(payload.encode('utf-8')).digest()
