"""Caps for what comes from untrusted places (exports, Hub repos, index files, CLI flags), checked before anything
is allocated, and the file names and format of an export. Standard library only.

Example:
    >>> import json, os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), 'deep.json')
    >>> _ = open(path, 'w').write('[' * 100 + ']' * 100)
    >>> try:
    ...     read_json(path, 'test')
    ... except Exception as exc:
    ...     print(type(exc).__name__, exc)
    SecurityError test: JSON nested 100 levels deep; at most 32 are accepted.
"""
from __future__ import annotations

import json
import os
from typing import Any

from registry.errors import ConfigError, SecurityError

CONFIG_NAME = 'config.json'
WEIGHTS_NAME = 'model.safetensors'
FORMAT = 'xzoo-classifier'
FORMAT_VERSION = 1

MAX_JSON_BYTES = 16 << 20
"""A config.json or index file larger than this is refused unread (real ones are a few kB)."""
MAX_JSON_DEPTH = 32
MAX_CLASSES = 100_000
MAX_INT_ARG = 1_000_000
"""Any integer of an untrusted ``model_args`` (widths, counts): a larger one is refused before building."""
MAX_IMAGE_SIDE = 8192
"""Input sizes and pipeline resize/crop sizes of untrusted preprocessing, and ``--size`` of the tools."""
MAX_PARAMS = 4_000_000_000
"""Parameters of a model built from an untrusted config without a weights file to compare against."""
MAX_STRING = 4096
MAX_EXPLAINER_INT = 65_536
"""Any integer of an untrusted ``explainer.kwargs`` (RISE's ``n_masks`` …): explaining must not become a DoS."""
MAX_BATCH = 1024
"""``batch_size`` of an untrusted ``explainer.kwargs`` and of the tools' ``--batch-size``."""
MAX_KEY_PARTS = 64
"""Dotted parts of one ``--cfg-options`` key (real keys have fewer than 10)."""


def json_depth(obj: Any) -> int:
    """Nesting depth of a parsed JSON value (iterative: never recurses)."""
    depth, stack = 0, [(obj, 1)]
    while stack:
        node, d = stack.pop()
        if isinstance(node, (dict, list)):
            depth = max(depth, d)
            stack.extend((v, d + 1) for v in (node.values() if isinstance(node, dict) else node))
    return depth


def parse_json(text: str | bytes, source: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON from an untrusted source with a depth cap; errors are one line naming ``source``."""
    try:
        data = json.loads(text)
    except RecursionError:
        raise SecurityError(f'{source}: JSON nested too deeply to parse; at most {max_depth} levels are '
                            'accepted.') from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f'{source} is not valid JSON ({str(exc)[:120]}); it may be truncated: download or export '
                          'it again.') from None
    depth = json_depth(data)
    if depth > max_depth:
        raise SecurityError(f'{source}: JSON nested {depth} levels deep; at most {max_depth} are accepted.')
    return data


def read_json(path: str | os.PathLike, source: str | None = None, max_bytes: int = MAX_JSON_BYTES,
              max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Read an untrusted JSON file with size and depth caps (checked before and while parsing)."""
    path = os.fspath(path)
    source = source or repr(path)
    try:
        size = os.path.getsize(path)
        if size > max_bytes:
            raise SecurityError(f'{source} is {size} bytes; at most {max_bytes} are read (a real one is a few kB).')
        with open(path, 'rb') as fh:
            data = fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise ConfigError(f'{source} does not exist.') from None
    except IsADirectoryError:
        raise ConfigError(f'{source} is a folder, not a JSON file.') from None
    except OSError as exc:
        raise ConfigError(f'Cannot read {source}: {exc.strerror or exc}.') from None
    return parse_json(data, source, max_depth)
