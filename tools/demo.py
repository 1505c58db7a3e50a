#!/usr/bin/env python
"""Run the xzoo demo (what `make demo` runs): train and test the demo models on ClutteredFashionMNIST.

    python tools/demo.py [--work-dir work_dirs/demo] [--data-dir data]
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
    args = p.parse_args(argv)
    from zoo.apis.demo import run_demo

    run_demo(args.work_dir, args.data_dir)


if __name__ == '__main__':
    run_cli(main)
