"""Discovery of third-party components through the ``xzoo.plugins`` entry-point group.

A package makes its components usable by name in configs, with no import in the config, by declaring::

    [project.entry-points."xzoo.plugins"]
    my_plugin = "my_package.components"      # a module whose import registers components

The group is loaded once, on the first lookup in any xzoo registry.
"""
from __future__ import annotations

import importlib.metadata
import threading
import warnings

ENTRY_POINT_GROUP = 'xzoo.plugins'

_lock = threading.RLock()
_loaded = False
_loading = False
LOADED: dict[str, str] = {}   # entry-point name -> value, for messages
FAILED: dict[str, str] = {}   # entry-point name -> one-line reason


def load_plugins(force: bool = False) -> dict[str, str]:
    """Import every module declared in the ``xzoo.plugins`` entry-point group (once).

    A plugin that fails to import is reported with a warning and recorded in ``FAILED`` (the registry's
    "not registered" error names it), so one broken plugin does not break the rest.

    Example:
        >>> from registry import load_plugins
        >>> isinstance(load_plugins(), dict)
        True
    """
    global _loaded, _loading
    with _lock:
        if (_loaded and not force) or _loading:
            return dict(LOADED)
        _loading = True
        try:
            for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
                if ep.name in LOADED and not force:
                    continue
                try:
                    ep.load()
                except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the registry
                    FAILED[ep.name] = f'{ep.value}: {type(exc).__name__}: {exc}'
                    warnings.warn(f"xzoo plugin '{ep.name}' ({ep.value}) failed to import: "
                                  f'{type(exc).__name__}: {exc}', RuntimeWarning, stacklevel=2)
                else:
                    LOADED[ep.name] = ep.value
                    FAILED.pop(ep.name, None)
            _loaded = True
        finally:
            _loading = False
    return dict(LOADED)
