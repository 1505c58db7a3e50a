#!/usr/bin/env python
"""Get the demo's offline assets (what `make data` runs): Fashion-MNIST and ImageNet EfficientNet-Lite0 weights.

    python tools/prepare_data.py [--data-dir data]
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from zoo.cli import run_cli  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--data-dir', default='data', help='where the assets go (default: data)')
    args = p.parse_args(argv)
    from zoo.apis.assets import prepare_assets

    for what, path in prepare_assets(args.data_dir).items():
        print(f'{what}: {path}')


if __name__ == '__main__':
    run_cli(main)
