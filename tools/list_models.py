#!/usr/bin/env python
"""List the zoo's models as a table.

    python tools/list_models.py ['lico-*'] [--pretrained] [--index my_lab/index.json]
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


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('pattern', nargs='*', default=['*'], help="fnmatch patterns, e.g. 'lico-*' (default: all)")
    p.add_argument('--pretrained', action='store_true', help='only models with published weights')
    p.add_argument('--index', nargs='+', default=[], help='also list the models of these index files')
    args = p.parse_args(argv)
    from zoo.hub.index import model_table, register_index

    for path in args.index:
        register_index(path)
    rows = model_table(args.pattern, pretrained=args.pretrained)
    if not rows:
        print('No model matches ' + ' '.join(args.pattern) + (' with published weights.' if args.pretrained
                                                              else '.'), file=sys.stderr)
        return
    print(format_table(rows))


if __name__ == '__main__':
    run_cli(main)
