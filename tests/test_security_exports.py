"""The malicious-export corpus: crafted exports, each served from ``local-dir:`` and from the loopback Hub.

Every export is refused with a one-line xzoo error; no payload runs (a marker file is never created); the loopback
Hub (TEST DOUBLE, tests/fakehub.py) records no request beyond the export's own ``config.json`` and
``model.safetensors`` — and none at all for a ``local-dir:`` load. What each loader guarantees is in
docs/security.md.
"""
from __future__ import annotations

import json
import os
import shutil
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

import zoo
from registry.errors import CheckpointError, SecurityError, XZooError
from tests.hub_fixtures import fake_hub as _fake_hub  # noqa: F401

HUB_FILES = frozenset({'config.json', 'model.safetensors'})
CLASSES = ['a', 'b', 'c', 'd']


@pytest.fixture
def fake_hub(_fake_hub, monkeypatch):  # noqa: F811
    """The loopback Hub, with huggingface_hub's own once-a-day ``GET /api/agent-harnesses`` (its agent-detection
    registry, written to HF_HOME) answered from memory: the requests left are the ones xzoo's loading makes."""
    from huggingface_hub.utils import _detect_agent

    monkeypatch.setattr(_detect_agent, '_registry', {'standardEnvVars': [], 'harnesses': {}}, raising=False)
    return _fake_hub


@pytest.fixture(scope='module')
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid export of a tiny classifier (random weights)."""
    from registry import MODELS

    model = MODELS.build(dict(type='ImageClassifier', class_names=CLASSES,
                              backbone=dict(type='TimmBackbone', model_name='test_resnet'),
                              head=dict(type='LinearClsHead', num_classes=4)))
    folder = tmp_path_factory.mktemp('clean') / 'export'
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope='module')
def outside(tmp_path_factory: pytest.TempPathFactory, clean: Path) -> Path:
    """Files outside any export that a crafted config tries to reach: weights, a pickle, a model folder."""
    root = tmp_path_factory.mktemp('outside')
    shutil.copy(clean / 'model.safetensors', root / 'evil.safetensors')
    torch.save({'x': torch.zeros(1)}, root / 'evil.pth')
    shutil.copytree(clean, root / 'other_model')
    return root


class _Payload:
    """Unpickling this creates the marker file: proof of code execution."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, 'w'))


Ctx = dict[str, Any]  # folder, marker, outside


def cfg(edit: Callable[[dict, Ctx], None]) -> Callable[[Ctx], None]:
    """A corpus entry that edits config.json."""
    def apply(ctx: Ctx) -> None:
        path = ctx['folder'] / 'config.json'
        config = json.loads(path.read_text())
        edit(config, ctx)
        path.write_text(json.dumps(config))
    return apply


def touch(ctx: Ctx) -> str:
    return f'touch {ctx["marker"]}'


def _backbone(**kw: Any) -> Callable[[Ctx], None]:
    return cfg(lambda c, x: c['model_args']['backbone'].update({k: v(x) if callable(v) else v for k, v in kw.items()}))


def _raw(text: Callable[[Ctx], str | bytes]) -> Callable[[Ctx], None]:
    def apply(ctx: Ctx) -> None:
        data = text(ctx)
        (ctx['folder'] / 'config.json').write_bytes(data if isinstance(data, bytes) else data.encode())
    return apply


def _weights(edit: Callable[[dict[str, torch.Tensor]], None]) -> Callable[[Ctx], None]:
    def apply(ctx: Ctx) -> None:
        path = ctx['folder'] / 'model.safetensors'
        state = load_file(path)
        edit(state)
        save_file(state, path)
    return apply


def _header_bomb(ctx: Ctx) -> None:
    """A safetensors header claiming a 400 GB tensor the file does not hold."""
    header = json.dumps({'head.fc.weight': {'dtype': 'F32', 'shape': [100_000, 1_000_000],
                                            'data_offsets': [0, 400_000_000_000]}}).encode()
    (ctx['folder'] / 'model.safetensors').write_bytes(struct.pack('<Q', len(header)) + header + b'\0' * 64)


