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
                   explain_subset=100, per_image='per_image.json')
    metrics['explain/gradcam/overall']

``per_image`` writes every metric's per-image values (``tools/compare.py`` reads them; see :func:`per_image_values`).
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from registry.errors import ConfigError
from zoo.core.fileio import check_can_write, write_json

from ._runner import build_runner, component_errors, prepare_runtime
from .config import load_config
from .inference import inference_model_config
from .preflight import preflight


def test(config: Any, checkpoint: str | None, work_dir: str | None = None, out: str | None = None,
         cfg_options: Iterable[str] | Mapping[str, Any] | None = None, launcher: str = 'none',
         explainers: Sequence[Any] | None = None, explain_metrics: Sequence[Any] | None = None,
         explain_subset: int | None = None, explain_dir: str | None = None,
         explain_options: Mapping[str, Any] | None = None, per_image: str | None = None,
         verbose: bool = False) -> dict[str, Any]:
    """Evaluate ``checkpoint`` on the config's test set; return the metrics (and write them to ``out``).

    The checkpoint is loaded strictly: weights from another architecture or class count are an error naming
    the file. A training checkpoint (``.pth`` in a work_dir, trusted as the user's own file) or exported
    ``.safetensors`` weights both work. ``checkpoint=None`` evaluates the model as its config builds it (a zero-shot
    image-text classifier whose weights come from its ``pretrained`` setting, with no training step).

    Explanation quality (optional): ``explainers`` (aliases such as ``'gradcam'`` or config dicts) ×
    ``explain_metrics`` (default insertion, deletion, pointing game) on ``explain_subset`` test samples (``None``:
    all), reported as ``explain/<explainer>/<metric>``; ``explain_options`` are further ``ExplanationQuality``
    arguments (``explain_class``, ``num_examples``, ...).

    ``per_image``: a JSON file for the per-image values of every metric (:func:`per_image_values`).
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
    cfg.model = inference_model_config(cfg.model, has_checkpoint=checkpoint is not None)
    if explain_metrics and not explainers:
        raise ConfigError('explain_metrics were given without explainers: name the explainers to score, e.g. '
                          "--explainers gradcam,eigencam.")
    _check_names(explainers, explain_metrics)
    add_explanation_quality(cfg, explainers, explain_metrics, explain_subset, explain_dir, explain_options)
    prepare_runtime(cfg, work_dir, config, launcher, verbose=verbose)
    cfg.keep_config_dump = True  # a training work dir keeps its training config dump
    preflight(cfg, 'test', config=config, cfg_options=cfg_options)  # the model and test set it builds, from here
    # results that cannot be written would be lost after the whole evaluation: check the places first
    check_can_write(cfg.work_dir, 'folder', '--work-dir')
    if out:
        check_can_write(out, 'file', '--out')
    if explainers:
        check_can_write(explain_dir or os.path.join(cfg.work_dir, 'explain'), 'folder', '--explain-dir')
    runner = build_runner(cfg)
    meta = load_model_weights(unwrap(runner.model), checkpoint, trust_pickle=True) if checkpoint is not None else {}
    names = (meta.get('dataset_meta') or {}).get('classes')
    if names and len(names) == unwrap(runner.model).num_classes:
        unwrap(runner.model).class_names = list(names)
    with component_errors():  # build the test loop here: a value it rejects is a one-line error
        runner.test_loop  # noqa: B018
    metrics = dict(runner.test())
    _remember_explanation_files(runner)
    from mmengine.dist import is_main_process
    if out and is_main_process():
        write_json(out, dict(config=str(config), checkpoint=str(checkpoint), metrics=metrics))
    if per_image and is_main_process():
        write_json(per_image, dict(config=str(config), checkpoint=str(checkpoint), metrics=metrics,
                                   per_image=per_image_values(runner)))
    return metrics


def per_image_values(runner: Any) -> dict[str, dict[str, Any]]:
    """Per-image values of the test just run, keyed like the metrics: ``{'accuracy/top1': {sample_idx, label,
    values, higher_is_better, unit}, 'explain/gradcam/insertion': {...}, ...}``.

    Accuracy values are 100 (correct) or 0, so their mean is the accuracy in percent; explanation values are each
    metric's per-sample number (``None`` where the metric excludes the image, e.g. no object), and
    ``<explainer>/overall`` is insertion − deletion per image. Means over these values are plain means over images
    (a metric that reports a mean of per-class means, such as the pointing game, may differ slightly).
    """
    out: dict[str, dict[str, Any]] = {}
    for metric in getattr(runner.test_loop.evaluator, 'metrics', []):
        prefix = metric.prefix or getattr(metric, 'default_prefix', '')
        per = getattr(metric, 'last_per_sample', None)
        if per:  # Accuracy
            for k, hits in per['correct'].items():
                out[f'{prefix}/{k}'] = dict(sample_idx=per['sample_idx'], label=per['label'],
                                            values=[100.0 * h for h in hits], higher_is_better=True, unit='%')
        summary = getattr(metric, 'last_summary', None)
        if summary and 'per_sample' in summary:  # ExplanationQuality
            ps = summary['per_sample']
            for ename, per_metric in summary['results'].items():
                vals = dict(ps['values'][ename])
                definition = (per_metric.get('overall') or {}).get('conventions', {}).get('definition', '')
                if ' - ' in definition:
                    ins, dele = definition.split(' - ', 1)
                    vals['overall'] = [a - b for a, b in zip(vals[ins], vals[dele])]
                for mname, values in vals.items():
                    out[f'{prefix}/{ename}/{mname}'] = dict(
                        sample_idx=ps['sample_idx'], label=ps['label'],
                        values=[None if v != v else float(v) for v in values],
                        higher_is_better=per_metric[mname]['higher_is_better'],
                        conventions=per_metric[mname].get('conventions'))
    return out


def _check_names(explainers: Sequence[Any] | None, metrics: Sequence[Any] | None) -> None:
    """Resolve explainer and metric names before any data is loaded (registered names and aliases only)."""
    from zoo.explainers import explainer_class
    from zoo.metrics import resolve_metric_name

    for name in explainers or ():
        if isinstance(name, str):
            explainer_class(name)
    for name in metrics or ():
        if isinstance(name, str):
            resolve_metric_name(name)


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
