#!/usr/bin/env python
"""List the zoo's models as a table: the shipped index, lab indexes, and the local zoo (models trained here).

    python tools/list_models.py ['lico-*'] [--pretrained] [--local | --no-local] [--index my_lab/index.json]

A model registered in the local zoo (`make demo`, tools/train.py --register NAME; folder ~/.cache/xzoo or
$XZOO_CACHE) shows "local" weights and, under the table, its metrics and provenance.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from zoo.cli import run_cli  # noqa: E402

COLUMNS = ('name', 'dataset', 'method', 'weights', 'top1', 'hub')


def format_table(rows: list[dict[str, str]]) -> str:
    """Rows as an aligned plain-text table with a header."""
    widths = {c: max([len(c), *(len(r[c]) for r in rows)]) for c in COLUMNS}
    lines = ['  '.join(c.ljust(widths[c]) for c in COLUMNS).rstrip()]
    lines += ['  '.join(r[c].ljust(widths[c]) for c in COLUMNS).rstrip() for r in rows]
    return '\n'.join(lines)


def local_summary(entry) -> str:
    """One line on a local model: its metrics, then how and when it was made, then its folder."""
    from zoo.hub.index import entry_metric

    shown = []
    for m in entry.metrics:
        value = m.get('value')
        if isinstance(value, (int, float)) and not str(m.get('key', '')).endswith('/seed_mean'):
            shown.append(f"{m.get('name') or m.get('key')} {value:.4g}")
    made = entry.provenance
    commit = (made.get('commit') or '')[:10] + ('+dirty' if made.get('dirty') else '')
    how = ', '.join(filter(None, [f"from {made.get('config')}" if made.get('config') else '',
                                  f"seed {made['seed']}" if made.get('seed') is not None else '',
                                  f'commit {commit}' if commit else '', str(made.get('date') or '')]))
    top1 = entry_metric(entry, 'accuracy/top1')
    results = '; '.join(shown) if shown else 'no evaluation results'
    return (f'{entry.name} (local{", top-1 " + format(top1, ".2f") if top1 is not None else ""}): {results}. '
            f'Trained {how}. Folder: {os.path.dirname(entry.config)}')


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('pattern', nargs='*', default=['*'], help="fnmatch patterns, e.g. 'lico-*' (default: all)")
    p.add_argument('--pretrained', action='store_true', help='only models with published weights')
    where = p.add_mutually_exclusive_group()
    where.add_argument('--local', action='store_true', help='only the models of the local zoo (trained here)')
    where.add_argument('--no-local', action='store_true', help='leave out the local zoo')
    p.add_argument('--index', nargs='+', default=[], help='also list the models of these index files')
    args = p.parse_args(argv)
    from zoo.hub.index import get_entry, local_entries, local_zoo_dir, model_table, register_index

    for path in args.index:
        register_index(path)
    rows = model_table(args.pattern, pretrained=args.pretrained, local=not args.no_local)
    if args.local:
        rows = [r for r in rows if r['weights'] == 'local']
    if not rows:
        what = ' with published weights' if args.pretrained else f' in the local zoo ({local_zoo_dir()})' \
            if args.local else ''
        print('No model matches ' + ' '.join(args.pattern) + what + '.', file=sys.stderr)
        return
    print(format_table(rows))
    local = local_entries()
    notes = [local_summary(get_entry(r['name'])) for r in rows if r['weights'] == 'local' and r['name'] in local]
    if notes:
        print(f'\nLocal zoo ({local_zoo_dir()}):')
        print('\n'.join(f'  {n}' for n in notes))


if __name__ == '__main__':
    run_cli(main)
