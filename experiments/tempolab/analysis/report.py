"""Run folder -> tables/, figures/, summary.json, summary.md, report.html.

Owns orchestration and file output: it calls :mod:`.tables`, :mod:`.summary` and
:mod:`.figures`, and writes only inside the run folder.  Every step runs under a guard
(Jepsen style): a step that crashes makes its section "unknown" in every output and
the rest of the report is still produced.  It does not define any number itself.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import math
import traceback
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import jinja2
import numpy as np
import pandas as pd

from . import figures as figs
from . import summary as summ
from ..runschema import jsonable, write_json
from .load import RunData, load_run
from .tables import Tables, build_tables, fault_windows

FIGURE_DPI = 110


@dataclass
class FigureOutcome:
    name: str
    title: str
    status: str                    # ok | skipped | unknown
    message: str = ""
    caption: str = ""
    files: list[Path] = field(default_factory=list)
    png_b64: str = ""
    axis_labels: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class ReportResult:
    run_dir: Path
    summary: dict[str, Any]
    figures: list[FigureOutcome]
    files: list[Path]
    unknown: dict[str, str]


class Guard:
    """Runs steps; a crash is recorded as an unknown section instead of propagating."""

    def __init__(self) -> None:
        self.unknown: dict[str, str] = {}

    def __call__(self, name: str, fn: Callable[[], Any], fallback: Any) -> Any:
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - Jepsen style: a failing checker is "unknown"
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            self.unknown[name] = f"{type(exc).__name__}: {exc} ({Path(frame.filename).name}:{frame.lineno})"
            return fallback


def templates() -> jinja2.Environment:
    loader = jinja2.FileSystemLoader(str(resources.files("tempolab") / "templates"))
    return jinja2.Environment(loader=loader, autoescape=jinja2.select_autoescape(["html", "j2"]),
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def markdown_env() -> jinja2.Environment:
    loader = jinja2.FileSystemLoader(str(resources.files("tempolab") / "templates"))
    return jinja2.Environment(loader=loader, autoescape=False, undefined=jinja2.StrictUndefined,
                              trim_blocks=True, lstrip_blocks=True)


# --- formatting --------------------------------------------------------------------

def fmt_s(v: Any) -> str:
    """Seconds with an SI prefix that keeps 3 significant digits."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    v = float(v)
    a = abs(v)
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns")):
        if a >= scale or scale == 1e-9:
            return f"{v / scale:.3g} {unit}"
    return f"{v:.3g} s"


def _fmt_us(v: Any) -> str:
    return "n/a" if v is None else f"{float(v):,.0f} µs"


def fmt_pct(v: Any) -> str:
    return "n/a" if v is None else f"{float(v):.3g} %"


def _get(d: Any, *path: str) -> Any:
    for p in path:
        if not isinstance(d, dict):
            return None
        d = d.get(p)
    return d


