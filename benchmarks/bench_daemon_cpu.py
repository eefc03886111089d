"""CPU use of tempod (percent of one core) for the master and the followers, by group size.

For each size in ``--nodes`` starts that many real daemons (auth on, NTP responder on)
on 127.77.x.11.. with 2 s rounds (``--round``), waits until one master leads
synchronized followers, then measures each process's on-CPU time in ns from the kernel's
/proc/<pid>/task/*/schedstat over ``--duration`` seconds of steady state (clock ticks,
10 ms, are too coarse: 0.5 % steps over 2 s), and the daemon's own report
(CLOCK_PROCESS_CPUTIME_ID in ``tempoctl status --json``) over the same span as a
cross-check.  Prints one line per size, CPU per round in µs, and with two or more
sizes a least-squares line of the master's and the followers' µs per round against
N - 1 (the master's slope = its cost per follower per round; a follower's should be
~0), then a JSON summary.  ``--faketime-overhead`` also times clock reads in a child
under libfaketime, with and without FAKETIME_NO_CACHE (DESIGN.md), against no preload.  No root needed.  On loopback rather than in the lab so that 32 daemons need
no deployment; the lab's namespaces add no CPU to the daemon (the runner's CPU samples
from a lab run confirm it, docs/benchmarks.md).

    .venv/bin/python benchmarks/bench_daemon_cpu.py --nodes 5,16,32 [--duration 60] [--round 2.0]
    .venv/bin/python benchmarks/bench_daemon_cpu.py --nodes 16,32 --round 10 --heartbeat 0.05   # fast profile's heartbeats

``--heartbeat S`` sets heartbeat_interval_s (master timeout 3-6 heartbeats); without it
the role's default (0.2 s).  ``--heartbeat`` equal to ``--round`` is the closest to
"no heartbeats" (one per round, which the round's probes already cover).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path



def cpu_s(pid: int) -> float:
    """On-CPU seconds of a process from schedstat (ns, summed over its threads)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        total += int((task / "schedstat").read_text().split()[0])
    return total * 1e-9


CLOCK_READ_CHILD = r"""
import time
n = 200_000
t0 = time.perf_counter_ns()
for _ in range(n):
    time.time()
print((time.perf_counter_ns() - t0) / n)
"""


def faketime_overhead() -> dict:
    """ns per time.time() call: no preload, libfaketime (FAKETIME), + FAKETIME_NO_CACHE=1
    with a timestamp file (re-read on every call, DESIGN.md)."""
    lib = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
    tsfile = Path(tempfile.mkdtemp(prefix="bench-ft-")) / "ts"
    tsfile.write_text("+0 x1.0001\n")
    cases = {"no preload": {},
             "libfaketime": {"LD_PRELOAD": lib, "FAKETIME": "+0 x1.0001"},
             "libfaketime + FAKETIME_NO_CACHE=1 (timestamp file)": {
                 "LD_PRELOAD": lib, "FAKETIME_TIMESTAMP_FILE": str(tsfile), "FAKETIME_NO_CACHE": "1"}}
    out = {}
    for name, env in cases.items():
        if env and not Path(lib).exists():
            continue
        r = subprocess.run([sys.executable, "-c", CLOCK_READ_CHILD], env={**os.environ, **env},
                           capture_output=True, text=True, timeout=300)
        out[name] = float(r.stdout.strip()) if r.returncode == 0 else None
        print(f"time.time() {name}: {out[name]:.0f} ns per call" if out[name] else f"{name}: failed", flush=True)
    return out


