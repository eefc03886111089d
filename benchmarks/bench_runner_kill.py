#!/usr/bin/env python3
"""Kill ``tempo run`` at seeded random moments and check it never loses data or leaves faults.

On a lab (default ``hard``, 10.82.0.0/24, brought up and deployed here and taken down at
the end unless ``--keep``), run a short suite with a partition and a pause (SIGSTOP of a
follower) ``--kills`` times; each time send SIGKILL (every ``--sigint-every``-th time
SIGINT) to the ``tempo run`` process at a random moment drawn from ``--seed``: mostly
0-8 s after the first fault went in, sometimes 3-15 s after launch. After each kill and
the dead-man margin, check (tempolab.testing.killkit): every JSON-lines file parses except at
most a torn last line, no stream has fewer records than were on disk just before the
kill, no ``inet tempo_fault`` table on any node, no daemon stopped, every daemon running.
Prints one row per kill and exits 1 if any kill failed a check.

    sudo .venv/bin/python benchmarks/bench_runner_kill.py --kills 10 --seed 1
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tempolab.testing.killkit import KillResult, kill_once, write_suite
from tempolab.testing.labkit import deployed_lab, lab_suite, wait_one_master

FAULTS = [{"kind": "partition", "at_s": [0.5, 1.5], "duration_s": 6},
          {"kind": "stop", "at_s": [1.0, 2.0], "duration_s": 5, "targets": "random_follower"}]


def plan(kills: int, seed: int, sigint_every: int) -> list[tuple[signal.Signals, str, float]]:
    rng = random.Random(seed)
    out = []
    for k in range(1, kills + 1):
        sig = signal.SIGINT if sigint_every and k % sigint_every == 0 else signal.SIGKILL
        if rng.random() < 0.25:
            out.append((sig, "launch", round(rng.uniform(3.0, 15.0), 2)))
        else:
            out.append((sig, "fault", round(rng.uniform(0.0, 8.0), 2)))
    return out


def table(results: list[KillResult]) -> Table:
    t = Table(title="tempo run killed at random moments")
    for col in ("#", "signal", "moment", "since launch s", "faults active", "observer before->after",
                "streams kept", "torn last", "bad lines", "tables left", "stopped", "not running", "rc", "ok"):
        t.add_column(col)
    for r in results:
        obs = f"{r.before.get('observer.jsonl', 0)}->{r.after.get('observer.jsonl', 0)}"
        t.add_row(str(r.n), r.sig, f"{r.anchor}+{r.at_s:.2f}s", f"{r.t_since_launch_s:.1f}",
                  str(r.active_faults), obs, "yes" if not r.lost else f"NO {r.lost}",
                  str(len(r.torn)), str(len(r.bad_files)), ",".join(r.tables_left) or "-",
                  ",".join(r.stopped) or "-", ",".join(r.not_running) or "-", str(r.rc),
                  "ok" if r.ok else "FAIL " + "; ".join(r.notes))
    return t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--sigint-every", type=int, default=4, help="every k-th kill is a SIGINT (0: never)")
    ap.add_argument("--lab", default="hard")
    ap.add_argument("--subnet", default="10.82.0.0/24")
    args = ap.parse_args(argv)
    console = Console(width=170)  # the table is wide; keep it whole in logs and pipes
    moments = plan(args.kills, args.seed, args.sigint_every)
    _s, raw = lab_suite(args.lab, args.subnet, "kill-bench", trials=1, warm_up_s=2, trial_duration_s=10,
                        faults=FAULTS)
    max_fault_s = max(f["at_s"][1] + f["duration_s"] for f in FAULTS)
    results: list[KillResult] = []
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-kill-") as tmp:
        work = Path(tmp)
        suite_path = write_suite(raw, work / "kill-bench.yaml")
        with deployed_lab(args.lab, args.subnet, work) as lab:
            console.print(f"lab {args.lab} deployed in {time.monotonic() - t0:.0f} s; {args.kills} kills, seed {args.seed}")
            for k, (sig, anchor, at_s) in enumerate(moments, 1):
                r = kill_once(k, lab, suite_path, work / "out", sig=sig, anchor=anchor, at_s=at_s,
                              max_fault_s=max_fault_s)
                results.append(r)
                console.print(f"kill {k}: {r.sig} at {anchor}+{at_s:.2f} s -> {'ok' if r.ok else 'FAIL'}"
                              + (f" ({'; '.join(r.notes)})" if r.notes else ""))
                try:
                    wait_one_master(lab, timeout_s=60)  # the next run starts from a healthy group
                except AssertionError as exc:
                    console.print(f"  not healthy after kill {k}: {exc}")
    console.print(table(results))
    n_ok = sum(r.ok for r in results)
    during = sum(r.active_faults > 0 for r in results)
    console.print(f"{n_ok}/{len(results)} kills clean; {during} landed while a fault was in place; "
                  f"torn last lines seen: {sum(len(r.torn) for r in results)}; "
                  f"total {time.monotonic() - t0:.0f} s")
    return 0 if n_ok == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
