"""The asymmetry suite's analysis: offset bias against the delay asymmetry, and theory.

Owns one question (experiments/tempolab/suites/asymmetry.yaml): a two-way offset estimate
assumes equal delays both ways, so with ``d_out`` (master -> follower) and ``d_back``
(follower -> master) it is wrong by ``(d_out - d_back) / 2``. Berkeley makes the
*estimates* agree, so at equilibrium each follower sits at

    follower - master = -(d_out - d_back) / 2          (offset = local - reference)

This module measures ``follower - master`` from the observer's samples in each
``asym_delay`` window (after ``settle_s``, so the loop has absorbed the change), puts
it beside the theory, and draws the figure. The observer is not biased by the fault:
the netem band only holds traffic between nodes (runner/faults.py).
Pure functions of DataFrames; :func:`from_tables` adapts the analysis's tables.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

RESULT_COLUMNS = ["window", "t_start", "t_end", "master", "delay_ms", "reverse_delay_ms", "asymmetry_ms",
                  "expected_bias_s", "measured_bias_s", "error_s", "follower_spread_s", "samples", "within"]
_DETAIL = re.compile(r"netem asymmetric delay: (?P<t>[^ ]+) -> others (?P<d>[0-9.]+) ms, "
                     r"others -> [^ ]+ (?P<r>[0-9.]+) ms")


@dataclass(frozen=True)
class Window:
    t_start: float
    t_end: float
    master: str
    delay_ms: float           # master -> followers
    reverse_delay_ms: float   # followers -> master

    @property
    def asymmetry_ms(self) -> float:
        return self.delay_ms - self.reverse_delay_ms


def expected_bias_s(asymmetry_ms: float) -> float:
    """follower - master at equilibrium (s) for ``asymmetry_ms = d_out - d_back``."""
    return -asymmetry_ms * 1e-3 / 2.0


def measure(samples: pd.DataFrame, windows: list[Window], *, settle_s: float = 10.0,
            floor_s: float = 1e-3, rel: float = 0.25) -> pd.DataFrame:
    """One row per window: measured and expected bias, and whether they agree.

    ``samples``: columns ``t_ref``, ``node``, ``offset_s`` (node - true). Per window,
    over ``[t_start + settle_s, t_end]``, each follower sample is compared with the
    master's offset interpolated at the same reference time (the whole group may drift
    against true time: at 2 % a 0.1 s mismatch in sample times would be 2 ms); a
    follower's bias is the median of those differences, the window's the mean over
    followers. ``within``: ``|error| <= max(floor_s, rel * |expected|)`` -- the floor is
    the guest-to-guest delay jitter under TCG (DESIGN.md 9), ``rel`` the other errors
    the theory ignores (the netem timer's granularity, processing time one way).
    """
    rows = []
    s = samples.dropna(subset=["offset_s"])
    for i, w in enumerate(windows):
        part = s[(s["t_ref"] >= w.t_start + settle_s) & (s["t_ref"] <= w.t_end)]
        m = part[part["node"] == w.master].sort_values("t_ref")
        followers = sorted(n for n in part["node"].unique() if n != w.master)
        exp = expected_bias_s(w.asymmetry_ms)
        biases = []
        if len(m) >= 2:
            for f in followers:
                fs = part[(part["node"] == f) & (part["t_ref"] >= m["t_ref"].iloc[0])
                          & (part["t_ref"] <= m["t_ref"].iloc[-1])]
                if len(fs):
                    at = np.interp(fs["t_ref"], m["t_ref"], m["offset_s"])
                    biases.append(float(np.median(fs["offset_s"].to_numpy() - at)))
        if not biases:
            got = spread = math.nan
        else:
            got = sum(biases) / len(biases)
            spread = max(biases) - min(biases)
        err = got - exp
        rows.append({"window": i, "t_start": w.t_start, "t_end": w.t_end, "master": w.master,
                     "delay_ms": w.delay_ms, "reverse_delay_ms": w.reverse_delay_ms,
                     "asymmetry_ms": w.asymmetry_ms, "expected_bias_s": exp, "measured_bias_s": got,
                     "error_s": err, "follower_spread_s": spread, "samples": int(len(part)),
                     "within": bool(abs(err) <= max(floor_s, rel * abs(exp))) if not math.isnan(err) else False})
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def windows_from_faults(faults: pd.DataFrame, t_last: float) -> list[Window]:
    """``asym_delay`` windows from the run's fault records (start/end by fault id)."""
    out = []
    f = faults[faults["kind"] == "asym_delay"]
    for _, start in f[f["phase"] == "start"].iterrows():
        end = f[(f["phase"] == "end") & (f["fault_id"] == start.get("fault_id"))
                & (f["trial"] == start.get("trial")) & (f["t_ref"] >= start["t_ref"])]
        t_end = float(end["t_ref"].iloc[0]) if len(end) else t_last
        d, r = start.get("delay_ms"), start.get("reverse_delay_ms")
        if d is None or r is None or (isinstance(d, float) and math.isnan(d)):
            m = _DETAIL.search(str(start.get("detail", "")))
            if not m:
                continue
            d, r = float(m["d"]), float(m["r"])
        targets = start["targets"]
        master = targets[0] if isinstance(targets, (list, tuple)) and targets else str(targets)
        out.append(Window(float(start["t_ref"]), t_end, master, float(d), float(r)))
    return out


def from_tables(tables, settle_s: float = 10.0) -> pd.DataFrame:
    """:func:`measure` on a run's analysis tables (tables.Tables)."""
    t_last = float(tables.samples["t_ref"].max()) if len(tables.samples) else 0.0
    return measure(tables.samples, windows_from_faults(tables.faults, t_last), settle_s=settle_s)


def figure(result: pd.DataFrame):
    """Measured bias against the asymmetry, with the theory line y = -x / 2."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    xs = result["asymmetry_ms"].astype(float)
    lo, hi = (min(xs.min(), 0.0), max(xs.max(), 0.0)) if len(xs) else (-1.0, 1.0)
    pad = 0.1 * (hi - lo or 1.0)
    line = pd.Series([lo - pad, hi + pad])
    ax.plot(line, -line / 2.0, color="0.4", linestyle="--", label="theory: -(d_out - d_back) / 2")
    sns.scatterplot(x=xs, y=result["measured_bias_s"] * 1e3, hue=result["within"].map({True: "within", False: "outside"}),
                    palette={"within": "tab:blue", "outside": "tab:red"}, s=60, ax=ax)
    if "follower_spread_s" in result:
        ax.errorbar(xs, result["measured_bias_s"] * 1e3, yerr=result["follower_spread_s"].fillna(0) * 1e3 / 2,
                    fmt="none", ecolor="tab:blue", alpha=0.5)
    ax.set_xlabel("delay asymmetry d_out - d_back (ms)")
    ax.set_ylabel("follower - master offset (ms)")
    ax.set_title("Offset bias against delay asymmetry")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return fig
