"""Headline numbers from the tidy tables (pure functions, no I/O, no plotting).

Owns the definitions written in docs/analysis.md "Headline numbers": per-round
post-sync skew, the per-round bound and "within bound", between-round skew, failover
durations, CPU per role, observer error bound, per-trial drift level and cluster size.
Percentiles are numpy's default (linear interpolation between order statistics).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from tempod.facts import checker   # the round bound, its exception classes, "between rounds"
from tempod.facts.checker import EXCEPTION_CAUSES, SLEW_MAX_PPM, STEP_THRESHOLD_S

from .load import RunData
from .tables import UNSYNCED_STATE, Tables

DRIFT_FIELDS = ("drift_ppm", "max_drift_ppm", "rate_ppm")
SIZE_FIELDS = ("cluster_size", "n_nodes", "nodes")


def stats(values: Any, pcts: tuple[int, ...] = (50, 95, 99)) -> dict[str, float | int | None]:
    arr = pd.to_numeric(pd.Series(values, dtype=float), errors="coerce").dropna().to_numpy()
    out: dict[str, float | int | None] = {"n": int(arr.size)}
    for p in pcts:
        out[f"p{p}"] = float(np.percentile(arr, p)) if arr.size else None
    out["max"] = float(arr.max()) if arr.size else None
    out["mean"] = float(arr.mean()) if arr.size else None
    return out


def max_drift_ppm(run: RunData) -> float:
    """rho in ppm: the largest |rate| any node's profile reaches (NaN when unknown)."""
    if run.profiles:
        return max(p.max_abs_rate_ppm() for p in run.profiles.values())
    suite = run.manifest.get("suite")
    if isinstance(suite, dict):
        for key in ("max_drift_ppm", "drift_ppm"):
            if isinstance(suite.get(key), (int, float)):
                return abs(float(suite[key]))
    return math.nan


def clock_params(manifest: dict[str, Any]) -> tuple[float, float]:
    """(slew_max_ppm, step_threshold_s) of the run's daemons."""
    suite = manifest.get("suite") if isinstance(manifest, dict) else None
    d = suite.get("daemon") if isinstance(suite, dict) else None
    slew = d.get("slew_max_ppm") if isinstance(d, dict) else None
    step = d.get("step_threshold_s") if isinstance(d, dict) else None
    return (float(slew) if isinstance(slew, (int, float)) else SLEW_MAX_PPM,
            float(step) if isinstance(step, (int, float)) else STEP_THRESHOLD_S)


def round_summary(rounds: pd.DataFrame, rho_ppm: float, slew_max_ppm: float = SLEW_MAX_PPM,
                  step_threshold_s: float = STEP_THRESHOLD_S, obs_bound_median_s: float | None = None,
                  interval_s: float | None = None) -> pd.DataFrame:
    """One row per round: its observed pre/post skew, the bound the post skew should
    respect, ``within_bound`` and the ``exception`` class of a round over it, by
    ``tempod.facts.checker.round_check`` (the definition, docs/analysis.md);
    ``landed_bound_s`` is the bound without the slew term."""
    cols = ["round_id", "round", "trial", "master", "t_ref", "nodes", "pre_skew_s", "post_skew_s",
            "landed_bound_s", "slew_remaining_s", "bound_s", "within_bound", "exception"]
    if rounds.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for rid, g in rounds.groupby("round_id", sort=True):
        members = [checker.RoundMember(k, c, db, pre, po, pb, lag) for k, c, db, pre, po, pb, lag in zip(
            g["kind"], g["correction_s"], g["daemon_bound_s"], g["obs_pre_offset_s"], g["obs_post_offset_s"],
            g["obs_post_bound_s"], g["obs_post_t_ref"] - g["t_apply"])]
        rc = checker.round_check(members, rho_ppm, slew_max_ppm, step_threshold_s, obs_bound_median_s, interval_s)
        first = g.iloc[0]
        rows.append({"round_id": rid, "round": first["round"], "trial": first["trial"], "master": first["master"],
                     "t_ref": first["t_ref"], "nodes": int(len(g)), "pre_skew_s": rc.pre_skew_s,
                     "post_skew_s": rc.post_skew_s, "landed_bound_s": rc.landed_bound_s,
                     "slew_remaining_s": rc.slew_remaining_s, "bound_s": rc.bound_s,
                     "within_bound": rc.within.valid if isinstance(rc.within.valid, bool) else None,
                     "exception": rc.exception})
    return pd.DataFrame(rows, columns=cols)


