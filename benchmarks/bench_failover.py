"""Failover with master heartbeats: fault -> new master, and master changes without a fault.

Every figure uses the one definition of ``tempod.facts.checker`` (the first node other than
the faulted master that becomes master after the fault; its first round after that).

Parts (any combination; each prints its numbers, the command line and the load):

* ``--sim``: the simulator over many seeds, 5 nodes, SIGKILL-like (kill) and
  SIGSTOP-like (stop) faults, default timers and the ``fast`` profile, at 0, 5
  and 20 % loss: fault -> new master p50 / p99 / max.  Targets: p99 < 2 s (defaults)
  and < 0.5 s (fast) without loss.
* ``--quiet``: 1 simulated hour, 20 % loss on every datagram, no fault, defaults,
  ``--seeds`` seeds x group sizes 3 / 5 / 7: master changes (target 0, the simulator's
  ``stable_master`` invariant) and spurious candidacies per hour.
* ``--sweep``: heartbeat interval x master timeout x loss (0, 5, 20 %) -> failover
  distribution and spurious master changes / candidacies per hour; writes
  ``--out``/timers_sweep.json and the trade-off figure timers_tradeoff.png (failover
  p99 against spurious candidacies per hour, one point per setting).
* ``--lab RUN_DIR ...``: the lab's run folders of ``tempo run failover`` /
  ``failover-stop`` (trials.jsonl facts, computed by the runner with the same
  definition): p50 / p99 / max per sweep point (default timers / fast profile).

    .venv/bin/python benchmarks/bench_failover.py --sim --quiet --seeds 40
    .venv/bin/python benchmarks/bench_failover.py --sweep --seeds 10 --out results/timers-sweep
    .venv/bin/python benchmarks/bench_failover.py --lab results/*-failover results/*-failover-stop
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

from tempod.nodeconfig import PROFILES
from tempod.sim import SimConfig, run


def _pct(vals: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in [0, 100])."""
    if not vals:
        return None
    s = sorted(vals)
    return s[max(0, min(len(s) - 1, math.ceil(q / 100.0 * len(s)) - 1))]


def _f(v: float | None, unit: str = "s") -> str:
    return "-" if v is None else f"{v:.3f} {unit}"


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def _fault_run(args: tuple) -> dict:
    seed, nodes, loss, extra, faults = args
    base = SimConfig(nodes=nodes, seed=seed, loss=loss, jitter_ms=0.5, extra=extra, faults=faults,
                     duration_s=1e9, sample_skew=False)
    cfg = base.node_configs()[0]
    plan = base.fault_plan(cfg)
    end = plan[-1][0] + plan[-1][1] + base.settle_s(cfg) + 2.0 * cfg.round_interval_s + 1.0
    sc = SimConfig(nodes=nodes, seed=seed, loss=loss, jitter_ms=0.5, extra=extra, faults=faults,
                   duration_s=float(math.ceil(end)), sample_skew=False)
    r = run(sc)
    f = r["figures"]
    return {"ok": r["ok"], "violations": {k: v["first_violation"] for k, v in r["invariants"].items() if not v["ok"]},
            "failovers": [(fo["kind"], fo["to_new_master_s"], fo["to_first_round_s"]) for fo in f["failovers"]],
            "spurious_candidacies": f["spurious_candidacies"], "spurious_master_changes": f["spurious_master_changes"],
            "quiet_s": f["quiet_s"], "cpu_s": r["perf"]["cpu_s"]}


def _quiet_run(args: tuple) -> dict:
    seed, nodes, loss, extra, duration = args
    r = run(SimConfig(nodes=nodes, seed=seed, loss=loss, jitter_ms=0.5, extra=extra, duration_s=duration,
                      sample_skew=False))
    f = r["figures"]
    return {"ok": r["invariants"]["stable_master"]["ok"] and r["invariants"]["one_master"]["ok"],
            "first": r["invariants"]["stable_master"]["first_violation"],
            "spurious_candidacies": f["spurious_candidacies"], "spurious_master_changes": f["spurious_master_changes"],
            "quiet_s": f["quiet_s"], "cpu_s": r["perf"]["cpu_s"]}


