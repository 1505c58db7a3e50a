"""Random ``--cfg-options`` and random configs: only xzoo's documented errors come out, never a raw traceback.

Each example goes through the real path of ``tools/train.py`` up to the first training step, without a Runner:
``load_config`` (override parsing and key checks) → ``prepare_runtime``/``prepare_training`` (every component's
arguments and value types) → building the model and the training dataset (with the tools' translation of build
errors) → one sample → one loss on a batch of two. Whatever fails must fail with an
:class:`~registry.errors.XZooError` whose message is one line (``tools/*`` print it and exit 2). Numbers are kept
small (|int| <= 100): huge image sizes or sample counts are legitimate requests for a lot of memory, not malformed
input. The examples are derandomized (the same in every CI run); a longer random search is a matter of
``max_examples``.
"""
from __future__ import annotations

import copy
import string
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mmengine.config import Config
from mmengine.dataset import pseudo_collate

from registry import ALL as REGISTRIES
from registry import DATASETS, MODELS
from registry.errors import XZooError
from zoo.apis._runner import component_errors, prepare_runtime, prepare_training
from zoo.apis.config import load_config, parse_value
from zoo.cli import one_line

from .test_bad_input import TINY

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _paths(node: Any, prefix: str = '') -> list[str]:
    out = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, value in items:
        path = f'{prefix}.{key}' if prefix else str(key)
        out.append(path)
        out += _paths(value, path)
    return out


PATHS = _paths(TINY)
WORDS = sorted({p.split('.')[-1] for p in PATHS} | {'type', 'lr', 'num_classes', 'image_size', 'pretrained'})

small_text = st.text(alphabet=string.ascii_letters + string.digits + '_-./', max_size=12)
scalar_text = st.one_of(
    st.integers(-100, 100).map(str), st.floats(-10, 10).map(repr),
    st.sampled_from(['true', 'false', 'None', 'nan', 'inf', '-inf', '', "''", '""']), small_text)
value_text = st.one_of(
    scalar_text,
    st.lists(scalar_text, max_size=3).map(lambda v: '[' + ','.join(v) + ']'),
    st.lists(scalar_text, max_size=3).map(lambda v: '(' + ','.join(v) + ')'),
    st.text(alphabet='[](),\'"= ab1.+', max_size=10))
key_text = st.one_of(
    st.sampled_from(PATHS),
    st.tuples(st.sampled_from(PATHS), st.sampled_from(WORDS)).map(lambda t: f'+{t[0]}.{t[1]}'),
    st.tuples(st.sampled_from(PATHS), st.integers(0, 3)).map(lambda t: f'{t[0]}.{t[1]}'),
    st.text(alphabet=string.ascii_lowercase + '._+0123456789 ', max_size=16))
option = st.one_of(st.tuples(key_text, value_text).map(lambda kv: f'{kv[0]}={kv[1]}'), small_text)


def _leaves(node: Any, prefix: str = '') -> list[tuple[str, Any]]:
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    out = []
    for key, value in items:
        path = f'{prefix}.{key}' if prefix else str(key)
        is_leaf = not isinstance(value, (dict, list)) or (value and all(isinstance(v, (int, float)) for v in value))
        out += [(path, value)] if is_leaf else _leaves(value, path)
    return out


LEAVES = _leaves(TINY)
TYPE_NAMES = sorted({name for reg in REGISTRIES.values() for name in reg.names()})


def _like(value: Any) -> st.SearchStrategy[str]:
    """Override values of the same kind as ``value``, at and beyond the sensible range."""
    number = st.one_of(st.integers(-3, 300).map(str), st.floats(-1, 300).map(repr))
    if isinstance(value, bool):
        return st.sampled_from(['true', 'false', '0', '1'])
    if isinstance(value, int):
        return st.integers(-3, 64).map(str)
    if isinstance(value, float):
        return st.floats(-1, 3).map(repr)
    if isinstance(value, list):
        return st.lists(number, max_size=4).map(lambda v: '[' + ','.join(v) + ']')
    return st.one_of(st.just(str(value)), st.sampled_from(TYPE_NAMES), small_text)