def _pickle_only(ctx: Ctx) -> None:
    (ctx['folder'] / 'model.safetensors').unlink()
    torch.save({'state_dict': _Payload(str(ctx['marker']))}, ctx['folder'] / 'pytorch_model.bin')


def _symlink_out(ctx: Ctx) -> None:
    (ctx['folder'] / 'model.safetensors').unlink()
    os.symlink(ctx['outside'] / 'evil.safetensors', ctx['folder'] / 'model.safetensors')


def _huge_head(c: dict, _: Ctx) -> None:
    c['model_args']['head'].update(num_classes=100_000, in_channels=1_000_000)
    c.update(num_classes=100_000, class_names=None)


def _nested(depth: int) -> str:
    return '{"format": "xzoo-classifier", "x": ' + '{"a": ' * depth + '1' + '}' * depth + '}'


# (id, damage, error class, fragment of the message, served from the Hub too)
CORPUS: list[tuple[str, Callable[[Ctx], None], type[XZooError], str, bool]] = [
    # --- dotted paths wherever a string names a component ---
    ('architecture-dotted', cfg(lambda c, x: c.update(architecture='os.system')), SecurityError,
     "architecture 'os.system' is not the name of a registered", True),
    ('architecture-builtins-exec', cfg(lambda c, x: c.update(architecture='builtins.exec')), SecurityError,
     'never a module path', True),
    ('backbone-type-dotted', cfg(lambda c, x: c['model_args'].update(backbone={'type': 'os.system',
                                                                               'command': touch(x)})),
     SecurityError, "backbone.type = 'os.system' is not the name of a registered", True),
    ('head-type-dotted', cfg(lambda c, x: c['model_args']['head'].update(type='subprocess.getoutput', cmd=touch(x))),
     SecurityError, "head.type = 'subprocess.getoutput'", True),
    ('loss-type-dotted', cfg(lambda c, x: c['model_args']['head'].update(loss={'type': 'builtins.exec',
                                                                              'source': touch(x)})),
     SecurityError, "loss.type = 'builtins.exec'", True),
    ('preprocessor-type-dotted', cfg(lambda c, x: c['model_args'].update(data_preprocessor={'type': 'posix.system'})),
     SecurityError, "data_preprocessor.type = 'posix.system'", True),
    ('explainer-method-dotted', cfg(lambda c, x: c['explainer'].update(method='os.system',
                                                                       kwargs={'command': touch(x)})),
     SecurityError, "explainer.method: No explainer 'os.system'", True),
    ('explainer-kwargs-not-an-argument', cfg(lambda c, x: c['explainer'].update(kwargs={'command': touch(x)})),
     SecurityError, 'explainer.kwargs.command is not an argument of GradCAM', True),
    ('pipeline-type-dotted', cfg(lambda c, x: c['preprocessing'].update(
        pipeline=[{'type': 'torchvision.transforms.v2.functional'}])), SecurityError,
     "pipeline[0].type = 'torchvision.transforms.v2.functional'", True),
    ('component-in-a-plain-argument', _backbone(act_layer=lambda x: {'type': 'os.system', 'command': touch(x)}),
     SecurityError, 'names a component', True),
    # --- external files and Hub names wherever a value could load a file ---
    ('pretrained-true', _backbone(pretrained=True), SecurityError, 'pretrained = True', True),
    ('pretrained-path', _backbone(pretrained=lambda x: str(x['outside'] / 'evil.safetensors')), SecurityError,
     'must set pretrained to false', True),
    ('model-name-hf-hub', _backbone(model_name='hf-hub:evil/weights'), SecurityError, 'would fetch files', True),
    ('model-name-local-dir', _backbone(model_name=lambda x: f'local-dir:{x["outside"] / "other_model"}'),
     SecurityError, 'would fetch files', True),
    ('model-name-path', _backbone(model_name='../../other_model'), SecurityError, 'looks like a file path', True),
    ('checkpoint-path', _backbone(checkpoint_path=lambda x: str(x['outside'] / 'evil.pth')), SecurityError,
     'checkpoint_path is set', True),
    ('pretrained-cfg-overlay', _backbone(pretrained_cfg_overlay=lambda x: {'file': str(x['outside'] / 'evil.pth')}),
     SecurityError, 'pretrained_cfg_overlay is set', True),
    ('cache-dir', _backbone(cache_dir=lambda x: str(x['outside'])), SecurityError, 'cache_dir is set', True),
    ('init-cfg', cfg(lambda c, x: c['model_args'].update(init_cfg={'type': 'Pretrained',
                                                                   'checkpoint': str(x['outside'] / 'evil.pth')})),
     SecurityError, 'init_cfg is set', True),
    ('text-branch', cfg(lambda c, x: c['model_args'].update(text_branch={
        'type': 'LICOTextBranch', 'num_classes': 4,
        'encoder': {'type': 'HFTextEncoder', 'model_name': 'sentence-transformers/all-MiniLM-L6-v2'},
        'prompt': {'type': 'SharedPromptLearner', 'width': 384, 'num_classes': 4}})),
     SecurityError, 'text_branch is a training-only part', True),
    ('alignment-heads', cfg(lambda c, x: c['model_args'].update(alignment_heads=[{'type': 'OTAlignmentHead'}])),
     SecurityError, 'alignment_heads is a training-only part', True),
    ('weights-symlink-outside', _symlink_out, SecurityError, 'outside the model folder', False),
    ('pickle-payload-only', _pickle_only, CheckpointError, 'refused', True),
    ('weights-nan', _weights(lambda s: s['head.fc.weight'].fill_(float('nan'))), CheckpointError, 'NaN or Inf', True),
    ('weights-int8', _weights(lambda s: s.update({'head.fc.weight': s['head.fc.weight'].to(torch.int8)})),
     CheckpointError, 'stored as torch.int8', True),
    ('weights-module-duplicate', _weights(lambda s: s.update({'module.head.fc.bias': torch.zeros(4)})),
     CheckpointError, 'two copies of one tensor', True),
    # --- sizes ---
    ('num-classes-30m', cfg(lambda c, x: c.update(num_classes=30_000_000)), SecurityError,
     'num_classes must be an integer in 1..100,000', True),
    ('head-num-classes-1e12', cfg(lambda c, x: c['model_args']['head'].update(num_classes=10 ** 12)), SecurityError,
     'is larger than 1,000,000', True),
    ('head-10e10-parameters', cfg(_huge_head), CheckpointError, 'does not fit this model', True),
    ('input-size-1e6', cfg(lambda c, x: c['preprocessing'].update(input_size=[3, 10 ** 6, 10 ** 6])), SecurityError,
     'at most 8192 px', True),
    ('pipeline-resize-1e6', cfg(lambda c, x: c['preprocessing'].update(pipeline=[{'type': 'Resize',
                                                                                  'size': 10 ** 6}])),
     SecurityError, 'at most 8192 px', True),
    ('rise-masks-1e7', cfg(lambda c, x: c['explainer'].update(method='rise', kwargs={'n_masks': 10 ** 7})),
     SecurityError, 'larger than', True),
    ('explainer-batch-1e5', cfg(lambda c, x: c['explainer'].update(method='rise', kwargs={'batch_size': 100_000})),
     SecurityError, 'batch_size = 100000 is larger than 1,024', True),
    ('safetensors-header-bomb', _header_bomb, CheckpointError, 'header entry', True),
    ('long-string', _backbone(model_name='x' * 10 ** 6), SecurityError, 'a string of 1000000 characters', True),
    ('long-architecture-name', cfg(lambda c, x: c.update(architecture='A' * 10 ** 6)), SecurityError,
     '… (1000002 characters)', True),
    # --- JSON shape ---
    ('json-200k-deep-array', _raw(lambda x: '[' * 200_000 + ']' * 200_000), SecurityError, 'nested', True),
    ('json-900-nested-dicts', _raw(lambda x: _nested(900)), SecurityError, 'nested', True),
    ('json-17-mb', _raw(lambda x: b'{"pad": "' + b'x' * (17 << 20) + b'"}'), SecurityError, 'at most', False),
    ('preprocessing-without-mean', cfg(lambda c, x: c['preprocessing'].pop('mean')), XZooError, "lacks 'mean'", True),
    ('preprocessing-std-zero', cfg(lambda c, x: c['preprocessing'].update(std=[0, 0, 0])), XZooError,
     'std must be positive', True),
    ('model-name-null', _backbone(model_name=None), XZooError, 'model_name must be a str', True),
]


