"""Large simulator seed sweep (issue #6 hardening): invariants over many seeds x fault
mixes x group sizes x drift rates x loss, on every core.

Each run is one ``tempod.sim`` simulation whose parameters are derived from its seed
(``config_for``), so any run can be replayed alone with the ``tempo sim`` command the
script prints for it.  Prints: runs, crashes, violations per invariant (with the first
violating seed, its simulated time and the replay command), failover p50/p99 (fault to
new master, and to its first round), post-sync skew p99, wall and CPU time.  Exit code
1 if any invariant failed or any run crashed.

    .venv/bin/python benchmarks/bench_sim_sweep.py                 # 2,000 seeds, all cores
    .venv/bin/python benchmarks/bench_sim_sweep.py --seeds 200 --first-seed 5000 --procs 2
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import time
import traceback

from tempod.sim import SimConfig, run

MIXES: tuple[tuple[str, ...], ...] = (
    ("kill",), ("stop",), ("partition",), ("loss",),
    ("kill", "partition"), ("stop", "partition"), ("partition", "kill"),
    ("kill", "stop"), ("loss", "kill"), ("partition", "loss"),
    ("kill", "stop", "partition", "loss"),
)
# Small groups are cheap and where elections collide most; a few large ones per cycle.
SIZES = (3, 4, 5, 6, 7, 9, 12, 16, 3, 5, 24, 32)
DRIFTS_PPM = (100.0, 1_000.0, 10_000.0, 100_000.0)
LOSSES = (0.0, 0.0, 0.05, 0.2)
JITTERS_MS = (0.05, 0.5)


def config_for(seed: int) -> SimConfig:
    """The sweep's run for ``seed``: parameters cycle with co-prime periods so that
    every combination of mix x size x drift x loss occurs."""
    faults = MIXES[seed % len(MIXES)]
    base = SimConfig(nodes=SIZES[seed % len(SIZES)], seed=seed,
                     drift_ppm=DRIFTS_PPM[(seed // 3) % len(DRIFTS_PPM)],
                     loss=LOSSES[(seed // 7) % len(LOSSES)],
                     jitter_ms=JITTERS_MS[(seed // 5) % len(JITTERS_MS)],
                     faults=faults, duration_s=1e9)
    plan = base.fault_plan(base.node_configs()[0])
    cfg0 = base.node_configs()[0]
    # Room after the last fault to settle and to run converged rounds (post-sync checks).
    end = plan[-1][0] + plan[-1][1] + base.settle_s(cfg0) + 10.0 * cfg0.round_interval_s
    return SimConfig(nodes=base.nodes, seed=seed, drift_ppm=base.drift_ppm, loss=base.loss,
                     jitter_ms=base.jitter_ms, faults=faults, duration_s=float(math.ceil(end)))


def replay_command(sc: SimConfig) -> str:
    return (f"tempo sim --nodes {sc.nodes} --duration {sc.duration_s:g} --seed {sc.seed} "
            f"--drift-ppm {sc.drift_ppm:g} --loss {sc.loss:g} --jitter-ms {sc.jitter_ms:g} "
            f"--faults {','.join(sc.faults)}")


def one(seed: int) -> dict:
    """Run seed's simulation; return only what the summary needs (small, picklable)."""
    sc = config_for(seed)
    try:
        r = run(sc)
    except Exception:   # a crash is a finding: report it with its seed, keep sweeping
        return {"seed": seed, "crash": traceback.format_exc(limit=6), "cmd": replay_command(sc)}
    f = r["figures"]
    return {"seed": seed, "cmd": replay_command(sc), "cpu_s": r["perf"]["cpu_s"],
            "violations": {k: v["first_violation"] for k, v in r["invariants"].items() if not v["ok"]},
            "checks": {k: v["checks"] for k, v in r["invariants"].items()},
            "post_p99": f["post_sync_skew_s"]["p99"], "post_max": f["post_sync_skew_s"]["max"],
            "between_max": f["between_rounds_skew_max_s"],
            "failovers": [(fo["to_new_master_s"], fo["to_first_round_s"]) for fo in f["failovers"]],
            "no_new_master": sum(1 for fo in f["failovers"] if fo["new_master"] is None)}


