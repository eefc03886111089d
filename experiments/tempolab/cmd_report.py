"""``tempo report RUN_DIR``: regenerate tables, figures, summary and report.html from a run folder."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report",
        help="analyse a run folder into tables/, figures/, summary.json, summary.md, report.html",
        description="Analyse a run folder (reads nothing outside it) and write tables/, figures/, "
                    "summary.json, summary.md and report.html into it.\n\n"
                    "example: tempo report results/20261123-101500-leader-kill",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder results/<stamp>-<suite>/")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .analysis import build_report  # heavy imports only when the command runs

    result = build_report(args.run_dir)
    s = result.summary
    print(f"report: {result.run_dir / 'report.html'}")
    skipped = [f"{f.name} ({f.message})" for f in result.figures if f.status == "skipped"]
    if skipped:
        print("figures not applicable: " + "; ".join(skipped))
    if s.get("missing"):
        print(f"data problems: {len(s['missing'])} (listed in summary.md and report.html)")
    if result.unknown:
        print("unknown sections: " + ", ".join(sorted(result.unknown)))
    return 0
