"""``tempo compare RUN_A RUN_B ... [--out DIR]``: several runs overlaid, with ratios to the first."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "compare",
        help="compare run folders: overlaid figures and headline numbers with ratios to the first run",
        description="Compare run folders: the report's figures overlaid (colour = run) and a table of headline "
                    "numbers with ratios to the first run.\n\n"
                    "example: tempo compare results/A results/B --out results/compare-ab\n"
                    "         tempo compare results/PROTOCOLS_RUN --by-protocol   # Berkeley vs Cristian vs NTP",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("runs", metavar="RUN_DIR", nargs="+", help="run folders; the first is the baseline")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="output folder (default: results/compare-<timestamp>/ of the project folder)")
    p.add_argument("--by-protocol", action="store_true",
                   help="group trials by protocol (berkeley, cristian, ntp) instead of by run: per-protocol "
                        "table, skew through the fault, recovery, messages, CPU (docs/baselines.md)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.by_protocol:
        import datetime as dt
        from pathlib import Path

        from .analysis.protocompare import build_protocol_compare
        from .errors import ConfigError
        from .paths import project_paths

        out = args.out or project_paths().results / f"compare-protocols-{dt.datetime.now():%Y%m%d-%H%M%S}"
        try:
            res = build_protocol_compare([Path(r) for r in args.runs], out)
        except ValueError as exc:
            raise ConfigError(str(exc), source="tempo compare") from None
        print(f"compare: {res.out_dir / 'protocols.md'}")
        return 0
    from .analysis import build_compare
    from .analysis.compare import default_out_dir
    from .paths import project_paths

    # the analysis writes where it is told; the project folder is the CLI's to choose
    result = build_compare(args.runs, args.out or default_out_dir(project_paths().results))
    print(f"compare: {result.out_dir / 'compare.html'}")
    return 0