def _pct(vals: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in [0, 100])."""
    if not vals:
        return None
    s = sorted(vals)
    return s[max(0, min(len(s) - 1, math.ceil(q / 100.0 * len(s)) - 1))]


def _fmt(v: float | None, scale: float, unit: str) -> str:
    return "-" if v is None else f"{v * scale:.3f} {unit}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=2000, help="number of runs (default 2000)")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--procs", type=int, default=os.cpu_count() or 1, help="worker processes (default: all cores)")
    a = ap.parse_args()
    seeds = range(a.first_seed, a.first_seed + a.seeds)
    wall0 = time.perf_counter()
    with mp.Pool(a.procs) as pool:
        results = sorted(pool.imap_unordered(one, seeds, chunksize=4), key=lambda x: x["seed"])
    wall = time.perf_counter() - wall0
    crashes = [x for x in results if "crash" in x]
    ok = [x for x in results if "crash" not in x]
    print(f"sim sweep: {len(results)} runs (seeds {seeds.start}..{seeds.stop - 1}), {a.procs} processes, "
          f"wall {wall:.1f} s, CPU {sum(x['cpu_s'] for x in ok):.1f} s, "
          f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"  sizes {sorted(set(SIZES))}, drift {list(DRIFTS_PPM)} ppm, loss {sorted(set(LOSSES))}, "
          f"{len(MIXES)} fault mixes")
    print(f"  crashes: {len(crashes)}")
    for x in crashes[:3]:
        print(f"    seed {x['seed']}: {x['cmd']}\n" + "\n".join("      " + ln for ln in x["crash"].splitlines()))
    bad = False
    for inv in ("one_master", "monotonic", "stable_master", "post_sync_skew"):
        viol = [x for x in ok if inv in x["violations"]]
        checks = sum(x["checks"][inv] for x in ok)
        line = f"  {inv:<15} violations {len(viol):>4} / {len(ok)} runs  ({checks} checks)"
        if viol:
            bad = True
            v = viol[0]["violations"][inv]
            line += f"\n    first: seed {v['seed']} at t={v['t']} s: {v['detail']}\n    replay: {viol[0]['cmd']}"
            line += f"\n    all seeds: {' '.join(str(x['seed']) for x in viol[:40])}{' ...' if len(viol) > 40 else ''}"
        print(line)
    to_master = [fo[0] for x in ok for fo in x["failovers"] if fo[0] is not None]
    to_round = [fo[1] for x in ok for fo in x["failovers"] if fo[1] is not None]
    stuck = sum(x["no_new_master"] for x in ok)
    print(f"  failovers {len(to_master) + stuck}: to new master p50 {_fmt(_pct(to_master, 50), 1, 's')} "
          f"p99 {_fmt(_pct(to_master, 99), 1, 's')} max {_fmt(max(to_master, default=None), 1, 's')}; "
          f"to first round p50 {_fmt(_pct(to_round, 50), 1, 's')} p99 {_fmt(_pct(to_round, 99), 1, 's')}; "
          f"without a new master {stuck}")
    post = [x["post_p99"] for x in ok if x["post_p99"] is not None]
    print(f"  post-sync skew p99 over runs: p50 {_fmt(_pct(post, 50), 1e6, 'us')} "
          f"p99 {_fmt(_pct(post, 99), 1e6, 'us')}; worst max {_fmt(max((x['post_max'] for x in ok if x['post_max'] is not None), default=None), 1e6, 'us')}; "
          f"between rounds worst {_fmt(max((x['between_max'] for x in ok if x['between_max'] is not None), default=None), 1e6, 'us')}")
    print("FAILED" if (bad or crashes) else "OK")
    return 1 if (bad or crashes) else 0


if __name__ == "__main__":
    raise SystemExit(main())
