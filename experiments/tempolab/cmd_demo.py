"""``tempo demo``: the main job end to end on the local lab.

Creates the lab (or reuses a running one of the same size), deploys the daemon with
Ansible, runs the ``smoke`` suite, writes the report and prints where it is.  Each step
is the same code path a user runs by hand (``tempo lab up``, ``tempo deploy``,
``tempo run``, ``tempo report``), so the demo cannot drift from the real tools.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from .errors import TempoError

REPO = Path(__file__).resolve().parents[2]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="lab up, deploy, run the smoke suite, write the report",
        description=__doc__,
        epilog="example: tempo demo --nodes 3 --suite smoke",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--nodes", type=int, default=3, help="lab size (default 3)")
    p.add_argument("--suite", default="smoke", help="suite name or YAML file (default smoke)")
    p.add_argument("--down", action="store_true", help="remove the lab when done (default: leave it up for more runs)")
    p.add_argument("--quiet", action="store_true", help="plain progress lines instead of the live display")
    p.set_defaults(func=run)


def _step(title: str, argv: list[str]) -> None:
    from .cli import main as tempo_main

    print(f"==> {title}: tempo {' '.join(argv)}", flush=True)
    t0 = time.monotonic()
    rc = tempo_main(argv)
    if rc != 0:
        raise TempoError(f"step '{title}' failed (exit {rc}); see the output above")
    print(f"    {title} done in {time.monotonic() - t0:.1f} s", flush=True)


def run(args: argparse.Namespace) -> int:
    t0 = time.monotonic()
    results = REPO / "results"
    before = set(results.glob("*-*")) if results.exists() else set()
    try:
        _step("lab", ["lab", "up", "--nodes", str(args.nodes)])
        # deploy with the suite's timers and drift draws, so that the run's own deploy
        # finds nothing to change and does not restart the daemons a second time
        from .runner.deploy import deploy_vars
        from .runner.suite import load_suite

        _step("deploy", ["deploy", "-e", json.dumps(deploy_vars(load_suite(args.suite)))])
        run_argv = ["run", args.suite] + (["--quiet"] if args.quiet else [])
        _step("experiment", run_argv)
        new = sorted(p for p in results.glob("*-*") if p not in before and p.is_dir())
        if not new:
            raise TempoError("the run finished but wrote no run folder under results/")
        run_dir = new[-1]
        _step("report", ["report", str(run_dir)])
    finally:
        if args.down:
            _step("lab down", ["lab", "down"])
    report = run_dir / "report.html"
    print(f"\nTempo lab demo finished in {time.monotonic() - t0:.0f} s")
    print(f"run folder: {run_dir}")
    print(f"report:     {report}")
    return 0