def run_round_summary(run: RunData, t: Tables) -> pd.DataFrame:
    """round_summary with the run's own clock parameters, observer median and interval."""
    slew, step = clock_params(run.manifest)
    b = t.samples["bound_s"].dropna() if len(t.samples) else pd.Series(dtype=float)
    return round_summary(t.rounds, max_drift_ppm(run), slew, step,
                         float(b.median()) if len(b) else None, t.round_interval_s)


def bound_exceptions(rs: pd.DataFrame) -> dict[str, Any]:
    """Rounds over the bound, per class with its stated cause."""
    ex = rs[rs["within_bound"].eq(False)] if len(rs) else rs
    out = {}
    for cls, g in ex.groupby("exception"):
        out[str(cls)] = {"rounds": int(len(g)), "round_ids": [int(v) for v in g["round_id"]],
                         "max_post_skew_s": float(g["post_skew_s"].max()), "cause": EXCEPTION_CAUSES.get(str(cls), "")}
    return out


def between_round_sweeps(sweeps: pd.DataFrame, interval_s: float) -> pd.DataFrame:
    """Sweeps while a master keeps its regular rounds (``checker.between_rounds``: after
    that master's round, within 1.5 round intervals of it, that master still the single
    leader), with a skew."""
    if sweeps.empty or "since_round_s" not in sweeps:
        return sweeps.iloc[0:0]
    ok = [checker.between_rounds(float(d), interval_s, lead if isinstance(lead, str) else None,
                                 rm if isinstance(rm, str) else None)
          for d, lead, rm in zip(sweeps["since_round_s"], sweeps["leader"], sweeps["round_master"])]
    return sweeps[pd.Series(ok, index=sweeps.index, dtype=bool) & sweeps["max_skew_s"].notna()]


def trial_levels(run: RunData, t: Tables) -> pd.DataFrame:
    """Per trial: drift level (ppm), cluster size, post-sync skew p95 and between-round max."""
    rows = []
    rs = run_round_summary(run, t)
    br = between_round_sweeps(t.sweeps, t.round_interval_s)
    for _, tr in t.trials.iterrows():
        drift = next((float(tr[k]) for k in DRIFT_FIELDS if k in tr and isinstance(tr[k], (int, float))
                      and math.isfinite(tr[k])), math.nan)
        if math.isnan(drift) and run.profiles:
            mid = (tr["t_start"] + (tr["t_end"] if math.isfinite(tr["t_end"]) else tr["t_start"])) / 2
            # the largest |rate| in force mid-trial
            drift = max(abs(p.rate_at(mid)) for p in run.profiles.values())
        size = math.nan
        for k in SIZE_FIELDS:
            v = tr.get(k) if k in tr else None
            if isinstance(v, (list, tuple)):
                size = float(len(v))
                break
            if isinstance(v, (int, float)) and math.isfinite(v):
                size = float(v)
                break
        if math.isnan(size) and not t.samples.empty:
            s = t.samples[(t.samples["trial"] == tr["trial"]) & t.samples["responded"]]
            size = float(s["node"].nunique()) if len(s) else math.nan
        post = rs[rs["trial"] == tr["trial"]]["post_skew_s"].dropna()
        sw = br[br["trial"] == tr["trial"]]["max_skew_s"].dropna()
        rows.append({"trial": tr["trial"], "drift_ppm": drift, "cluster_size": size,
                     "post_skew_p95_s": float(np.percentile(post, 95)) if len(post) else math.nan,
                     "between_round_max_skew_s": float(sw.max()) if len(sw) else math.nan})
    return pd.DataFrame(rows, columns=["trial", "drift_ppm", "cluster_size", "post_skew_p95_s",
                                       "between_round_max_skew_s"])


