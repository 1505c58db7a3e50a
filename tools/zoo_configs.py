#!/usr/bin/env python
"""Regenerate (or --check) the zoo's shipped config JSONs (zoo/hub/configs/) from the recipes in configs/.

    python tools/zoo_configs.py            # rewrite the configs whose recipe changed
    python tools/zoo_configs.py --check    # exit 1 if a shipped config differs from its recipe
"""
from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from zoo.cli import run_cli  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--index', help='index file (default: the one shipped in zoo/hub/index.json)')
    p.add_argument('--check', action='store_true', help='only compare; exit 1 when a config differs')
    args = p.parse_args(argv)
    from zoo.hub.recipes import index_configs

    status = index_configs(args.index, root=ROOT, write=not args.check)
    for name, state in status.items():
        print(f'{name:45s} {state}')
    if args.check and any(s == 'differs' for s in status.values()):
        print('Run python tools/zoo_configs.py to regenerate.', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(run_cli(main))
