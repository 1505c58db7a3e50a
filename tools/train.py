#!/usr/bin/env python
"""Train a model from a config with mmengine's Runner.

    python tools/train.py configs/resnet50_baseline_cub.py [--work-dir DIR] [--resume [auto|PATH]] [--amp]
        [--cfg-options KEY=VALUE ...] [--launcher none|pytorch]

Multi-process: torchrun --nproc_per_node=2 tools/train.py CONFIG --launcher pytorch
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from zoo.cli import add_cfg_options, run_cli  # noqa: E402


def parse_args(argv: list[str] | None = None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('config', help='config file, e.g. configs/resnet50_baseline_cub.py')
    p.add_argument('--work-dir', help='where checkpoints and logs go (default: ./work_dirs/<config name>)')
    p.add_argument('--resume', nargs='?', const='auto', default=None, metavar='auto|PATH',
                   help='resume training: without a value (or "auto") from the newest checkpoint in the work dir, '
                        'or from the given checkpoint')
    p.add_argument('--amp', action='store_true', help='mixed-precision training (needs a GPU)')
    add_cfg_options(p)
    p.add_argument('--launcher', choices=['none', 'pytorch'], default='none',
                   help='job launcher: "pytorch" under torchrun')
    p.add_argument('--local-rank', '--local_rank', type=int, default=0, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    from zoo.apis.training import train

    runner = train(args.config, work_dir=args.work_dir, resume=args.resume, amp=args.amp,
                   cfg_options=args.cfg_options, launcher=args.launcher)
    from mmengine.dist import is_main_process

    if is_main_process():  # once, not once per torchrun rank
        print(f'Checkpoints and logs: {runner.work_dir}')


if __name__ == '__main__':
    run_cli(main)
