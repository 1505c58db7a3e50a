#!/usr/bin/env python
"""Evaluate a checkpoint on a config's test set (top-1/top-5 accuracy).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE.json] [--cfg-options KEY=VALUE ...]
        [--launcher none|pytorch]
"""
from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from zoo.cli import add_cfg_options, run_cli  # noqa: E402


def parse_args(argv: list[str] | None = None):
    import argparse
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('config', help='config file')
    p.add_argument('checkpoint', help='checkpoint (.pth from training, or .safetensors weights)')
    p.add_argument('--work-dir', help='where logs go (default: ./work_dirs/<config name>)')
    p.add_argument('--out', help='write the metrics to this JSON file')
    add_cfg_options(p)
    p.add_argument('--launcher', choices=['none', 'pytorch'], default='none',
                   help='job launcher: "pytorch" under torchrun')
    p.add_argument('--local-rank', '--local_rank', type=int, default=0, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    from zoo.apis.test import test

    metrics = test(args.config, args.checkpoint, work_dir=args.work_dir, out=args.out,
                   cfg_options=args.cfg_options, launcher=args.launcher)
    print(json.dumps(metrics, indent=2))
    if args.out:
        print(f'Metrics written to {args.out}')


if __name__ == '__main__':
    run_cli(main)
