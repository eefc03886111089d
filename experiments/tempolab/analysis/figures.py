"""Figures for one run, as matplotlib Figure objects (the caller saves them).

Owns how each quantity is drawn: axis labels with units, one colour per node taken
from :func:`node_palette` (the same node has the same colour in every figure), and
aggregation that stays legible at 32 nodes (bands and a heatmap instead of 32 lines).
It takes tables, never reads files, and never decides what a number means (that is
:mod:`.tables` / :mod:`.summary`).  A figure that does not apply to a run raises
:class:`NotApplicable` with the reason, which the report prints instead of the figure.
"""

from __future__ import annotations

import math
from typing import Mapping

import matplotlib

matplotlib.use("Agg")  # no display: figures are only rendered to files
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.colors import Normalize  # noqa: E402
from matplotlib.ticker import FixedLocator  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from .load import node_sort_key  # noqa: E402

LINES_MAX_NODES = 12          # above this, offsets are drawn as bands, not one line per node
FAULT_COLOUR = "#d62728"
TIME_LABEL = "time since run start (s)"
DEFAULT_ROUND_S = 10.0

Colour = tuple[float, float, float]


class NotApplicable(Exception):
    """This figure does not apply to the run; the message says why."""


def node_palette(nodes: list[str]) -> dict[str, Colour]:
    """A fixed colour per node, keyed by the sorted node names (n1, n2, ..., n10)."""
    names = sorted(set(nodes), key=node_sort_key)
    n = len(names)
    if n <= 10:
        colours = sns.color_palette("tab10", n)
    elif n <= 20:
        colours = sns.color_palette("tab20", n)
    else:
        colours = sns.color_palette("husl", n)
    return {name: tuple(c) for name, c in zip(names, colours)}


def run_palette(runs: list[str]) -> dict[str, Colour]:
    return {r: tuple(c) for r, c in zip(runs, sns.color_palette("colorblind", max(len(runs), 1)))}


def _symlog_threshold(values: pd.Series) -> float:
    v = values.abs().replace(0, np.nan).dropna()
    if v.empty:
        return 1e-6
    return float(np.clip(np.percentile(v, 10), 1e-7, 1e-2))


def _ensure_log_ticks(ax, axis: str = "y") -> None:
    """Labelled ticks on a log or symlog axis whatever the data's range.

    A log axis over less than a decade gets no major tick (and sometimes no label at
    all): widen it to whole decades.  A symlog axis whose data stay inside the linear
    band (the smoke run's offsets: every value under the threshold) has ticks only at
    0 and none labelled in between: draw it linear instead."""
    get_lim, set_lim = (ax.get_ylim, ax.set_ylim) if axis == "y" else (ax.get_xlim, ax.set_xlim)
    scale = ax.get_yscale() if axis == "y" else ax.get_xscale()
    set_scale = ax.set_yscale if axis == "y" else ax.set_xscale
    lo, hi = sorted(get_lim())
    if scale == "log" and lo > 0 and hi > 0:
        a, b = math.floor(math.log10(lo) + 1e-9), math.ceil(math.log10(hi) - 1e-9)
        if b - a < 1:
            b = a + 1
        set_lim(10.0 ** a, 10.0 ** b)
    elif scale == "symlog":
        lin = (ax.yaxis if axis == "y" else ax.xaxis).get_transform().linthresh
        top = max(abs(lo), abs(hi))
        # symlog ticks sit at 0 and at decades outside the linear band: fewer than two such
        # decades in view leaves the axis with one label (or none)
        decades = [k for k in range(math.floor(math.log10(lin)), math.ceil(math.log10(max(top, lin))) + 1)
                   if lin <= 10.0 ** k <= top]
        if len(decades) < 2:
            set_scale("linear")
            set_lim(lo, hi)
            return
        # the linear band is drawn one decade tall: a decade tick within 3x of the
        # threshold would sit on top of the 0 label (seen: 1e-05, 0, -1e-05 overlapping)
        ticks = [0.0] + [sgn * 10.0 ** k for k in decades if 10.0 ** k >= 3 * lin for sgn in (1, -1)
                         if lo <= sgn * 10.0 ** k <= hi]
        (ax.yaxis if axis == "y" else ax.xaxis).set_major_locator(FixedLocator(sorted(ticks)))