def sim_part(a: argparse.Namespace, pool) -> dict:
    out = {}
    print(f"== simulator: kill + stop, 5 nodes, {a.seeds} seeds x 4 faults per setting "
          f"(load {_load()})")
    for prof in ("default", "fast"):
        for loss in (0.0, 0.05, 0.2):
            jobs = [(s, 5, loss, PROFILES[prof], ("kill", "stop") * 2) for s in range(a.seeds)]
            t0 = time.perf_counter()
            res = pool.map(_fault_run, jobs)
            row = {}
            for kind in ("kill", "stop"):
                vals = [x[1] for r in res for x in r["failovers"] if x[0] == kind and x[1] is not None]
                none = sum(1 for r in res for x in r["failovers"] if x[0] == kind and x[1] is None)
                rounds = [x[2] for r in res for x in r["failovers"] if x[0] == kind and x[2] is not None]
                row[kind] = {"n": len(vals), "no_new_master": none, "p50": _pct(vals, 50), "p99": _pct(vals, 99),
                             "max": max(vals, default=None), "first_round_p99": _pct(rounds, 99)}
                print(f"  {prof:<7} loss {loss:4.0%}  {kind:<12} n={len(vals):>4}  new master p50 "
                      f"{_f(row[kind]['p50'])}  p99 {_f(row[kind]['p99'])}  max {_f(row[kind]['max'])}  "
                      f"first round p99 {_f(row[kind]['first_round_p99'])}  without one {none}")
            bad = [r["violations"] for r in res if not r["ok"]]
            print(f"  {'':<7}            invariant violations {len(bad)}/{len(res)} runs"
                  + (f": {bad[0]}" if bad else "") + f"  ({time.perf_counter() - t0:.1f} s wall)")
            out[f"{prof}/{loss:g}"] = row
    return out


def quiet_part(a: argparse.Namespace, pool) -> dict:
    jobs = [(s, n, 0.2, {}, 3600.0) for s in range(a.seeds) for n in (3, 5, 7)]
    print(f"== simulator: 1 simulated hour, 20 % loss, no fault, default timers, {len(jobs)} runs "
          f"(seeds 0..{a.seeds - 1} x 3/5/7 nodes; load {_load()})")
    t0 = time.perf_counter()
    res = pool.map(_quiet_run, jobs)
    hours = sum(r["quiet_s"] for r in res) / 3600.0
    changes = sum(r["spurious_master_changes"] for r in res)
    cands = sum(r["spurious_candidacies"] for r in res)
    bad = [r["first"] for r in res if not r["ok"]]
    print(f"  master changes without a fault: {changes} in {hours:.1f} settled group-hours "
          f"({len(bad)} runs violating stable_master{': ' + str(bad[0]) if bad else ''})")
    print(f"  spurious candidacies (allowed, none may win): {cands} = {cands / hours:.1f} per group-hour; "
          f"CPU {sum(r['cpu_s'] for r in res):.0f} s, wall {time.perf_counter() - t0:.0f} s")
    return {"runs": len(res), "group_hours": hours, "master_changes": changes, "candidacies": cands,
            "violating_runs": len(bad)}


SWEEP_HEARTBEATS = (0.05, 0.1, 0.2, 0.5)
SWEEP_TIMEOUT_BEATS = ((3.0, 6.0), (5.0, 10.0))
SWEEP_LOSSES = (0.0, 0.05, 0.2)


def sweep_part(a: argparse.Namespace, pool) -> list[dict]:
    print(f"== timers sweep: heartbeat {list(SWEEP_HEARTBEATS)} s x timeout {list(SWEEP_TIMEOUT_BEATS)} "
          f"heartbeats x loss {list(SWEEP_LOSSES)}, 5 nodes, {a.seeds} seeds (load {_load()})")
    rows = []
    for hb in SWEEP_HEARTBEATS:
        for kmin, kmax in SWEEP_TIMEOUT_BEATS:
            extra = {"heartbeat_interval_s": hb, "master_timeout_min_s": kmin * hb, "master_timeout_max_s": kmax * hb}
            for loss in SWEEP_LOSSES:
                jobs = [(s, 5, loss, extra, ("kill", "stop") * 3) for s in range(a.seeds)]
                res = pool.map(_fault_run, jobs)
                vals = [x[1] for r in res for x in r["failovers"] if x[1] is not None]
                hours = sum(r["quiet_s"] for r in res) / 3600.0
                row = {"heartbeat_interval_s": hb, "timeout_beats": [kmin, kmax], "loss": loss,
                       "failovers": len(vals), "p50_s": _pct(vals, 50), "p99_s": _pct(vals, 99),
                       "max_s": max(vals, default=None), "quiet_hours": hours,
                       "spurious_changes_per_h": sum(r["spurious_master_changes"] for r in res) / hours if hours else None,
                       "spurious_candidacies_per_h": sum(r["spurious_candidacies"] for r in res) / hours if hours else None,
                       "violating_runs": sum(1 for r in res if not r["ok"])}
                rows.append(row)
                print(f"  hb {hb:5.2f} s  timeout {kmin:g}-{kmax:g} hb  loss {loss:4.0%}  failover p50 {_f(row['p50_s'])} "
                      f"p99 {_f(row['p99_s'])} max {_f(row['max_s'])}  spurious changes/h "
                      f"{row['spurious_changes_per_h']:.2f}  candidacies/h {row['spurious_candidacies_per_h']:.1f}  "
                      f"violations {row['violating_runs']}", flush=True)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "timers_sweep.json").write_text(json.dumps(rows, indent=1))
    _figure(rows, out / "timers_tradeoff.png")
    print(f"  wrote {out / 'timers_sweep.json'} and {out / 'timers_tradeoff.png'}")
    return rows


