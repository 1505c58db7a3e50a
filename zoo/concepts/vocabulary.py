"""Concept vocabularies: the concepts a region is ranked against, the text each is embedded from, and which concepts
lie below which (WordNet's hyponym relation, or one given by hand).

A :class:`ConceptVocabulary` is ``names`` (synset names such as ``'sandal.n.01'``, or any labels), ``texts`` (what
the text encoder embeds: by default ``'{lemmas}: {definition}'`` of the synset, the paper's "CLIP-space
definitions") and ``children`` (for each concept, the vocabulary members directly below it: its hyponyms, or the
nearest members below it when intermediate synsets are not in the vocabulary), so :meth:`~ConceptVocabulary.closure`
is the hyponym closure restricted to the vocabulary.

WordNet vocabularies (:func:`wordnet_vocabulary`) by spec:

=========================== =====================================================================================
``'nouns'``                 every noun synset of WordNet 3.0 (82,115)
``'hyponyms:<synset>'``     a synset and everything below it (``'hyponyms:clothing.n.01'``: 561)
``'imagenet-1k'``           the 1,000 ImageNet-1k classes (wnids from timm's class list, resolved offline)
a list of synset names      those synsets
``'<spec>+<spec>'``         the union, in order (``'hyponyms:covering.n.02+hyponyms:container.n.01'``: 1,758); a
                            part may be one synset name (``'hyponyms:garment.n.01+gravel.n.01'``)
=========================== =====================================================================================

Reading all of WordNet takes tens of seconds, so a WordNet vocabulary is stored once as JSON in
``<cache>/concepts/`` (names, texts, edges; written atomically) and read from there afterwards without NLTK.

Example:
    >>> vocab = ConceptVocabulary.custom({'footwear': 'covering for the feet', 'sandal': 'a strappy shoe',
    ...                                   'boot': 'a high shoe', 'coat': 'an outer garment'},
    ...                                  hyponyms={'footwear': ['sandal', 'boot']})
    >>> len(vocab), [vocab.names[i] for i in vocab.closure('footwear')], vocab.closure('coat')
    (4, ['sandal', 'boot'], [])
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from registry.errors import ConfigError, DataError, did_you_mean, shorten
from zoo.core.fileio import write_json

from . import wordnet

DEFAULT_TEMPLATE = '{lemmas}: {definition}'
"""The text of a synset: its lemmas and its WordNet definition (fields: name, lemma, lemmas, definition)."""
LEMMA_TEMPLATE = '{lemma}'
"""Lemma only (the baseline of the definitions check)."""
SPECS = ('nouns', 'hyponyms:<synset>', 'imagenet-1k', '<spec>+<spec>', 'a list of synset names')
FORMAT = 1


@dataclass(frozen=True, eq=False)
class ConceptVocabulary:
    """Concepts, their texts and the hyponym edges between them (see the module doc).

    Args:
        names: unique concept names. texts: one text per name (what is embedded).
        children: per concept, indices of the members directly below it.
        spec: how it was built (recorded with embeddings and results). template: the synset text template.
    """

    names: tuple[str, ...]
    texts: tuple[str, ...]
    children: tuple[tuple[int, ...], ...]
    spec: str = 'custom'
    template: str | None = None
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = len(self.names)
        if n == 0:
            raise ConfigError('A concept vocabulary needs at least one concept.')
        if len(self.texts) != n or len(self.children) != n:
            raise ConfigError(f'A concept vocabulary needs one text and one children entry per name: {n} names, '
                              f'{len(self.texts)} texts, {len(self.children)} children entries.')
        index = {name: i for i, name in enumerate(self.names)}
        if len(index) != n:
            dup = next(name for i, name in enumerate(self.names) if index[name] != i)
            raise ConfigError(f'Concept {dup!r} appears twice in the vocabulary; names must be unique.')
        for i, kids in enumerate(self.children):
            if any(not 0 <= k < n or k == i for k in kids):
                raise ConfigError(f'Concept {self.names[i]!r} has a child index outside the vocabulary (or itself).')
        object.__setattr__(self, '_index', index)

    @classmethod
    def custom(cls, concepts: Mapping[str, str] | Sequence[str],
               hyponyms: Mapping[str, Sequence[str]] | None = None, spec: str = 'custom') -> ConceptVocabulary:
        """A hand-built vocabulary: ``{name: text}`` (or names, embedded as they are) and ``{name: [names below
        it]}`` (direct or transitive; both give the same closure)."""
        items = list(concepts.items()) if isinstance(concepts, Mapping) else [(str(c), str(c)) for c in concepts]
        names = tuple(str(k) for k, _ in items)
        index = {n: i for i, n in enumerate(names)}
        kids: list[list[int]] = [[] for _ in names]
        for parent, below in (hyponyms or {}).items():
            for name in (parent, *below):
                if name not in index:
                    raise ConfigError(f'hyponyms names {name!r}, which is not in the vocabulary.'
                                      f'{did_you_mean(name, names)}')
            kids[index[parent]] = [index[b] for b in below if b != parent]
        return cls(names, tuple(str(t) for _, t in items), tuple(tuple(k) for k in kids), spec=spec)

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def index(self, name: str) -> int | None:
        """Position of ``name``, or ``None``."""
        return self._index.get(name)

    def closure(self, name: str) -> list[int]:
        """Indices of every member below ``name`` (breadth first, each once, ``name`` excluded); ``[]`` when
        ``name`` is not a member."""
        start = self._index.get(name)
        if start is None:
            return []
        seen, out, frontier = {start}, [], [start]
        while frontier:
            nxt = []
            for i in frontier:
                for k in self.children[i]:
                    if k not in seen:
                        seen.add(k)
                        out.append(k)
                        nxt.append(k)
            frontier = nxt
        return out

    @property
    def digest(self) -> str:
        """sha256 of names, texts and edges: what embeddings and caches are keyed by."""
        payload = json.dumps([self.names, self.texts, self.children], ensure_ascii=False, separators=(',', ':'))
        return hashlib.sha256(payload.encode()).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return {'format': FORMAT, 'spec': self.spec, 'template': self.template, 'names': list(self.names),
                'texts': list(self.texts), 'children': [list(k) for k in self.children]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ConceptVocabulary:
        if data.get('format') != FORMAT:
            raise DataError(f'Unsupported concept vocabulary format {data.get("format")!r} (expected {FORMAT}).')
        return cls(tuple(data['names']), tuple(data['texts']), tuple(tuple(k) for k in data['children']),
                   spec=data.get('spec', 'custom'), template=data.get('template'))

    def __repr__(self) -> str:
        return f'ConceptVocabulary({self.spec!r}, {len(self)} concepts)'


def synset_text(syn: Any, template: str = DEFAULT_TEMPLATE) -> str:
    """The text of a synset under ``template`` (fields ``name``, ``lemma``, ``lemmas``, ``definition``)."""
    try:
        return template.format(**wordnet.lexical_fields(syn))
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(f'synset text template {template!r} is invalid ({exc}); its fields are {{name}}, '
                          '{lemma}, {lemmas} and {definition}.') from None


def imagenet_wnids() -> list[str]:
    """The 1,000 ImageNet-1k wnids in class order, from timm's bundled class list (read without importing timm)."""
    spec = importlib.util.find_spec('timm')
    path = Path(list(spec.submodule_search_locations)[0]) / 'data' / '_info' / 'imagenet_synsets.txt' if spec else None
    if path is None or not path.is_file():
        raise DataError('timm\'s ImageNet class list (timm/data/_info/imagenet_synsets.txt) was not found; '
                        'install timm>=1.0 (an xzoo dependency).')
    return path.read_text().split()