def is_drift_sweep(run: RunData, levels: pd.DataFrame) -> bool:
    return "drift" in run.suite_name.lower() or levels["drift_ppm"].round(3).nunique() >= 2


def is_scale(run: RunData, levels: pd.DataFrame) -> bool:
    return "scale" in run.suite_name.lower() or levels["cluster_size"].nunique() >= 2


# --- headline sections; each may fail alone (the report marks it "unknown") ----------

def unsynchronized_samples(samples: pd.DataFrame) -> dict[str, Any]:
    """How many observer samples came from nodes in state UNSYNCED, and for how long.

    These samples are left out of every skew figure (their offset is a raw hardware
    clock, not the group's). ``duration_s`` per node sums its runs of consecutive
    UNSYNCED samples, each run from its first sample to the node's next sample (or,
    for a run at the end, its last sample plus the node's median sampling period).
    """
    out: dict[str, Any] = {"samples": 0, "nodes": {}, "duration_s": 0.0}
    if samples.empty or "state" not in samples:
        return out
    total = 0.0
    for node, g in samples.sort_values("t_ref", kind="stable").groupby("node", sort=True):
        uns = (g["state"].astype("string") == UNSYNCED_STATE).fillna(False).to_numpy(dtype=bool)
        if not uns.any():
            continue
        t = g["t_ref"].to_numpy(dtype=float)
        period = float(np.median(np.diff(t))) if len(t) >= 2 else 0.0
        dur = 0.0
        i = 0
        while i < len(t):
            if not uns[i]:
                i += 1
                continue
            j = i
            while j + 1 < len(t) and uns[j + 1]:
                j += 1
            end = t[j + 1] if j + 1 < len(t) else t[j] + period
            dur += end - t[i]
            i = j + 1
        out["nodes"][str(node)] = {"samples": int(uns.sum()), "duration_s": dur}
        out["samples"] += int(uns.sum())
        total += dur
    out["duration_s"] = total
    return out


def accuracy_section(run: RunData, t: Tables) -> dict[str, Any]:
    rho = max_drift_ppm(run)
    rs = run_round_summary(run, t)
    within = rs["within_bound"].dropna().astype(bool)
    landed = (rs["post_skew_s"] <= rs["landed_bound_s"])[rs["within_bound"].notna()]
    exc = bound_exceptions(rs)
    stated = sum(v["rounds"] for k, v in exc.items() if k != "unexplained")
    rest = int(within.size) - stated
    br = between_round_sweeps(t.sweeps, t.round_interval_s)
    return {
        "max_drift_ppm": rho if math.isfinite(rho) else None,
        "round_interval_s": t.round_interval_s,
        "post_sync_skew_s": stats(rs["post_skew_s"]),
        "pre_sync_skew_s": stats(rs["pre_skew_s"]),
        "between_round_max_skew_s": float(br["max_skew_s"].max()) if len(br) else None,
        # the same without sweeps in which a node's observer sample has an error bound over
        # 3x the run's median (a delayed probe: the sample, not the clock, is off by up to it)
        "between_round_clean": between_round_clean(t, br),
        "rounds_within_bound": {"within": int(within.sum()), "of": int(within.size),
                                "share": float(within.mean()) if within.size else None},
        # the bound without the slew term (every correction taken as landed at once)
        "rounds_within_landed_bound": {"within": int(landed.sum()), "of": int(landed.size),
                                       "share": float(landed.mean()) if landed.size else None},
        # rounds over the bound by class and stated cause; the share once they are set apart
        "bound_exceptions": exc,
        "rounds_within_bound_without_stated_exceptions": {
            "within": int(within.sum()), "of": rest,
            "share": float(within.sum() / rest) if rest > 0 else None},
        # left out of the skew figures above (not in_sync), reported here
        "unsynchronized": unsynchronized_samples(t.samples),
    }