def _figure(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid")
    fig, axes = plt.subplots(1, len(SWEEP_LOSSES), figsize=(4.2 * len(SWEEP_LOSSES), 3.8), sharey=True)
    for ax, loss in zip(axes, SWEEP_LOSSES):
        pts = [r for r in rows if r["loss"] == loss and r["p99_s"] is not None]
        for r in pts:
            x = r["spurious_candidacies_per_h"] + 0.1    # log axis: 0 shows at 0.1
            marker = "o" if r["timeout_beats"][0] == 3.0 else "s"
            ax.scatter(x, r["p99_s"], marker=marker, s=50,
                       color=sns.color_palette()[SWEEP_HEARTBEATS.index(r["heartbeat_interval_s"])])
            ax.annotate(f"{r['heartbeat_interval_s']:g}s/{r['timeout_beats'][0]:g}-{r['timeout_beats'][1]:g}",
                        (x, r["p99_s"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
            if r["spurious_changes_per_h"]:
                ax.scatter(x, r["p99_s"], marker="x", s=90, color="red")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"loss {loss:.0%}")
        ax.set_xlabel("spurious candidacies per group-hour (+0.1)")
    axes[0].set_ylabel("fault -> new master p99 (s)")
    fig.suptitle("Heartbeat interval / master timeout (heartbeats): failover vs false alarms "
                 "(simulator, 5 nodes; o = 3-6, s = 5-10 heartbeats; red x = a spurious master change)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def lab_part(a: argparse.Namespace) -> dict:
    """Per sweep point of a lab run folder: fault -> new master / first round recomputed
    from the collected daemon logs through the analysis (``failovers_table``, which
    calls tempod.facts.checker), so folders written by an older runner get the same
    definition; the observer's first LEADER sample is shown as a cross-check."""
    from tempolab.analysis.load import load_run
    from tempolab.analysis.tables import build_tables

    out = {}
    print(f"== lab run folders (tempod.facts.checker definition, from the daemon logs), load {_load()}")
    for d in a.lab:
        p = Path(d) / "trials.jsonl"
        if not p.exists():
            print(f"  {d}: no trials.jsonl", file=sys.stderr)
            continue
        label_of = {}
        for line in p.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                point = r.get("point") or {}
                fast = point.get("daemon.heartbeat_interval_s") == PROFILES["fast"]["heartbeat_interval_s"]
                label_of[r["trial"]] = "fast" if fast else "default"
        fo = build_tables(load_run(d)).failovers
        for label in ("default", "fast"):
            rows = fo[fo["trial"].map(label_of) == label]
            if rows.empty:
                continue
            nm = [float(v) for v in (rows["log_new_master_t"] - rows["fault_t"]) if math.isfinite(v)]
            fr = [float(v) for v in (rows["log_first_round_t"] - rows["fault_t"]) if math.isfinite(v)]
            obs = [float(v) for v in rows["obs_new_master_s"] if math.isfinite(v)]
            kinds = ",".join(sorted(set(rows["kind"].astype(str))))
            print(f"  {Path(d).name} [{label}, {kinds}]: {len(rows)} failovers, new master n={len(nm)} p50 "
                  f"{_f(_pct(nm, 50))} p99 {_f(_pct(nm, 99))} max {_f(max(nm, default=None))}; first round p50 "
                  f"{_f(_pct(fr, 50))} p99 {_f(_pct(fr, 99))}; observer saw it: p99 {_f(_pct(obs, 99))}")
            out[f"{Path(d).name}/{label}"] = {"failovers": len(rows), "n": len(nm), "p50": _pct(nm, 50),
                                             "p99": _pct(nm, 99), "max": max(nm, default=None),
                                             "first_round_p99": _pct(fr, 99)}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sim", action="store_true", help="simulator failover over many seeds")
    ap.add_argument("--quiet", action="store_true", help="1 h at 20 %% loss without faults: master changes")
    ap.add_argument("--sweep", action="store_true", help="heartbeat x timeout x loss sweep + trade-off figure")
    ap.add_argument("--lab", nargs="*", default=[], metavar="RUN_DIR", help="summarize lab run folders")
    ap.add_argument("--seeds", type=int, default=40)
    ap.add_argument("--procs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", default="results/timers-sweep", help="folder for the sweep's JSON and figure")
    a = ap.parse_args()
    if not (a.sim or a.quiet or a.sweep or a.lab):
        ap.error("choose at least one of --sim, --quiet, --sweep, --lab")
    print(f"bench_failover: {' '.join(sys.argv[1:])}")
    summary: dict = {}
    if a.sim or a.quiet or a.sweep:
        with mp.Pool(a.procs) as pool:
            if a.sim:
                summary["sim"] = sim_part(a, pool)
            if a.quiet:
                summary["quiet"] = quiet_part(a, pool)
            if a.sweep:
                summary["sweep"] = sweep_part(a, pool)
    if a.lab:
        summary["lab"] = lab_part(a)
    print(f"load average after: {_load()}")
    ok = summary.get("quiet", {}).get("master_changes", 0) == 0
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
