"""The layering of docs/architecture.md, enforced by parsing imports; and what `import zoo` / `zoo.load` pull in."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

LOWER = ('core', 'ops', 'stats', 'concepts', 'models', 'explainers', 'metrics', 'datasets', 'engine', 'viz')
UPPER = ('zoo.apis', 'zoo.hub', 'tools')


def _modules(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob('*.py') if '__pycache__' not in p.parts)


def _package(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix('')
    parts = list(rel.parts)
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts[:-1])


def imports_of(path: Path) -> list[tuple[str, bool]]:
    """``(absolute module, inside a function)`` for every import of a file (relative imports resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _package(path)
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((alias.name, in_function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split('.')[:len(package.split('.')) - child.level + 1]
                    module = '.'.join(base + ([child.module] if child.module else []))
                else:
                    module = child.module or ''
                found.append((module, in_function))
                found.extend((f'{module}.{alias.name}', in_function) for alias in child.names)
            visit(child, nested)

    visit(tree, False)
    return found


def _violations(files: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    out = []
    for path in files:
        for module, _ in imports_of(path):
            if module == '__future__' or module.startswith('__future__.'):
                continue
            if any(module == f or module.startswith(f + '.') for f in forbidden):
                out.append(f'{path.relative_to(ROOT)} imports {module}')
    return out


def test_lower_layers_never_import_apis_hub_or_tools():
    files = [p for sub in LOWER for p in _modules(ROOT / 'zoo' / sub)]
    files += [ROOT / 'zoo' / name for name in ('structures.py', 'validation.py', 'registry.py', 'cli.py')]
    assert len(files) > 40
    assert _violations(files, UPPER) == []


def test_registry_imports_nothing_from_zoo():
    assert _violations(_modules(ROOT / 'registry'), ('zoo',)) == []


def test_ground_floor_is_standard_library_only():
    """zoo/core and registry/errors import no torch, mmengine, numpy — and registry/errors nothing of xzoo."""
    heavy = ('torch', 'mmengine', 'numpy', 'timm', 'open_clip', 'huggingface_hub', 'safetensors',
             'registry._registries')
    files = _modules(ROOT / 'zoo' / 'core') + [ROOT / 'registry' / 'errors.py']
    assert _violations(files, heavy) == []
    allowed = {'registry.errors', 'zoo.core'}
    for path in files:
        for module, _ in imports_of(path):
            top = module.split('.')[0]
            if top in ('registry', 'zoo'):
                assert any(module == a or module.startswith(a + '.') for a in allowed), (path, module)


def test_ops_concepts_and_explainers_never_import_models():
    files = [p for d in ('ops', 'concepts', 'explainers') for p in _modules(ROOT / 'zoo' / d)]
    assert _violations(files, ('zoo.models',)) == []


def test_load_path_is_independent_of_the_export_path():
    load_path = [ROOT / 'zoo' / 'hub' / n for n in ('api.py', 'index.py', 'remote.py')]
    load_path += [ROOT / 'zoo' / 'models' / n for n in ('serialization.py', 'weights.py', 'contract.py')]
    forbidden = ('zoo.hub.export', 'zoo.hub.publish', 'zoo.hub.card', 'zoo.hub.recipes', 'zoo.apis.training',
                 'zoo.apis.testing', 'zoo.apis.demo')
    assert _violations(load_path, forbidden) == []


def test_no_function_level_import_only_to_reach_an_error_class():
    """Errors import from the ground floor at the top of a module; none is imported late to dodge mmengine."""
    late = []
    for path in _modules(ROOT / 'zoo') + _modules(ROOT / 'registry') + _modules(ROOT / 'tools'):
        for module, in_function in imports_of(path):
            if in_function and module.startswith('registry.errors'):
                late.append(f'{path.relative_to(ROOT)}: {module}')
    assert late == []


def _python(code: str) -> dict:
    out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={'PYTHONPATH': str(ROOT), 'HF_HUB_OFFLINE': '1', 'PATH': '/usr/bin:/bin'})
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_zoo_and_list_models_need_no_torch_or_mmengine():
    seen = _python('import sys, json, zoo\nnames = zoo.list_models()\n'
                   'import registry.errors\n'
                   'print(json.dumps({"n": len(names), "mods": [m for m in ("torch", "mmengine", "numpy") '
                   'if m in sys.modules]}))')
    assert seen['n'] >= 4 and seen['mods'] == []


@pytest.fixture(scope='module')
def tiny_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from registry import MODELS

    torch.manual_seed(0)
    model = MODELS.build(dict(type='ImageClassifier', class_names=['a', 'b'],
                              backbone=dict(type='TimmBackbone', model_name='test_resnet'),
                              head=dict(type='LinearClsHead', num_classes=2)))
    folder = tmp_path_factory.mktemp('export')
    model.save_pretrained(folder)
    return folder


def test_load_does_not_import_training_or_testing(tiny_export: Path):
    seen = _python('import sys, json, zoo\nzoo.load\n'
                   f'model = zoo.load("local-dir:{tiny_export}")\n'
                   'print(json.dumps([m for m in ("zoo.apis.training", "zoo.apis.testing", "zoo.hub.export", '
                   '"zoo.apis.demo", "mmengine.runner") if m in sys.modules]))')
    assert seen == []


def test_init_model_and_load_give_the_same_contract(tiny_export: Path):
    import zoo
    from zoo.models import ZooModel

    model = zoo.load(f'local-dir:{tiny_export}')
    assert isinstance(model, ZooModel)
    for attribute in ('preprocessing', 'test_transform', 'explain', 'classify', 'build_config', 'class_names',
                      'explainer_defaults', 'inference_state_dict', 'save_pretrained', 'pretrained_cfg'):
        assert hasattr(type(model), attribute), attribute  # declared by the class, never patched on
    assert set(vars(model)) & {'test_transform', 'explain', 'cfg', 'zoo_config', 'input_size'} == set()
