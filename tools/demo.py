#!/usr/bin/env python
"""Run the xzoo demo (what `make demo` runs): train, test and explain the demo models on ClutteredFashionMNIST, and
register them in the local zoo so that zoo.load('lico-efficientnetlite0-clutteredfmnist') returns the trained model.

    python tools/demo.py [--work-dir work_dirs/demo] [--data-dir data] [--no-register] [--verbose]

The console shows one line per stage, progress bars, warnings and the results; the full mmengine logs are in
WORK_DIR/<model>/<timestamp>/<timestamp>.log. The local zoo is ~/.cache/xzoo (or $XZOO_CACHE).
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from zoo.cli import run_cli  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--work-dir', default='work_dirs/demo', help='where the runs go (default: work_dirs/demo)')
    p.add_argument('--data-dir', default='data', help='where the demo assets go (default: data)')
    p.add_argument('--no-register', action='store_true', help='do not register the trained models in the local zoo')
    p.add_argument('--verbose', action='store_true', help="mmengine's full console output (environment, configs, "
                   'hooks, every logged iteration) instead of progress bars')
    args = p.parse_args(argv)
    from zoo.apis.demo import run_demo

    run_demo(args.work_dir, args.data_dir, register=not args.no_register, verbose=args.verbose)


if __name__ == '__main__':
    run_cli(main)
