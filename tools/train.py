#!/usr/bin/env python
"""Train a model from a config with mmengine's Runner.

    python tools/train.py configs/resnet50_baseline_cub.py [--work-dir DIR] [--resume [auto|PATH]] [--amp]
        [--cfg-options KEY=VALUE ...] [--launcher none|pytorch] [--register NAME] [--verbose]

The console shows progress bars, warnings and where things are; the full mmengine log (environment, config,
hooks, every logged iteration) is in WORK_DIR/<timestamp>/<timestamp>.log (--verbose prints it too).
--register NAME exports the trained model into the local zoo (~/.cache/xzoo, or $XZOO_CACHE) with its provenance
and model card, so that zoo.load(NAME) finds it; evaluation outputs already in the work dir go on the card.

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
    p.add_argument('--register', metavar='NAME', help='after training, export the model into the local zoo as NAME '
                   '(zoo.load(NAME) then finds it)')
    p.add_argument('--verbose', action='store_true', help="mmengine's full console output instead of progress bars")
    p.add_argument('--local-rank', '--local_rank', type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.register is not None:
        from zoo.hub.index import local_model_dir

        local_model_dir(args.register)  # a bad name fails now, not after training
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    from zoo.apis.training import train

    runner = train(args.config, work_dir=args.work_dir, resume=args.resume, amp=args.amp,
                   cfg_options=args.cfg_options, launcher=args.launcher, verbose=args.verbose)
    from mmengine.dist import is_main_process

    if is_main_process():  # once, not once per torchrun rank
        print(f'Checkpoints and logs: {runner.work_dir} (full log: {runner.logger.log_file})')
        if args.register:
            from zoo.hub.local_zoo import register_model

            entry = register_model(runner.work_dir, args.register, seed=runner.seed)
            print(f"Registered in the local zoo: {args.register} -> {os.path.dirname(entry.config)}; load it with "
                  f"zoo.load('{args.register}')")


if __name__ == '__main__':
    run_cli(main)
