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
