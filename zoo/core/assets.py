"""What a component reads from outside its config when it is built: its *external assets*, declared as data.

A component class declares them with a classmethod that receives its arguments (its config with the constructor's
defaults filled in) and returns a list of assets::

    @classmethod
    def required_assets(cls, args: dict) -> list[Asset]:
        if args['pretrained'] is True:
            return [HubFiles(what=f"ImageNet weights of timm {args['model_name']!r}", arg='pretrained',
                             repo_id='timm/resnet50.a1_in1k', files=(('model.safetensors', 'pytorch_model.bin'),),
                             instead=('False (random init)',))]
        return []

``zoo.apis.preflight`` walks a config (the component slots of ``zoo.validation``), collects these declarations,
checks them against the disk and the Hugging Face cache before anything is built, and names every missing one
with its fix in one message; ``tools/prepare_data.py --recipe CONFIG`` fetches those that can be fetched.

The kinds:

- :class:`HubFiles`: files of a Hugging Face Hub repo, read through huggingface_hub's cache (timm, open_clip and
  transformers weights); in each group of ``files`` one file is enough (``model.safetensors`` or the pickle);
- :class:`UrlFile`: a file a library downloads from a URL into its own cache folder;
- :class:`LocalPath`: a local file or folder (a dataset root, a weights file), with the entries it must hold;
- :class:`Package`: an importable Python package (an optional dependency, or one that ships data).

Every asset says how a person gets it (``page``, ``terms``, ``layout``, ``maker``) and which values of its
argument do without it (``instead``). This module is standard library only: declaring an asset imports nothing,
and :meth:`LocalPath.problem` / :meth:`Package.problem` check without importing anything either.

Example:
    >>> folder = LocalPath(what='CUB200', arg='data_root', paths=('/no/such/CUB_200_2011',),
    ...                    expect=(('images.txt',), ('classes.txt',)))
    >>> folder.problem()
    "CUB200: data_root '/no/such/CUB_200_2011' does not exist"
    >>> Package(what='Hugging Face text encoders', module='json').problem() is None
    True
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field

from registry.errors import ResourceError


@dataclass(frozen=True, kw_only=True)
class Asset:
    """One thing a component reads from outside its config.

    Attributes:
        what: what it is, for people (``"ImageNet weights of timm 'resnet50'"``, ``'CUB200'``).
        arg: the component's argument that asks for it (``'pretrained'``, ``'data_root'``); the preflight turns it
            into the config key (``model.backbone.pretrained``). Empty: the component itself.
        instead: values of ``arg`` that do without the asset, each followed by what it means in brackets
            (``'False (random init)'``, ``'PATH (a local checkpoint file)'``).
        page: where a person downloads it by hand; terms: the licence or terms of use accepted there; layout: what
            the downloaded folder must look like.
        maker: the name of a maker in ``zoo.apis.assets.MAKERS`` that produces it (``tools/prepare_data.py``).
    """

    what: str
    arg: str = ''
    instead: tuple[str, ...] = ()
    page: str = ''
    terms: str = ''
    layout: str = ''
    maker: str = ''

    @property
    def kind(self) -> str:
        return type(self).__name__

    def identity(self) -> tuple:
        """Two declarations with the same identity are the same asset (asked for by several config keys)."""
        return (self.kind, self.what)

    def label(self) -> str:
        """What it is and where it lives, in one phrase."""
        return self.what


@dataclass(frozen=True, kw_only=True)
class HubFiles(Asset):
    """Files of a Hugging Face Hub repo, read through huggingface_hub's cache (``HF_HUB_CACHE``).

    ``files``: groups of file names; every group is needed and any one file of a group is enough (a library
    that takes ``model.safetensors`` or, failing that, ``pytorch_model.bin`` lists both, in its order of
    preference). ``patterns``: further files a prefetch gets too (tokenizer files), not checked.
    """

    repo_id: str = ''
    files: tuple[tuple[str, ...], ...] = ()
    revision: str | None = None
    repo_type: str = 'model'
    patterns: tuple[str, ...] = ()

    def identity(self) -> tuple:
        return (self.kind, self.repo_id, self.revision, self.repo_type, self.files)

    def label(self) -> str:
        files = '; '.join(' or '.join(group) for group in self.files)
        rev = f'@{self.revision}' if self.revision else ''
        return f'{self.what} (Hub repo {self.repo_id}{rev}: {files})'


@dataclass(frozen=True, kw_only=True)
class UrlFile(Asset):
    """A file a library downloads from ``url`` into its own cache, at ``path``."""

    url: str = ''
    path: str = ''

    def identity(self) -> tuple:
        return (self.kind, self.url, self.path)

    def label(self) -> str:
        return f'{self.what} ({self.url})'

    def problem(self) -> str | None:
        return None if os.path.isfile(self.path) else f'{self.label()} is not in {self.path}'


@dataclass(frozen=True, kw_only=True)
class LocalPath(Asset):
    """A local file (``file=True``) or folder.

    ``paths``: where it may be, in the order the component looks (one path when the config names it; a search
    path otherwise); the first that holds everything is used. ``expect``: entries a folder must hold, as groups of
    alternatives (``('t10k-images-idx3-ubyte.gz', 't10k-images-idx3-ubyte')``).
    """

    paths: tuple[str, ...] = ()
    expect: tuple[tuple[str, ...], ...] = ()
    file: bool = False

    def identity(self) -> tuple:
        return (self.kind, tuple(os.path.abspath(os.path.expanduser(p)) for p in self.paths), self.expect, self.file)

    def label(self) -> str:
        return f'{self.what} {self.paths[0]!r}' if len(self.paths) == 1 else self.what

    def _missing(self, path: str) -> list[str]:
        return [' or '.join(group) for group in self.expect
                if not any(os.path.exists(os.path.join(path, name)) for name in group)]

    def locate(self) -> str | None:
        """The first of ``paths`` that is usable, or ``None``."""
        for raw in self.paths:
            path = os.path.expanduser(raw)
            if self.file and os.path.isfile(path):
                return path
            if not self.file and os.path.isdir(path) and not self._missing(path):
                return path
        return None

    def problem(self) -> str | None:
        """Why it is not usable, in one phrase (``None``: it is)."""
        if self.locate() is not None:
            return None
        where = f'{self.what}: {self.arg} ' if self.arg else f'{self.what}: '
        if len(self.paths) != 1:
            return f'{self.what}: not found (looked in {", ".join(map(repr, self.paths))})'
        raw = self.paths[0]
        path = os.path.expanduser(raw)
        shown = repr(raw) + ('' if not raw or os.path.isabs(path) else f' (relative to {os.getcwd()})')
        if not raw or not os.path.exists(path):
            return f'{where}{shown} does not exist'
        if self.file:
            return f'{where}{shown} is a folder, not a file'
        if not os.path.isdir(path):
            return f'{where}{shown} is a file, not a folder'
        return f'{where}{shown} is missing {", ".join(self._missing(path))}'


@dataclass(frozen=True, kw_only=True)
class Package(Asset):
    """An importable Python package (``module``), installed with ``install`` (``'pip install xzoo[text]'``)."""

    module: str = ''
    install: str = ''

    def identity(self) -> tuple:
        return (self.kind, self.module)

    def label(self) -> str:
        return f'{self.what} (Python package {self.module!r})'

    def problem(self) -> str | None:
        try:
            found = importlib.util.find_spec(self.module) is not None
        except (ImportError, ValueError):
            found = False
        return None if found else f'{self.label()} is not installed'


WORDNET_FILES = (('data.noun',), ('index.noun',), ('index.sense',))


def wordnet(arg: str = '', folder: str | None = None) -> LocalPath:
    """WordNet 3.0's database files (what ImageNet's synset ids refer to): ``folder`` if given, else
    ``$WNHOME/dict``, ``$WNHOME``, Debian's ``/usr/share/wordnet`` (packages ``wordnet-base`` and
    ``wordnet-sense-index``) and NLTK's ``corpora/wordnet`` folders.

    Example:
        >>> wordnet(folder='/nowhere').problem()
        "WordNet 3.0: '/nowhere' does not exist"
    """
    if folder:
        paths: tuple[str, ...] = (folder,)
    else:
        home = os.environ.get('WNHOME')
        nltk = [os.path.join(p, 'corpora', 'wordnet') for p in
                filter(None, [*os.environ.get('NLTK_DATA', '').split(os.pathsep), '~/nltk_data',
                              '/usr/share/nltk_data', '/usr/local/share/nltk_data'])]
        paths = tuple(filter(None, [home and os.path.join(home, 'dict'), home, '/usr/share/wordnet', *nltk]))
    return LocalPath(what='WordNet 3.0', arg=arg, paths=paths, expect=WORDNET_FILES,
                     page='https://wordnet.princeton.edu/download/current-version',
                     terms='WordNet 3.0 license (free for any use, with the copyright notice)',
                     layout='Debian: apt-get install wordnet-base wordnet-sense-index (/usr/share/wordnet); or a '
                            "folder holding WordNet 3.0's dict files (data.noun, index.noun, index.sense, ...) "
                            'named by $WNHOME')


@dataclass
class Need:
    """An asset as a config needs it: the config ``keys`` that ask for it, the config files (``sources``), and
    after a check where it was found (``location``) or why it is not usable (``problem``)."""

    asset: Asset
    keys: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    location: str | None = None
    problem: str | None = None
    fetchable: bool = False


class MissingAssetsError(ResourceError):
    """Assets a run needs are not on this machine. ``needs`` are the missing ones; the message lists each with its
    fix, on one line when there is one and one block per asset otherwise (``multiline``)."""

    def __init__(self, message: str, needs: list[Need]) -> None:
        super().__init__(message)
        self.needs = needs
        self.multiline = '\n' in message