def resync_times(t: Tables) -> pd.DataFrame:
    """Per restart of a killed daemon (a kill's ``end`` in faults.jsonl, or a ``restart``):
    time until the observer first saw that node answering, and until it first saw it
    in sync again (LEADER / FOLLOWER, not UNSYNCED) -- the resync after its raw clock
    came back."""
    cols = ["trial", "node", "restart_t", "answer_s", "resync_s"]
    f, s = t.faults, t.samples
    if f.empty or s.empty:
        return pd.DataFrame(columns=cols)
    # a kill's end, a restart fault's start, or an older folder's phase-less "restart" record
    # (tempod.facts.history vocabulary); a restart fault's end ("service start", a no-op) is not one
    ends = f[((f["kind"] == "kill") & (f["phase"] == "end")) | ((f["kind"] == "restart") & (f["phase"] != "end"))]
    rows = []
    for _, e in ends.iterrows():
        for node in e["targets"]:
            later = s[(s["node"] == str(node)) & (s["t_ref"] > e["t_ref"])]
            ans = later[later["responded"]]
            syn = later[later["in_sync"]]
            rows.append({"trial": e["trial"], "node": str(node), "restart_t": float(e["t_ref"]),
                         "answer_s": float(ans["t_ref"].iloc[0] - e["t_ref"]) if len(ans) else math.nan,
                         "resync_s": float(syn["t_ref"].iloc[0] - e["t_ref"]) if len(syn) else math.nan})
    return pd.DataFrame(rows, columns=cols)


def between_round_clean(t: Tables, br: pd.DataFrame) -> dict[str, Any]:
    s = t.samples
    b = s["bound_s"].dropna() if len(s) else pd.Series(dtype=float)
    if br.empty or b.empty:
        return {"max_skew_s": None, "sweeps_left_out": 0, "of": int(len(br)), "bound_limit_s": None}
    limit = 3 * float(b.median())
    worst = s[s["in_sync"]].groupby("sweep")["bound_s"].max()
    bad = br["sweep"].map(worst).fillna(0) > limit
    keep = br[~bad]
    return {"max_skew_s": float(keep["max_skew_s"].max()) if len(keep) else None,
            "sweeps_left_out": int(bad.sum()), "of": int(len(br)), "bound_limit_s": limit}


def failover_section(t: Tables) -> dict[str, Any]:
    f = t.failovers
    rs = resync_times(t)
    return {
        "resync_s": stats(rs["resync_s"], (50, 95)),
        "count": int(len(f)),
        "detect_s": stats(f["detect_s"] if len(f) else [], (50, 95)),
        "new_master_s": stats(f["new_master_s"] if len(f) else [], (50, 95)),
        "first_round_s": stats(f["first_round_s"] if len(f) else [], (50, 95)),
        "observer_new_master_s": stats(f["obs_new_master_s"] if len(f) else [], (50, 95)),
        "inconsistent": int((~f["consistent"].astype(bool)).sum()) if len(f) else 0,
    }


def per_round_us(cpu_pct: Any, interval_s: float) -> Any:
    """CPU per round in µs: percent of one core x the round interval."""
    return cpu_pct / 100.0 * interval_s * 1e6


def cpu_cross_check(cpu: pd.DataFrame) -> dict[str, Any]:
    """The runner's schedstat (outside) against the daemon's CLOCK_PROCESS_CPUTIME_ID
    (inside), per daemon process: mean % of one core of each over the span both
    counters cover (each from its own first and last reading inside it), and their
    difference.

    Only processes whose two counters are both ns-resolution are compared."""
    rows = []
    if cpu.empty:
        return {"processes": [], "median_abs_diff_pct": None, "n": 0}
    ns = cpu[cpu["resolution"] == "ns"]
    for (node, pid), d in ns[ns["source"] == "daemon"].groupby(["node", "pid"]):
        if len(d) < 2:
            continue
        p = ns[(ns["source"] == "proc") & (ns["node"] == node) & (ns["pid"] == pid)]
        if len(p) < 2:
            continue
        # the span both saw: the daemon reports from its start (deployment, before the run)
        t0 = max(float(d["t_ref"].min()), float(p["t_ref"].min()))
        t1 = min(float(d["t_ref"].max()), float(p["t_ref"].max()))
        d = d[(d["t_ref"] >= t0) & (d["t_ref"] <= t1)]
        p = p[(p["t_ref"] >= t0) & (p["t_ref"] <= t1)]
        if len(p) < 2 or len(d) < 2:
            continue

        def rate(x: pd.DataFrame) -> float:
            x = x.sort_values("t_ref")
            return float((x["cpu_s"].iloc[-1] - x["cpu_s"].iloc[0]) / (x["t_ref"].iloc[-1] - x["t_ref"].iloc[0]) * 100)
        a, b = rate(p), rate(d)
        rows.append({"node": str(node), "pid": int(pid), "proc_pct": a, "daemon_pct": b,
                     "diff_pct": a - b, "rel_diff": (a - b) / b if b > 0 else None,
                     "span_s": float(p["t_ref"].max() - p["t_ref"].min())})
    diffs = [abs(r["rel_diff"]) for r in rows if r["rel_diff"] is not None]
    return {"processes": rows, "n": len(rows),
            "median_abs_rel_diff": float(np.median(diffs)) if diffs else None,
            "max_abs_rel_diff": float(max(diffs)) if diffs else None}