def _synsets_of(spec: str | Sequence[str], instances: bool) -> list[Any]:
    if isinstance(spec, str):
        if '+' in spec:
            return [s for part in spec.split('+') for s in _synsets_of(part.strip(), instances)]
        if spec == 'nouns':
            return list(wordnet.load_wordnet().all_synsets('n'))
        if spec.startswith('hyponyms:'):
            root = wordnet.synset(spec.split(':', 1)[1])
            return [root, *wordnet.closure(root, instances)]
        if spec == 'imagenet-1k':
            return [wordnet.from_wnid(w) for w in imagenet_wnids()]
        if wordnet.is_synset_name(spec):
            return [wordnet.synset(spec)]
        raise ConfigError(f'Unknown concept vocabulary {shorten(spec)!r}.{did_you_mean(spec, SPECS[:3])} Known: '
                          f'{", ".join(SPECS)}; or a ConceptVocabulary.')
    return [wordnet.synset(str(name)) for name in spec]


def _edges(synsets: list[Any], instances: bool) -> list[list[int]]:
    """Per member, the nearest members below it (direct hyponyms when they are members, else further down)."""
    index = {s.name(): i for i, s in enumerate(synsets)}
    out: list[list[int]] = []
    for s in synsets:
        kids, seen, frontier = [], set(), wordnet.hyponyms(s, instances)
        while frontier:
            nxt = []
            for h in frontier:
                if h.name() in seen:
                    continue
                seen.add(h.name())
                if h.name() in index:
                    kids.append(index[h.name()])
                else:
                    nxt += wordnet.hyponyms(h, instances)
            frontier = nxt
        out.append(kids)
    return out


