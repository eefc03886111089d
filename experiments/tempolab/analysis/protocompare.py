"""Protocols side by side: Berkeley, Cristian and NTP (chrony) on the same nodes and faults.

Owns the protocol-neutral definitions of the comparison (docs/baselines.md) and the
figures and tables of ``tempo compare --by-protocol``. Every number comes from the run
folders' raw records as :mod:`.load` reads them (observer samples, trials, faults, CPU
samples, daemon event logs, chronyd's own logs); nothing is re-measured. Trials are
grouped by the ``protocol`` their record carries (``berkeley`` for runs older than the
protocol axis), so one run with several protocols and several runs of one protocol each
compare the same way.

Definitions (per trial; the table gives the median over a protocol's trials):

* sweep skew: max - min offset of the nodes that answered one observer sweep as LEADER
  or FOLLOWER (the killed node is out while it is down), as :func:`tempod.facts.checker.sweep_skew`.
* steady window: from the end of warm-up to the first fault (the whole trial without one).
  ``skew_p50_s`` / ``skew_p99_s``: sweep skew percentiles there (tempod's "post-sync"
  and chrony's continuous tracking measured the same way); ``interval_max_skew_s``: the
  median over windows of one round interval of the largest skew in each (the
  between-rounds skew of Berkeley, the between-polls one of the others).
* ``offset_from_true_s``: median over steady sweeps of |mean offset of the group|:
  Berkeley and Cristian follow their master's or server's drift, NTP's server too (no
  reference clock in the lab); none of them knows true time.
* ``kill_max_skew_15s_s``: the largest sweep skew in the 15 s after the first master fault.
* ``recovery_s``: from that fault to the first sweep after which the skew stays below
  max(2 x steady p99, 1 ms) to the end of the trial; 0 when it never left that band,
  None when it never came back. A skew band, not a failover time: for Cristian and NTP
  nobody replaces the server (the next two rows say what happened instead).
* ``new_master_s``: Berkeley only, from the trial record: fault to the first sweep with a
  new master. None for Cristian and NTP by design (no election; shown as "none").
* ``server_down_s`` / ``followed_again_s``: Cristian and NTP, from the trial record
  (runner/protocols.py ``server_loss``): how long the server was down (kill to restart)
  and, after its restart, how long until every client followed it again.
* ``msgs_per_node_min``: datagrams of the protocol itself (observer traffic excluded) per
  node per minute of trial: tempod's ``counters`` ``tx`` increments, chronyd's measurement
  log lines x 2 (one request, one reply; its log time is the node's corrected clock,
  within about 1 s of true time).
* ``cpu_server_pct`` / ``cpu_client_pct``: CPU of the master or time server (the node
  that was master at the trial's start) and the mean over the others, % of one core,
  from the CPU sampler's utime + stime over the trial.
"""

from __future__ import annotations

import gzip
import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from tempod.facts import checker  # noqa: E402  (a sweep's skew: the one definition)
from tempod.facts import history as fhistory  # noqa: E402

from ..runschema import existing  # noqa: E402
from .load import RunData, load_run  # noqa: E402

PROTOCOL_ORDER = ("berkeley", "cristian", "ntp")
PALETTE = {"berkeley": "#1f77b4", "cristian": "#ff7f0e", "ntp": "#2ca02c"}
AFTER_KILL_S = 15.0
RECOVERY_FLOOR_S = 1e-3
MASTER_FAULTS = ("kill", "stop")
# no election: a missing new master is the protocol's behaviour, not a missing number
NO_ELECTION = ("cristian", "ntp")
_MEAS_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) ")

METRICS = [
    ("skew_p50_s", "steady skew p50 (s)"),
    ("skew_p99_s", "steady skew p99 (s)"),
    ("interval_max_skew_s", "between-rounds/polls max skew, median (s)"),
    ("offset_from_true_s", "offset of the group from true time, median abs(mean) (s)"),
    ("kill_max_skew_15s_s", f"max skew in the {AFTER_KILL_S:g} s after the master fault (s)"),
    ("recovery_s", "skew back in band after the master fault (s; 0 = never left it)"),
    ("new_master_s", "new master elected after the fault (s)"),
    ("server_down_s", "server down, clients free-running (s)"),
    ("followed_again_s", "clients follow the server again, after its restart (s)"),
    ("msgs_per_node_min", "protocol datagrams per node per minute"),
    ("cpu_server_pct", "CPU of the master / time server (% core)"),
    ("cpu_client_pct", "CPU of a client / follower, mean (% core)"),
]