NO_TICKS = "_tempo_no_ticks"


def no_ticks(ax, axis: str) -> None:
    """Mark an axis whose tick labels are left out on purpose (a strip, a shared time
    axis drawn once below); the figure tests check every other axis has labels."""
    getattr(ax, NO_TICKS, None) or setattr(ax, NO_TICKS, set())
    getattr(ax, NO_TICKS).add(axis)


def _shade_faults(ax, windows: pd.DataFrame, t0: float, label: bool) -> None:
    for i, w in enumerate(windows.itertuples()):
        ax.axvspan(w.t_start - t0, w.t_end - t0, color=FAULT_COLOUR, alpha=0.12, lw=0,
                   label="fault window" if (label and i == 0) else None)


def _run_lengths(values: list[str | None]) -> list[tuple[int, int, str | None]]:
    runs, start = [], 0
    for i in range(1, len(values) + 1):
        if i == len(values) or values[i] != values[start]:
            runs.append((start, i, values[start]))
            start = i
    return runs


# --- 1: offsets against time ------------------------------------------------------

def _gap_s(t: np.ndarray) -> float:
    """A pause in the observer's sweeps longer than this is a gap (deployment, restart)."""
    return 5.0 * float(np.median(np.diff(t))) if len(t) > 1 else np.inf


def _break_gaps(d: pd.DataFrame, gap_s: float) -> pd.DataFrame:
    """Rows of ``d`` (sorted by ``t``) with a NaN row inside each gap, so lines break
    instead of drawing a straight segment across time nobody measured."""
    at = d.index[d["t"].diff() > gap_s]
    if len(at) == 0:
        return d
    fill = pd.DataFrame({"t": d.loc[at, "t"].to_numpy() - 1e-9})
    return pd.concat([d[["t", "offset_s"]], fill]).sort_values("t", kind="stable")


