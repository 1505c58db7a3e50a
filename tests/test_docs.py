"""The documentation's code examples run as written."""
from __future__ import annotations

import re
import subprocess
import sys

from .conftest import ROOT


def _python_blocks(path):
    return re.findall(r'```python\n(.*?)```', path.read_text(), flags=re.S)


def test_adding_components_examples_run():
    code = '\n'.join(_python_blocks(ROOT / 'docs' / 'adding_components.md'))
    assert 'register_module' in code
    out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True,
                         env={'PYTHONPATH': str(ROOT), 'HF_HUB_OFFLINE': '1', 'PATH': '/usr/bin:/bin'})
    assert out.returncode == 0, out.stderr[-2000:]
