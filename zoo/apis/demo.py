"""``make demo``: train and test the demo models on ClutteredFashionMNIST, register them in the local zoo, and print
the results side by side.

Each entry of :data:`DEMO_RUNS` is trained with its config, tested on the 1,000-image test split (accuracy), its
Grad-CAM maps scored with insertion, deletion and the pointing game on a fixed seeded subset (:data:`DEMO_EXPLAIN`),
and registered in the local zoo under its zoo name (``zoo.hub.local_zoo``: export, model card, provenance), so that
``zoo.load(name)`` returns it in any later process. The console gets one line per stage, progress bars, warnings
and the table; the full mmengine logs (environment, configs, hooks, every logged iteration) go to each run's
``<work_dir>/<timestamp>/<timestamp>.log`` (``verbose=True`` prints them too). The demo ends with the time of each
stage and the three commands a user runs next. Other features add their rows by extending ``DEMO_RUNS``.

Example::

    from zoo.apis.demo import run_demo
    results = run_demo('work_dirs/demo')
"""
from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator, Sequence
from typing import Any

from zoo.core.checkpoints import find_checkpoint, latest_checkpoint
from zoo.core.limits import read_json

DEMO_RUNS: list[tuple[str, ...]] = [
    ('baseline', 'configs/efficientnetlite0_baseline_clutteredfmnist.py', 'baseline-efficientnetlite0-clutteredfmnist'),
    ('lico', 'configs/efficientnetlite0_lico_clutteredfmnist.py', 'lico-efficientnetlite0-clutteredfmnist'),
]
"""``(name, config[, zoo name])`` runs trained on identical settings by the demo; a run with a zoo name is
registered in the local zoo under it."""

DEMO_EXPLAIN: dict[str, Any] = dict(
    explainers=['gradcam'],
    explain_metrics=[dict(type='Insertion', step=2048), dict(type='Deletion', step=2048),
                     dict(type='PointingGame', tolerance=15)],
    explain_subset=32,
)
"""Explanation quality every demo run reports: Grad-CAM insertion/deletion (RISE definitions, probability of the
predicted class, blur / zeros substrates, but 2,048 px = 1/8 of the 128-px image per step to keep the CPU demo
short) and pointing game (15 px, per-class mean), on the same 32 seeded test images for every run. Per image:
one Grad-CAM forward + backward and 2 × 9 metric forward passes, explained 32 images at a time."""

DEMO_TIME_LIMIT = 300
"""Seconds the whole demo should take on a quiet 2-core machine (installation excluded)."""

NO_VALIDATION = ['+val_dataloader=None', '+val_cfg=None', '+val_evaluator=None']
"""No mid-training validation (the test after training is the evaluation)."""