@dataclass
class TrialView:
    run: str
    trial: int
    protocol: str
    t0: float
    t_end: float
    fault_t: float | None
    fault_end_t: float | None
    killed: str | None
    master: str | None
    round_interval_s: float
    sweeps: pd.DataFrame        # t_ref, skew_s, mean_offset_s, n
    record: dict[str, Any]      # the trial's line of trials.jsonl


def _pct(vals: np.ndarray, q: float) -> float | None:
    return float(np.percentile(vals, q)) if len(vals) else None


def sweep_table(samples: list[dict[str, Any]], t0: float, t_end: float,
                down: tuple[str, float, float] | None) -> pd.DataFrame:
    """One row per observer sweep in [t0, t_end]: skew and mean offset of the synchronized nodes.

    ``down``: (node, from, to) -- that node is left out while it is down.
    """
    kept = [x for x in fhistory.observer_samples(samples)
            if x.in_sync and x.state is not None and t0 <= x.t <= t_end
            and not (down is not None and x.node == down[0] and down[1] <= x.t <= down[2])]
    out = []
    for t, g in checker.sweeps(kept):
        skew = checker.sweep_skew(g)    # the one definition of a sweep's skew
        if skew is None:
            continue
        out.append({"t_ref": t, "skew_s": skew, "mean_offset_s": float(np.mean([x.offset_s for x in g])),
                    "n": len(g)})
    df = pd.DataFrame(out, columns=["t_ref", "skew_s", "mean_offset_s", "n"])
    return df.sort_values("t_ref").reset_index(drop=True)


def trial_views(run: RunData) -> list[TrialView]:
    by_trial: dict[int, list[dict]] = {}
    for s in run.observer:
        if isinstance(s.get("trial"), int):
            by_trial.setdefault(s["trial"], []).append(s)
    views = []
    for tr in run.trials:
        k = tr.get("trial")
        t0 = tr.get("warm_up_end_t")
        t_end = tr.get("t_end")
        if not isinstance(k, int) or t0 is None or t_end is None:
            continue
        starts = sorted((f for f in run.faults if f.get("trial") == k and f.get("phase") == "start"
                         and f.get("kind") in MASTER_FAULTS), key=lambda f: f["t_ref"])
        fault_t = fault_end = killed = None
        if starts:
            f = starts[0]
            fault_t, killed = f["t_ref"], (f.get("targets") or [None])[0]
            end = next((e for e in run.faults if e.get("trial") == k and e.get("phase") == "end"
                        and e.get("fault_id") == f.get("fault_id")), None)
            # the restart was sent at t_sent; the daemon may answer before its stamp
            fault_end = (end.get("t_sent") or end["t_ref"]) if end else t_end
        down = (killed, fault_t, fault_end) if killed else None
        views.append(TrialView(run=run.name, trial=k, protocol=tr.get("protocol", "berkeley"),
                               t0=t0, t_end=t_end, fault_t=fault_t, fault_end_t=fault_end,
                               killed=killed, master=tr.get("master_before"),
                               round_interval_s=float(tr.get("round_interval_s") or 2.0),
                               sweeps=sweep_table(by_trial.get(k, []), t0, t_end, down), record=tr))
    return views


def _messages_per_node_min(run: RunData, v: TrialView) -> float | None:
    minutes = (v.t_end - v.t0) / 60.0
    nodes = run.nodes
    if minutes <= 0 or not nodes:
        return None
    if v.protocol == "ntp":
        lines = 0
        for n in nodes:
            # the committed example keeps chronyd's logs gzip-compressed (runschema.existing)
            p = existing(run.path / "nodes" / n / "chrony" / "measurements.log")
            if not p.exists():
                return None
            raw = gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()
            for line in raw.decode(errors="replace").splitlines():
                m = _MEAS_LINE.match(line)
                if not m:
                    continue
                t = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
                if v.t0 <= t <= v.t_end:
                    lines += 1
        return 2.0 * lines / len(nodes) / minutes
    sent = 0
    seen = False
    for n in nodes:
        prof = run.profiles.get(n)
        prev = None
        for e in run.events.get(n, []):
            if e.get("ev") != "counters" or not isinstance(e.get("tx"), int):
                continue
            hw = e.get("hw")
            t = prof.true_at(hw) if prof is not None and isinstance(hw, (int, float)) else hw
            if not isinstance(t, (int, float)) or t < v.t0 - 30 or t > v.t_end + 30:
                prev = None if (isinstance(t, (int, float)) and t > v.t_end + 30) else e["tx"]
                continue
            if prev is not None and e["tx"] >= prev and v.t0 <= t <= v.t_end:
                sent += e["tx"] - prev
                seen = True
            prev = e["tx"]
    if not seen:
        return None
    # counters come every cpu_report_interval_s: the sum covers the trial less one interval at most
    return sent / len(nodes) / minutes