# existing keys with values of the right kind: most of these pass the checks and reach the builders
plausible_option = st.sampled_from(LEAVES).flatmap(lambda pv: _like(pv[1]).map(lambda v: f'{pv[0]}={v}'))

py_value = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-100, 100), st.floats(-10, 10), small_text),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(WORDS), inner, max_size=3)),
    max_leaves=6)


def _exercise(config: Any, options: list[str] | None, work_dir: str) -> None:
    """The tools' path up to the first loss; an XZooError must be one line."""
    try:
        with component_errors():
            cfg = load_config(config, options)
            prepare_runtime(cfg, work_dir, 'fuzz.py', 'none')
            prepare_training(cfg)
            model = MODELS.build(cfg.model)
            dataset = DATASETS.build(cfg.train_dataloader.dataset)
        batch = pseudo_collate([dataset[0], dataset[len(dataset) - 1]])
        with torch.no_grad():
            model.loss(**model.data_preprocessor(batch, True))
    except XZooError as exc:
        text = one_line(exc)
        assert text and '\n' not in text and 'Traceback' not in text, text


@pytest.fixture(scope='module')
def tiny_file(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp('fuzz') / 'tiny.py'
    Config(TINY).dump(str(path))
    return str(path)


@SETTINGS
@given(options=st.lists(st.one_of(plausible_option, plausible_option, option), min_size=1, max_size=3))
def test_random_cfg_options_give_only_documented_errors(options, tiny_file, tmp_path):
    _exercise(tiny_file, options, str(tmp_path))


def _mutate(cfg: dict, path: str, op: str, value: Any) -> dict:
    cfg = copy.deepcopy(cfg)
    *parents, last = path.split('.')
    node: Any = cfg
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    key: Any = int(last) if isinstance(node, list) else last
    if op == 'delete':
        del node[key]
    elif op == 'add' and isinstance(node[key], dict):
        node[key][str(value)[:8] or 'x'] = value
    else:
        node[key] = value
    return cfg


like_value = st.sampled_from(LEAVES).flatmap(lambda pv: _like(pv[1]).map(lambda v: (pv[0], 'set', parse_value(v))))
change = st.one_of(like_value, like_value,
                   st.tuples(st.sampled_from(PATHS), st.sampled_from(['set', 'delete', 'add']), py_value))


@SETTINGS
@given(changes=st.lists(change, min_size=1, max_size=3))
def test_random_configs_give_only_documented_errors(changes, tmp_path):
    cfg = TINY
    for path, op, value in changes:
        try:
            cfg = _mutate(cfg, path, op, value)
        except (KeyError, IndexError, TypeError, ValueError):
            continue  # an earlier change removed or replaced this path
    _exercise(cfg, None, str(tmp_path))


# --- the export loader: crafted config.json and safetensors headers --------------------------------------------------
ATTACK_STRINGS = ['os.system', 'builtins.exec', 'posix.system', 'mmengine.os.getcwd', 'GradCAM', 'LinearClsHead',
                  'TimmBackbone', 'ImageClassifier', 'HFTextEncoder', '/etc/passwd', '../outside', '~/x', 'C:\\x',
                  'hf-hub:evil/x', 'local-dir:/tmp', 'https://example.com/w.bin', 'file:///etc/passwd', '',
                  'test_resnet', 'resnet18', 'x' * 5000, 'gradcam', 'rise', 'backbone.model.layer4', 'NCHW']
SCHEMA_KEYS = ['type', 'model_name', 'pretrained', 'num_classes', 'in_channels', 'init_cfg', 'checkpoint_path',
               'pretrained_cfg_overlay', 'cache_dir', '_scope_', 'text_branch', 'alignment_heads', 'loss',
               'features_only', 'mean', 'std', 'input_size', 'pipeline', 'size', 'method', 'kwargs', 'target_layer',
               'n_masks', 'batch_size', 'class_names', 'format_version', 'architecture', 'dropout', 'command']
json_scalar = st.one_of(
    st.none(), st.booleans(), st.sampled_from([0, 1, -1, 2, 3, 4, 32, 224, 8193, 10 ** 6, 10 ** 6 + 1, 10 ** 12]),
    st.integers(-10, 300), st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(ATTACK_STRINGS),
    small_text)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(SCHEMA_KEYS), inner,
                                                                         max_size=4)),
    max_leaves=8)
