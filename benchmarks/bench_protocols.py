"""Berkeley vs Cristian vs NTP (stock chronyd) in one run: `.venv/bin/python benchmarks/bench_protocols.py` (root).

Runs the suite `experiments/tempolab/suites/protocols.yaml` (5 nodes, drift up to 200 ppm, seed 7,
SIGKILL of the master / time server / NTP server, restarted 15 s later; the three
protocols in turn on the same nodes, drift profiles and kill time) on its own lab
(`--lab`, default `pbench`, 10.87.0.0/24) through the real runner of this checkout
(`python -m tempolab.cli` with this checkout's code, so a git worktree benchmarks its
own code), or analyses a run folder given with `--run`. Prints per protocol, from `tempo compare --by-protocol`'s definitions
(experiments/tempolab/analysis/protocompare.py, docs/baselines.md): steady ("post-sync")
skew p50 / p99, max skew in the 15 s after the kill, recovery time, messages per node per
minute, CPU of the server/master and of a client. `--trials N` overrides the suite's
trial count (each protocol runs N trials). Ends with whether tempod's (Berkeley's)
post-sync skew p50 and p99 are at or below chronyd's.

Exit status: 0 when the run and the analysis worked (whatever the numbers), 1 otherwise.
Numbers are reported, never asserted. `tempo lab down --name LAB` always runs at the end.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "experiments"))

LAB, SUBNET = "pbench", "10.87.0.0/24"
ROWS = [("skew_p50_s", "post-sync (steady) skew p50", 1e6, "us"),
        ("skew_p99_s", "post-sync (steady) skew p99", 1e6, "us"),
        ("kill_max_skew_15s_s", "max skew 15 s after the kill", 1e6, "us"),
        ("recovery_s", "skew back in band after the kill", 1.0, "s"),
        ("new_master_s", "new master after the kill", 1.0, "s"),
        ("followed_again_s", "clients follow server after restart", 1.0, "s"),
        ("msgs_per_node_min", "datagrams per node per minute", 1.0, ""),
        ("cpu_server_pct", "CPU server/master (% core)", 1.0, "%"),
        ("cpu_client_pct", "CPU client mean (% core)", 1.0, "%")]


def _tempo(*args: str) -> list[str]:
    return [sys.executable, "-m", "tempolab.cli", *args]


def _env() -> dict[str, str]:
    # this checkout's packages first, whichever venv (editable install) runs the script
    paths = [str(REPO / "experiments"), str(REPO / "daemon"), os.environ.get("PYTHONPATH", "")]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in paths if p))


def _run_suite(trials: int | None, lab: str, subnet: str) -> Path:
    out = REPO / "results" / "bench-protocols"
    out.mkdir(parents=True, exist_ok=True)
    before = {p.name for p in out.iterdir()}
    cmd = _tempo("run", "protocols", "--lab", lab, "--subnet", subnet, "--out", str(out), "--quiet")
    if trials is not None:
        cmd += ["--trials", str(trials)]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=False, env=_env())
    new = sorted(p for p in out.iterdir() if p.is_dir() and p.name not in before)
    if not new:
        raise SystemExit("bench_protocols: the run produced no run folder")
    return new[-1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, help="analyse this run folder instead of running the suite")
    ap.add_argument("--trials", type=int, help="trials per protocol (default: the suite's)")
    ap.add_argument("--lab", default=LAB, help=f"lab name (default {LAB}; removed at the end)")
    ap.add_argument("--subnet", default=SUBNET, help=f"lab subnet (default {SUBNET})")
    args = ap.parse_args(argv)
    from tempolab.analysis.protocompare import NO_ELECTION, build_protocol_compare

    load0 = os.getloadavg()
    try:
        run_dir = args.run or _run_suite(args.trials, args.lab, args.subnet)
    finally:
        if args.run is None:
            subprocess.run(_tempo("lab", "down", "--name", args.lab), check=False, capture_output=True, env=_env())
    res = build_protocol_compare([run_dir], run_dir / "compare-protocols")
    load = os.getloadavg()
    print(f"run folder: {run_dir}")
    print(f"load average (1/5/15 min) at start: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}, "
          f"at end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    pt = res.per_trial
    protocols = [p for p in ("berkeley", "cristian", "ntp") if p in set(pt["protocol"])]
    print(f"{'':38}" + "".join(f"{p:>14}" for p in protocols))
    for key, label, scale, unit in ROWS:
        cells = []
        for p in protocols:
            vals = pt.loc[pt["protocol"] == p, key].dropna()
            if vals.empty and key == "new_master_s" and p in NO_ELECTION:
                cells.append("none")        # no election in this protocol, by design
            elif vals.empty and key == "followed_again_s" and p not in NO_ELECTION:
                cells.append("n/a")         # a new master took over instead
            else:
                cells.append("-" if vals.empty else f"{vals.median() * scale:.1f} {unit}".strip())
        print(f"{label:38}" + "".join(f"{c:>14}" for c in cells))
    print(f"{'trials':38}" + "".join(f"{int((pt['protocol'] == p).sum()):>14}" for p in protocols))
    if {"berkeley", "ntp"} <= set(protocols):
        for key in ("skew_p50_s", "skew_p99_s"):
            b = pt.loc[pt["protocol"] == "berkeley", key].median()
            n = pt.loc[pt["protocol"] == "ntp", key].median()
            verdict = "at or below" if b <= n else "ABOVE"
            print(f"tempod {key[:-2].replace('_', ' ')} {b * 1e6:.1f} us is {verdict} chronyd's {n * 1e6:.1f} us")
    print(f"comparison: {res.out_dir / 'protocols.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
