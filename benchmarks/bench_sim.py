"""Simulator speed and accuracy figures.

Prints simulated node-seconds per wall second at 100 and 1,000 nodes (target of issue
12: 1,000 nodes x 1 simulated hour in < 15 s on the 2-core lab machine, with the
default 0.2 s heartbeat; not met, docs/benchmarks.md) and the skew figures at 10%
drift with 10 s rounds.  Usage::

    .venv/bin/python benchmarks/bench_sim.py            # 1,000 nodes x 3600 s (120-152 s of CPU at load 5-15)
    .venv/bin/python benchmarks/bench_sim.py --quick    # 1,000 nodes x 600 s
    .venv/bin/python benchmarks/bench_sim.py --profile  # cProfile of the 1,000-node run
"""

from __future__ import annotations

import argparse
import time

from tempod.sim import SimConfig, run


def one(label: str, sc: SimConfig) -> dict:
    t0 = time.perf_counter()
    r = run(sc)
    wall = time.perf_counter() - t0
    f = r["figures"]
    ps = f["post_sync_skew_s"]

    def us(v):
        return "-" if v is None else f"{v * 1e6:.1f}"

    print(f"{label:<34} wall {wall:7.2f} s  cpu {r['perf']['cpu_s']:7.2f} s  "
          f"{sc.nodes * sc.duration_s / wall:9.0f} node-s/wall-s  "
          f"{sc.nodes * sc.duration_s / r['perf']['cpu_s']:9.0f} node-s/cpu-s  events {r['perf']['events']}  "
          f"msgs {f['messages']:>9}  ({f['messages_per_round'] or 0:.0f}/round)  ok={r['ok']}")
    print(f"{'':<34} post-sync skew p50/p95/p99/max {us(ps['p50'])}/{us(ps['p95'])}/{us(ps['p99'])}/"
          f"{us(ps['max'])} us (n={ps['n']}), between rounds max {us(f['between_rounds_skew_max_s'])} us")
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--profile", action="store_true")
    a = ap.parse_args()
    big = SimConfig(nodes=1000, duration_s=600.0 if (a.quick or a.profile) else 3600.0, seed=1,
                    drift_ppm=100.0)
    if a.profile:
        import cProfile
        import pstats
        cProfile.runctx("run(big)", globals(), {"run": run, "big": big}, "/tmp/bench_sim.prof")
        pstats.Stats("/tmp/bench_sim.prof").sort_stats("tottime").print_stats(25)
        return
    one("10% drift, 10 s rounds, 7 nodes", SimConfig(nodes=7, duration_s=1800, seed=5, drift_ppm=100_000))
    one("10% drift, 10 s rounds, 100 nodes", SimConfig(nodes=100, duration_s=600, seed=1, drift_ppm=100_000))
    one("100 nodes x 3600 s, 100 ppm", SimConfig(nodes=100, duration_s=3600, seed=1))
    one(f"1000 nodes x {big.duration_s:.0f} s, 100 ppm", big)


if __name__ == "__main__":
    main()
