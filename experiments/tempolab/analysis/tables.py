"""Tidy pandas tables from a loaded run: samples, sweeps, rounds, failovers, cpu.

Owns every definition that turns raw records into rows (see docs/analysis.md for the
column meanings).  Pure functions of :class:`RunData` and of each other's outputs; no
file I/O, no plotting.  Definitions that matter for the headline numbers:

- a *sweep* is one pass of the observer over the nodes: samples in reference-time order,
  a new sweep starting when a node repeats or the trial changes;
- one sample per node per sweep: when the observer re-queried a node whose reply had a
  large error bound (``retry`` > 0), the answered sample with the smallest bound is
  used and the others (``superseded``) are counted but left out of every table;
- ``skew_s`` of a sample = its offset minus the median offset of the in-sync nodes
  (state LEADER or FOLLOWER, or no state reported) of the same sweep;
- event times (hardware ``hw``) become reference time through the node's drift profile
  (exact inverse of the piecewise-linear hw(t)); without a profile, or for a daemon on
  the kernel clock backend (whose ``hw`` is the clock it disciplines), through the
  observer: ``t_ref ~ clk - offset(node, t_ref)`` (error ~ the offset's change between
  two samples).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from tempod.facts import checker   # the one definition of fault -> new master / first round
from tempod.facts import history as fhistory   # the fault vocabulary and the history's record types

from .load import RunData, node_sort_key

IN_SYNC_STATES = ("LEADER", "FOLLOWER")
UNSYNCED_STATE = "UNSYNCED"   # FOLLOWER not yet corrected since its daemon started (NTP refid UNSY)
DEFAULT_ROUND_INTERVAL_S = 10.0

SAMPLE_COLUMNS = ["t_ref", "trial", "node", "offset_s", "bound_s", "rtt_s", "state", "master", "stratum",
                  "responded", "in_sync", "sweep", "skew_s"]


@dataclass
class Tables:
    samples: pd.DataFrame
    sweeps: pd.DataFrame
    rounds: pd.DataFrame
    failovers: pd.DataFrame
    cpu: pd.DataFrame
    events: pd.DataFrame
    faults: pd.DataFrame
    trials: pd.DataFrame
    round_interval_s: float
    problems: list[str] = field(default_factory=list)
    superseded: int = 0   # observer records retried over, not in ``samples``


def _num(series: pd.Series) -> pd.Series:
    return pd.to_numeric(series, errors="coerce").astype(float)


# --- trials and faults ---------------------------------------------------------------

def trials_table(run: RunData, problems: list[str]) -> pd.DataFrame:
    df = pd.DataFrame(run.trials)
    if df.empty:
        return pd.DataFrame(columns=["trial", "t_start", "t_end", "outcome", "interrupted"])
    for col in ("t_start", "t_end"):
        df[col] = _num(df[col]) if col in df else np.nan
    if "trial" not in df:
        df["trial"] = range(1, len(df) + 1)
    if "outcome" not in df:
        df["outcome"] = None
    df = df.sort_values("t_start", kind="stable").reset_index(drop=True)
    df["interrupted"] = df["t_end"].isna()
    for _, row in df[df["interrupted"]].iterrows():
        problems.append(f"trials.jsonl: trial {row['trial']} has no t_end (interrupted); it runs to its last sample")
    return df


def faults_table(run: RunData) -> pd.DataFrame:
    df = pd.DataFrame(run.faults)
    cols = ["t_ref", "trial", "kind", "phase", "targets", "detail"]
    if df.empty:
        return pd.DataFrame(columns=cols + ["t_end"])
    for c in cols:
        if c not in df:
            df[c] = None
    df["t_ref"] = _num(df["t_ref"])
    df["targets"] = df["targets"].apply(lambda v: list(v) if isinstance(v, (list, tuple)) else ([] if v is None else [v]))
    return df.sort_values("t_ref", kind="stable").reset_index(drop=True)


def fault_windows(faults: pd.DataFrame, t_last: float) -> pd.DataFrame:
    """[start, end] of each fault, paired as ``tempod.facts.history.faults_from_records``
    does (a start with the end of the same fault_id, else the next end or closing
    record of the same kind and targets); an unpaired start runs to ``t_last`` (the
    end of the data)."""
    recs = [{k: v for k, v in r.items() if not _isnan(v)} for r in faults.to_dict("records")]
    rows = [{"kind": f.kind, "targets": ",".join(f.targets), "t_start": f.start,
             "t_end": f.end if f.end is not None else t_last, "closed": f.end is not None}
            for f in fhistory.faults_from_records(recs)]
    return pd.DataFrame(rows, columns=["kind", "targets", "t_start", "t_end", "closed"])


def _isnan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)


def _trial_of(t: float, trials: pd.DataFrame) -> Any:
    if trials.empty or not math.isfinite(t):
        return None
    for _, tr in trials.iterrows():
        end = tr["t_end"] if math.isfinite(tr["t_end"]) else math.inf
        if tr["t_start"] <= t < end:
            return tr["trial"]
    return None


# --- samples and sweeps --------------------------------------------------------------

def samples_table(run: RunData, problems: list[str], best_only: bool = True) -> pd.DataFrame:
    """Observer samples; ``best_only=False`` keeps the superseded retries (for comparison)."""
    df = pd.DataFrame(run.observer)
    if df.empty:
        return pd.DataFrame(columns=SAMPLE_COLUMNS)
    if best_only:
        df = best_per_sweep(df)
    for c in ("t_ref", "trial", "node", "offset_s", "bound_s", "rtt_s", "state", "master", "stratum"):
        if c not in df:
            df[c] = None
    for c in ("t_ref", "offset_s", "bound_s", "rtt_s"):
        df[c] = _num(df[c])
    bad = df["t_ref"].isna() | df["node"].isna()
    if bad.any():
        problems.append(f"observer.jsonl: {int(bad.sum())} samples without t_ref or node were ignored")
        df = df[~bad]
    df["node"] = df["node"].astype(str)
    df = df.sort_values("t_ref", kind="stable").reset_index(drop=True)
    df["responded"] = df["offset_s"].notna()
    state = df["state"].where(df["state"].notna(), None)
    df["in_sync"] = df["responded"] & (state.isin(IN_SYNC_STATES) | state.isna())
    if "sweep" in df and df["sweep"].notna().all():
        # the observer numbers its sweeps; (trial, sweep) in time order -> 0, 1, 2, ...
        key = df["trial"].astype(str) + "/" + df["sweep"].astype(str)
        df["sweep"] = pd.factorize(key)[0].astype(np.int64)
    else:
        df["sweep"] = _detect_sweeps(df)
    med = df[df["in_sync"]].groupby("sweep")["offset_s"].median()
    df["skew_s"] = df["offset_s"] - df["sweep"].map(med)
    return df[SAMPLE_COLUMNS]


def best_per_sweep(df: pd.DataFrame) -> pd.DataFrame:
    """One raw observer record per (trial, sweep, node): the one the observer did not
    mark ``superseded`` (it keeps the answered sample with the smallest bound, see
    runner/observer.py).  Records without the field (folders written before retries
    existed, one record per node per sweep) are all kept."""
    if "superseded" not in df:
        return df
    return df[~df["superseded"].eq(True)]


def superseded_count(run: RunData) -> int:
    """Observer records retried over (``best_per_sweep`` leaves them out)."""
    return sum(1 for r in run.observer if r.get("superseded"))


def _detect_sweeps(df: pd.DataFrame) -> np.ndarray:
    """Without a recorded ``sweep``: a node seen twice, or a new trial, starts a new sweep."""
    sweep_ids = np.empty(len(df), dtype=np.int64)
    seen: set[str] = set()
    current, last_trial = 0, object()
    for i, (node, trial) in enumerate(zip(df["node"].to_numpy(), df["trial"].to_numpy())):
        if node in seen or trial != last_trial:
            if seen:
                current += 1
            seen = set()
            last_trial = trial
        seen.add(node)
        sweep_ids[i] = current
    return sweep_ids


def sweeps_table(samples: pd.DataFrame) -> pd.DataFrame:
    cols = ["sweep", "trial", "t_ref", "nodes", "in_sync", "max_skew_s", "leader"]
    if samples.empty:
        return pd.DataFrame(columns=cols)
    g = samples.groupby("sweep", sort=True)
    leaders = samples[samples["state"] == "LEADER"].groupby("sweep")["node"].agg(lambda s: ",".join(sorted(set(s), key=node_sort_key)))
    out = pd.DataFrame({
        "trial": g["trial"].first(),
        "t_ref": g["t_ref"].min(),
        "nodes": g["responded"].sum().astype(int),
        "in_sync": samples.groupby("sweep")["in_sync"].sum().astype(int),
    })
    # a sweep's skew: tempod.facts.checker.sweep_skew over its samples (the one definition)
    by_sweep: dict[Any, list[fhistory.Sample]] = {}
    for sw, t, node, off, st in zip(samples["sweep"], samples["t_ref"], samples["node"], samples["offset_s"],
                                    samples["state"]):
        by_sweep.setdefault(sw, []).append(fhistory.Sample(
            float(t), str(node), None if off is None or _isnan(off) else float(off), None,
            st if isinstance(st, str) else None))
    skew = {sw: checker.sweep_skew(g_) for sw, g_ in by_sweep.items()}
    out["max_skew_s"] = pd.Series({sw: np.nan if v is None else v for sw, v in skew.items()},
                                  dtype=float).reindex(out.index)
    out["leader"] = leaders.reindex(out.index)
    return out.reset_index()[cols]


# --- events --------------------------------------------------------------------------

def events_table(run: RunData, samples: pd.DataFrame, problems: list[str]) -> pd.DataFrame:
    """All daemon events with ``t_ref`` (and ``t_ref_source``: profile / observer / none)."""
    rows = []
    for node, evs in run.events.items():
        prof = run.profiles.get(node)
        if any(e.get("ev") == "start" and e.get("backend") == "kernel" for e in evs):
            # kernel clock mode: hw is the disciplined guest clock, not the profile's
            # (runner/facts.disciplined_kernel_clock): place it through the observer
            prof = None
        ns = samples[(samples["node"] == node) & samples["responded"]]
        obs_t, obs_off = ns["t_ref"].to_numpy(), ns["offset_s"].to_numpy()
        unmapped = 0
        for e in evs:
            hw = e.get("hw")
            clk = e.get("clk")
            t_ref, source = math.nan, "none"
            if prof is not None and isinstance(hw, (int, float)):
                t_ref, source = prof.true_at(float(hw)), "profile"
            elif isinstance(clk, (int, float)) and len(obs_t):
                # offset = clk - t_ref; two fixed-point steps converge since offsets change slowly
                guess = float(clk) - float(np.interp(float(clk), obs_t, obs_off))
                t_ref, source = float(clk) - float(np.interp(guess, obs_t, obs_off)), "observer"
            else:
                unmapped += 1
            rows.append({**e, "node": node, "t_ref": t_ref, "t_ref_source": source})
        if unmapped:
            problems.append(f"nodes/{node}/events.jsonl: {unmapped} events could not be placed in reference time")
    if not rows:
        return pd.DataFrame(columns=["ev", "node", "hw", "clk", "t_ref", "t_ref_source"])
    df = pd.DataFrame(rows)
    return df.sort_values("t_ref", kind="stable").reset_index(drop=True)


def estimate_round_interval(run: RunData, events: pd.DataFrame) -> float:
    suite = run.manifest.get("suite")
    if isinstance(suite, dict):
        for where in (suite, suite.get("timers"), suite.get("daemon")):
            v = where.get("round_interval_s") if isinstance(where, dict) else None
            if isinstance(v, (int, float)) and v > 0:
                return float(v)
    if not events.empty and "ev" in events:
        r = events[events["ev"] == "round"].sort_values("t_ref")
        gaps = r.groupby("node")["t_ref"].diff().dropna()
        if len(gaps):
            return float(gaps.median())
    return DEFAULT_ROUND_INTERVAL_S


# --- rounds --------------------------------------------------------------------------

ROUND_COLUMNS = ["round_id", "round", "trial", "master", "t_ref", "t_ref_source", "t_apply", "duration_s", "node",
                 "is_master", "in_group", "daemon_offset_s", "daemon_bound_s", "daemon_rtt_s", "correction_s",
                 "kind", "obs_pre_t_ref", "obs_pre_offset_s", "obs_pre_bound_s", "obs_post_t_ref",
                 "obs_post_offset_s", "obs_post_bound_s"]


def rounds_table(events: pd.DataFrame, samples: pd.DataFrame, trials: pd.DataFrame, window_s: float,
                 problems: list[str]) -> pd.DataFrame:
    if events.empty or "ev" not in events or not (events["ev"] == "round").any():
        return pd.DataFrame(columns=ROUND_COLUMNS)
    rev = events[events["ev"] == "round"].copy()
    rev = rev.drop_duplicates(subset=["node", "round", "hw"]) if "round" in rev else rev
    rows = []
    for rid, (_, e) in enumerate(rev.sort_values("t_ref", kind="stable").iterrows(), start=1):
        master = e.get("master") if isinstance(e.get("master"), str) else e["node"]
        dur = e.get("duration_s")
        dur = float(dur) if isinstance(dur, (int, float)) and math.isfinite(dur) else 0.0
        base = {"round_id": rid, "round": e.get("round"), "trial": _trial_of(e["t_ref"], trials), "master": master,
                "t_ref": e["t_ref"], "t_ref_source": e["t_ref_source"], "t_apply": e["t_ref"] + dur,
                "duration_s": dur}
        mc = e.get("master_correction_s")
        rows.append({**base, "node": master, "is_master": True, "in_group": True, "daemon_offset_s": 0.0,
                     "daemon_bound_s": 0.0, "daemon_rtt_s": 0.0,
                     "correction_s": float(mc) if isinstance(mc, (int, float)) else np.nan, "kind": "master"})
        followers = e.get("followers")
        if not isinstance(followers, list):
            problems.append(f"round {e.get('round')} of {master}: no followers list")
            continue
        for f in followers:
            if not isinstance(f, dict) or "name" not in f:
                continue
            rows.append({**base, "node": str(f["name"]), "is_master": False, "in_group": bool(f.get("in_group", True)),
                         "daemon_offset_s": f.get("offset_s"), "daemon_bound_s": f.get("bound_s"),
                         "daemon_rtt_s": f.get("rtt_s"), "correction_s": f.get("correction_s"), "kind": f.get("kind")})
    df = pd.DataFrame(rows)
    for c in ("daemon_offset_s", "daemon_bound_s", "daemon_rtt_s", "correction_s", "t_ref", "t_apply"):
        df[c] = _num(df[c])
    # not UNSYNCED samples: a node's raw clock before its first correction since its
    # daemon started is not the group's time and must not count in pre/post skews
    usable = samples["responded"] & (samples["state"].astype("string") != UNSYNCED_STATE).fillna(True)
    obs = samples[usable][["t_ref", "node", "offset_s", "bound_s"]].sort_values("t_ref")
    obs = obs.assign(node=obs["node"].astype(str))
    df = df.assign(node=df["node"].astype(str))
    # nearest observer sample before the round started and after its corrections landed
    have_t = df["t_ref"].notna()
    pre_in = df[have_t].sort_values("t_ref")
    pre = pd.merge_asof(pre_in, obs.rename(columns={"t_ref": "obs_pre_t_ref", "offset_s": "obs_pre_offset_s",
                                                    "bound_s": "obs_pre_bound_s"}),
                        left_on="t_ref", right_on="obs_pre_t_ref", by="node", direction="backward",
                        tolerance=window_s)
    post_in = pre.sort_values("t_apply")
    post = pd.merge_asof(post_in, obs.rename(columns={"t_ref": "obs_post_t_ref", "offset_s": "obs_post_offset_s",
                                                      "bound_s": "obs_post_bound_s"}),
                         left_on="t_apply", right_on="obs_post_t_ref", by="node", direction="forward",
                         tolerance=window_s)
    out = pd.concat([post, df[~have_t]], ignore_index=True)
    for c in ROUND_COLUMNS:
        if c not in out:
            out[c] = np.nan
    out = out.sort_values(["round_id", "is_master", "node"], ascending=[True, False, True], kind="stable")
    return out[ROUND_COLUMNS].reset_index(drop=True)


def annotate_sweeps(sweeps: pd.DataFrame, rounds: pd.DataFrame) -> pd.DataFrame:
    """Add the time since the last round's corrections landed, and that round's master."""
    sw = sweeps.copy()
    if rounds.empty or sw.empty:
        sw["since_round_s"] = np.nan
        sw["round_master"] = None
        return sw
    r = rounds.drop_duplicates("round_id")[["t_apply", "master"]].dropna(subset=["t_apply"]).sort_values("t_apply")
    merged = pd.merge_asof(sw.sort_values("t_ref"), r.rename(columns={"master": "round_master"}),
                           left_on="t_ref", right_on="t_apply", direction="backward")
    merged["since_round_s"] = merged["t_ref"] - merged["t_apply"]
    return merged.drop(columns=["t_apply"]).sort_values("sweep").reset_index(drop=True)


# --- failovers ---------------------------------------------------------------------

FAILOVER_COLUMNS = ["trial", "kind", "target", "fault_t", "detect_t", "new_master", "new_master_t", "first_round_t",
                    "detect_s", "new_master_s", "first_round_s", "obs_new_master_t", "obs_new_master_s",
                    "log_new_master_t", "log_first_round_t", "source", "consistent"]


def _history(ev: pd.DataFrame) -> tuple[list[fhistory.StateChange], list[fhistory.RoundDone]]:
    """The events table as the facts' history (state changes, rounds)."""
    if ev.empty:
        return [], []
    cols = [c for c in ("ev", "node", "t_ref", "from", "to", "master") if c in ev]
    return fhistory.events_from_rows(ev[cols].to_dict("records"))