def test_the_corpus_has_at_least_25_crafted_exports():
    assert len(CORPUS) >= 25 and len({c[0] for c in CORPUS}) == len(CORPUS)
    assert sum(c[4] for c in CORPUS) >= 25  # also served from the loopback Hub


def _craft(clean: Path, tmp: Path, outside: Path, damage: Callable[[Ctx], None]) -> Ctx:
    ctx = {'folder': Path(shutil.copytree(clean, tmp / 'export')), 'marker': tmp / 'PWNED', 'outside': outside}
    damage(ctx)
    return ctx


def _assert_refused(load: Callable[[], Any], error: type[XZooError], fragment: str) -> str:
    with pytest.raises(XZooError) as info:
        load()
    text = str(info.value)
    assert isinstance(info.value, error), f'{type(info.value).__name__}: {text[:300]}'
    assert fragment in text, text[:500]
    assert '\n' not in text and len(text) < 2000, text[:500]
    return text


@pytest.mark.parametrize('case', CORPUS, ids=[c[0] for c in CORPUS])
def test_crafted_export_from_local_dir(case, clean, outside, tmp_path, fake_hub):  # noqa: F811
    name, damage, error, fragment, _ = case
    ctx = _craft(clean, tmp_path, outside, damage)
    _assert_refused(lambda: zoo.load(f'local-dir:{ctx["folder"]}'), error, fragment)
    assert not ctx['marker'].exists()
    assert fake_hub.requests == []  # a local folder never talks to the Hub


