#!/usr/bin/env python
"""Publish a trained model to the Hugging Face Hub: config.json + model.safetensors + model card, in one commit.

    python tools/push_to_hub.py WORK_DIR_OR_CHECKPOINT --repo-id ORG/NAME [--revision BRANCH] [--private]
        [--create-pr] [--dry-run OUT_DIR [--overwrite]] [--results metrics.json] [--explain-results results.json]
        [--comparison report.json] [--no-results] [--images a.jpg b.jpg | --figure grid.png]

The card reports the work dir's evaluation outputs (metrics.json, explain/results.json with their conventions, and
the saliency grid and curves PNGs) unless pointed elsewhere or left out. The token comes from HF_TOKEN or
`hf auth login`. --dry-run writes the folder only (no network); load it back with zoo.load('local-dir:OUT_DIR').
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from zoo.cli import run_cli  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('source', metavar='WORK_DIR_OR_CHECKPOINT',
                   help='a training work_dir (uses last_checkpoint and its config dump) or a checkpoint file; '
                        'training checkpoints are your own pickles and are trusted')
    p.add_argument('--repo-id', required=True, help='Hub repo, ORG/NAME (created if missing)')
    p.add_argument('--revision', help='branch to commit to (created from main if missing; default main)')
    p.add_argument('--private', action='store_true', help='create the repo as private')
    p.add_argument('--create-pr', action='store_true', help='open a pull request instead of committing to main')
    p.add_argument('--dry-run', metavar='OUT_DIR', help='write the export folder to OUT_DIR and stop (no network)')
    p.add_argument('--overwrite', action='store_true',
                   help='let --dry-run replace an export already in OUT_DIR (refused by default)')
    p.add_argument('--config', help='training config, when the checkpoint has no config dump next to it')
    p.add_argument('--results', nargs='+', default=[], metavar='JSON',
                   help='metrics for the card (tools/test.py --out files; default: the work dir\'s metrics.json)')
    p.add_argument('--explain-results', metavar='JSON',
                   help="explanation report for the card (default: the work dir's explain/results.json)")
    p.add_argument('--comparison', metavar='JSON',
                   help="a comparison report (tools/compare.py report.json): the card adds this model's CIs")
    p.add_argument('--no-results', action='store_true', help='leave every evaluation output off the card')
    p.add_argument('--images', nargs='+', metavar='IMAGE', help='images to draw the card\'s saliency figure from')
    p.add_argument('--figure', help='a PNG to use as the card\'s saliency figure')
    p.add_argument('--overwrite-card', action='store_true', help='replace a README.md already in the repo')
    p.add_argument('--message', help='commit message')
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from zoo.hub.publish import push_to_hub

    res = push_to_hub(args.source, args.repo_id, revision=args.revision, private=args.private,
                      create_pr=args.create_pr, dry_run=args.dry_run, config=args.config, results=args.results,
                      explain_results=args.explain_results, comparison=args.comparison,
                      evaluation=not args.no_results, figure=args.figure, example_images=args.images,
                      overwrite_card=args.overwrite_card, overwrite=args.overwrite, commit_message=args.message)
    for name in res.files:
        kept = '(kept from the repo)' if res.card_kept else '(model card)'
        print(f'{name:20s} {res.sha256.get(name, kept if name == "README.md" else "")}')
    print(f'The card reports {res.results} evaluation result(s).' + ''.join(f' {n}' for n in res.notes))
    if res.folder:
        print(f"Wrote {res.folder} (dry run, nothing pushed). Load it with zoo.load('local-dir:{res.folder}').")
        return
    print(f'Committed {res.commit_url}' + (f' (pull request {res.pr_url})' if res.pr_url else ''))
    if res.card_kept:
        print('The repo already had a README.md; it was kept (--overwrite-card replaces it).')
    print(f"Load it with zoo.load('hf-hub:{res.repo_id}@{res.commit_oid}'). Index entry for zoo.register_index:")
    print(json.dumps(res.index_entry(), indent=2))


if __name__ == '__main__':
    run_cli(main)