def cpu_size_fit(by_size: pd.DataFrame) -> dict[str, Any] | None:
    """Least-squares line of CPU per round (µs) against the number of followers (N - 1),
    per role: the master's slope is its cost per follower per round, a follower's should
    be about zero.  None with fewer than two group sizes."""
    out: dict[str, Any] = {}
    for role, g in by_size.groupby("role"):
        g = g.dropna(subset=["us_per_round"])
        if g["cluster_size"].nunique() < 2:
            continue
        slope, icpt = np.polyfit(g["cluster_size"] - 1, g["us_per_round"], 1)
        out[str(role)] = {"per_follower_us": float(slope), "intercept_us": float(icpt),
                          "sizes": [int(v) for v in sorted(g["cluster_size"].unique())]}
    return out or None


def cpu_section(t: Tables) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for source, g in t.cpu.groupby("source"):
        # roles with no complete interval (e.g. samples only while unreachable) are left out
        out[str(source)] = {str(role): stats(gr["cpu_pct"], (50, 95)) for role, gr in g.groupby("role")
                            if gr["cpu_pct"].notna().any()}
    return out


def cpu_cost_section(t: Tables, by_size: pd.DataFrame | None) -> dict[str, Any]:
    """CPU per round (µs) per source and role, the counters' resolution, the
    outside/inside cross-check and (scale runs) the per-follower fit."""
    per_round = {}
    for source, g in t.cpu.groupby("source"):
        per_round[str(source)] = {str(role): stats(per_round_us(gr["cpu_pct"], t.round_interval_s), (50, 95))
                                  for role, gr in g.groupby("role") if gr["cpu_pct"].notna().any()}
    res = sorted(set(t.cpu["resolution"].dropna())) if len(t.cpu) and "resolution" in t.cpu else []
    return {"round_interval_s": t.round_interval_s, "us_per_round": per_round, "resolution": res,
            "cross_check": cpu_cross_check(t.cpu),
            "size_fit": cpu_size_fit(by_size) if by_size is not None and len(by_size) else None}


def observer_section(t: Tables) -> dict[str, Any]:
    s = t.samples
    b = s["bound_s"].dropna() if len(s) else pd.Series(dtype=float)
    return {
        "bound_s_median": float(b.median()) if len(b) else None,
        "bound_s_p99": float(np.percentile(b, 99)) if len(b) else None,
        "unanswered": int((~s["responded"]).sum()) if len(s) else 0,
        # re-queried samples the analysis replaced by a better one of the same sweep
        "superseded": int(getattr(t, "superseded", 0)),
    }


def counts_section(run: RunData, t: Tables) -> dict[str, Any]:
    return {
        "nodes": len(run.nodes),
        "samples": int(len(t.samples)),
        "sweeps": int(len(t.sweeps)),
        "rounds": int(t.rounds["round_id"].nunique()) if len(t.rounds) else 0,
        "trials": int(len(t.trials)),
        "failovers": int(len(t.failovers)),
        "cpu_samples": int((t.cpu["source"] == "proc").sum()) if len(t.cpu) else 0,
        "events": int(len(t.events)),
    }