class Stages:
    """Wall time of each named stage, in order.

    Example:
        >>> stages = Stages()
        >>> with stages('assets'):
        ...     pass
        >>> [label for label, _ in stages.times]
        ['assets']
    """

    def __init__(self) -> None:
        self.times: list[tuple[str, float]] = []
        self.start = time.perf_counter()

    @contextlib.contextmanager
    def __call__(self, label: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.times.append((label, time.perf_counter() - start))

    def get(self, label: str) -> float:
        return sum(s for name, s in self.times if name == label)

    @property
    def total(self) -> float:
        return time.perf_counter() - self.start


def _say(text: str = '') -> None:
    print(text, flush=True)


def _final_loss(runner: Any) -> float | None:
    with contextlib.suppress(Exception):
        return float(runner.message_hub.get_scalar('train/loss').current())
    return None


def run_one(name: str, config: str, work_root: str, zoo_name: str | None = None, *, stages: Stages | None = None,
            verbose: bool = False, cfg_options: Sequence[str] = (), explain: dict[str, Any] | None = None
            ) -> dict[str, Any]:
    """Train ``config`` (no mid-training validation: the test below is the evaluation), test it, and register it in
    the local zoo as ``zoo_name`` (when given); print one line per stage."""
    from .testing import test
    from .training import train

    stages = stages or Stages()
    work_dir = os.path.join(work_root, name)
    with stages(f'{name}: train'):
        runner = train(config, work_dir=work_dir, cfg_options=[*NO_VALIDATION, *cfg_options], verbose=verbose)
    checkpoint = latest_checkpoint(work_dir)
    loss = _final_loss(runner)
    _say(f'[{name}] trained in {stages.get(f"{name}: train"):.1f} s ({runner.iter} iterations'
         + (f', last loss {loss:.3f}' if loss is not None else '') + f'): {checkpoint}')
    metrics_json = os.path.join(work_dir, 'metrics.json')
    explain_dir = os.path.join(work_dir, 'explain')
    with stages(f'{name}: test'):
        metrics = test(config, checkpoint, work_dir=work_dir, out=metrics_json, explain_dir=explain_dir,
                       cfg_options=list(cfg_options), verbose=verbose, **(explain or DEMO_EXPLAIN))
    report = os.path.join(explain_dir, 'results.json')
    explain_s = float(read_json(report, report).get('seconds') or 0.0) if os.path.isfile(report) else 0.0
    stages.times.append((f'{name}: explain', explain_s))
    acc = ', '.join(f'{k.split("/")[-1]} {v:.1f} %' for k, v in metrics.items() if k.startswith('accuracy/'))
    expl = ', '.join(f'{column_label(k)} {v:.3f}' for k, v in sorted(metrics.items(), key=lambda kv: _order(kv[0]))
                     if k.startswith('explain/') and not k.endswith('/overall'))
    _say(f'[{name}] tested in {stages.get(f"{name}: test"):.1f} s: {acc}'
         + (f'; explained in {explain_s:.1f} s: {expl}' if expl else ''))
    entry = None
    if zoo_name:
        from zoo.hub.local_zoo import register_model

        with stages(f'{name}: register'):
            entry = register_model(work_dir, zoo_name, seed=runner.seed)
        _say(f"[{name}] registered as '{zoo_name}' in the local zoo ({stages.get(f'{name}: register'):.1f} s): "
             f'{os.path.dirname(entry.config)}')
    return dict(name=name, config=config, checkpoint=checkpoint, metrics_json=metrics_json, metrics=metrics,
                log=runner.logger.log_file, train_seconds=round(stages.get(f'{name}: train'), 1),
                test_seconds=round(stages.get(f'{name}: test'), 1), explain_seconds=round(explain_s, 1),
                explain_dir=explain_dir, work_dir=work_dir, zoo_name=zoo_name,
                zoo_dir=os.path.dirname(entry.config) if entry is not None else None)


_SHORT = {'insertion': 'ins ↑', 'deletion': 'del ↓', 'overall': 'ins-del ↑', 'pointing_game': 'PG ↑'}


def column_label(key: str) -> str:
    """``'accuracy/top1'`` → ``'top1 %'``; ``'explain/gradcam/insertion'`` → ``'gradcam ins ↑'``."""
    parts = key.split('/')
    if parts[0] == 'accuracy':
        return f'{parts[-1]} %'
    if parts[0] == 'explain' and len(parts) == 3:
        return f'{parts[1]} {_SHORT.get(parts[2], parts[2])}'
    return key


def _order(key: str) -> tuple:
    kind = key.split('/')[0]
    metric = key.split('/')[-1]
    rank = list(_SHORT).index(metric) if metric in _SHORT else len(_SHORT)
    return (kind != 'accuracy', key.split('/')[1] if kind == 'explain' else '', rank, key)


def format_table(results: list[dict[str, Any]]) -> str:
    """The side-by-side summary printed at the end of the demo."""
    keys = sorted({k for r in results for k in r['metrics']}, key=_order)
    width = max([14] + [len(column_label(k)) + 2 for k in keys])
    head = f"{'model':<10}" + ''.join(f'{column_label(k):>{width}}' for k in keys) + f"{'train s':>10}"
    rows = [head, '-' * len(head)]
    for r in results:
        vals = ''
        for k in keys:
            v = r['metrics'].get(k, float('nan'))
            vals += f'{v:>{width}.2f}' if k.startswith('accuracy/') else f'{v:>{width}.3f}'
        rows.append(f"{r['name']:<10}{vals}{r['train_seconds']:>10.1f}")
    return '\n'.join(rows)


def legend(explain: dict[str, Any]) -> str:
    """What the explanation columns mean, from the explanation settings.

    Example:
        >>> legend(DEMO_EXPLAIN)[:60]
        'ins/del = RISE insertion/deletion AUC of the predicted class'
    """
    specs = [m if isinstance(m, dict) else {'type': m} for m in explain.get('explain_metrics') or []]

    def field(kinds: tuple[str, ...], key: str) -> Any:
        return next((m.get(key) for m in specs if str(m.get('type')).lower() in kinds), None)

    step, tol = field(('insertion', 'ins'), 'step'), field(('pointinggame', 'pointing_game'), 'tolerance')
    return ('ins/del = RISE insertion/deletion AUC of the predicted class probability (blur / zero substrate, '
            + (f'{step:,} px per step' if step else 'one image width per step') + '); PG = pointing game'
            + (f', {tol} px' if tol is not None else '') + ', per-class mean. Conventions: '
            '<work_dir>/explain/results.json.')


def save_sample_images(config: str, out_dir: str, n: int = 4) -> list[str]:
    """The first ``n`` test images of ``config`` as PNGs named ``<index>_<class>.png`` (something to explain)."""
    from registry import DATASETS
    from zoo.apis.config import load_config
    from zoo.viz.files import save_pixels

    cfg = load_config(config)
    dataset = DATASETS.build(dict(cfg.test_dataloader.dataset, pipeline=[dict(type='PackInputs')]))
    classes = list(dataset.metainfo.get('classes') or [])
    paths = []
    for i in range(min(n, len(dataset))):
        item = dataset[i]
        label = int(item['data_samples'].gt_label)
        cls = re.sub(r'[^A-Za-z0-9]+', '-', classes[label] if label < len(classes) else str(label)).strip('-')
        paths.append(str(save_pixels(os.path.join(out_dir, f'{i:03d}_{cls}.png'),
                                     item['inputs'].permute(1, 2, 0).numpy())))
    return paths


def next_steps(result: dict[str, Any], images: Sequence[str], work_root: str) -> list[str]:
    """The three commands a user runs next: explain an image with the trained model, load it by name in Python,
    compare explainers on its test images (``tools/compare.py --model``: paired confidence intervals)."""
    cfg_dump, ckpt = find_checkpoint(result['work_dir'])
    image = images[0] if images else 'IMAGE.png'
    folder = os.path.dirname(image) if images else 'IMAGES'
    load = f"zoo.load('{result['zoo_name']}')" if result.get('zoo_name') else f"zoo.load('local-dir:{ckpt}')"
    compare = (f'python tools/compare.py --model {cfg_dump} {ckpt} --explainers gradcam,scorecam '
               f'--explain-metrics insertion,deletion --explain-subset 8 '
               f'--out {os.path.join(work_root, result["name"] + "-explainers")}')
    return [f'python tools/explain.py {cfg_dump} {ckpt} {folder} --method gradcam,eigencam '
            f'--out {os.path.join(work_root, "explained")}',
            f'python -c "import zoo; m = {load}; p = m.classify(\'{image}\'); '
            f'print(m.class_names[int(p.argmax())], float(p.max()))"',
            compare]


def run_demo(work_root: str = 'work_dirs/demo', data_dir: str | None = 'data', *,
             runs: Sequence[tuple[str, ...]] | None = None, verbose: bool = False, register: bool = True,
             cfg_options: Sequence[str] = (), explain: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Get the assets, train, test and register every run (default :data:`DEMO_RUNS`), print the table, the stage
    times and what to run next. ``data_dir=None`` skips the assets (configs that need none); ``register=False``
    leaves the local zoo alone; ``cfg_options``/``explain`` go to every run (tests use small ones)."""
    runs = list(DEMO_RUNS if runs is None else runs)
    stages = Stages()
    names = ', '.join(r[0] for r in runs)
    _say(f'xzoo demo: train, test and explain {len(runs)} models ({names}) on a CPU. Full logs: '
         f'{os.path.join(work_root, "<model>", "<timestamp>", "<timestamp>.log")}')
    if data_dir is not None:
        from .assets import prepare_assets

        with stages('assets'):
            assets = prepare_assets(data_dir)
        _say(f"assets ({stages.get('assets'):.1f} s): Fashion-MNIST {assets['fashion_mnist']}; EfficientNet-Lite0 "
             f"weights {assets['lite0_weights']}")
    results = [run_one(run[0], run[1], work_root, run[2] if register and len(run) > 2 else None, stages=stages,
                       verbose=verbose, cfg_options=cfg_options, explain=explain) for run in runs]
    with stages('sample images'):
        images = save_sample_images(runs[-1][1], os.path.join(work_root, 'images'))
    subset = (explain or DEMO_EXPLAIN).get('explain_subset')
    _say(f'\n=== xzoo demo: {names} — accuracy on the test split, Grad-CAM quality on {subset} seeded test images ===')
    _say(format_table(results))
    _say(legend(explain or DEMO_EXPLAIN))
    for r in results:
        _say(f"[{r['name']}] {r['work_dir']}: checkpoint {os.path.basename(r['checkpoint'])}, metrics.json, "
             f"explain/ (results.md, examples_gradcam.png, curves.png); log {r['log']}")
    parts = [f'assets {stages.get("assets"):.1f}'] if data_dir is not None else []
    for r in results:
        n = r['name']
        parts.append(f'{n}: train {stages.get(f"{n}: train"):.1f}, test {stages.get(f"{n}: test"):.1f} (explain '
                     f'{stages.get(f"{n}: explain"):.1f})' + (f', register {stages.get(f"{n}: register"):.1f}'
                                                              if r['zoo_name'] else ''))
    total = stages.total
    _say(f'\nStage times (s): {" | ".join(parts)}')
    _say(f'Demo finished in {total:.0f} s (target: {DEMO_TIME_LIMIT} s on a quiet 2-core machine).')
    main = next((r for r in reversed(results) if r['zoo_name']), results[-1])
    _say('\nNext:')
    for line in next_steps(main, images, work_root):
        _say(f'  {line}')
    return results