def failovers_table(trials: pd.DataFrame, faults: pd.DataFrame, events: pd.DataFrame, samples: pd.DataFrame,
                    sweep_interval_s: float, problems: list[str]) -> pd.DataFrame:
    """One row per master kill/stop: from trials.jsonl facts, filled in and cross-checked
    from the daemon logs and the observer."""
    rows: list[dict[str, Any]] = []
    seen: set[tuple[Any, float]] = set()
    leaders = samples[samples["state"] == "LEADER"] if not samples.empty else samples

    def master_at(t: float) -> str | None:
        before = leaders[leaders["t_ref"] < t]
        return None if before.empty else str(before.iloc[-1]["node"])

    for _, tr in trials.iterrows():
        for key, kind in (("kill_t", "kill"), ("stop_t", "stop"), ("pause_t", "stop"), ("fault_t", None)):
            v = tr.get(key)
            if isinstance(v, (int, float)) and math.isfinite(v):
                target = next((tr[k] for k in ("killed", "paused", "target") if isinstance(tr.get(k), str)),
                              None) or master_at(float(v))
                # the fault record says what really happened (a pause may be recorded with kill_t)
                match = faults[(faults["phase"] != "end") & ((faults["t_ref"] - float(v)).abs() < 1.0)
                               & faults["targets"].apply(lambda ts, tg=target: tg in [str(x) for x in ts])]
                if not match.empty and fhistory.fault_kind(str(match.iloc[0]["kind"])) in fhistory.MASTER_FAULTS:
                    kind = fhistory.fault_kind(str(match.iloc[0]["kind"]))
                rows.append({"trial": tr["trial"], "kind": kind or tr.get("fault_kind") or "fault", "fault_t": float(v),
                             "target": target, "detect_t": tr.get("detect_t"), "new_master": tr.get("new_master"),
                             "new_master_t": tr.get("new_master_t"), "first_round_t": tr.get("first_round_t"),
                             "source": "trials.jsonl"})
                seen.add((tr["trial"], round(float(v), 3)))
                break
    for _, f in faults.iterrows():
        kind = fhistory.fault_kind(str(f["kind"]))
        kind = kind if kind in fhistory.MASTER_FAULTS else None
        if not isinstance(f["t_ref"], float):
            continue
        if kind is None or f["phase"] == "end" or not math.isfinite(f["t_ref"]):
            continue
        if any(tr == f["trial"] and abs(t - f["t_ref"]) < 1.0 for tr, t in seen):
            continue
        m = master_at(f["t_ref"])
        if m is None or m not in [str(x) for x in f["targets"]]:
            continue  # only faults that hit the master cause a failover
        rows.append({"trial": f["trial"], "kind": kind, "fault_t": f["t_ref"], "target": m, "detect_t": None,
                     "new_master": None, "new_master_t": None, "first_round_t": None, "source": "faults.jsonl"})
    if not rows:
        return pd.DataFrame(columns=FAILOVER_COLUMNS)
    ev = events if not events.empty else pd.DataFrame(columns=["ev", "node", "t_ref", "to", "phase", "master"])
    for c in ("to", "phase", "master"):
        if c not in ev:
            ev = ev.assign(**{c: None})
    changes, rounds = _history(ev)
    for row in rows:
        for k in ("detect_t", "new_master", "new_master_t", "first_round_t"):
            if row[k] is not None and (_isnan(row[k]) or row[k] is pd.NA):
                row[k] = None
        t0, target = row["fault_t"], row["target"]
        # fault -> new master / first round: the one definition (tempod.facts.checker)
        log_fo = checker.failover(changes, rounds, t0, target)
        log_nm = log_fo.new_master
        nm = row["new_master"] or log_nm
        log_round = (log_fo.first_round_t if nm == log_nm
                     else checker.first_round(rounds, nm, t0) if nm else None)
        row["log_new_master_t"] = log_fo.new_master_t if log_fo.new_master_t is not None else np.nan
        row["log_first_round_t"] = log_round if log_round is not None else np.nan
        if row["detect_t"] is None:
            row["detect_t"] = checker.detected(changes, t0, target)
        if row["new_master_t"] is None:
            row["new_master_t"] = row["log_new_master_t"]
        if row["first_round_t"] is None:
            row["first_round_t"] = row["log_first_round_t"]
        row["new_master"] = nm
        obs = samples[(samples["t_ref"] > t0) & (samples["state"] == "LEADER") & (samples["node"] != target)]
        if nm:
            obs = obs[obs["node"] == nm]
        row["obs_new_master_t"] = float(obs["t_ref"].iloc[0]) if not obs.empty else np.nan
    df = pd.DataFrame(rows)
    for c in ("fault_t", "detect_t", "new_master_t", "first_round_t", "obs_new_master_t", "log_new_master_t",
              "log_first_round_t"):
        df[c] = _num(df[c])
    df["detect_s"] = df["detect_t"] - df["fault_t"]
    df["new_master_s"] = df["new_master_t"] - df["fault_t"]
    df["first_round_s"] = df["first_round_t"] - df["fault_t"]
    df["obs_new_master_s"] = df["obs_new_master_t"] - df["fault_t"]
    # consistent: the observer saw the new master no earlier than it was elected and
    # within one sweep period (+ its own spread) after
    lag = df["obs_new_master_t"] - df["new_master_t"]
    df["consistent"] = (lag >= -1e-3) & (lag <= sweep_interval_s * 1.5 + 1e-3)
    for _, r in df[~df["consistent"]].iterrows():
        if math.isnan(r["new_master_s"]):
            problems.append(f"failover in trial {r['trial']} at t_ref {r['fault_t']:.3f}: no new master recorded"
                            + (f"; the observer saw one {r['obs_new_master_s']:.3f} s after the fault"
                               if math.isfinite(r["obs_new_master_s"]) else ""))
        else:
            problems.append(
                f"failover in trial {r['trial']}: observer saw the new master at {r['obs_new_master_s']:.3f} s "
                f"after the fault, the record says {r['new_master_s']:.3f} s")
    return df[FAILOVER_COLUMNS]