def headline_rows(s: dict[str, Any]) -> list[dict[str, str]]:
    """The headline table shared by summary.md and report.html."""
    acc, fo, obs, cnt = s.get("accuracy"), s.get("failover"), s.get("observer"), s.get("counts")
    rows: list[dict[str, str]] = []

    def add(name: str, value: str, how: str, section: Any) -> None:
        rows.append({"name": name, "value": "unknown" if section is None else value, "how": how})

    ps = _get(acc, "post_sync_skew_s") or {}
    add("post-sync skew p50 / p95 / p99 / max",
        " / ".join(fmt_s(ps.get(k)) for k in ("p50", "p95", "p99", "max")),
        "per round: max - min of each node's first observer offset after the corrections", acc)
    add("between-round max skew", fmt_s(_get(acc, "between_round_max_skew_s")),
        "max over observer sweeps within 1.5 round intervals of a round by the current master", acc)
    bc = _get(acc, "between_round_clean") or {}
    if bc.get("of"):
        add("between-round max skew, delayed observer samples left out",
            f"{fmt_s(bc.get('max_skew_s'))} ({bc['sweeps_left_out']} of {bc['of']} sweeps left out)",
            f"sweeps where a node's observer sample had an error bound over {fmt_s(bc.get('bound_limit_s'))} "
            "(3x the median) are left out: that sample, not the clock, is off by up to its bound", acc)
    wb = _get(acc, "rounds_within_bound") or {}
    share = wb.get("share")
    add("rounds within bound", f"{wb.get('within', 0)} of {wb.get('of', 0)}"
        + (f" ({share:.1%})" if share is not None else ""),
        "post-sync skew <= 2 max(daemon bound + observer bound) + 2ρ × observer lag + the two largest "
        "corrections not yet slewed at the observer's sample", acc)
    lb = _get(acc, "rounds_within_landed_bound") or {}
    if lb.get("of"):
        add("rounds within the bound without the slew term", f"{lb['within']} of {lb['of']} ({lb['share']:.1%})",
            "as if every correction landed at once (the earlier bound)", acc)
    ex = _get(acc, "bound_exceptions") or {}
    if ex:
        add("rounds over the bound, by class", "; ".join(f"{k}: {v['rounds']}" for k, v in ex.items()),
            "causes in the table 'Rounds over the bound, by cause'", acc)
    ws = _get(acc, "rounds_within_bound_without_stated_exceptions") or {}
    if ws.get("of"):
        add("within bound once stated exceptions are set apart", f"{ws['within']} of {ws['of']} ({ws['share']:.1%})",
            "rounds over the bound with a stated cause (rejoin, observer, late sample) left out", acc)
    add("max drift ρ", "n/a" if _get(acc, "max_drift_ppm") is None else f"{_get(acc, 'max_drift_ppm'):g} ppm",
        "largest |rate| in any node's drift profile", acc)
    for key, label in (("new_master_s", "failover: fault → new master"), ("first_round_s", "failover: fault → first round")):
        st = _get(fo, key) or {}
        add(f"{label} p50 / p95 / max", " / ".join(fmt_s(st.get(k)) for k in ("p50", "p95", "max"))
            + f" (n={st.get('n', 0)})", "from trials.jsonl, filled from daemon logs", fo)
    rsy = _get(fo, "resync_s") or {}
    if rsy.get("n"):
        add("restart → in sync again p50 / p95 / max",
            " / ".join(fmt_s(rsy.get(k)) for k in ("p50", "p95", "max")) + f" (n={rsy['n']})",
            "killed daemon restarted (raw clock, UNSYNCED) until the observer sees it in sync", fo)
    cpu = s.get("cpu")
    if cpu is None:
        add("CPU", "", "", None)
    else:
        for source, roles in sorted(cpu.items()):
            for role, st in sorted(roles.items()):
                add(f"CPU {role} ({source}) mean / p95", f"{fmt_pct(st.get('mean'))} / {fmt_pct(st.get('p95'))}",
                    "% of one core over successive counter samples of one process", cpu)
    cc = s.get("cpu_cost")
    if isinstance(cc, dict):
        pr = dict(_get(cc, "us_per_round", "proc") or {})
        pr.update(_get(cc, "us_per_round", "baseline") or {})
        for role in ("master", "follower", "baseline"):
            st = pr.get(role)
            if st:
                add(f"CPU per round, {role} (schedstat) p50 / p95",
                    f"{_fmt_us(st.get('p50'))} / {_fmt_us(st.get('p95'))}",
                    f"on-CPU time per {cc.get('round_interval_s', 0):g} s round"
                    + (" (PID 1 of the node: idle baseline)" if role == "baseline" else ""), cc)
        x = cc.get("cross_check") or {}
        if x.get("n"):
            add("CPU cross-check: schedstat vs CLOCK_PROCESS_CPUTIME_ID",
                f"median abs. difference {x['median_abs_rel_diff']:.1%}, max {x['max_abs_rel_diff']:.1%} (n={x['n']})",
                "per daemon process, mean CPU over the span of its own reports, outside vs inside", cc)
        for role, f in sorted((cc.get("size_fit") or {}).items()):
            add(f"CPU per round against N, {role}", f"{f['per_follower_us']:.1f} µs per follower "
                f"+ {f['intercept_us']:.0f} µs", f"least squares over N = {', '.join(map(str, f['sizes']))}", cc)
    add("observer error bound median / p99",
        f"{fmt_s(_get(obs, 'bound_s_median'))} / {fmt_s(_get(obs, 'bound_s_p99'))}", "half the NTP probe round trip", obs)
    if cnt is None:
        add("counts", "", "", None)
    else:
        add("samples / rounds / trials / failovers",
            f"{cnt['samples']} / {cnt['rounds']} / {cnt['trials']} / {cnt['failovers']}", "rows in the tables", cnt)
    return rows


