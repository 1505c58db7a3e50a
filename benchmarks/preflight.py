"""Preflight ÷ Runner start-up: the time to learn what a recipe lacks, with and without the preflight, in one run.

Both sides start from the loaded, validated config of a recipe on a machine without its assets (an empty Hugging
Face cache, HF_HUB_OFFLINE=1, a data root that does not exist). *Preflight*: ``zoo.apis.preflight`` walks the
config and checks every asset (the library imports it needs happen in a warm-up call first, as the Runner's do).
*Runner*: mmengine's ``Runner.from_cfg`` + ``build_training`` as ``tools/train.py`` ran them before, until the
first error — which names one missing asset. The script prints each side's median time, how many missing assets
each reported, and the ratio; the preflight's cache lookups alone ("check") are printed too.

    HF_HUB_OFFLINE=1 python benchmarks/preflight.py                          # configs/resnet50_lico_cub.py
    HF_HUB_OFFLINE=1 python benchmarks/preflight.py --config configs/resnet50_baseline_cub.py --repeats 5
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

os.environ.setdefault('HF_HUB_OFFLINE', '1')


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--config', default='configs/resnet50_lico_cub.py')
    p.add_argument('--repeats', type=int, default=3)
    args = p.parse_args(argv)

    from huggingface_hub import constants

    from registry.errors import XZooError
    from zoo.apis._runner import build_runner, build_training, prepare_runtime, prepare_training
    from zoo.apis.config import load_config
    from zoo.apis.preflight import USES, check, collect
    from zoo.core.assets import MissingAssetsError

    tmp = tempfile.mkdtemp(prefix='xzoo-preflight-bench-')
    constants.HF_HUB_CACHE = os.path.join(tmp, 'empty-cache')
    constants.HF_HUB_OFFLINE = True
    options = [f'{s}_dataloader.dataset.data_root={tmp}/no-data' for s in ('train', 'val', 'test')]

    def config():
        cfg = load_config(args.config, options)
        prepare_runtime(cfg, os.path.join(tmp, 'work'), args.config, 'none')
        return prepare_training(cfg)

    def preflight_side() -> tuple[float, float, int]:
        cfg = config()
        start = time.perf_counter()
        needs, _ = collect(cfg, **USES['train'])
        mid = time.perf_counter()
        missing = [n for n in check(needs) if n.problem]
        end = time.perf_counter()
        return end - start, end - mid, len(missing)

    def runner_side() -> tuple[float, int, int]:
        cfg = config()
        console = io.StringIO()
        start = time.perf_counter()
        try:
            with contextlib.redirect_stdout(console), contextlib.redirect_stderr(console):
                build_training(build_runner(cfg))
        except (XZooError, OSError, RuntimeError) as exc:
            assert not isinstance(exc, MissingAssetsError)
            return time.perf_counter() - start, 1, console.getvalue().count('\n')
        return time.perf_counter() - start, 0, console.getvalue().count('\n')

    preflight_side()  # warm-up: imports timm / open_clip, as the Runner side's first build does
    runner_side()
    ours, checks, theirs = [], [], []
    for _ in range(args.repeats):
        total, lookup, n_ours = preflight_side()
        ours.append(total)
        checks.append(lookup)
        seconds, n_theirs, lines = runner_side()
        theirs.append(seconds)
    a, b = statistics.median(ours), statistics.median(theirs)
    print(f'{args.config}, median of {args.repeats}:')
    print(f'  preflight   {1000 * a:8.1f} ms  (cache and disk lookups {1000 * statistics.median(checks):.1f} ms), '
          f'reports {n_ours} missing assets')
    print(f'  Runner      {1000 * b:8.1f} ms  until its first error, which reports {n_theirs} missing asset '
          f'(after {lines} console lines)')
    print(f'  ratio preflight / Runner = {a / b:.3f}')


if __name__ == '__main__':
    main()