def measure(size: int, args: argparse.Namespace) -> dict | None:
    """One group of ``size`` daemons: settle, then CPU over ``args.duration`` seconds."""
    root = Path(tempfile.mkdtemp(prefix=f"bench-tempod-{size}-"))
    net = f"127.77.{random.randint(1, 250)}"
    names = [f"n{i}" for i in range(1, size + 1)]
    addr = {n: f"{net}.{10 + i}" for i, n in enumerate(names, 1)}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((addr["n1"], 0))
        port = s.getsockname()[1]
    key = root / "tempo.key"
    key.write_text(os.urandom(32).hex())
    key.chmod(0o600)
    procs: dict[str, subprocess.Popen] = {}
    try:
        for n in names:
            hosts = ", ".join(f'{{ name = "{p}", address = "{addr[p]}" }}' for p in names if p != n)
            cfg = root / f"{n}.toml"
            cfg.write_text(
                f'[node]\nname = "{n}"\naddress = "{addr[n]}"\ntsp_port = {port}\nntp_port = {port + 1}\n'
                f'[peers]\nhosts = [ {hosts} ]\n[auth]\nkey_file = "{key}"\n'
                f'[timers]\nround_interval_s = {args.round}\nelection_timeout_min_s = 3.0\nelection_timeout_max_s = 6.0\n'
                + (f'heartbeat_interval_s = {args.heartbeat}\nmaster_timeout_min_s = {3 * args.heartbeat}\n'
                   f'master_timeout_max_s = {6 * args.heartbeat}\n' if args.heartbeat else '')
                + f'[log]\nevent_log = "{root / (n + ".jsonl")}"\ncpu_report_interval_s = 10.0\n')
            procs[n] = subprocess.Popen([sys.executable, "-m", "tempod.main", "--config", str(cfg)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def status(n: str) -> dict | None:
            r = subprocess.run([sys.executable, "-m", "tempod.ctl", "--config", str(root / f"{n}.toml"),
                                "status", "--json"], capture_output=True, text=True)
            return json.loads(r.stdout) if r.returncode == 0 else None

        deadline = time.monotonic() + 60 + 3 * size
        roles: dict[str, str] = {}
        while time.monotonic() < deadline:
            st = {n: status(n) for n in names}
            if all(s and s["synchronized"] for s in st.values()):
                roles = {n: s["state"] for n, s in st.items() if s}
                if list(roles.values()).count("LEADER") == 1:
                    break
            time.sleep(1.0)
        else:
            print(f"{size} nodes: the group did not settle in time", file=sys.stderr)
            return None

        master = next(n for n in names if roles[n] == "LEADER")
        probe = [master, next(n for n in names if n != master)]   # the daemon's own counter, both roles
        inside0 = {n: (status(n) or {}).get("cpu", {}).get("cpu_ns") for n in probe}
        c0 = {n: cpu_s(p.pid) for n, p in procs.items()}
        t0 = time.monotonic()
        time.sleep(args.duration)
        c1 = {n: cpu_s(p.pid) for n, p in procs.items()}
        wall = time.monotonic() - t0
        inside1 = {n: (status(n) or {}).get("cpu", {}).get("cpu_ns") for n in inside0}
        pct = {n: 100.0 * (c1[n] - c0[n]) / wall for n in names}
        followers = sorted(pct[n] for n in names if n != master)
        per_round = lambda p: p / 100.0 * args.round * 1e6  # noqa: E731 - µs of CPU per round
        cross = {n: round((inside1[n] - inside0[n]) * 1e-9 / (c1[n] - c0[n]), 3)
                 for n in inside0 if inside0[n] is not None and inside1[n] is not None and c1[n] > c0[n]}
        out = {"nodes": size, "round_interval_s": args.round, "heartbeat_interval_s": args.heartbeat or None,
               "measured_s": round(wall, 1),
               "master_pct": round(pct[master], 3),
               "follower_mean_pct": round(sum(followers) / len(followers), 3),
               "follower_max_pct": round(followers[-1], 3),
               "master_us_per_round": round(per_round(pct[master]), 1),
               "follower_us_per_round": round(per_round(sum(followers) / len(followers)), 1),
               "inside_over_outside": cross}
        print(f"{size:>3} nodes  master {out['master_pct']:6.3f} % ({out['master_us_per_round']:,.0f} µs/round)  "
              f"follower mean {out['follower_mean_pct']:6.3f} % ({out['follower_us_per_round']:,.0f} µs/round)"
              f"  max {out['follower_max_pct']:6.3f} %  (of one core, schedstat, {wall:.0f} s, {args.round:g} s rounds, "
              f"heartbeat {args.heartbeat or 'default'};"
              f" CLOCK_PROCESS_CPUTIME_ID / schedstat {cross})", flush=True)
        return out
    finally:
        for p in procs.values():
            p.send_signal(signal.SIGTERM)
        for p in procs.values():
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", default="3", help="group sizes, comma-separated (default 3; e.g. 5,16,32)")
    ap.add_argument("--duration", type=float, default=60.0, help="measured seconds per size (default 60)")
    ap.add_argument("--round", type=float, default=2.0, help="round_interval_s (default 2)")
    ap.add_argument("--heartbeat", type=float, default=0.0,
                    help="heartbeat_interval_s (default: the daemon's default)")
    ap.add_argument("--faketime-overhead", action="store_true", help="also time clock reads under libfaketime")
    args = ap.parse_args()
    sizes = [int(x) for x in args.nodes.split(",")]
    if any(n < 2 or n > 200 for n in sizes):
        ap.error("--nodes: each size must be between 2 and 200")
    print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    overhead = faketime_overhead() if args.faketime_overhead else None
    results = [measure(n, args) for n in sizes]
    fit = {}
    ok = [r for r in results if r]
    if len({r["nodes"] for r in ok}) >= 2:
        import numpy as np

        x = np.array([r["nodes"] - 1 for r in ok], dtype=float)
        for role in ("master", "follower"):
            slope, icpt = np.polyfit(x, [r[f"{role}_us_per_round"] for r in ok], 1)
            fit[role] = {"per_follower_us": round(float(slope), 1), "intercept_us": round(float(icpt), 1)}
            print(f"fit {role}: {slope:,.1f} µs per follower per round + {icpt:,.0f} µs", flush=True)
    print(json.dumps({"load_avg_1m_after": round(os.getloadavg()[0], 2), "results": results, "fit": fit,
                      "clock_read_ns": overhead}))
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