# --- cpu ---------------------------------------------------------------------------

ROLE_NAMES = {"LEADER": "master", "MASTER": "master", "FOLLOWER": "follower", "SLAVE": "follower"}


def normalise_role(role: Any) -> str:
    """The sampler records the node's election state (or a role name): LEADER -> master,
    FOLLOWER -> follower, other states lower-cased (candidate, unreachable, ...)."""
    if not isinstance(role, str) or not role:
        return "unknown"
    return ROLE_NAMES.get(role.upper(), role.lower())


CPU_COLUMNS = ["t_ref", "trial", "node", "pid", "role", "source", "resolution", "cpu_s", "dt_s", "cpu_pct"]


def _cpu_seconds(df: pd.DataFrame, ns_col: str) -> tuple[pd.Series, pd.Series]:
    """CPU seconds per record: the ns counter where recorded, else utime + stime (ticks)."""
    ticks = _num(df["utime_s"]) + _num(df["stime_s"]) if "utime_s" in df else pd.Series(np.nan, index=df.index)
    ns = _num(df[ns_col]) * 1e-9 if ns_col in df else pd.Series(np.nan, index=df.index)
    return ns.where(ns.notna(), ticks), pd.Series(np.where(ns.notna(), "ns", "tick"), index=df.index)


def cpu_table(run: RunData, events: pd.DataFrame, samples: pd.DataFrame, problems: list[str]) -> pd.DataFrame:
    """Percent of one core over each interval between successive samples of one pid.

    Three sources: ``proc`` (the runner's sampler: schedstat on-CPU ns, or /proc stat
    ticks in folders written before it), ``daemon`` (the daemon's own ``cpu`` events:
    CLOCK_PROCESS_CPUTIME_ID ns, or os.times() ticks; placed in reference time as above;
    its role is the node's observed state at that moment) and ``baseline`` (the
    sampler's reading of the node's PID 1, idle between SSH connections; role
    ``baseline``).  ``resolution`` says which counter (``ns`` or ``tick``).  A counter that
    goes down (new process with the same pid) starts a new series instead of giving a
    negative percent.
    """
    frames = []
    proc = pd.DataFrame(run.cpu)
    if not proc.empty:
        for c in ("t_ref", "trial", "node", "pid", "utime_s", "stime_s", "role"):
            if c not in proc:
                proc[c] = None
        proc["t_ref"] = _num(proc["t_ref"])
        proc["cpu_s"], proc["resolution"] = _cpu_seconds(proc, "cpu_ns")
        proc["role"] = proc["role"].map(normalise_role)
        proc["source"] = "proc"
        frames.append(proc[["t_ref", "trial", "node", "pid", "role", "source", "resolution", "cpu_s"]])
        if "base_cpu_ns" in proc and proc["base_cpu_ns"].notna().any():
            b = proc.dropna(subset=["base_cpu_ns"]).copy()
            b["cpu_s"] = _num(b["base_cpu_ns"]) * 1e-9
            b["pid"], b["role"], b["source"], b["resolution"] = 1, "baseline", "baseline", "ns"
            frames.append(b[["t_ref", "trial", "node", "pid", "role", "source", "resolution", "cpu_s"]])
    if not events.empty and "ev" in events and (events["ev"] == "cpu").any():
        d = events[events["ev"] == "cpu"].copy()
        for c in ("utime_s", "stime_s"):
            if c not in d:
                d[c] = np.nan
        d["cpu_s"], d["resolution"] = _cpu_seconds(d, "cpu_ns")
        # pid: the last `start` event of that node before the cpu event
        starts = events[events["ev"] == "start"][["node", "t_ref", "pid"]].dropna(subset=["t_ref"]).sort_values("t_ref")
        d = d.drop(columns=[c for c in ("pid",) if c in d]).sort_values("t_ref")
        d = pd.merge_asof(d, starts.rename(columns={"t_ref": "start_t"}), left_on="t_ref", right_on="start_t",
                          by="node", direction="backward")
        st = samples[samples["responded"]][["t_ref", "node", "state"]].sort_values("t_ref")
        d = pd.merge_asof(d.sort_values("t_ref"), st.rename(columns={"t_ref": "st_t"}), left_on="t_ref",
                          right_on="st_t", by="node", direction="backward", suffixes=("", "_obs"))
        state_col = "state_obs" if "state_obs" in d else "state"
        d["role"] = np.where(d[state_col] == "LEADER", "master", "follower")
        d["trial"] = d.get("trial")
        d["source"] = "daemon"
        if len(samples):
            # the daemon reports from its start (deployment): keep what the run observed,
            # from one report before the first observer sample
            first = float(samples["t_ref"].min())
            before = d[d["t_ref"] < first].groupby("node")["t_ref"].max()
            keep_from = d["node"].map(before).fillna(-np.inf)
            d = d[d["t_ref"] >= keep_from]
        frames.append(d[["t_ref", "trial", "node", "pid", "role", "source", "resolution", "cpu_s"]])
    if not frames:
        return pd.DataFrame(columns=CPU_COLUMNS)
    df = pd.concat(frames, ignore_index=True)
    df["node"] = df["node"].astype(str)
    df = df.dropna(subset=["t_ref"]).sort_values(["source", "node", "pid", "t_ref"], kind="stable")
    grp = df.groupby(["source", "node", "pid"], dropna=False, sort=False)
    dcpu = grp["cpu_s"].diff()
    dt = grp["t_ref"].diff()
    df["dt_s"] = dt
    pct = dcpu / dt * 100.0
    pct[(dcpu < 0) | (dt <= 0)] = np.nan
    df["cpu_pct"] = pct
    neg = int((dcpu < 0).sum())
    if neg:
        problems.append(f"cpu: {neg} counter decreases (process replaced under one pid) were not counted")
    return df[CPU_COLUMNS].reset_index(drop=True)


