"""Runner extensions: hooks (``HOOKS``), loops (``LOOPS``), schedulers (``PARAM_SCHEDULERS``) and the trusted
local checkpoint loader. Importing this package registers them."""
from .checkpoint import register_trusted_local_loader
from .hooks import ClassNamesHook

register_trusted_local_loader()

__all__ = ['ClassNamesHook', 'register_trusted_local_loader']
