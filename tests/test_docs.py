"""The documentation's code examples run as written."""
from __future__ import annotations

import re
import subprocess
import sys

from .conftest import ROOT, load_tool


def _python_blocks(path):
    return re.findall(r'```python\n(.*?)```', path.read_text(), flags=re.S)


def test_adding_components_examples_run():
    code = '\n'.join(_python_blocks(ROOT / 'docs' / 'adding_components.md'))
    assert 'register_module' in code
    out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True,
                         env={'PYTHONPATH': str(ROOT), 'HF_HUB_OFFLINE': '1', 'PATH': '/usr/bin:/bin'})
    assert out.returncode == 0, out.stderr[-2000:]


def test_readme_tool_commands_parse():
    """Every ``python tools/X.py ...`` line of the README uses options the tool really has."""
    import shlex

    text = (ROOT / 'README.md').read_text().replace('\\\n', ' ')
    commands = re.findall(r'^(?:torchrun [^\n]*?)?python tools/(\w+)\.py([^\n#]*)', text, flags=re.M)
    commands += re.findall(r'^torchrun [^\n]*? tools/(\w+)\.py([^\n#]*)', text, flags=re.M)
    assert {name for name, _ in commands} >= {'train', 'test', 'explain', 'push_to_hub', 'list_models'}
    for name, args in commands:
        tool = load_tool(name)
        if hasattr(tool, 'parse_args'):
            tool.parse_args(shlex.split(args))  # argparse exits (test fails) on an unknown option
