"""Runner extensions (hooks, loops, schedulers); registered in ``HOOKS``/``LOOPS``/``PARAM_SCHEDULERS``."""