component_value = st.fixed_dictionaries({'type': st.sampled_from(ATTACK_STRINGS)},
                                        optional={k: json_scalar for k in SCHEMA_KEYS[1:10]})


def _json_paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, value in items:
        out += _json_paths(value, (*prefix, key))
    return out


def _edit(config: dict, path: tuple, op: str, value: Any) -> None:
    node: Any = config
    for key in path[:-1]:
        node = node[key]
    last = path[-1]
    if op == 'delete':
        del node[last]
    elif op == 'add' and isinstance(node[last], dict):
        node[last][str(value)[:12] if not isinstance(value, str) else value[:40] or 'k'] = value
    elif op == 'nest':
        for _ in range(40):
            value = {'a': value} if isinstance(value, dict) else [value]
        node[last] = value
    else:
        node[last] = value


@pytest.fixture(scope='module')
def export_dir(tmp_path_factory) -> Path:
    model = MODELS.build(dict(type='ImageClassifier', class_names=['a', 'b', 'c', 'd'],
                              backbone=dict(type='TimmBackbone', model_name='test_resnet'),
                              head=dict(type='LinearClsHead', num_classes=4)))
    folder = tmp_path_factory.mktemp('fuzz-export') / 'clean'
    model.save_pretrained(folder)
    return folder


def _header_edit(data: bytes, edit: tuple[str, str, Any]) -> bytes:
    """Change one field of one tensor's entry in a safetensors header (the tensor bytes are kept)."""
    import json
    import struct

    (length,) = struct.unpack('<Q', data[:8])
    header = json.loads(data[8:8 + length])
    names = sorted(k for k in header if k != '__metadata__')
    key, field, value = edit
    name = names[hash(key) % len(names)]
    if field == 'drop':
        header.pop(name)
    else:
        header[name][field] = value
    raw = json.dumps(header).encode()
    return struct.pack('<Q', len(raw)) + raw + data[8 + length:]


config_change = st.tuples(st.integers(0, 10 ** 6), st.sampled_from(['set', 'set', 'delete', 'add', 'nest']),
                          st.one_of(json_value, component_value))
header_change = st.tuples(st.text(max_size=4), st.sampled_from(['dtype', 'shape', 'data_offsets', 'drop']),
                          st.one_of(st.sampled_from(['F16', 'I8', 'BOOL', 'F8_E4M3', 'U8', 'F64', 'X']),
                                    st.lists(st.integers(-1, 10 ** 7), max_size=3), json_scalar))


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(changes=st.lists(config_change, min_size=1, max_size=3), header=st.none() | header_change)
def test_crafted_exports_give_only_xzoo_errors(changes, header, export_dir, tmp_path_factory):
    """Random structure-aware edits of a valid export: loading it (and, when it loads, classifying and explaining
    with its own defaults) raises nothing but :class:`~registry.errors.XZooError`, in one line."""
    import json
    import shutil

    from zoo.models.serialization import load_model

    folder = Path(shutil.copytree(export_dir, tmp_path_factory.mktemp('fuzz') / 'export'))
    config = json.loads((folder / 'config.json').read_text())
    for index, op, value in changes:
        paths = _json_paths(config)
        try:
            _edit(config, paths[index % len(paths)], op, value)
        except (KeyError, IndexError, TypeError):
            continue
    (folder / 'config.json').write_text(json.dumps(config))
    if header is not None:
        weights = folder / 'model.safetensors'
        weights.write_bytes(_header_edit(weights.read_bytes(), header))
    try:
        model = load_model(folder)
        model.classify(torch.rand(1, 3, 32, 32))
        model.explain(torch.rand(1, 3, 32, 32))
    except XZooError as exc:
        text = one_line(exc)
        assert text == str(exc) and len(text) < 2500, text[:300]
