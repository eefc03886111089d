"""Report, figures and compare: outputs exist, are self-contained and labelled."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest

from tempolab import cli
from tempolab.analysis import build_compare, build_report, load_run
from tempolab.analysis import figures as figs
from tempolab.analysis import summary as summ
from tempolab.testing.synthetic import SyntheticSpec, make_run
from tempolab.analysis.tables import build_tables, fault_windows


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k in ("src", "href", "data") or (tag == "link"):
                self.refs.append((tag, k, v or ""))


def external_refs(html: str) -> list[tuple[str, str, str]]:
    p = _Refs()
    p.feed(html)
    return [r for r in p.refs if not (r[2].startswith("data:") or r[2].startswith("#"))]


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    path = tmp_path_factory.mktemp("rep") / "20261123-100000-leader-kill"
    truth = make_run(path, SyntheticSpec(nodes=5, seed=2))
    assert cli.main(["report", str(path)]) == 0
    return path, truth


def test_outputs_exist(reported):
    path, _ = reported
    for name in ("summary.json", "summary.md", "report.html"):
        assert (path / name).stat().st_size > 0
    for name in ("offsets", "pre_post", "skew_growth", "failovers", "cpu"):
        assert (path / "figures" / f"{name}.png").stat().st_size > 1000
        assert (path / "figures" / f"{name}.svg").read_text().lstrip().startswith("<?xml")
    assert not (path / "figures" / "drift.png").exists()  # not a drift sweep
    for name in ("samples", "sweeps", "rounds", "round_summary", "failovers", "cpu", "trials"):
        assert (path / "tables" / f"{name}.csv").exists()
        assert (path / "tables" / f"{name}.parquet").exists()


def test_summary_json_headline_keys(reported):
    path, truth = reported
    s = json.loads((path / "summary.json").read_text())
    ps = s["accuracy"]["post_sync_skew_s"]
    assert set(ps) >= {"p50", "p95", "p99", "max"}
    assert ps["max"] == pytest.approx(max(truth.post_skews_s), abs=1e-12)
    assert s["accuracy"]["between_round_max_skew_s"] > 0
    assert 0 <= s["accuracy"]["rounds_within_bound"]["share"] <= 1
    assert s["failover"]["new_master_s"]["p50"] == pytest.approx(3.75)
    assert s["cpu"]["proc"]["follower"]["p50"] == pytest.approx(0.5)
    assert s["observer"]["bound_s_median"] == pytest.approx(2e-5)
    assert s["counts"]["samples"] == truth.samples
    assert s["missing"] == [] and s["unknown"] == {}
    assert s["figures"]["drift"].startswith("skipped: not a drift sweep")


def test_html_is_self_contained(reported):
    path, _ = reported
    html = (path / "report.html").read_text()
    assert external_refs(html) == []
    assert html.count("data:image/png;base64,") == 5
    assert "Data problems" in html and "Manifest" in html
    assert "Not applicable to this run: not a drift sweep" in html


def test_summary_md_is_a_markdown_table(reported):
    md = (reported[0] / "summary.md").read_text()
    assert md.startswith("# Tempo lab run ")
    assert "| post-sync skew p50 / p95 / p99 / max |" in md


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    path = tmp_path_factory.mktemp("big") / "run32"
    make_run(path, SyntheticSpec(nodes=32, seed=4, trials=2, trial_s=50.0, kill_at_s=20.5))
    run = load_run(path)
    return run, build_tables(run)


def test_figure_axis_labels_and_units(big):
    run, t = big
    pal = figs.node_palette(run.nodes)
    t0 = float(t.samples["t_ref"].min())
    w = fault_windows(t.faults, float(t.samples["t_ref"].max()))
    rs = summ.round_summary(t.rounds, summ.max_drift_ppm(run))
    fig = figs.fig_offsets(t.samples, t.sweeps, t.rounds, w, pal, t0)
    main, heat, strip = fig.axes[:3]
    assert main.get_ylabel().startswith("offset from reference (s)")
    assert strip.get_xlabel() == "time since run start (s)"
    assert heat.get_ylabel() == "node"
    # 32 nodes: bands, not 32 lines; every node a heatmap row coloured with its palette colour
    assert len(main.get_lines()) <= 3
    labels = heat.get_yticklabels()
    assert [lbl.get_text() for lbl in labels] == [f"n{i}" for i in range(1, 33)]
    assert all(tuple(lbl.get_color()) == pal[lbl.get_text()] for lbl in labels)
    fig2 = figs.fig_pre_post(t.rounds, rs, t0)
    assert fig2.axes[0].get_xlabel().endswith("(s, log)") and "ECDF" in fig2.axes[0].get_ylabel()
    assert fig2.axes[1].get_ylabel() == "max pairwise skew in the round (s, log)"
    between = summ.between_round_sweeps(t.sweeps, t.round_interval_s)
    fig3 = figs.fig_skew_growth(between, between.iloc[0:0], 100.0, 10.0, 1e-4)
    assert fig3.axes[0].get_xlabel() == "time since the last round's corrections (s)"
    assert fig3.axes[0].get_ylabel() == "max pairwise skew between nodes (s)"
    fig4 = figs.fig_failovers(t.failovers)
    assert fig4.axes[0].get_xlabel() == "duration after the fault (s)"
    fig5 = figs.fig_cpu(t.cpu, pal, None)
    assert fig5.axes[0].get_ylabel() == "CPU (% of one core)"
    assert fig5.axes[1].get_xlabel() == "node"
    with pytest.raises(figs.NotApplicable, match="drift"):
        figs.fig_drift(summ.trial_levels(run, t), 10.0)
    import matplotlib.pyplot as plt
    plt.close("all")


def test_palette_is_fixed_by_sorted_names():
    a = figs.node_palette(["n10", "n2", "n1"])
    b = figs.node_palette(["n1", "n2", "n10", "n1"])
    assert a == b and list(a) == ["n1", "n2", "n10"]
    assert len(set(figs.node_palette([f"n{i}" for i in range(32)]).values())) == 32


def test_drift_sweep_figure_and_scale_panel(tmp_path):
    path = tmp_path / "ds"
    make_run(path, SyntheticSpec(suite="drift-sweep", trials=3, drift_levels_ppm=(10.0, 50.0, 200.0), seed=9))
    result = build_report(path)
    st = {f.name: f for f in result.figures}
    assert st["drift"].status == "ok"
    assert ("max drift rate ρ in the trial (ppm)", "skew (s)") in st["drift"].axis_labels
    assert (path / "figures" / "drift.svg").exists()


def test_compare_two_runs(reported, tmp_path):
    a = reported[0]
    b = tmp_path / "b"
    make_run(b, SyntheticSpec(nodes=5, seed=2, first_round_after_s=9.1))
    out = tmp_path / "cmp"
    assert cli.main(["compare", str(a), str(b), "--out", str(out)]) == 0
    for name in ("compare.html", "compare.md", "compare.json", "headline.csv"):
        assert (out / name).exists()
    assert external_refs((out / "compare.html").read_text()) == []
    data = json.loads((out / "compare.json").read_text())
    rows = {r["key"]: r for r in data["headline"]}
    assert rows["failover_p50_s"][a.name] == pytest.approx(3.75)
    # ratio to the first run; the second run's first round is later but its election identical
    assert rows["failover_p50_s"]["b / first"] == pytest.approx(1.0)
    assert rows["samples"]["b / first"] == pytest.approx(1.0)
    assert data["figures"]["offsets"] == "ok" and data["figures"]["failovers"] == "ok"
    assert (out / "figures" / "skew_growth.png").exists()
    res = build_compare([a, b], tmp_path / "cmp2")
    assert list(res.headline.columns)[:4] == ["quantity", "key", a.name, "b"]