@pytest.mark.parametrize('case', [c for c in CORPUS if c[4]], ids=[c[0] for c in CORPUS if c[4]])
def test_crafted_export_from_the_loopback_hub(case, clean, outside, tmp_path, fake_hub):  # noqa: F811
    name, damage, error, fragment, _ = case
    ctx = _craft(clean, tmp_path, outside, damage)
    repo = f'evil/{name}'
    fake_hub.add_model(repo, {p.name: p.read_bytes() for p in ctx['folder'].iterdir()})
    _assert_refused(lambda: zoo.load(f'hf-hub:{repo}'), error, fragment)
    assert not ctx['marker'].exists()
    assert fake_hub.requests_beyond(repo, HUB_FILES) == []
    assert any(path.endswith('/config.json') for _, path in fake_hub.requests)  # it was served from the Hub


def test_the_clean_export_loads_from_both(clean, tmp_path, fake_hub):  # noqa: F811
    """The control: the undamaged export loads from both places, asking the Hub for its own two files only."""
    local = zoo.load(f'local-dir:{clean}')
    fake_hub.add_model('lab/clean', {p.name: p.read_bytes() for p in clean.iterdir()})
    remote = zoo.load('hf-hub:lab/clean')
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(local(x), remote(x))
    assert fake_hub.requests_beyond('lab/clean', HUB_FILES) == []