def _cpu(run: RunData, v: TrialView) -> tuple[float | None, float | None]:
    per: dict[str, list[dict]] = {}
    for c in run.cpu:
        if c.get("trial") == v.trial and c.get("utime_s") is not None and v.t0 <= c["t_ref"] <= v.t_end:
            per.setdefault(c["node"], []).append(c)
    pct: dict[str, float] = {}
    for n, rows in per.items():
        rows.sort(key=lambda r: r["t_ref"])
        busy = wall = 0.0
        for a, b in zip(rows, rows[1:]):
            if a.get("pid") != b.get("pid"):
                continue      # a restart in between: another process
            busy += (b["utime_s"] + b["stime_s"]) - (a["utime_s"] + a["stime_s"])
            wall += b["t_ref"] - a["t_ref"]
        if wall > 0:
            pct[n] = 100.0 * busy / wall
    server = pct.get(v.master) if v.master else None
    clients = [p for n, p in pct.items() if n != v.master]
    return server, (float(np.mean(clients)) if clients else None)


def trial_metrics(run: RunData, v: TrialView) -> dict[str, Any]:
    sw = v.sweeps
    steady_end = v.fault_t if v.fault_t is not None else v.t_end
    steady = sw[(sw["t_ref"] >= v.t0) & (sw["t_ref"] < steady_end)]
    sk = steady["skew_s"].to_numpy()
    out: dict[str, Any] = {"run": v.run, "trial": v.trial, "protocol": v.protocol,
                           "skew_p50_s": _pct(sk, 50), "skew_p99_s": _pct(sk, 99),
                           "n_steady_sweeps": int(len(sk))}
    if len(steady):
        win = np.floor((steady["t_ref"].to_numpy() - v.t0) / v.round_interval_s)
        out["interval_max_skew_s"] = float(pd.Series(sk).groupby(win).max().median())
        out["offset_from_true_s"] = float(np.median(np.abs(steady["mean_offset_s"].to_numpy())))
    else:
        out["interval_max_skew_s"] = out["offset_from_true_s"] = None
    out["kill_max_skew_15s_s"] = out["recovery_s"] = None
    if v.fault_t is not None:
        after = sw[sw["t_ref"] >= v.fault_t]
        first = after[after["t_ref"] <= v.fault_t + AFTER_KILL_S]
        out["kill_max_skew_15s_s"] = float(first["skew_s"].max()) if len(first) else None
        thr = max(2.0 * (out["skew_p99_s"] or 0.0), RECOVERY_FLOOR_S)
        out["recovery_threshold_s"] = thr
        bad = after[after["skew_s"] > thr]
        if len(after) == 0:
            out["recovery_s"] = None
        elif len(bad) == 0:
            out["recovery_s"] = 0.0
        else:
            last_bad = bad["t_ref"].max()
            later = after[after["t_ref"] > last_bad]
            # back in the band only if the trial went on for a few sweeps after the last excursion
            out["recovery_s"] = (float(later["t_ref"].min() - v.fault_t)
                                 if len(later) >= 3 else None)
    rec = v.record
    out["new_master_s"] = rec.get("new_master_s") if v.protocol not in NO_ELECTION else None
    out["server_down_s"] = out["followed_again_s"] = None
    if v.protocol in NO_ELECTION and v.fault_t is not None and v.fault_end_t is not None:
        out["server_down_s"] = float(v.fault_end_t - v.fault_t)
        out["followed_again_s"] = rec.get("recovered_s")
    out["msgs_per_node_min"] = _messages_per_node_min(run, v)
    out["cpu_server_pct"], out["cpu_client_pct"] = _cpu(run, v)
    return out


def _bootstrap_ci(vals: np.ndarray, rng: np.random.Generator, n: int = 2000) -> tuple[float, float] | None:
    if len(vals) < 2:
        return None
    means = rng.choice(vals, size=(n, len(vals)), replace=True).mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def since_fault_frame(views: list[TrialView], bin_s: float = 0.5) -> pd.DataFrame:
    """Sweep skew against time since the first master fault, all trials: protocol, trial, dt_s, skew_s."""
    rows = []
    for v in views:
        if v.fault_t is None or v.sweeps.empty:
            continue
        dt = v.sweeps["t_ref"] - v.fault_t
        rows.append(pd.DataFrame({"protocol": v.protocol, "trial": f"{v.run}:{v.trial}",
                                  "dt_s": np.floor(dt / bin_s) * bin_s, "skew_s": v.sweeps["skew_s"]}))
    if not rows:
        return pd.DataFrame(columns=["protocol", "trial", "dt_s", "skew_s"])
    return pd.concat(rows, ignore_index=True)