def fig_offsets(samples: pd.DataFrame, sweeps: pd.DataFrame, rounds: pd.DataFrame, windows: pd.DataFrame,
                palette: Mapping[str, Colour], t0: float) -> Figure:
    if samples.empty or not samples["responded"].any():
        raise NotApplicable("no observer samples with an offset")
    s = samples[samples["responded"]].copy()
    s["t"] = s["t_ref"] - t0
    nodes = sorted(s["node"].unique(), key=node_sort_key)
    heat_h = max(1.6, 0.14 * len(nodes))
    fig = plt.figure(figsize=(11, 4.2 + heat_h + 0.6), layout="constrained")
    gs = fig.add_gridspec(3, 1, height_ratios=[4.2, heat_h, 0.6])
    ax = fig.add_subplot(gs[0])
    axh = fig.add_subplot(gs[1], sharex=ax)
    axm = fig.add_subplot(gs[2], sharex=ax)

    lin = _symlog_threshold(s.loc[s["in_sync"], "offset_s"])
    gap = _gap_s(np.sort(s.groupby("sweep")["t"].min().to_numpy()))
    if len(nodes) <= LINES_MAX_NODES:
        for n in nodes:
            d = _break_gaps(s[s["node"] == n].sort_values("t"), gap)
            ax.plot(d["t"], d["offset_s"], color=palette[n], lw=1.0, label=n)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.005, 1.0), title="node", title_fontsize=7)
    else:
        sync = s[s["in_sync"]]
        q = sync.groupby("sweep").agg(t=("t", "min"), lo=("offset_s", "min"), hi=("offset_s", "max"),
                                      p10=("offset_s", lambda x: np.percentile(x, 10)),
                                      p90=("offset_s", lambda x: np.percentile(x, 90)),
                                      med=("offset_s", "median"))
        q = q.sort_values("t")
        q = pd.concat([q, pd.DataFrame({"t": q["t"][q["t"].diff() > gap].to_numpy() - 1e-9})]).sort_values("t")
        ax.fill_between(q["t"], q["lo"], q["hi"], color="#9ecae1", alpha=0.6, lw=0, label="min-max of in-sync nodes")
        ax.fill_between(q["t"], q["p10"], q["p90"], color="#4292c6", alpha=0.7, lw=0, label="10-90th percentile")
        ax.plot(q["t"], q["med"], color="#08306b", lw=1.0, label="median")
        out = s[~s["in_sync"]]
        if len(out):
            ax.scatter(out["t"], out["offset_s"], s=4, color="0.45", label="not in sync (START, CANDIDATE, ...)")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.005, 1.0))
    ax.set_yscale("symlog", linthresh=lin)
    _ensure_log_ticks(ax)
    ax.set_ylabel(f"offset from reference (s)\nsymlog, linear within ±{lin:.0e}" if ax.get_yscale() == "symlog"
                  else "offset from reference (s)")
    ax.set_title(f"Node clocks against the reference ({len(nodes)} nodes)")
    _shade_faults(ax, windows, t0, label=True)
    if not rounds.empty:
        rt = rounds.drop_duplicates("round_id")["t_ref"].dropna() - t0
        ax.vlines(rt, 0.94, 1.0, transform=ax.get_xaxis_transform(), color="k", lw=0.8, label="round")
    ax.tick_params(labelbottom=False)
    no_ticks(ax, "x")  # shared with the master strip, labelled there

    # heatmap of each node's skew from the sweep median
    piv = s.pivot_table(index="node", columns="sweep", values="skew_s", aggfunc="first")
    piv = piv.reindex(nodes)
    st = s.groupby("sweep")["t"].min().reindex(piv.columns)
    # linear, symmetric colour scale up to the 98th percentile of in-sync |skew|: a log
    # scale saturated everything above a few us; startup and out-of-group outliers clip
    sync_skew = s.loc[s["in_sync"], "skew_s"].abs().dropna()
    vmax = float(np.percentile(sync_skew, 98)) if len(sync_skew) else 1e-6
    vmax = max(vmax, 1e-9)
    step = float(np.median(np.diff(st))) if len(st) > 1 else 1.0
    # a gap in the sweeps becomes an empty (grey) column rather than one stretched sweep
    grid = piv.to_numpy()
    tt = st.to_numpy()
    cols, edges_l = [], []
    for i in range(len(tt)):
        cols.append(grid[:, i])
        edges_l.append(tt[i])
        if i + 1 < len(tt) and tt[i + 1] - tt[i] > gap:
            cols.append(np.full(len(nodes), np.nan))
            edges_l.append(tt[i] + step)
    edges = np.array(edges_l + [tt[-1] + step])
    heat = np.column_stack(cols)
    axh.set_facecolor("0.8")  # no answer (node down) is grey, not "zero skew" white
    mesh = axh.pcolormesh(edges, np.arange(len(nodes) + 1), heat, cmap="RdBu_r",
                          norm=Normalize(vmin=-vmax, vmax=vmax), shading="flat")
    axh.set_yticks(np.arange(len(nodes)) + 0.5, nodes, fontsize=max(4, min(8, 200 // max(len(nodes), 1))))
    for lbl in axh.get_yticklabels():
        lbl.set_color(palette.get(lbl.get_text(), "k"))
    axh.invert_yaxis()
    axh.set_ylabel("node")
    cax = axh.inset_axes([1.005, 0.0, 0.012, 1.0])
    cb = fig.colorbar(mesh, cax=cax, extend="both")
    cb.set_label("skew from sweep median (s)\ngrey: no answer", fontsize=7)
    cb.ax.tick_params(labelsize=6)
    _shade_faults(axh, windows, t0, label=False)
    axh.tick_params(labelbottom=False)
    no_ticks(axh, "x")

    # master strip from the observer's view (LEADER state)
    if not sweeps.empty:
        t_sw = (sweeps["t_ref"] - t0).to_numpy()
        step = float(np.median(np.diff(t_sw))) if len(t_sw) > 1 else 1.0
        leaders = [v if isinstance(v, str) else None for v in sweeps["leader"]]
        # gaps (deployment, restarts) split runs: a blank entry one step after the gap starts
        at = [i for i in range(1, len(t_sw)) if t_sw[i] - t_sw[i - 1] > gap]
        for i in reversed(at):
            t_sw = np.insert(t_sw, i, t_sw[i - 1] + step)
            leaders.insert(i, "")
        for a, b, who in _run_lengths(leaders):
            if who == "":  # not measured: left blank, unlike "no master" (light grey)
                continue
            x0, x1 = t_sw[a], (t_sw[b] if b < len(t_sw) else t_sw[-1] + step)
            colour = palette.get(who, "0.3") if who and "," not in who else ("0.85" if not who else "k")
            axm.broken_barh([(x0, x1 - x0)], (0, 1), color=colour)
            if who and (x1 - x0) > 0.04 * (t_sw[-1] - t_sw[0] + step):
                axm.text((x0 + x1) / 2, 0.5, who if "," not in who else "2 leaders", ha="center", va="center",
                         fontsize=7, color="white")
    # start where the nodes first answer (deployment before that is empty), end with the data
    # a few sweeps taken before a long gap (the observer's first sweep before the
    # deployment) would stretch the axis over minutes of nothing: start after them
    ts = np.sort(s.groupby("sweep")["t"].min().to_numpy())
    first = float(ts[0]) if len(ts) else float(s["t"].min())
    cuts = np.flatnonzero(np.diff(ts) > gap) + 1 if len(ts) > 1 else np.array([], dtype=int)
    for c in cuts:
        if c < 10:
            first = float(ts[c])
    ax.set_xlim(first - 1.0, float(samples["t_ref"].max() - t0) + 1.0)
    axm.set_yticks([])
    no_ticks(axm, "y")  # one row: who was master
    axm.set_ylabel("master", rotation=0, ha="right", va="center")
    axm.set_xlabel(TIME_LABEL)
    return fig


# --- 2: pre- vs post-sync -----------------------------------------------------------

def fig_pre_post(rounds: pd.DataFrame, round_sum: pd.DataFrame, t0: float) -> Figure:
    if rounds.empty or rounds["obs_post_offset_s"].notna().sum() == 0:
        raise NotApplicable("no rounds with observer samples around them")
    r = rounds.copy()
    med_pre = r.groupby("round_id")["obs_pre_offset_s"].transform("median")
    med_post = r.groupby("round_id")["obs_post_offset_s"].transform("median")
    long = pd.concat([
        pd.DataFrame({"deviation_s": (r["obs_pre_offset_s"] - med_pre).abs(), "phase": "before round"}),
        pd.DataFrame({"deviation_s": (r["obs_post_offset_s"] - med_post).abs(), "phase": "after corrections"}),
    ]).dropna()
    long = long[long["deviation_s"] > 0]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    sns.ecdfplot(data=long, x="deviation_s", hue="phase", log_scale=True, ax=a1,
                 palette={"before round": "0.55", "after corrections": "#1f77b4"})
    err = (r["daemon_bound_s"].fillna(0) + r["obs_post_bound_s"]).dropna()
    if len(err):
        a1.axvline(float(err.median()), color="#d62728", ls="--", lw=1, label="median error bound")
        a1.text(float(err.median()), 0.02, " median error bound\n (daemon + observer)", color="#d62728", fontsize=7)
    a1.set_xlabel("|node offset - round median| (s, log)")
    a1.set_ylabel("share of node-rounds (ECDF)")
    a1.set_title("Each node's distance from the group, per round")
    rs = round_sum.dropna(subset=["t_ref"])
    t = rs["t_ref"] - t0
    a2.plot(t, rs["pre_skew_s"], "o", ms=3, color="0.55", label="before round")
    a2.plot(t, rs["post_skew_s"], "o", ms=3, color="#1f77b4", label="after corrections")
    a2.step(t, rs["bound_s"], where="mid", color="#d62728", ls="--", lw=1, label="bound")
    a2.set_yscale("log")
    _ensure_log_ticks(a2)
    _ensure_log_ticks(a1, "x")
    a2.set_xlabel(TIME_LABEL)
    a2.set_ylabel("max pairwise skew in the round (s, log)")
    a2.set_title("Skew before and after each round")
    a2.legend(fontsize=7)
    return fig


# --- 3: skew against time since the last round ------------------------------------

def fig_skew_growth(between: pd.DataFrame, others: pd.DataFrame, rho_ppm: float, interval_s: float,
                    post_p50_s: float | None) -> Figure:
    if between.empty:
        raise NotApplicable("no observer sweeps between two regular rounds")
    fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    if len(others):
        ax.scatter(others["since_round_s"], others["max_skew_s"], s=5, color="0.75",
                   label=f"other sweeps ({len(others)}: failover, startup)")
    ax.scatter(between["since_round_s"], between["max_skew_s"], s=7, color="#1f77b4",
               label=f"sweeps between regular rounds ({len(between)})")
    if math.isfinite(rho_ppm):
        x = np.linspace(0, max(float(between["since_round_s"].max()), interval_s), 100)
        base = post_p50_s or 0.0
        ax.plot(x, 2 * rho_ppm * 1e-6 * x, color="#d62728", lw=1.2, ls="--", label=f"2ρΔt, ρ = {rho_ppm:g} ppm")
        ax.plot(x, base + 2 * rho_ppm * 1e-6 * x, color="#d62728", lw=1.2,
                label="post-sync p50 + 2ρΔt")
    lim = float(between["max_skew_s"].max()) * 1.3
    if math.isfinite(rho_ppm):
        lim = max(lim, (post_p50_s or 0.0) + 2 * rho_ppm * 1e-6 * float(between["since_round_s"].max()) * 1.1)
    ax.set_ylim(0, lim)
    ax.set_xlim(left=0)
    ax.set_xlabel("time since the last round's corrections (s)")
    ax.set_ylabel("max pairwise skew between nodes (s)")
    ax.set_title("Skew growth between rounds against the drift bound")
    ax.legend(fontsize=7, loc="upper left")
    return fig


# --- 4: failovers -----------------------------------------------------------------

FAILOVER_METRICS = {"detect_s": "fault → first candidate", "new_master_s": "fault → new master (log)",
                    "obs_new_master_s": "fault → new master (observer)", "first_round_s": "fault → first round"}


def failover_long(failovers: pd.DataFrame) -> pd.DataFrame:
    long = failovers.melt(id_vars=["trial", "kind"], value_vars=list(FAILOVER_METRICS), var_name="metric",
                          value_name="seconds").dropna(subset=["seconds"])
    long["metric"] = long["metric"].map(FAILOVER_METRICS)
    return long


def fig_failovers(failovers: pd.DataFrame) -> Figure:
    if failovers.empty:
        raise NotApplicable("no master was killed or stopped in this run")
    long = failover_long(failovers)
    fig, ax = plt.subplots(figsize=(8, 3.8), layout="constrained")
    order = [m for m in FAILOVER_METRICS.values() if m in set(long["metric"])]
    sns.boxplot(data=long, x="seconds", y="metric", order=order, color="0.9", fliersize=0, ax=ax)
    sns.stripplot(data=long, x="seconds", y="metric", order=order, hue="kind", size=5, jitter=0.15, ax=ax)
    ax.set_xlabel("duration after the fault (s)")
    ax.set_ylabel("")
    ax.set_title(f"Failover times ({len(failovers)} failovers)")
    return fig


# --- 5: CPU -----------------------------------------------------------------------

ROLE_COLOURS = {"master": "#d62728", "follower": "#1f77b4", "baseline": "0.45"}


def _role_colour(role: str) -> Colour | str:
    return ROLE_COLOURS.get(role, "#9467bd")


def fig_cpu(cpu: pd.DataFrame, palette: Mapping[str, Colour], by_size: pd.DataFrame | None,
            t0: float | None = None, interval_s: float = DEFAULT_ROUND_S, cross: list[dict] | None = None,
            fit: Mapping[str, Mapping[str, float]] | None = None) -> Figure:
    c = cpu.dropna(subset=["cpu_pct"])
    if c.empty:
        raise NotApplicable("no CPU intervals (fewer than two samples per process)")
    if t0 is None:
        t0 = float(c["t_ref"].min())
    scale = by_size is not None and len(by_size) > 0
    mosaic = [["time", "time", "node"], ["round", "cross", "size" if scale else "cross"]]
    fig, ax = plt.subplot_mosaic(mosaic, figsize=(14, 8.2), layout="constrained")
    # outside view (schedstat) where there is one, else whatever source there is
    proc = c[c["source"] == "proc"] if (c["source"] == "proc").any() else c[c["source"] != "baseline"]
    base = c[c["source"] == "baseline"]
    res = "ns" if (proc.get("resolution", pd.Series(dtype=str)) == "ns").all() else "clock ticks (10 ms)"

    # CPU per role over time: every interval as a faint point, the per-role median per sample round
    a = ax["time"]
    for role, g in proc.groupby("role"):
        t = g["t_ref"] - t0
        if role not in ("master", "follower"):
            # transitional states (candidate, unsynced, ...) come in short bursts: a line
            # through them would cross minutes in which no node was in that state
            a.scatter(t, g["cpu_pct"], s=6, color=_role_colour(str(role)), alpha=0.6, lw=0, marker="x",
                      label=f"{role} (per interval)")
            continue
        col = _role_colour(str(role))
        a.scatter(t, g["cpu_pct"], s=4, color=col, alpha=0.25, lw=0)
        med = g.assign(tb=(t / max(float(g["dt_s"].median()), 1e-3)).round()).groupby("tb").agg(
            t=("t_ref", "median"), v=("cpu_pct", "median"))
        a.plot(med["t"] - t0, med["v"], color=col, lw=1.1, label=f"{role} (median over nodes)")
    if len(base):
        bm = base.assign(tb=((base["t_ref"] - t0) / max(float(base["dt_s"].median()), 1e-3)).round()).groupby("tb").agg(
            t=("t_ref", "median"), v=("cpu_pct", "median"))
        a.plot(bm["t"] - t0, bm["v"], color=ROLE_COLOURS["baseline"], lw=1.0, ls="--",
               label="node's PID 1 (idle baseline)")
    a.set_xlabel(TIME_LABEL)
    a.set_ylabel("CPU (% of one core)")
    a.set_title(f"Daemon CPU per role over time (runner's sampler, {res})")
    a.set_ylim(bottom=0, top=max(float(np.percentile(proc["cpu_pct"], 99.5)) * 1.2, 1e-3))
    a.legend(fontsize=7, loc="upper right")

    # median per node, diamond = while master; the node's idle baseline as a grey bar
    a = ax["node"]
    med = proc.groupby(["node", "role"])["cpu_pct"].median().reset_index()
    nodes = sorted(set(med["node"]) | set(base["node"]), key=node_sort_key)
    xpos = {n: i for i, n in enumerate(nodes)}
    markers = {"master": "D", "follower": "o"}
    for _, row in med.iterrows():
        a.scatter(xpos[row["node"]], row["cpu_pct"], color=palette.get(row["node"], "0.3"),
                  marker=markers.get(row["role"], "s"), s=30, edgecolor="k", linewidth=0.4)
    if len(base):
        bmed = base.groupby("node")["cpu_pct"].median()
        a.scatter([xpos[n] for n in bmed.index], bmed.to_numpy(), marker="_", s=160, color="0.3", lw=2)
    a.set_xticks(range(len(nodes)), nodes, rotation=90 if len(nodes) > 8 else 0,
                 fontsize=7 if len(nodes) <= 16 else 5)
    for lbl in a.get_xticklabels():
        lbl.set_color(palette.get(lbl.get_text(), "k"))
    handles = [plt.Line2D([], [], marker=m, ls="", color="0.4", label=r) for r, m in markers.items()]
    handles.append(plt.Line2D([], [], marker="s", ls="", color="0.4", label="other state"))
    if len(base):
        handles.append(plt.Line2D([], [], marker="_", ls="", color="0.3", ms=12, mew=2, label="PID 1 (idle)"))
    a.legend(handles=handles, fontsize=7, title="role", title_fontsize=7)
    a.set_xlabel("node")
    a.set_ylabel("median CPU (% of one core)")
    a.set_title("Median CPU per node and role")
    a.set_ylim(bottom=0)

    # CPU per round (µs) by role and source; transitional states share one box
    a = ax["round"]
    d = c.copy()
    d["us_per_round"] = d["cpu_pct"] / 100.0 * interval_s * 1e6
    d["role"] = d["role"].where(d["role"].isin(["master", "follower", "baseline"]), "other")
    zero = int((d["us_per_round"] <= 0).sum())
    d = d[d["us_per_round"] > 0]   # an idle interval (no CPU at all) has no place on a log axis
    order = [r for r in ("master", "follower", "other", "baseline") if r in set(d["role"])]
    hue_order = [h for h in ("proc", "daemon", "baseline") if h in set(d["source"])]
    sns.boxplot(data=d, x="role", y="us_per_round", hue="source", order=order, hue_order=hue_order,
                fliersize=1.5, log_scale=True, ax=a)
    _ensure_log_ticks(a)
    a.set_xlabel("role (other = candidate, unsynced, ...)")
    a.set_ylabel(f"CPU per round (µs, log; round = {interval_s:g} s)"
                 + (f"\n{zero} intervals with 0 µs not drawn" if zero else ""))
    a.set_title("CPU per round, by role and counter")
    a.legend(fontsize=7, title="source", title_fontsize=7)

    # outside (schedstat) against inside (CLOCK_PROCESS_CPUTIME_ID), one point per process
    a = ax["cross"]
    if cross:
        xs = np.array([r["daemon_pct"] for r in cross])
        ys = np.array([r["proc_pct"] for r in cross])
        for r in cross:
            a.scatter(r["daemon_pct"], r["proc_pct"], color=palette.get(r["node"], "0.3"), s=25, edgecolor="k", lw=0.4)
        hi = float(max(xs.max(), ys.max())) * 1.1
        a.plot([0, hi], [0, hi], color="0.5", lw=0.8, ls="--", label="equal")
        a.set_xlim(0, hi)
        a.set_ylim(0, hi)
        a.legend(fontsize=7, loc="upper left")
        a.set_title(f"Cross-check: two counters, {len(cross)} daemon processes")
    else:
        a.text(0.5, 0.5, "no process with both ns counters\n(run folder from before the ns sampler)",
               ha="center", va="center", transform=a.transAxes, fontsize=8, color="0.4")
        a.set_title("Cross-check: two counters")
    a.set_xlabel("inside: CLOCK_PROCESS_CPUTIME_ID (% of one core)")
    a.set_ylabel("outside: schedstat (% of one core)")

    if scale and by_size is not None:
        a = ax["size"]
        for role, g in by_size.groupby("role"):
            col = _role_colour(str(role))
            a.plot(g["cluster_size"], g["us_per_round"], "o", color=col, label=str(role))
            f = (fit or {}).get(str(role))
            if f:
                x = np.linspace(float(g["cluster_size"].min()), float(g["cluster_size"].max()), 20)
                a.plot(x, f["intercept_us"] + f["per_follower_us"] * (x - 1), color=col, lw=1,
                       label=f"{role}: {f['per_follower_us']:.0f} µs per follower per round")
        a.set_xlabel("group size N (nodes)")
        a.set_ylabel("median CPU per round (µs)")
        a.set_ylim(bottom=0)
        a.set_title("CPU per round against group size")
        a.legend(fontsize=7)
    return fig


def cpu_by_size(cpu: pd.DataFrame, levels: pd.DataFrame, interval_s: float = DEFAULT_ROUND_S) -> pd.DataFrame:
    c = cpu[(cpu["source"] == "proc")].dropna(subset=["cpu_pct"])
    merged = c.merge(levels[["trial", "cluster_size"]], on="trial", how="inner")
    # median: an interval in which the role changed (election, kill) mixes two costs
    out = merged.groupby(["cluster_size", "role"], as_index=False)["cpu_pct"].median()
    out["us_per_round"] = out["cpu_pct"] / 100.0 * interval_s * 1e6
    return out


# --- 6: drift sweep ---------------------------------------------------------------

def fig_drift(levels: pd.DataFrame, interval_s: float) -> Figure:
    d = levels.dropna(subset=["drift_ppm"])
    if d["drift_ppm"].round(3).nunique() < 2:
        raise NotApplicable("not a drift sweep: fewer than two drift levels across trials")
    fig, ax = plt.subplots(figsize=(7, 4.2), layout="constrained")
    ax.plot(d["drift_ppm"], d["post_skew_p95_s"], "o-", color="#1f77b4", label="post-sync skew p95")
    ax.plot(d["drift_ppm"], d["between_round_max_skew_s"], "s-", color="#ff7f0e", label="between-round max skew")
    x = np.linspace(0, float(d["drift_ppm"].max()) * 1.05, 50)
    ax.plot(x, 2 * x * 1e-6 * interval_s, "--", color="#d62728", label=f"2ρ × round interval ({interval_s:g} s)")
    ax.set_xlabel("max drift rate ρ in the trial (ppm)")
    ax.set_ylabel("skew (s)")
    ax.set_yscale("log")
    _ensure_log_ticks(ax)
    ax.set_title("Accuracy against drift rate")
    ax.legend(fontsize=7)
    return fig
