"""The registries of scope ``'zoo'``, re-exported from :mod:`registry`.

mmengine imports ``<scope>.registry`` when it switches to a scope (``default_scope = 'zoo'``); this module is
what it finds. Use :mod:`registry` in your own code.
"""
from registry import *  # noqa: F401,F403
from registry import __all__  # noqa: F401
