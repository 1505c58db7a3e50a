"""``test()``: what ``tools/test.py`` runs.

With ``explainers`` it also scores each explainer's maps with explanation metrics over the test set (the
``ExplanationQuality`` evaluator metric in the Runner's test loop, so it runs distributed when the Runner does) and
writes results.json, results.md and PNGs into ``explain_dir`` (default ``<work_dir>/explain``).

Example::

    from zoo.apis import test
    metrics = test('configs/efficientnetlite0_baseline_clutteredfmnist.py', 'epoch_1.pth')
    metrics['accuracy/top1']
    metrics = test('configs/efficientnetlite0_baseline_clutteredfmnist.py', 'epoch_1.pth',
                   explainers=['gradcam'], explain_metrics=['insertion', 'deletion', 'pointing_game'],
                   explain_subset=100)
    metrics['explain/gradcam/overall']
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from registry.errors import ConfigError
from zoo.core.fileio import write_json

from ._runner import build_runner, component_errors, prepare_runtime
from .config import load_config
from .inference import inference_model_config


def test(config: Any, checkpoint: str, work_dir: str | None = None, out: str | None = None,
         cfg_options: Iterable[str] | Mapping[str, Any] | None = None, launcher: str = 'none',
         explainers: Sequence[Any] | None = None, explain_metrics: Sequence[Any] | None = None,
         explain_subset: int | None = None, explain_dir: str | None = None,
         explain_options: Mapping[str, Any] | None = None, verbose: bool = False) -> dict[str, Any]:
    """Evaluate ``checkpoint`` on the config's test set; return the metrics (and write them to ``out``).

    The checkpoint is loaded strictly: weights from another architecture or class count are an error naming
    the file. A training checkpoint (``.pth`` in a work_dir, trusted as the user's own file) or exported
    ``.safetensors`` weights both work.

    Explanation quality (optional): ``explainers`` (aliases such as ``'gradcam'`` or config dicts) ×
    ``explain_metrics`` (default insertion, deletion, pointing game) on ``explain_subset`` test samples (``None``:
    all), reported as ``explain/<explainer>/<metric>``; ``explain_options`` are further ``ExplanationQuality``
    arguments (``explain_class``, ``num_examples``, ...).

    ``verbose``: mmengine's full console output instead of progress bars (the log file holds it either way).
    """
    from zoo.engine.hooks import unwrap
    from zoo.models.weights import load_model_weights

    cfg = load_config(config, cfg_options)
    for key in ('test_dataloader', 'test_evaluator'):
        if not cfg.get(key):
            raise ConfigError(f'The config has no {key}; testing needs test_dataloader, test_cfg and '
                              'test_evaluator (see configs/_base_/datasets/).')
    cfg.setdefault('test_cfg', {})
    cfg.resume, cfg.load_from = False, None
    cfg.model = inference_model_config(cfg.model, has_checkpoint=True)
    if explain_metrics and not explainers:
        raise ConfigError('explain_metrics were given without explainers: name the explainers to score, e.g. '
                          "--explainers gradcam,eigencam.")
    add_explanation_quality(cfg, explainers, explain_metrics, explain_subset, explain_dir, explain_options)
    prepare_runtime(cfg, work_dir, config, launcher, verbose=verbose)
    cfg.keep_config_dump = True  # a training work dir keeps its training config dump
    runner = build_runner(cfg)
    meta = load_model_weights(unwrap(runner.model), checkpoint, trust_pickle=True)
    names = (meta.get('dataset_meta') or {}).get('classes')
    if names and len(names) == unwrap(runner.model).num_classes:
        unwrap(runner.model).class_names = list(names)
    with component_errors():  # build the test loop here: a value it rejects is a one-line error
        runner.test_loop  # noqa: B018
    metrics = dict(runner.test())
    _remember_explanation_files(runner)
    if out:
        from mmengine.dist import is_main_process
        if is_main_process():
            write_json(out, dict(config=str(config), checkpoint=str(checkpoint), metrics=metrics))
    return metrics


_LAST_FILES: dict[str, str] = {}


def _remember_explanation_files(runner: Any) -> None:
    _LAST_FILES.clear()
    for metric in getattr(runner.test_loop.evaluator, 'metrics', []):
        summary = getattr(metric, 'last_summary', None)
        if type(metric).__name__ == 'ExplanationQuality' and summary:
            _LAST_FILES.update(summary.get('files') or {})


def last_explanation_files() -> dict[str, str]:
    """``{kind: path}`` of the explanation report files the last :func:`test` call in this process wrote."""
    return dict(_LAST_FILES)


def add_explanation_quality(cfg: Any, explainers: Sequence[Any] | None, metrics: Sequence[Any] | None = None,
                            subset: int | None = None, out_dir: str | None = None,
                            options: Mapping[str, Any] | None = None) -> None:
    """Append an ``ExplanationQuality`` metric to ``cfg.test_evaluator`` (when ``explainers`` are given) and make
    sure ``ExplanationHook`` is in ``custom_hooks`` whenever the evaluator has such a metric."""
    import zoo.metrics  # noqa: F401  (registers ExplanationQuality in METRICS and ExplanationHook in HOOKS)

    evaluator = cfg.test_evaluator
    entries = list(evaluator) if isinstance(evaluator, (list, tuple)) else [evaluator]
    if explainers:
        entry = dict(type='ExplanationQuality', explainers=list(explainers),
                     metrics=list(metrics or ('insertion', 'deletion', 'pointing_game')), subset=subset,
                     out_dir=out_dir, **dict(options or {}))
        entries.append(entry)
        cfg.test_evaluator = entries
    if any(isinstance(e, Mapping) and e.get('type') == 'ExplanationQuality' for e in entries):
        hooks = list(cfg.get('custom_hooks') or [])
        if not any(isinstance(h, Mapping) and h.get('type') == 'ExplanationHook' for h in hooks):
            hooks.append(dict(type='ExplanationHook'))
        cfg.custom_hooks = hooks