@dataclass
class ProtocolCompare:
    out_dir: Path
    per_trial: pd.DataFrame
    table: pd.DataFrame
    files: list[Path]


def _order(protocols) -> list[str]:
    found = list(dict.fromkeys(protocols))
    return [p for p in PROTOCOL_ORDER if p in found] + [p for p in found if p not in PROTOCOL_ORDER]


def build_protocol_compare(paths: list[str | Path], out: str | Path) -> ProtocolCompare:
    runs = [load_run(p) for p in paths]
    views = [v for r in runs for v in trial_views(r)]
    if not views:
        raise ValueError("no finished trials in these run folders")
    rows = []
    by_run = {r.name: r for r in runs}
    for v in views:
        rows.append(trial_metrics(by_run[v.run], v))
    per_trial = pd.DataFrame(rows)
    order = _order(per_trial["protocol"])
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    since = since_fault_frame(views)

    table_rows = []
    for key, label in METRICS:
        row: dict[str, Any] = {"quantity": label, "key": key}
        for p in order:
            vals = per_trial.loc[per_trial["protocol"] == p, key].dropna().to_numpy(dtype=float)
            row[p] = float(np.median(vals)) if len(vals) else None
        table_rows.append(row)
    table_rows.append({"quantity": "trials", "key": "trials",
                       **{p: int((per_trial["protocol"] == p).sum()) for p in order}})
    table = pd.DataFrame(table_rows)

    # the uncertainty of the headline: mean sweep skew in the 15 s after the fault, with a
    # bootstrap 95 % interval over those sweeps (trials pooled; with one trial per
    # protocol that is the sweep-to-sweep variation of that trial)
    headline = {}
    for p in order:
        vals = since[(since["protocol"] == p) & (since["dt_s"] >= 0)
                     & (since["dt_s"] < AFTER_KILL_S)]["skew_s"].to_numpy(dtype=float)
        ci = _bootstrap_ci(vals, rng)
        headline[p] = {"mean_skew_s": float(vals.mean()) if len(vals) else None,
                       "ci95_s": ci, "n_sweeps": int(len(vals))}

    files = []
    sns.set_theme(style="whitegrid", context="notebook")
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 4.6), layout="constrained",
                                  gridspec_kw={"width_ratios": [3, 1]})
    if not since.empty:
        for p in order:
            d = since[since["protocol"] == p]
            if d.empty:
                continue
            g = d.groupby("dt_s")["skew_s"]
            med, lo, hi = g.median(), g.quantile(0.1), g.quantile(0.9)
            ax.plot(med.index, med.to_numpy() * 1e3, color=PALETTE.get(p), lw=1.4, label=p)
            ax.fill_between(med.index, lo.to_numpy() * 1e3, hi.to_numpy() * 1e3, color=PALETTE.get(p), alpha=0.18)
        dur = [v.fault_end_t - v.fault_t for v in views if v.fault_t is not None and v.fault_end_t is not None]
        if dur:
            ax.axvspan(0, float(np.median(dur)), color="0.5", alpha=0.12, label="master down")
        ax.axvline(0, color="0.3", lw=0.8)
        ax.set_yscale("log")
        ax.legend(loc="upper left", fontsize=9)
    ax.set_xlabel("time since the master / server fault (s)")
    ax.set_ylabel("group skew (ms, log)")
    ax.set_title("skew through the fault: median of sweeps, band = 10-90 %")
    names = [p for p in order if headline[p]["mean_skew_s"] is not None]
    means = [headline[p]["mean_skew_s"] * 1e3 for p in names]
    err = [[(headline[p]["mean_skew_s"] - (headline[p]["ci95_s"] or (headline[p]["mean_skew_s"],) * 2)[0]) * 1e3
            for p in names],
           [((headline[p]["ci95_s"] or (headline[p]["mean_skew_s"],) * 2)[1] - headline[p]["mean_skew_s"]) * 1e3
            for p in names]]
    ax2.bar(names, means, yerr=err, color=[PALETTE.get(p, "0.5") for p in names], capsize=5)
    ax2.set_ylabel(f"mean skew, {AFTER_KILL_S:g} s after the fault (ms)")
    ax2.set_title("95 % bootstrap interval")
    fig.suptitle("Which protocol keeps the group together best through a master kill?")
    fpath = out_dir / "protocols_skew_since_fault.png"
    fig.savefig(fpath, dpi=110)
    plt.close(fig)
    files.append(fpath)

    fig, ax = plt.subplots(figsize=(8, 4), layout="constrained")
    steady = []
    for v in views:
        end = v.fault_t if v.fault_t is not None else v.t_end
        s = v.sweeps[(v.sweeps["t_ref"] >= v.t0) & (v.sweeps["t_ref"] < end)]
        steady.append(pd.DataFrame({"protocol": v.protocol, "skew_us": s["skew_s"] * 1e6}))
    st = pd.concat(steady, ignore_index=True) if steady else pd.DataFrame(columns=["protocol", "skew_us"])
    if not st.empty:
        sns.boxplot(data=st, x="protocol", y="skew_us", order=[p for p in order if p in set(st["protocol"])],
                    hue="protocol", palette=PALETTE, ax=ax, showfliers=False, legend=False)
        ax.set_yscale("log")
    ax.set_ylabel("steady skew per sweep (us, log)")
    ax.set_title("skew before the fault (after warm-up)")
    fpath = out_dir / "protocols_steady_skew.png"
    fig.savefig(fpath, dpi=110)
    plt.close(fig)
    files.append(fpath)

    per_trial.to_csv(out_dir / "protocols_trials.csv", index=False)
    table.to_csv(out_dir / "protocols.csv", index=False)
    files += [out_dir / "protocols_trials.csv", out_dir / "protocols.csv"]
    data = {"runs": [str(Path(p)) for p in paths], "protocols": order,
            "table": json.loads(table.to_json(orient="records")),
            "trials": json.loads(per_trial.to_json(orient="records")),
            "after_fault": headline}
    (out_dir / "protocols.json").write_text(json.dumps(data, indent=2) + "\n")
    (out_dir / "protocols.md").write_text(render_markdown(table, order, headline, paths))
    files += [out_dir / "protocols.json", out_dir / "protocols.md"]
    return ProtocolCompare(out_dir, per_trial, table, files)


