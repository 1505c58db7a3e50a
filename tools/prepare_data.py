#!/usr/bin/env python
"""Get what a recipe needs before running it offline; without --recipe, the demo's assets (what `make data` runs).

    # on a machine with internet (a login node): fetch every Hub-hosted asset of the recipes into the Hugging Face
    # cache (DIR; default $HF_HUB_CACHE), make what xzoo can make, and list what must be got by hand
    python tools/prepare_data.py --recipe CONFIG [CONFIG ...] [--cache-dir DIR] [--cfg-options KEY=VALUE ...]

    # on the compute node: is everything there? (offline check, nothing downloaded; exit 2 if not)
    HF_HUB_CACHE=DIR python tools/prepare_data.py --recipe CONFIG [CONFIG ...] --check

    # the demo's offline assets: Fashion-MNIST and ImageNet EfficientNet-Lite0 weights into data/
    python tools/prepare_data.py [--data-dir data]

What a recipe needs is derived from its config (zoo.apis.preflight): dataset roots and their files, timm backbone
weights, open_clip / Hugging Face text towers, local weights files, packages. After a successful fetch the recipe
runs with HF_HUB_OFFLINE=1 (and HF_HUB_CACHE=DIR). See docs/getting_started.md, "Training on an offline cluster".
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from registry.errors import ConfigError  # noqa: E402
from zoo.cli import add_cfg_options, run_cli  # noqa: E402

MARK = {'present': 'already here', 'fetched': 'fetched', 'manual': 'get by hand', 'failed': 'FAILED'}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog='\n\n'.join(__doc__.split('\n\n')[1:]))
    p.add_argument('--recipe', nargs='+', metavar='CONFIG', help='config files: fetch (or with --check, check) what '
                   'they need to train, validate and test (the same --cfg-options apply to each)')
    p.add_argument('--cache-dir', metavar='DIR', help='Hugging Face cache to fill or check (default: $HF_HUB_CACHE, '
                   'i.e. ~/.cache/huggingface/hub); run the recipe with HF_HUB_CACHE=DIR')
    add_cfg_options(p)
    p.add_argument('--check', action='store_true', help='only check, as on an offline machine, and print what is '
                   'missing (exit 2) or that everything is there, with the time the check took')
    p.add_argument('--data-dir', default='data', help='without --recipe: where the demo assets go (default: data)')
    args = p.parse_args(argv)
    if not args.recipe and (args.check or args.cache_dir or args.cfg_options):
        p.error('--check, --cache-dir and --cfg-options need --recipe CONFIG')
    return args


def _line(item) -> str:
    need = item.need
    keys = f" [{', '.join(k.lstrip('+') for k in need.keys)}]" if need.keys else ''
    detail = f': {item.detail}' if item.detail else ''
    return f'  {MARK[item.status]:<12} {need.asset.label()}{keys}{detail}'


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not args.recipe:
        from zoo.apis.assets import prepare_assets

        for what, path in prepare_assets(args.data_dir).items():
            print(f'{what}: {path}')
        return
    from zoo.apis.config import load_config, validate_config
    from zoo.apis.preflight import hub_cache, preflight_many, timed_check

    jobs = []
    for recipe in args.recipe:
        cfg = load_config(recipe, args.cfg_options)
        validate_config(cfg)
        jobs.append((cfg, recipe, args.cfg_options, 'all'))
    cache = hub_cache(args.cache_dir)
    names = ' and '.join(args.recipe)
    needs, seconds = timed_check(jobs, cache_dir=cache)
    if args.check:
        preflight_many(jobs, cache_dir=cache, offline=True)
        print(f'{names}: all {len(needs)} external assets are here (Hugging Face cache {cache}); it runs offline. '
              f'Checked in {1000 * seconds["check"]:.1f} ms (+ {1000 * seconds["derive"]:.1f} ms to work out what '
              'it needs).')
        return
    from huggingface_hub import constants

    from zoo.apis.assets import prefetch

    if constants.HF_HUB_OFFLINE and any(n.problem and n.asset.kind in ('HubFiles', 'UrlFile') for n in needs):
        raise ConfigError('HF_HUB_OFFLINE=1 is set, so nothing can be downloaded. Run this on a machine with '
                          'internet without HF_HUB_OFFLINE (then copy the cache), or use --check to only check.')
    print(f"{names} {'need' if len(jobs) > 1 else 'needs'} {len(needs)} external assets; Hugging Face cache: {cache}")
    done = prefetch(needs, cache_dir=cache, report=lambda item: print(_line(item), flush=True))
    print(f'{sum(d.status == "fetched" for d in done)} fetched, {sum(d.status == "present" for d in done)} already '
          f'here, {sum(d.status in ("manual", "failed") for d in done)} left.')
    preflight_many(jobs, cache_dir=cache, offline=True)  # the last word: would it run without internet now?
    env = f'HF_HUB_CACHE={cache} ' if args.cache_dir else ''
    options = f' --cfg-options {" ".join(args.cfg_options)}' if args.cfg_options else ''
    print(f'Ready: it runs offline. On the compute nodes: {env}HF_HUB_OFFLINE=1 python tools/train.py '
          f'{args.recipe[0]}{options}')

if __name__ == '__main__':
    run_cli(main)
