"""Bad or partial run folders: the report is still produced and says what is missing."""

from __future__ import annotations

import json
import shutil

import pytest

from tempolab import cli
from tempolab.analysis import NotARunFolder, build_report, load_run
from tempolab.analysis import figures as figs
from tempolab.analysis import summary as summ
from tempolab.testing.synthetic import SyntheticSpec, make_run
from tempolab.analysis.tables import build_tables


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("base") / "run"
    make_run(path, SyntheticSpec(nodes=4, seed=11, trials=2, trial_s=40.0, kill_at_s=15.5))
    return path


@pytest.fixture
def run(base_run, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(base_run, dst)
    return dst


def test_truncated_last_line_is_dropped_and_reported(run):
    obs = run / "observer.jsonl"
    data = obs.read_bytes()
    obs.write_bytes(data[:-40])  # cut the last record mid-way
    n_lines = data.count(b"\n")
    r = load_run(run)
    assert len(r.observer) == n_lines - 1
    assert any("observer.jsonl: last line" in p and "truncated" in p for p in r.problems)
    result = build_report(run, write=False, figures=False)
    assert result.summary["counts"]["samples"] == n_lines - 1
    assert not result.unknown


def test_bad_middle_line_and_empty_file(run):
    lines = (run / "faults.jsonl").read_text().splitlines()
    (run / "cpu.jsonl").write_text("")
    (run / "trials.jsonl").write_text((run / "trials.jsonl").read_text().replace("\n", "\n{oops\n", 1))
    result = build_report(run)
    missing = result.summary["missing"]
    assert "cpu.jsonl: empty file" in missing
    assert any("trials.jsonl: line 2 is not valid JSON" in p for p in missing)
    assert lines  # faults untouched
    # CPU figure is skipped, not a crash; daemon cpu events still give numbers
    assert result.summary["counts"]["cpu_samples"] == 0
    assert "cpu.jsonl: empty file" in (run / "summary.md").read_text()
    assert "cpu.jsonl: empty file" in (run / "report.html").read_text()


def test_missing_node_log_and_profile(run):
    shutil.rmtree(run / "nodes" / "n3")
    result = build_report(run, figures=False)
    missing = result.summary["missing"]
    assert "nodes/n3/events.jsonl: missing (no daemon log for n3)" in missing
    assert any(p.startswith("nodes/n3/drift.toml: missing") for p in missing)
    # n3 still appears through the observer and the master's round records
    assert result.summary["counts"]["nodes"] == 4
    assert result.summary["accuracy"]["post_sync_skew_s"]["n"] > 0


def test_interrupted_trial_without_end(run):
    trials = [json.loads(x) for x in (run / "trials.jsonl").read_text().splitlines()]
    del trials[-1]["t_end"]
    trials[-1]["outcome"] = None
    (run / "trials.jsonl").write_text("".join(json.dumps(t) + "\n" for t in trials))
    result = build_report(run, figures=False)
    assert any("has no t_end (interrupted)" in p for p in result.summary["missing"])
    assert result.summary["counts"]["trials"] == 2
    assert result.summary["failover"]["count"] == 1


def test_missing_manifest_fields_and_missing_manifest(run):
    m = json.loads((run / "manifest.json").read_text())
    for key in ("seed", "git_commit", "ended"):
        del m[key]
    (run / "manifest.json").write_text(json.dumps(m))
    missing = build_report(run, write=False, figures=False).summary["missing"]
    for key in ("seed", "git_commit", "ended"):
        assert f"manifest.json: field '{key}' missing" in missing
    (run / "manifest.json").unlink()
    result = build_report(run, figures=False)
    assert "manifest.json: missing" in result.summary["missing"]
    assert (run / "report.html").exists()


def test_crashing_checker_is_unknown_not_fatal(run, monkeypatch):
    def boom(*_a, **_k):
        raise RuntimeError("checker bug")

    monkeypatch.setattr(summ, "failover_section", boom)
    result = build_report(run, figures=False)
    assert "failover" in result.unknown and "checker bug" in result.unknown["failover"]
    s = json.loads((run / "summary.json").read_text())
    assert s["failover"] is None and "failover" in s["unknown"]
    assert s["accuracy"]["post_sync_skew_s"]["n"] > 0
    html = (run / "report.html").read_text()
    assert "section failover: unknown" in html
    md = (run / "summary.md").read_text()
    assert "failover: fault → new master p50 / p95 / max | unknown" in md


def test_crashing_table_step_is_unknown(run, monkeypatch):
    from tempolab.analysis import tables

    monkeypatch.setattr(tables, "cpu_table", lambda *a, **k: 1 / 0)
    result = build_report(run, write=False, figures=False)
    assert "cpu" in result.unknown
    assert result.summary["counts"]["cpu_samples"] == 0  # the empty fallback table was used
    with pytest.raises(figs.NotApplicable):
        figs.fig_cpu(build_tables(load_run(run), lambda n, fn, fb: fb if n == "cpu" else fn()).cpu, {}, None)
    assert result.summary["accuracy"] is not None


def test_not_a_run_folder(tmp_path, capsys):
    (tmp_path / "random.txt").write_text("hello")
    with pytest.raises(NotARunFolder, match="not a run folder"):
        load_run(tmp_path)
    with pytest.raises(NotARunFolder, match="no such directory"):
        load_run(tmp_path / "nope")
    with pytest.raises(NotARunFolder, match="not a directory"):
        load_run(tmp_path / "random.txt")
    assert cli.main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "tempo report: error:" in err and "not a run folder" in err
    assert not (tmp_path / "report.html").exists()


def test_observer_only_run(tmp_path):
    """A run folder with only a manifest and observer samples still gives a report."""
    src = tmp_path / "full"
    make_run(src, SyntheticSpec(nodes=3, trials=1, trial_s=30.0))
    dst = tmp_path / "thin"
    dst.mkdir()
    for name in ("manifest.json", "observer.jsonl"):
        shutil.copy(src / name, dst / name)
    result = build_report(dst)
    assert result.summary["counts"]["rounds"] == 0
    assert {"cpu.jsonl: missing", "trials.jsonl: missing"} <= set(result.summary["missing"])
    statuses = {f.name: f.status for f in result.figures}
    assert statuses["offsets"] == "ok" and statuses["failovers"] == "skipped"
    tables = build_tables(load_run(dst))
    assert tables.rounds.empty
