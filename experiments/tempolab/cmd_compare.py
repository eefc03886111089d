"""``tempo compare RUN_A RUN_B ... [--out DIR]``: several runs overlaid, with ratios to the first."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "compare",
        help="compare run folders: overlaid figures and headline numbers with ratios to the first run",
        description="Compare run folders: the report's figures overlaid (colour = run) and a table of headline "
                    "numbers with ratios to the first run.\n\n"
                    "example: tempo compare results/A results/B --out results/compare-ab",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("runs", metavar="RUN_DIR", nargs="+", help="run folders; the first is the baseline")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="output folder (default: results/compare-<timestamp>/)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .analysis import build_compare

    result = build_compare(args.runs, args.out)
    print(f"compare: {result.out_dir / 'compare.html'}")
    return 0
