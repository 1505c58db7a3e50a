"""Python entry points behind the command-line tools (train, test, explain, inference)."""
from .config import apply_cfg_options, load_config
from .explain import explain, explain_images
from .inference import build_test_transform, init_model, load_images
from .test import test
from .train import train

__all__ = ['apply_cfg_options', 'build_test_transform', 'explain', 'explain_images', 'init_model', 'load_config',
           'load_images', 'test', 'train']