# --- figures -----------------------------------------------------------------------

CAPTIONS = {
    "offsets": "Top: each node's corrected clock minus the reference, from the observer (one line per node up to "
               "12 nodes, otherwise the median and bands across the in-sync nodes). Black ticks at the top mark "
               "rounds; red shading marks fault windows from faults.jsonl. Middle: each node's distance from the "
               "median of its sweep (red = ahead, blue = behind, linear colour scale clipped at the 98th percentile); a node turning "
               "dark is leaving the group; grey cells are nodes that did not answer. Bottom: which node the observer saw as master (LEADER).",
    "pre_post": "Left: distribution over node-rounds of each node's distance from the round's median offset, from "
                "the observer's sample just before the round and just after its corrections landed; the dashed "
                "line is the median error bound (daemon measurement + observer). Right: per round, the spread "
                "(max - min) before and after, with the round's bound. Post-sync points under the dashed line "
                "meet the bound.",
    "skew_growth": "Each point is one observer sweep: the largest difference between two in-sync nodes against "
                   "the time since the last round's corrections. Clocks that differ by at most ρ each drift apart "
                   "at no more than 2ρ, so points should stay under the solid line (post-sync median + 2ρΔt).",
    "failovers": "Per failover (master killed or stopped): time from the fault to the first election candidate, "
                 "to the new master (daemon log and as first seen by the observer) and to the new master's first "
                 "round. Boxes show quartiles across trials.",
    "cpu": "CPU time of each daemon process at ns resolution. Top left: percent of one core per sampling "
           "interval (runner's sampler, schedstat), faint points per node and the median per role; a master "
           "should sit above the followers, and the dashed line is the node's PID 1 (idle baseline). Top right: "
           "each node's median (diamond = while master, bar = PID 1). Bottom left: CPU per round in µs by role "
           "and counter (proc = schedstat from outside, daemon = CLOCK_PROCESS_CPUTIME_ID from inside). Bottom "
           "middle: the two counters against each other per daemon process; points on the diagonal mean they "
           "agree. Bottom right (scale runs): CPU per round against group size with the fitted cost per "
           "follower: the master's line should rise with N, a follower's should stay flat.",
    "drift": "Per trial: post-sync skew p95 and between-round max skew against the trial's largest drift rate; "
             "the dashed line is the drift-only bound 2ρ × round interval.",
}
TITLES = {
    "offsets": "Offsets from the reference over time",
    "pre_post": "Pre-sync and post-sync offsets per round",
    "skew_growth": "Maximum pairwise skew against time since the last round",
    "failovers": "Failover times",
    "cpu": "CPU utilization",
    "drift": "Accuracy against drift rate",
}


def render_figure(name: str, make: Callable[[], Any], out_dir: Path | None) -> FigureOutcome:
    import matplotlib.pyplot as plt

    outcome = FigureOutcome(name=name, title=TITLES.get(name, name), status="ok", caption=CAPTIONS.get(name, ""))
    try:
        fig = make()
    except figs.NotApplicable as exc:
        outcome.status, outcome.message = "skipped", str(exc)
        return outcome
    except Exception as exc:  # noqa: BLE001 - a broken figure must not break the report
        outcome.status, outcome.message = "unknown", f"{type(exc).__name__}: {exc}"
        return outcome
    try:
        outcome.axis_labels = [(ax.get_xlabel(), ax.get_ylabel()) for ax in fig.axes]
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=FIGURE_DPI)
        outcome.png_b64 = base64.b64encode(buf.getvalue()).decode("ascii")
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            png, svg = out_dir / f"{name}.png", out_dir / f"{name}.svg"
            png.write_bytes(buf.getvalue())
            fig.savefig(svg, format="svg")
            outcome.files = [png, svg]
    except Exception as exc:  # noqa: BLE001
        outcome.status, outcome.message = "unknown", f"saving failed: {type(exc).__name__}: {exc}"
    finally:
        plt.close(fig)
    return outcome


def run_t0(run: RunData, t: Tables) -> float:
    started = run.manifest.get("started")
    if isinstance(started, (int, float)) and math.isfinite(started):
        return float(started)
    if isinstance(started, str):
        try:
            return dt.datetime.fromisoformat(started).timestamp()
        except ValueError:
            pass
    return float(t.samples["t_ref"].min()) if len(t.samples) else 0.0