_SECONDS = ("recovery_s", "new_master_s", "server_down_s", "followed_again_s")


def _fmt(key: str, v: Any, protocol: str | None = None) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        if key == "new_master_s" and protocol in NO_ELECTION:
            return "none (no election)"
        if key in ("server_down_s", "followed_again_s") and protocol not in NO_ELECTION:
            return "n/a (a new master)"
        return "-"
    if key.endswith("_s") and key not in _SECONDS:
        return f"{v * 1e6:.1f} us" if abs(v) < 1e-3 else f"{v * 1e3:.2f} ms"
    if key in _SECONDS:
        return f"{v:.1f} s"
    if key.endswith("_pct"):
        return f"{v:.2f} %"
    if key == "trials":
        return str(int(v))
    return f"{v:.0f}"


def render_markdown(table: pd.DataFrame, order: list[str], headline: dict, paths) -> str:
    lines = ["# Protocols side by side", "",
             "Runs: " + ", ".join(f"`{Path(p).name}`" for p in paths), "",
             "Medians over each protocol's trials; definitions in docs/baselines.md "
             "(experiments/tempolab/analysis/protocompare.py).", "",
             "| quantity | " + " | ".join(order) + " |", "|---|" + "---|" * len(order)]
    for _i, row in table.iterrows():
        lines.append(f"| {row['quantity']} | " + " | ".join(_fmt(row['key'], row.get(p), p) for p in order) + " |")
    if any(p in NO_ELECTION for p in order):
        lines += ["", "Cristian and NTP elect nobody: while their time server / NTP server is down, "
                  "nothing replaces it and the clients run free on their learned frequency "
                  "(Cristian) or hold over (chronyd) until it is back, drifting apart at their "
                  "residual relative rates. So for them the skew-band row is not a failover "
                  "time and \"new master\" is none by design; what they did instead is the "
                  "server-down and follow-again rows. Berkeley elects a new master (Gusella-Zatti)."]
    lines += ["", f"Mean skew in the {AFTER_KILL_S:g} s after the master fault, 95 % bootstrap interval over sweeps:", ""]
    for p in order:
        h = headline[p]
        ci = h["ci95_s"]
        lines.append(f"- {p}: {_fmt('x_s', h['mean_skew_s'])}"
                     + (f" [{_fmt('x_s', ci[0])}, {_fmt('x_s', ci[1])}]" if ci else "")
                     + f" ({h['n_sweeps']} sweeps)")
    lines += ["", "![skew since the fault](protocols_skew_since_fault.png)", "",
              "![steady skew](protocols_steady_skew.png)", ""]
    return "\n".join(lines)
