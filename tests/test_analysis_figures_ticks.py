"""Every figure of a synthetic run of every built-in suite: tick labels on every axis,
no two tick labels of one axis overlapping (issue 14: a symlog panel with no y labels,
CPU role labels run together), and a caption for each figure.

The synthetic runs take each suite's size, trial count and round interval from its
YAML, so a suite whose shape changes changes what is drawn here.
"""

from __future__ import annotations

import math

import matplotlib
import pytest
import yaml

matplotlib.use("Agg")

from tempolab.analysis import figures as figs  # noqa: E402
from tempolab.analysis import report as rep  # noqa: E402
from tempolab.analysis.load import load_run  # noqa: E402
from tempolab.testing.synthetic import SyntheticSpec, make_run  # noqa: E402
from tempolab.analysis.tables import build_tables  # noqa: E402
from tempolab.runner.suite import SUITES_DIR, builtin_suites  # noqa: E402


def spec_for(name: str) -> SyntheticSpec:
    raw = yaml.safe_load((SUITES_DIR / f"{name}.yaml").read_text())
    nodes = int(raw.get("nodes", 5))
    interval = float((raw.get("daemon") or {}).get("round_interval_s", 10.0))
    sweep = raw.get("sweep") or []
    trials = max(2, min(3, int(raw.get("trials", 1)) * max(1, len(sweep))))
    kw: dict = {}
    if any("drift.max_ppm" in p for p in sweep):
        levels = tuple(float(p["drift.max_ppm"]) for p in sweep)[::2]
        trials = len(levels)
        kw["drift_levels_ppm"] = levels
    if any("nodes" in p for p in sweep):
        sizes = tuple(int(p["nodes"]) for p in sweep)[:trials]
        trials = len(sizes)
        kw.update(cluster_sizes=sizes, master_cpu_per_follower_pct=0.05)
    if name == "smoke":
        # every offset inside the symlog linear band: the panel that had no y labels
        kw.update(post_spread_s=5e-6)
        trials = 1
    return SyntheticSpec(suite=name, nodes=nodes, trials=trials, round_interval_s=interval,
                         trial_s=max(40.0, 6 * interval), kill_at_s=min(25.5, 3 * interval + 0.5), **kw)


def _labels(ax, axis, renderer):
    out = []
    a = ax.xaxis if axis == "x" else ax.yaxis
    lo, hi = sorted(ax.get_xlim() if axis == "x" else ax.get_ylim())
    for minor in (False, True):
        ticks = a.get_minor_ticks() if minor else a.get_major_ticks()
        locs = a.get_minorticklocs() if minor else a.get_majorticklocs()
        for tick, loc in zip(ticks, locs):
            lab = tick.label1
            if not (lab.get_visible() and lab.get_text().strip()):
                continue
            span = (hi - lo) or 1.0
            if not (lo - 1e-9 * span <= loc <= hi + 1e-9 * span):
                continue
            out.append(lab.get_window_extent(renderer))
    return out


def _overlaps(boxes):
    bad = []
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            a, b = boxes[i], boxes[j]
            ix = min(a.x1, b.x1) - max(a.x0, b.x0)
            iy = min(a.y1, b.y1) - max(a.y0, b.y0)
            if ix > 1.0 and iy > 1.0:   # more than a pixel of common area
                bad.append((i, j))
    return bad


def check_figure(name: str, fig) -> list[str]:
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    problems = []
    for k, ax in enumerate(fig.axes):
        if not ax.get_visible() or ax.get_label() == "<colorbar>":
            continue
        skip = getattr(ax, figs.NO_TICKS, set())
        for axis in ("x", "y"):
            if axis in skip:
                continue
            boxes = _labels(ax, axis, r)
            if len(boxes) < 2 and not (ax.get_label() == "<colorbar>"):
                problems.append(f"{name} axes {k} ({ax.get_title() or ax.get_ylabel()!r}): "
                                f"{len(boxes)} {axis} tick labels")
            if _overlaps(boxes):
                problems.append(f"{name} axes {k} ({ax.get_title()!r}): overlapping {axis} tick labels")
    return problems


@pytest.mark.parametrize("suite", builtin_suites())
def test_every_axis_of_every_figure_has_readable_ticks(suite, tmp_path):
    path = tmp_path / suite
    make_run(path, spec_for(suite))
    run = load_run(path)
    t = build_tables(run)
    import matplotlib.pyplot as plt

    guard = rep.Guard()
    drawn: dict[str, list[str]] = {}
    for name, make in rep.figure_makers(run, t, guard).items():
        try:
            fig = make()
        except figs.NotApplicable:
            continue
        drawn[name] = check_figure(name, fig)
        plt.close(fig)
        assert rep.CAPTIONS.get(name) and len(rep.CAPTIONS[name]) > 40, name
    assert not guard.unknown
    assert {"offsets", "pre_post", "cpu"} <= set(drawn)
    if suite == "drift-sweep":
        assert "drift" in drawn
    if suite in ("leader-kill", "scale", "load"):
        assert "failovers" in drawn
    problems = [p for ps in drawn.values() for p in ps]
    assert not problems, "\n".join(problems)


def test_scale_run_fits_the_known_per_follower_cost(tmp_path):
    path = tmp_path / "scale"
    make_run(path, SyntheticSpec(suite="scale", nodes=5, trials=3, cluster_sizes=(3, 8, 16),
                                 master_cpu_pct=1.0, master_cpu_per_follower_pct=0.05, round_interval_s=4.0,
                                 trial_s=60.0, kill_at_s=30.5))
    result = rep.build_report(path, write=False, figures=False)
    fit = result.summary["cpu_cost"]["size_fit"]
    # 0.05 % of a core per follower x 4 s rounds = 2000 µs per follower per round
    assert fit["master"]["per_follower_us"] == pytest.approx(2000.0, rel=0.1)
    assert abs(fit["follower"]["per_follower_us"]) < 50.0
    assert math.isfinite(fit["master"]["intercept_us"])
