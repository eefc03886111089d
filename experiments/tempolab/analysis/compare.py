"""Several run folders side by side: overlaid figures (colour = run) and a headline
table with ratios to the first run.

Owns only the comparison layout; every number comes from :mod:`.summary` applied to
each run, and runs are read with :mod:`.load` exactly as ``tempo report`` does.  It
writes only into its output folder, never into the run folders.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from . import figures as figs
from . import summary as summ
from ..runschema import jsonable
from .load import RunData, load_run
from .report import FigureOutcome, Guard, markdown_env, render_figure, run_t0, templates
from .tables import Tables, build_tables

# (key in the flat headline, label, getter on a summary-like dict)
HEADLINE: list[tuple[str, str, Callable[[dict[str, Any]], Any]]] = [
    ("post_skew_p50_s", "post-sync skew p50 (s)", lambda s: s["accuracy"]["post_sync_skew_s"]["p50"]),
    ("post_skew_p95_s", "post-sync skew p95 (s)", lambda s: s["accuracy"]["post_sync_skew_s"]["p95"]),
    ("post_skew_p99_s", "post-sync skew p99 (s)", lambda s: s["accuracy"]["post_sync_skew_s"]["p99"]),
    ("post_skew_max_s", "post-sync skew max (s)", lambda s: s["accuracy"]["post_sync_skew_s"]["max"]),
    ("between_round_max_skew_s", "between-round max skew (s)", lambda s: s["accuracy"]["between_round_max_skew_s"]),
    ("rounds_within_bound", "share of rounds within bound", lambda s: s["accuracy"]["rounds_within_bound"]["share"]),
    ("failover_p50_s", "failover to new master p50 (s)", lambda s: s["failover"]["new_master_s"]["p50"]),
    ("failover_p95_s", "failover to new master p95 (s)", lambda s: s["failover"]["new_master_s"]["p95"]),
    ("failover_max_s", "failover to new master max (s)", lambda s: s["failover"]["new_master_s"]["max"]),
    ("cpu_master_pct", "CPU master mean (% core)", lambda s: s["cpu"]["proc"]["master"]["mean"]),
    ("cpu_follower_pct", "CPU follower mean (% core)", lambda s: s["cpu"]["proc"]["follower"]["mean"]),
    ("observer_bound_p50_s", "observer bound median (s)", lambda s: s["observer"]["bound_s_median"]),
    ("samples", "samples", lambda s: s["counts"]["samples"]),
    ("rounds", "rounds", lambda s: s["counts"]["rounds"]),
    ("trials", "trials", lambda s: s["counts"]["trials"]),
    ("nodes", "nodes", lambda s: s["counts"]["nodes"]),
]


@dataclass
class RunView:
    label: str
    run: RunData
    tables: Tables
    summary: dict[str, Any]
    levels: pd.DataFrame
    round_sum: pd.DataFrame
    rho_ppm: float


@dataclass
class CompareResult:
    out_dir: Path
    headline: pd.DataFrame
    figures: list[FigureOutcome]
    files: list[Path]


def _view(path: Path, guard: Guard, label: str) -> RunView:
    run = load_run(path)
    t = build_tables(run, lambda name, fn, fb: guard(f"{label}:{name}", fn, fb))
    rho = summ.max_drift_ppm(run)
    s = {
        "counts": guard(f"{label}:counts", lambda: summ.counts_section(run, t), None),
        "accuracy": guard(f"{label}:accuracy", lambda: summ.accuracy_section(run, t), None),
        "failover": guard(f"{label}:failover", lambda: summ.failover_section(t), None),
        "cpu": guard(f"{label}:cpu", lambda: summ.cpu_section(t), None),
        "observer": guard(f"{label}:observer", lambda: summ.observer_section(t), None),
    }
    levels = guard(f"{label}:trial_levels", lambda: summ.trial_levels(run, t), pd.DataFrame())
    # the run's own slew/step limits, observer bound and round interval, as its report uses
    # (with the defaults, a run with other clock parameters compared with other bounds)
    rs = guard(f"{label}:round_summary", lambda: summ.run_round_summary(run, t), pd.DataFrame())
    return RunView(label, run, t, s, levels, rs, rho)


def headline_table(views: list[RunView]) -> pd.DataFrame:
    """Rows = quantities, columns = runs plus ``<run> / first`` ratios."""
    rows = []
    for key, label, get in HEADLINE:
        row: dict[str, Any] = {"quantity": label, "key": key}
        for v in views:
            try:
                val = get(v.summary)
            except (KeyError, TypeError):
                val = None
            row[v.label] = float(val) if isinstance(val, (int, float)) and math.isfinite(val) else None
        first = row[views[0].label]
        for v in views[1:]:
            val = row[v.label]
            row[f"{v.label} / first"] = (val / first) if (val is not None and first not in (None, 0)) else None
        rows.append(row)
    return pd.DataFrame(rows)


def _labels(paths: list[Path]) -> list[str]:
    names = [p.resolve().name for p in paths]
    return [n if names.count(n) == 1 else f"{n}#{i + 1}" for i, n in enumerate(names)]


def compare_figures(views: list[RunView], out_dir: Path | None) -> list[FigureOutcome]:
    pal = figs.run_palette([v.label for v in views])

    def skew_time():
        fig, ax = plt.subplots(figsize=(10, 4.2), layout="constrained")
        drawn = 0
        for v in views:
            sw = v.tables.sweeps.dropna(subset=["max_skew_s"])
            if sw.empty:
                continue
            ax.plot(sw["t_ref"] - run_t0(v.run, v.tables), sw["max_skew_s"], lw=0.9, color=pal[v.label], label=v.label)
            drawn += 1
        if not drawn:
            raise figs.NotApplicable("no run has sweeps with two in-sync nodes")
        ax.set_yscale("log")
        ax.set_xlabel(figs.TIME_LABEL)
        ax.set_ylabel("max pairwise skew per sweep (s, log)")
        ax.legend(fontsize=7, title="run")
        return fig

    def pre_post():
        long = pd.concat([v.round_sum.assign(run=v.label) for v in views if len(v.round_sum)], ignore_index=True) \
            if any(len(v.round_sum) for v in views) else pd.DataFrame()
        if long.empty or long["post_skew_s"].dropna().empty:
            raise figs.NotApplicable("no rounds with observer samples in any run")
        fig, ax = plt.subplots(figsize=(8, 4.2), layout="constrained")
        sns.ecdfplot(data=long.dropna(subset=["post_skew_s"]), x="post_skew_s", hue="run", palette=pal,
                     log_scale=True, ax=ax)
        ax.set_xlabel("post-sync skew per round (s, log)")
        ax.set_ylabel("share of rounds (ECDF)")
        return fig

    def growth():
        fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
        drawn = 0
        for v in views:
            b = summ.between_round_sweeps(v.tables.sweeps, v.tables.round_interval_s)
            if b.empty:
                continue
            drawn += 1
            ax.scatter(b["since_round_s"], b["max_skew_s"], s=5, color=pal[v.label], alpha=0.6, label=v.label)
            if math.isfinite(v.rho_ppm):
                x = np.linspace(0, float(b["since_round_s"].max()), 50)
                base = float(v.round_sum["post_skew_s"].median()) if len(v.round_sum) else 0.0
                ax.plot(x, (base if math.isfinite(base) else 0.0) + 2 * v.rho_ppm * 1e-6 * x, color=pal[v.label],
                        lw=1, ls="--")
        if not drawn:
            raise figs.NotApplicable("no sweeps between regular rounds in any run")
        ax.set_xlabel("time since the last round's corrections (s)")
        ax.set_ylabel("max pairwise skew between nodes (s)")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=7, title="run (dashed: post-sync p50 + 2ρΔt)")
        return fig

    def failovers():
        long = pd.concat([figs.failover_long(v.tables.failovers).assign(run=v.label) for v in views
                          if len(v.tables.failovers)], ignore_index=True) \
            if any(len(v.tables.failovers) for v in views) else pd.DataFrame()
        if long.empty:
            raise figs.NotApplicable("no failovers in any run")
        fig, ax = plt.subplots(figsize=(9, 4.2), layout="constrained")
        sns.stripplot(data=long, x="seconds", y="metric", hue="run", palette=pal, dodge=True, size=5, ax=ax)
        ax.set_xlabel("duration after the fault (s)")
        ax.set_ylabel("")
        return fig

    def cpu():
        rows = []
        for v in views:
            c = v.tables.cpu.dropna(subset=["cpu_pct"])
            c = c[c["source"] == "proc"] if (c["source"] == "proc").any() else c
            for role, g in c.groupby("role"):
                rows.append({"run": v.label, "role": role, "cpu_pct": float(g["cpu_pct"].mean()),
                             "nodes": len(v.run.nodes)})
        if not rows:
            raise figs.NotApplicable("no CPU intervals in any run")
        df = pd.DataFrame(rows)
        scale = df["nodes"].nunique() >= 2
        fig, axes = plt.subplots(1, 2 if scale else 1, figsize=(11 if scale else 6, 4.2), layout="constrained",
                                 squeeze=False)
        sns.barplot(data=df, x="role", y="cpu_pct", hue="run", palette=pal, ax=axes[0][0])
        axes[0][0].set_xlabel("role")
        axes[0][0].set_ylabel("mean CPU (% of one core)")
        if scale:
            sns.lineplot(data=df, x="nodes", y="cpu_pct", hue="role", marker="o", ax=axes[0][1])
            axes[0][1].set_xlabel("cluster size (nodes)")
            axes[0][1].set_ylabel("mean CPU (% of one core)")
        return fig

    def drift():
        long = pd.concat([v.levels.assign(run=v.label) for v in views if len(v.levels)], ignore_index=True) \
            if any(len(v.levels) for v in views) else pd.DataFrame()
        if long.empty or long["drift_ppm"].round(3).nunique() < 2:
            raise figs.NotApplicable("fewer than two drift levels across the runs' trials")
        fig, ax = plt.subplots(figsize=(7, 4.2), layout="constrained")
        sns.lineplot(data=long, x="drift_ppm", y="post_skew_p95_s", hue="run", palette=pal, marker="o", ax=ax)
        ax.set_yscale("log")
        ax.set_xlabel("max drift rate ρ in the trial (ppm)")
        ax.set_ylabel("post-sync skew p95 (s, log)")
        return fig

    makers = {"offsets": skew_time, "pre_post": pre_post, "skew_growth": growth, "failovers": failovers,
              "cpu": cpu, "drift": drift}
    outcomes = [render_figure(name, make, out_dir) for name, make in makers.items()]
    for o in outcomes:
        o.caption = "Overlay per run (colour = run). " + {
            "offsets": "Largest difference between two in-sync nodes in each observer sweep.",
            "pre_post": "Distribution of the per-round post-sync skew.",
            "skew_growth": "Skew between rounds against time since the round; dashed = each run's 2ρ bound.",
            "failovers": "Failover durations per trial.",
            "cpu": "Mean CPU per role; right, against cluster size when the runs differ in size.",
            "drift": "Post-sync skew p95 per trial against the trial's drift rate.",
        }[o.name]
    return outcomes


def _fmt_cell(v: Any) -> str:
    if isinstance(v, str):
        return v
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if float(v).is_integer() and abs(v) >= 1:
        return str(int(v))  # counts stay counts, not 1.855e+04
    return f"{v:.4g}"


def _markdown_table(df: pd.DataFrame) -> str:
    cols = [c for c in df.columns if c != "key"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        cells = []
        for c in cols:
            v = r[c]
            cells.append(_fmt_cell(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def default_out_dir(base: Path = Path("results")) -> Path:
    return base / f"compare-{dt.datetime.now():%Y%m%d-%H%M%S}"


def build_compare(run_dirs: list[str | Path], out_dir: str | Path | None = None) -> CompareResult:
    if len(run_dirs) < 1:
        raise ValueError("compare needs at least one run folder")
    paths = [Path(p) for p in run_dirs]
    out = Path(out_dir) if out_dir is not None else default_out_dir()
    guard = Guard()
    labels = _labels(paths)
    views = [_view(p, guard, lab) for p, lab in zip(paths, labels)]  # NotARunFolder propagates: a clear error
    table = headline_table(views)
    out.mkdir(parents=True, exist_ok=True)
    figures = compare_figures(views, out / "figures")
    problems = [f"{v.label}: {p}" for v in views for p in (v.run.problems + v.tables.problems)]
    problems += [f"unknown: {k} ({e})" for k, e in guard.unknown.items()]
    files = [f for o in figures for f in o.files]
    table.to_csv(out / "headline.csv", index=False)
    (out / "compare.json").write_text(json.dumps(jsonable({
        "runs": {v.label: str(p.resolve()) for v, p in zip(views, paths)},
        "headline": table.to_dict(orient="records"),
        "figures": {o.name: o.status if o.status == "ok" else f"{o.status}: {o.message}" for o in figures},
        "missing": problems, "unknown": guard.unknown}), indent=2) + "\n")
    table_html = table.drop(columns=["key"]).to_html(index=False, na_rep="n/a", float_format=_fmt_cell, border=0)
    ctx = {"runs": labels, "table_html": table_html, "table_md": _markdown_table(table), "figures": figures,
           "problems": problems}
    (out / "compare.html").write_text(templates().get_template("compare.html.j2").render(**ctx))
    (out / "compare.md").write_text(markdown_env().get_template("compare.md.j2").render(**ctx))
    files += [out / "headline.csv", out / "compare.json", out / "compare.html", out / "compare.md"]
    return CompareResult(out_dir=out, headline=table, figures=figures, files=files)
