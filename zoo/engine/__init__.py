"""Runner extensions (hooks, loops, schedulers); registered in ``HOOKS``/``LOOPS``/``PARAM_SCHEDULERS``."""
from .schedulers import FixMatchCosineLR

__all__ = ['FixMatchCosineLR']