def figure_makers(run: RunData, t: Tables, guard: Guard) -> dict[str, Callable[[], Any]]:
    """name -> a function drawing that figure (raises figs.NotApplicable when it does not apply)."""
    palette = figs.node_palette(run.nodes)
    t0 = run_t0(run, t)
    rho = guard("drift", lambda: summ.max_drift_ppm(run), math.nan)
    t_last = float(t.samples["t_ref"].max()) if len(t.samples) else t0
    windows = guard("fault_windows", lambda: fault_windows(t.faults, t_last),
                    pd.DataFrame(columns=["kind", "targets", "t_start", "t_end", "closed"]))
    rs = guard("round_summary", lambda: summ.run_round_summary(run, t), summ.round_summary(t.rounds.iloc[0:0], rho))
    levels = guard("trial_levels", lambda: summ.trial_levels(run, t),
                   pd.DataFrame(columns=["trial", "drift_ppm", "cluster_size"]))
    between = summ.between_round_sweeps(t.sweeps, t.round_interval_s)
    others = t.sweeps.drop(between.index).dropna(subset=["max_skew_s", "since_round_s"]) if len(t.sweeps) else t.sweeps
    post_p50 = float(rs["post_skew_s"].median()) if rs["post_skew_s"].notna().any() else None

    def cpu_fig():
        by_size = figs.cpu_by_size(t.cpu, levels, t.round_interval_s) if summ.is_scale(run, levels) else None
        cross = summ.cpu_cross_check(t.cpu)["processes"]
        fit = summ.cpu_size_fit(by_size) if by_size is not None and len(by_size) else None
        return figs.fig_cpu(t.cpu, palette, by_size, t0=t0, interval_s=t.round_interval_s, cross=cross, fit=fit)

    makers = {
        "offsets": lambda: figs.fig_offsets(t.samples, t.sweeps, t.rounds, windows, palette, t0),
        "pre_post": lambda: figs.fig_pre_post(t.rounds, rs, t0),
        "skew_growth": lambda: figs.fig_skew_growth(between, others, rho, t.round_interval_s, post_p50),
        "failovers": lambda: figs.fig_failovers(t.failovers),
        "cpu": cpu_fig,
        "drift": lambda: figs.fig_drift(levels, t.round_interval_s),
    }
    return makers


def run_figures(run: RunData, t: Tables, guard: Guard, out_dir: Path | None,
                enabled: bool = True) -> list[FigureOutcome]:
    makers = figure_makers(run, t, guard)
    if not enabled:
        return [FigureOutcome(name, TITLES[name], "skipped", "figures disabled by the caller") for name in makers]
    return [render_figure(name, make, out_dir) for name, make in makers.items()]


# --- tables ------------------------------------------------------------------------

def _parquet_available() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def write_table(df: pd.DataFrame, out_dir: Path, name: str, parquet: bool, guard: Guard) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    files = [out_dir / f"{name}.csv"]
    df.to_csv(files[0], index=False)
    if parquet:
        def write_pq() -> Path:
            p = out_dir / f"{name}.parquet"
            flat = df.copy()
            for c in flat.columns:
                if flat[c].dtype == object:
                    # mixed / nested values (lists, dicts): JSON text keeps them readable
                    flat[c] = flat[c].map(lambda v: v if v is None or isinstance(v, str) else json.dumps(jsonable(v)))
            flat.to_parquet(p, index=False)
            return p
        p = guard(f"parquet:{name}", write_pq, None)
        if p is not None:
            files.append(p)
    return files


def _us(v: Any) -> Any:
    return round(float(v) * 1e6, 1) if v is not None and np.isfinite(v) else None


