"""runschema: one JSON helper, one JSON-lines reader and writer, record types that the
writers (runner, synthetic generator, daemon) and old folders actually follow."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tempod import eventlog
from tempolab import runschema as rs
from tempolab.analysis.load import load_run
from tempolab.runner.runfolder import RunFolder
from tempolab.testing.synthetic import SyntheticSpec, make_run

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"


def test_jsonable_plains_numbers_and_drops_non_finite():
    got = rs.jsonable({1: (np.int64(3), np.float32(0.5), np.bool_(True), float("nan")),
                       "x": [math.inf, pd.NA, pd.NaT, np.float64("nan")], "s": "a", "n": None})
    assert got == {"1": [3, 0.5, True, None], "x": [None, None, None, None], "s": "a", "n": None}
    assert type(got["1"][0]) is int and type(got["1"][1]) is float and type(got["1"][2]) is bool
    # what the helper cannot make JSON is left for json.dumps to refuse, not silently str()'d
    with pytest.raises(TypeError):
        rs.dumps_line({"x": object()})


def test_dumps_line_is_one_sorted_line():
    assert rs.dumps_line({"b": 1, "a": float("nan")}) == '{"a": null, "b": 1}\n'


def test_read_jsonl_reports_damage_and_reads_gzip(tmp_path):
    p = tmp_path / "s.jsonl"
    p.write_text('{"a": 1}\nnot json\n[1]\n{"a": 2}\n{"a": 3')
    problems: list[str] = []
    assert rs.read_jsonl(p, problems) == [{"a": 1}, {"a": 2}]
    assert problems == ["s.jsonl: line 2 is not valid JSON and was ignored",
                        "s.jsonl: line 3 is not a JSON object and was ignored",
                        "s.jsonl: last line 5 is truncated and was ignored"]
    gz = tmp_path / "g.jsonl.gz"
    gz.write_bytes(gzip.compress(b'{"a": 1}\n'))
    assert rs.existing(tmp_path / "g.jsonl") == gz
    assert rs.read_jsonl(gz) == [{"a": 1}]


def test_write_json_is_atomic_and_keeps_order_when_asked(tmp_path):
    p = tmp_path / "summary.json"
    rs.write_json(p, {"z": 1, "a": float("inf")}, sort_keys=False)
    assert p.read_text() == '{\n  "z": 1,\n  "a": null\n}\n'
    assert [x.name for x in tmp_path.iterdir()] == ["summary.json"]  # no temp file left


def test_runner_folder_records_the_schema_version(tmp_path):
    rf = RunFolder.create(tmp_path, "smoke", {"suite": {"name": "smoke"}}, now=0)
    assert rf.read_manifest()["schema_version"] == rs.SCHEMA_VERSION
    rf.append("observer", {"t_ref": 1.0, "offset_s": float("nan")})
    rf.close()
    assert rf.read("observer") == [{"offset_s": None, "t_ref": 1.0}]
    with pytest.raises(ValueError, match="unknown stream"):
        rf.append("nope", {})


def test_version_zero_and_newer_versions():
    assert rs.schema_version({}) == 0 and rs.upgrade({}) == []
    assert rs.schema_version({"schema_version": True}) == 0
    assert rs.upgrade({"schema_version": rs.SCHEMA_VERSION}) == []
    assert "newer" in rs.upgrade({"schema_version": rs.SCHEMA_VERSION + 1})[0]


def test_suite_name_of_mapping_and_string_manifests():
    assert rs.suite_name({"suite": {"name": "smoke"}}) == "smoke"
    assert rs.suite_name({"suite": "leader-kill"}) == "leader-kill"
    assert rs.suite_name({}) == "unknown"


def test_node_event_fields_are_the_daemons():
    # the daemon writes its log without importing the controller: keep the two in step
    assert rs.NODE_EVENT.required == eventlog.RESERVED
    line = eventlog.format_event("start", "n1", 1.0, 2.0, 1.0, {"pid": 7})
    assert rs.NODE_EVENT.missing(json.loads(line)) == []


def _conforms(run) -> list[str]:
    bad = [f"manifest: {k}" for k in rs.MANIFEST.missing(run.manifest)]
    for t in rs.STREAMS.values():
        for i, r in enumerate(getattr(run, t.name)):
            bad += [f"{t.file}:{i + 1}: {k}" for k in t.missing(r)]
    for node, evs in run.events.items():
        for i, r in enumerate(evs):
            bad += [f"nodes/{node}/events.jsonl:{i + 1}: {k}" for k in rs.NODE_EVENT.missing(r)]
    return bad


def test_synthetic_runs_follow_the_schema(tmp_path):
    make_run(tmp_path / "run", SyntheticSpec(nodes=3, trials=2, trial_s=30.0, kill_at_s=12.5))
    run = load_run(tmp_path / "run")
    assert run.problems == []
    assert rs.schema_version(run.manifest) == rs.SCHEMA_VERSION
    assert _conforms(run) == []


@pytest.mark.parametrize("folder", [
    REPO / "results" / "example",               # raw records gzip-compressed, no version
    *sorted(FIXTURES.glob("2026*-*")),            # written by the runner before runschema
], ids=lambda p: p.name)
def test_old_folders_load(folder):
    run = load_run(folder)
    assert rs.schema_version(run.manifest) == 0
    assert not [p for p in run.problems if "schema_version" in p or "manifest.json" in p]
    assert run.observer and run.trials and run.events
    assert _conforms(run) == []


def test_the_committed_protocol_example_is_a_current_run():
    """results/example-protocols: the 5-node protocols suite, written by the current
    runner (raw records gzip-compressed, chronyd's logs too)."""
    run = load_run(REPO / "results" / "example-protocols")
    assert rs.schema_version(run.manifest) == rs.SCHEMA_VERSION
    assert run.problems == []
    assert _conforms(run) == []
    assert [t["protocol"] for t in run.trials] == ["berkeley", "cristian", "ntp"]
    assert len(run.nodes) == 5
