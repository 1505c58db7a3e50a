"""Rationales for ECOR: a vocabulary of visible features per class, and per-image rationale labels.

A rationale file is a JSON object ``{"class": ["rationale", ...]}`` — the layout of the DROR rationale files
(Mao et al., "Doubly Right Object Recognition", CVPR 2023: ``GPT3/cifar10_text.json`` and the others, which list
noun phrases such as ``"wings"``). A rationale shared by several classes (``"is a shoe"``, ``"has long sleeves"``) is
one entry of the vocabulary. xzoo ships rationales for the 10 Fashion-MNIST classes (``rationales='fashion_mnist'``),
written as verb phrases of visible, checkable features (``"has laces"``, ``"has a collar"``, ``"has a handle"``).

Per-image rationale labels: by default an image's rationales are those of its class (:meth:`RationaleVocabulary.
targets`); a data sample may carry its own ``gt_rationales`` (vocabulary ids), which are checked to be in range.

Example:
    >>> vocab = RationaleVocabulary.from_table({'Sneaker': ['has laces', 'is a shoe'],
    ...                                         'Sandal': ['has straps', 'is a shoe']})
    >>> vocab.texts
    ['has laces', 'is a shoe', 'has straps']
    >>> vocab.ids('Sandal'), vocab.targets(['Sandal', 'Sneaker']).int().tolist()
    ([2, 1], [[0, 1, 1], [1, 1, 0]])
    >>> len(load_rationales('fashion_mnist'))
    10
"""
from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from registry.errors import ConfigError, DataError, did_you_mean, shorten

from .prompts import DATA_DIR, _read_json_file, check_class_texts, select_classes

PACKAGED_RATIONALES = {'fashion_mnist': 'fashion_mnist_rationales.json'}
"""Rationale sets shipped with xzoo (name -> file in ``zoo/models/image_text/descriptors``)."""


def load_rationales(rationales: str | Mapping[str, Sequence[str]] | None = None,
                    rationale_file: str | None = None) -> dict[str, list[str]]:
    """``{class: [rationale, ...]}`` from a dict, a set shipped with xzoo, or a JSON file (exactly one)."""
    import os

    if (rationales is None) == (rationale_file is None):
        raise ConfigError(f'Give rationales (a dict or one of {", ".join(PACKAGED_RATIONALES)}) or rationale_file '
                          '(a JSON file {"class": ["rationale", ...]}), exactly one.')
    if rationale_file is not None:
        data = _read_json_file(os.path.expanduser(str(rationale_file)), 'Rationale')
        return check_class_texts(data, f'rationale file {str(rationale_file)!r}', 'rationales')
    if isinstance(rationales, str):
        if rationales not in PACKAGED_RATIONALES:
            hint = ' For a file, use rationale_file=.' if rationales.endswith('.json') or '/' in rationales else ''
            raise ConfigError(f'Unknown rationale set {shorten(rationales)!r}.'
                              f'{did_you_mean(rationales, PACKAGED_RATIONALES)} Shipped: '
                              f'{", ".join(PACKAGED_RATIONALES)}.{hint}')
        return check_class_texts(_read_json_file(str(DATA_DIR / PACKAGED_RATIONALES[rationales]), 'Rationale'),
                                 f'rationale set {rationales!r}', 'rationales')
    return check_class_texts(rationales, 'rationales dict', 'rationales')


@dataclass
class RationaleVocabulary:
    """The distinct rationales of a table (order of first appearance) and each class's rationale ids."""

    texts: list[str]
    by_class: dict[str, list[int]]
    source: str = 'the rationales'

    @classmethod
    def from_table(cls, table: Mapping[str, Sequence[str]], source: str = 'the rationales') -> RationaleVocabulary:
        texts: list[str] = []
        index: dict[str, int] = {}
        by_class: dict[str, list[int]] = {}
        for name, items in table.items():
            ids = []
            for r in items:
                if r not in index:
                    index[r] = len(texts)
                    texts.append(r)
                if index[r] not in ids:
                    ids.append(index[r])
            by_class[name] = ids
        return cls(texts, by_class, source)

    def __len__(self) -> int:
        return len(self.texts)

    def ids(self, name: str) -> list[int]:
        """Rationale ids of class ``name`` (a class missing from the table is a one-line error)."""
        select_classes(self.by_class, [name], self.source, 'rationales')
        return list(self.by_class[name])

    def check_classes(self, names: Sequence[str]) -> None:
        """Every class needs rationales: a missing one is a one-line error with a did-you-mean."""
        select_classes(self.by_class, names, self.source, 'rationales')

    def targets(self, names: Sequence[str]) -> Tensor:
        """``[K, N]`` bool: row ``c`` marks the rationales of class ``names[c]`` (the per-image labels derived from
        the class)."""
        self.check_classes(names)
        out = torch.zeros(len(names), len(self.texts), dtype=torch.bool)
        for c, name in enumerate(names):
            out[c, self.by_class[name]] = True
        return out


def rationale_targets(ids: Any, num_rationales: int, what: str = 'gt_rationales') -> Tensor:
    """A ``[N]`` bool mask from rationale ids (a list or tensor of ints) or an ``[N]`` bool mask; ids out of range
    and an empty set are one-line errors."""
    t = torch.as_tensor(ids)
    if t.numel() == 0:
        raise DataError(f'{what} is empty: every image needs at least one right rationale.')
    if t.dtype == torch.bool:
        mask = t.bool()
    else:
        if t.is_floating_point() or t.ndim > 1:
            raise DataError(f'{what} must be a list of rationale ids (ints), got a {tuple(t.shape)} '
                            f'{t.dtype} tensor.')
        t = t.long().reshape(-1)
        bad = t[(t < 0) | (t >= num_rationales)]
        if bad.numel():
            raise DataError(f'{what} has rationale id {int(bad[0])}, out of range for a vocabulary of '
                            f'{num_rationales} rationales (ids are 0..{num_rationales - 1}).')
        mask = torch.zeros(num_rationales, dtype=torch.bool)
        mask[t] = True
    if mask.shape != (num_rationales,):
        raise DataError(f'{what} mask has shape {tuple(mask.shape)}, expected ({num_rationales},).')
    if not bool(mask.any()):
        raise DataError(f'{what} is empty: every image needs at least one right rationale.')
    return mask


def check_template(template: Any, fields: set[str], name: str) -> str:
    if not isinstance(template, str) or not template.strip():
        raise ConfigError(f'{name} must be a non-empty string, got {shorten(repr(template))}.')
    try:
        used = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        raise ConfigError(f'{name} {shorten(template)!r} is not a valid format string ({exc}).') from None
    if used != fields:
        want = ' and '.join('{' + f + '}' for f in sorted(fields))
        raise ConfigError(f'{name} {shorten(template)!r} must use exactly the fields {want}.')
    return template


def join_rationales(items: Sequence[str]) -> str:
    """``'a'``, ``'a and b'``, ``'a, b and c'``."""
    items = list(items)
    return items[0] if len(items) == 1 else ', '.join(items[:-1]) + ' and ' + items[-1]