def rounds_by_trial(rs: pd.DataFrame) -> pd.DataFrame:
    """The per-round table summarised per trial, in µs (tables/round_summary.csv has every round)."""
    if rs is None or rs.empty:
        return pd.DataFrame()
    rows = []
    for trial, g in rs.groupby("trial", dropna=False, sort=True):
        post, pre = g["post_skew_s"].dropna(), g["pre_skew_s"].dropna()
        wb = g["within_bound"].dropna().astype(bool)
        rows.append({
            "trial": trial, "rounds": len(g),
            "pre-sync skew p50 (µs)": _us(pre.median()) if len(pre) else None,
            "pre-sync skew max (µs)": _us(pre.max()) if len(pre) else None,
            "post-sync skew p50 (µs)": _us(post.median()) if len(post) else None,
            "post-sync skew p95 (µs)": _us(np.percentile(post, 95)) if len(post) else None,
            "post-sync skew max (µs)": _us(post.max()) if len(post) else None,
            "bound p50 (µs)": _us(g["bound_s"].median()) if g["bound_s"].notna().any() else None,
            "within bound": f"{int(wb.sum())} of {len(wb)}",
        })
    return pd.DataFrame(rows)


def exceptions_html(rs: pd.DataFrame) -> pd.DataFrame:
    ex = summ.bound_exceptions(rs) if rs is not None and len(rs) else {}
    return pd.DataFrame([{"class": k, "rounds": v["rounds"], "max post-sync skew (µs)": _us(v["max_post_skew_s"]),
                          "round ids": ", ".join(map(str, v["round_ids"][:20])) + (" ..." if v["rounds"] > 20 else ""),
                          "cause": v["cause"]} for k, v in ex.items()])


def failovers_html(f: pd.DataFrame, t0: float) -> pd.DataFrame:
    if f is None or f.empty:
        return pd.DataFrame()
    return pd.DataFrame({
        "trial": f["trial"], "kind": f["kind"], "target": f["target"], "new master": f["new_master"],
        "fault at (s since start)": (f["fault_t"] - t0).round(2),
        "→ candidate (s)": f["detect_s"].round(3), "→ new master (s)": f["new_master_s"].round(3),
        "→ observer saw it (s)": f["obs_new_master_s"].round(3), "→ first round (s)": f["first_round_s"].round(3),
        "consistent": f["consistent"],
    })


def trials_html(levels: pd.DataFrame) -> pd.DataFrame:
    if levels is None or levels.empty:
        return pd.DataFrame()
    return pd.DataFrame({
        "trial": levels["trial"], "max drift (ppm)": levels["drift_ppm"].round(1),
        "group size (nodes)": levels["cluster_size"],
        "post-sync skew p95 (µs)": levels["post_skew_p95_s"].map(_us),
        "between-round max skew (µs)": levels["between_round_max_skew_s"].map(_us),
    })


def cpu_html(cpu: pd.DataFrame, interval_s: float) -> pd.DataFrame:
    c = cpu.dropna(subset=["cpu_pct"]) if len(cpu) else cpu
    if c is None or c.empty:
        return pd.DataFrame()
    g = c.groupby(["source", "role"])
    out = g.agg(processes=("pid", "nunique"), intervals=("cpu_pct", "size"), mean=("cpu_pct", "mean"),
                median=("cpu_pct", "median"), p95=("cpu_pct", lambda x: np.percentile(x, 95))).reset_index()
    return pd.DataFrame({
        "source": out["source"], "role": out["role"], "processes": out["processes"], "intervals": out["intervals"],
        "mean (% of one core)": out["mean"].round(3), "median (% of one core)": out["median"].round(3),
        "p95 (% of one core)": out["p95"].round(3),
        f"median per round (µs, {interval_s:g} s rounds)": (out["median"] / 100 * interval_s * 1e6).round(0),
    })


def html_tables(t: Tables, rs: pd.DataFrame, levels: pd.DataFrame, t0: float = 0.0,
                exceptions: pd.DataFrame | None = None) -> list[dict[str, str]]:
    """Summaries for the HTML report; every full table is in tables/ (CSV/Parquet)."""
    out = []

    def add(title: str, df: pd.DataFrame, note: str = "", limit: int = 40) -> None:
        if df is None or df.empty:
            return
        shown = df.head(limit)
        more = f" Showing the first {limit} of {len(df)} rows." if len(df) > limit else ""
        out.append({"title": title, "note": note + more,
                    "html": shown.to_html(index=False, float_format=lambda v: f"{v:,.6g}", na_rep="–", border=0)})

    add("Rounds, per trial", rounds_by_trial(rs),
        "Skew = max - min of the observer offsets of the round's nodes, before the round and after its "
        "corrections; every round is in tables/round_summary.csv.")
    if exceptions is not None and len(exceptions):
        add("Rounds over the bound, by cause", exceptions,
            "Each class of post-sync skew above the stated bound, with its cause (docs/analysis.md).")
    add("Failovers", failovers_html(t.failovers, t0), "Times after the fault (kill -9 or SIGSTOP of the master).")
    add("Trials", trials_html(levels))
    add("CPU per role and source", cpu_html(t.cpu, t.round_interval_s),
        "proc = the runner's sampler (schedstat, ns), daemon = the daemon's own CLOCK_PROCESS_CPUTIME_ID, "
        "baseline = the node's PID 1 (idle). Per node: tables/cpu.csv.")
    return out