def wordnet_vocabulary(spec: str | Sequence[str] = 'nouns', template: str = DEFAULT_TEMPLATE,
                       instances: bool = False, cache: bool = True) -> ConceptVocabulary:
    """A vocabulary of WordNet 3.0 synsets (see the module doc for ``spec``), read from the JSON cache when there.

    Args:
        template: the text of each synset (``'{lemmas}: {definition}'``; ``'{lemma}'`` for lemma only).
        instances: follow instance hyponyms too (named entities such as ``'paris.n.01'``); off by default.
        cache: read/write the JSON copy in ``<cache>/concepts/``.
    """
    label = spec if isinstance(spec, str) else 'synsets:' + ','.join(map(str, spec))
    key = hashlib.sha256(json.dumps([label, template, instances, wordnet.VERSION, FORMAT]).encode()).hexdigest()
    path = wordnet.cache_dir() / 'concepts' / f'vocabulary-{key[:24]}.json'
    if cache and path.is_file():
        try:
            data = json.loads(path.read_text())
            if data.get('spec') == label and data.get('template') == template:
                return ConceptVocabulary.from_json(data)
        except (OSError, ValueError, KeyError, ConfigError, DataError):
            pass  # a damaged cache file is rebuilt
    synsets = list({s.name(): s for s in _synsets_of(spec, instances)}.values())
    vocab = ConceptVocabulary(tuple(s.name() for s in synsets), tuple(synset_text(s, template) for s in synsets),
                              tuple(tuple(k) for k in _edges(synsets, instances)), spec=label, template=template)
    if cache:
        write_json(path, vocab.to_json())
    return vocab


def resolve_vocabulary(vocabulary: Any, template: str = DEFAULT_TEMPLATE, instances: bool = False
                       ) -> ConceptVocabulary:
    """A :class:`ConceptVocabulary` from one, a WordNet spec or list of synset names, or ``{name: text}``."""
    if isinstance(vocabulary, ConceptVocabulary):
        return vocabulary
    if isinstance(vocabulary, Mapping):
        return ConceptVocabulary.custom(vocabulary)
    if isinstance(vocabulary, str | Sequence) and not isinstance(vocabulary, bytes):
        return wordnet_vocabulary(vocabulary, template=template, instances=instances)
    raise ConfigError(f'vocabulary must be a ConceptVocabulary, a WordNet spec ({", ".join(SPECS)}) or a dict '
                      f'{{name: text}}, got {type(vocabulary).__name__}.')