# --- defence in depth: what a component does when built from an export ---------------------------------------------
@pytest.fixture
def probe_components(fake_hub):  # noqa: F811
    """Registers test-only components: a backbone that phones home when built (and hides the failure), a
    backbone whose ``pretrained`` defaults to a download, and a model whose text encoder is an inference part."""
    from registry import BACKBONES, MODELS
    from zoo.models.classifier import ImageClassifier

    endpoint = fake_hub.endpoint

    class PhoningBackbone(nn.Module):
        def __init__(self, channels: int = 8) -> None:
            super().__init__()
            import urllib.request

            try:  # an undeclared download that swallows its own failure
                urllib.request.urlopen(f'{endpoint}/phone-home', timeout=2).read()
            except Exception:  # noqa: BLE001, S110
                pass
            self.conv = nn.Conv2d(3, channels, 3)
            self.num_features = channels

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x)

    class DownloadingBackbone(nn.Module):
        def __init__(self, pretrained: str | None = 'imagenet') -> None:
            super().__init__()

    class TextProbeClassifier(ImageClassifier):
        component_args = {'encoder': 'TEXT_ENCODERS'}

        def __init__(self, encoder: dict | None = None, **kwargs: Any) -> None:
            super().__init__(**kwargs)

    BACKBONES.register_module(module=PhoningBackbone, force=True)
    BACKBONES.register_module(module=DownloadingBackbone, force=True)
    MODELS.register_module(module=TextProbeClassifier, force=True)
    yield fake_hub
    for reg, name in ((BACKBONES, 'PhoningBackbone'), (BACKBONES, 'DownloadingBackbone'),
                      (MODELS, 'TextProbeClassifier')):
        reg._module_dict.pop(name, None)


def test_a_component_that_reaches_the_network_fails_the_load(probe_components, clean, tmp_path):
    """Even a registered component that downloads (and hides the error) cannot make zoo.load reach the network."""
    folder = Path(shutil.copytree(clean, tmp_path / 'export'))
    config = json.loads((folder / 'config.json').read_text())
    config['model_args']['backbone'] = {'type': 'PhoningBackbone'}
    (folder / 'config.json').write_text(json.dumps(config))
    with pytest.raises(SecurityError, match=r'tried to reach the network \(127\.0\.0\.1'):
        zoo.load(f'local-dir:{folder}', pretrained=False)
    assert probe_components.requests == []


def test_a_default_that_downloads_must_be_switched_off(probe_components):
    from zoo.validation import check_untrusted

    base = {'type': 'ImageClassifier', 'head': {'type': 'LinearClsHead', 'num_classes': 4}}
    with pytest.raises(SecurityError, match=r"backbone.pretrained is not set, and the default of DownloadingBackbone "
                                            r"\('imagenet'\) loads files"):
        check_untrusted({**base, 'backbone': {'type': 'DownloadingBackbone'}}, 'x')
    check_untrusted({**base, 'backbone': {'type': 'DownloadingBackbone', 'pretrained': None}}, 'x')


@pytest.mark.parametrize('encoder,message', [
    ({'type': 'HFTextEncoder', 'model_name': 'all-MiniLM-L6-v2'}, 'HFTextEncoder loads files from outside'),
    ({'type': 'OpenCLIPTextEncoder', 'model_name': 'ViT-B-32'}, "default of OpenCLIPTextEncoder ('openai')"),
    ({'type': 'OpenCLIPTextEncoder', 'pretrained': 'laion2b_s34b_b79k'}, 'must set pretrained to false'),
])
def test_text_encoders_in_an_inference_part_never_load_external_files(probe_components, encoder, message):
    """A family whose text encoder is an inference part (not training-only) still cannot name external models."""
    from zoo.validation import check_untrusted

    cfg = {'type': 'TextProbeClassifier', 'encoder': encoder, 'head': {'type': 'LinearClsHead', 'num_classes': 4},
           'backbone': {'type': 'TimmBackbone', 'model_name': 'test_resnet'}}
    with pytest.raises(SecurityError, match=message.replace('(', r'\(').replace(')', r'\)')):
        check_untrusted(cfg, 'x')
