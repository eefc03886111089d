"""``tempo demo``: the mission end to end on the local lab.

Creates the lab (or reuses a running one of the same size), deploys the daemon with
Ansible, runs the ``demo`` suite (3 drifting nodes; the master is killed with -9 and
restarted, and resynchronises), writes the report and prints its headline numbers:
pre/post-sync skew, the failover and the resync, CPU per round.  Each step is the same
code path a user runs by hand (``tempo lab up``, ``tempo deploy``, ``tempo run``,
``tempo report``), so the demo cannot drift from the real tools.  The last line says
what is still up and the command that removes it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from .errors import TempoError
from .lab.plan import DEFAULT_NAME
from .paths import project_paths


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="lab up, deploy, a leader-kill trial with drift, report with headline numbers",
        description=__doc__,
        epilog="example: tempo demo --nodes 3 --suite demo",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--nodes", type=int, default=3, help="lab size (default 3)")
    p.add_argument("--suite", default="demo", help="suite name or YAML file (default demo)")
    p.add_argument("--lab", default=DEFAULT_NAME, help=f"lab name (default {DEFAULT_NAME})")
    p.add_argument("--subnet", default=None, help="lab subnet when the lab is created (default 10.77.0.0/24)")
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


def _g(d: object, *path: str) -> object:
    for p in path:
        if not isinstance(d, dict):
            return None
        d = d.get(p)
    return d


def headline_lines(summary: dict) -> list[str]:
    """The numbers the demo is about, from summary.json."""
    from .analysis.report import fmt_s

    def trio(*path: str, keys=("p50", "p95", "max")) -> str:
        st = _g(summary, *path) or {}
        return " / ".join(fmt_s(st.get(k)) for k in keys) if isinstance(st, dict) else "n/a"

    wb = _g(summary, "accuracy", "rounds_within_bound") or {}
    lines = [
        f"pre-sync skew  p50 / p95 / max: {trio('accuracy', 'pre_sync_skew_s')}",
        f"post-sync skew p50 / p95 / max: {trio('accuracy', 'post_sync_skew_s')}"
        f"  ({wb.get('within', 0)} of {wb.get('of', 0)} rounds within the stated bound)",
        f"kill -9 master -> new master    p50 / max: {trio('failover', 'new_master_s', keys=('p50', 'max'))}",
        f"kill -9 master -> first round   p50 / max: {trio('failover', 'first_round_s', keys=('p50', 'max'))}",
        f"restart -> in sync again        p50 / max: {trio('failover', 'resync_s', keys=('p50', 'max'))}",
    ]
    pr = dict(_g(summary, "cpu_cost", "us_per_round", "proc") or {})
    pr.update(_g(summary, "cpu_cost", "us_per_round", "baseline") or {})
    if pr:
        parts = [f"{role} {pr[role]['p50']:,.0f} µs" for role in ("master", "follower", "baseline")
                 if role in pr and pr[role].get("p50") is not None]
        interval = float(_g(summary, "cpu_cost", "round_interval_s") or 0)
        lines.append(f"CPU per {interval:.3g} s round (schedstat, p50; baseline = node's idle PID 1): "
                     + ", ".join(parts))
    x = _g(summary, "cpu_cost", "cross_check") or {}
    if isinstance(x, dict) and x.get("n"):
        lines.append(f"CPU cross-check schedstat vs CLOCK_PROCESS_CPUTIME_ID: median abs. difference "
                     f"{x['median_abs_rel_diff']:.1%} over {x['n']} processes")
    return lines


def run(args: argparse.Namespace) -> int:
    t0 = time.monotonic()
    results = project_paths().results
    before = set(results.glob("*-*")) if results.exists() else set()
    run_dir: Path | None = None
    try:
        up = ["lab", "up", "--name", args.lab, "--nodes", str(args.nodes)]
        if args.subnet:
            up += ["--subnet", args.subnet]
        _step("lab", up)
        # deploy with the suite's timers and drift draws; the run then restarts the
        # deployed daemons (--no-deploy) instead of a second ansible pass (36 s here)
        from .runner.deploy import deploy_vars
        from .runner.suite import load_suite

        _step("deploy", ["deploy", "--name", args.lab, "-e", json.dumps(deploy_vars(load_suite(args.suite)))])
        run_argv = ["run", args.suite, "--lab", args.lab, "--no-deploy", "--no-still-up"] + (["--quiet"] if args.quiet else [])
        _step("experiment", run_argv)
        new = sorted(p for p in results.glob("*-*") if p not in before and p.is_dir())
        if not new:
            raise TempoError("the run finished but wrote no run folder under results/")
        run_dir = new[-1]
        _step("report", ["report", str(run_dir)])
    finally:
        if args.down:
            _step("lab down", ["lab", "down", "--name", args.lab])
    assert run_dir is not None
    report = run_dir / "report.html"
    print(f"\nTempo lab demo finished in {time.monotonic() - t0:.0f} s")
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
        for line in headline_lines(summary):
            print(f"  {line}")
    except (OSError, ValueError) as exc:
        print(f"  (no headline numbers: {exc})")
    print(f"run folder: {run_dir}")
    print(f"report:     {report}")
    from .leftovers import still_up_line

    print(still_up_line(args.lab))
    return 0