# --- the report --------------------------------------------------------------------

def build_report(run_dir: str | Path, write: bool = True, figures: bool = True) -> ReportResult:
    """Analyse a run folder.  Raises :class:`NotARunFolder` for a path that is not one;
    any other problem ends up in the outputs (``missing`` / ``unknown``).

    ``write=False`` computes everything without touching the folder; ``figures=False``
    skips drawing (the figures are the slow part: ~1-3 s each)."""
    run = load_run(run_dir)
    guard = Guard()
    t = build_tables(run, guard)
    problems = list(run.problems) + list(t.problems)
    rho = guard("drift", lambda: summ.max_drift_ppm(run), math.nan)
    rs = guard("round_summary", lambda: summ.run_round_summary(run, t), pd.DataFrame())
    levels = guard("trial_levels", lambda: summ.trial_levels(run, t), pd.DataFrame())

    sections = {
        "counts": lambda: summ.counts_section(run, t),
        "accuracy": lambda: summ.accuracy_section(run, t),
        "failover": lambda: summ.failover_section(t),
        "cpu": lambda: summ.cpu_section(t),
        "cpu_cost": lambda: summ.cpu_cost_section(
            t, figs.cpu_by_size(t.cpu, levels, t.round_interval_s) if summ.is_scale(run, levels) else None),
        "observer": lambda: summ.observer_section(t),
    }
    summary: dict[str, Any] = {
        "run": run.name,
        "suite": run.suite_name,
        "generated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    for name, fn in sections.items():
        summary[name] = guard(name, fn, None)

    files: list[Path] = []
    root = run.path
    fig_dir = root / "figures" if write else None
    outcomes = run_figures(run, t, guard, fig_dir, enabled=figures)
    for f in outcomes:
        files += f.files
    summary["figures"] = {f.name: f.status if f.status == "ok" else f"{f.status}: {f.message}" for f in outcomes}
    summary["missing"] = problems
    summary["unknown"] = dict(guard.unknown)
    summary = jsonable(summary)

    if write:
        parquet = _parquet_available()
        tdir = root / "tables"
        for name, df in (("samples", t.samples), ("sweeps", t.sweeps), ("rounds", t.rounds), ("round_summary", rs),
                         ("failovers", t.failovers), ("cpu", t.cpu), ("trials", levels)):
            files += guard(f"table:{name}", lambda df=df, name=name: write_table(df, tdir, name, parquet, guard), [])
        summary["unknown"] = jsonable(dict(guard.unknown))
        write_json(root / "summary.json", summary, sort_keys=False)
        files.append(root / "summary.json")
        ctx = {
            "run_name": run.name, "suite": run.suite_name, "manifest": run.manifest,
            "counts": summary.get("counts"), "headline": headline_rows(summary), "unknown": summary["unknown"],
            "problems": problems, "figures": outcomes, "skipped": [f for f in outcomes if f.status == "skipped"],
            "parquet": parquet, "table_files": sorted({p.stem for p in files if p.parent == tdir}),
            "html_tables": guard("html_tables", lambda: html_tables(t, rs, levels, run_t0(run, t),
                                                                    exceptions_html(rs)), []),
            "manifest_json": json.dumps(run.manifest, indent=2, sort_keys=True, default=str),
        }
        (root / "summary.md").write_text(markdown_env().get_template("summary.md.j2").render(**ctx))
        (root / "report.html").write_text(templates().get_template("report.html.j2").render(**ctx))
        files += [root / "summary.md", root / "report.html"]
    return ReportResult(run_dir=root, summary=summary, figures=outcomes, files=files, unknown=dict(guard.unknown))