# --- all --------------------------------------------------------------------------

Guard = Callable[[str, Callable[[], Any], Any], Any]


def _unguarded(name: str, fn: Callable[[], Any], fallback: Any) -> Any:
    return fn()


def build_tables(run: RunData, guard: Guard = _unguarded) -> Tables:
    """Build every table.  ``guard(name, fn, fallback)`` lets the report turn a crash
    of one step into an "unknown" section and carry on with an empty fallback."""
    problems: list[str] = []
    empty = pd.DataFrame
    trials = guard("trials", lambda: trials_table(run, problems), empty(columns=["trial", "t_start", "t_end"]))
    faults = guard("faults", lambda: faults_table(run), empty(columns=["t_ref", "trial", "kind", "phase", "targets"]))
    samples = guard("samples", lambda: samples_table(run, problems), empty(columns=SAMPLE_COLUMNS))
    sweeps = guard("sweeps", lambda: sweeps_table(samples), empty(columns=["sweep", "trial", "t_ref", "max_skew_s"]))
    events = guard("events", lambda: events_table(run, samples, problems), empty(columns=["ev", "node", "t_ref"]))
    interval = guard("round_interval", lambda: estimate_round_interval(run, events), DEFAULT_ROUND_INTERVAL_S)
    rounds = guard("rounds", lambda: rounds_table(events, samples, trials, interval / 2, problems),
                   empty(columns=ROUND_COLUMNS))
    sweeps = guard("sweeps", lambda: annotate_sweeps(sweeps, rounds),
                   sweeps.assign(since_round_s=np.nan, round_master=None))
    sweep_period = float(sweeps["t_ref"].diff().median()) if len(sweeps) > 1 else 1.0
    failovers = guard("failovers", lambda: failovers_table(trials, faults, events, samples, sweep_period, problems),
                      empty(columns=FAILOVER_COLUMNS))
    cpu = guard("cpu", lambda: cpu_table(run, events, samples, problems), empty(columns=CPU_COLUMNS))
    return Tables(samples=samples, sweeps=sweeps, rounds=rounds, failovers=failovers, cpu=cpu, events=events,
                  faults=faults, trials=trials, round_interval_s=interval, problems=problems,
                  superseded=superseded_count(run))
