"""Run folder: layout, append-only flushed JSON lines from threads, atomic manifest, resume."""

from __future__ import annotations

import json
import threading

import pytest

from tempolab.errors import ConfigError
from tempolab.runner.runfolder import RunFolder, run_dir_name


def test_create_layout_and_name(tmp_path):
    rf = RunFolder.create(tmp_path, "smoke", {"status": "running", "seed": 1}, now=0)
    assert rf.path.name == run_dir_name("smoke", 0)
    assert rf.path.name.endswith("-smoke") and len(rf.path.name) == len("YYYYmmdd-HHMMSS-smoke")
    assert (rf.path / "nodes").is_dir()
    assert json.loads((rf.path / "manifest.json").read_text())["seed"] == 1
    rf2 = RunFolder.create(tmp_path, "smoke", {}, now=0)  # same second: a second folder
    assert rf2.path != rf.path


def test_appends_are_visible_immediately_and_never_rewrite(tmp_path):
    rf = RunFolder.create(tmp_path, "x", {})
    rf.append("observer", {"t_ref": 1.0, "node": "n1", "offset_s": float("nan")})
    # flushed: another reader sees it before close
    line = (rf.path / "observer.jsonl").read_text()
    assert json.loads(line) == {"t_ref": 1.0, "node": "n1", "offset_s": None}
    before = (rf.path / "observer.jsonl").read_bytes()
    rf.append("observer", {"t_ref": 2.0, "node": "n2"})
    assert (rf.path / "observer.jsonl").read_bytes().startswith(before)
    with pytest.raises(ValueError, match="unknown stream"):
        rf.append("misc", {})
    rf.close()


def test_concurrent_writers_produce_whole_lines(tmp_path):
    rf = RunFolder.create(tmp_path, "x", {})

    def writer(w: int) -> None:
        for i in range(500):
            rf.append("cpu", {"w": w, "i": i, "pad": "x" * 200})

    ts = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    rf.close()
    recs = [json.loads(l) for l in (rf.path / "cpu.jsonl").read_text().splitlines()]
    assert len(recs) == 2000
    for w in range(4):
        assert [r["i"] for r in recs if r["w"] == w] == list(range(500))


def test_resume_finds_first_unfinished_trial_and_skips_torn_line(tmp_path):
    rf = RunFolder.create(tmp_path, "leader-kill", {"status": "running"})
    for k in (1, 2, 4):
        rf.append("trials", {"trial": k, "outcome": "ok"})
    rf.close()
    with open(rf.path / "trials.jsonl", "a") as f:
        f.write('{"trial": 3, "outc')  # the process died mid-write
    again = RunFolder.open(rf.path)
    assert again.finished_trials() == {1, 2, 4}
    assert again.next_trial(5) == 3
    again.append("trials", {"trial": 3, "outcome": "ok"})
    # the torn line stays (append-only) but ends there; the new record is whole
    assert again.next_trial(5) == 5
    assert RunFolder.open(rf.path).next_trial(4) is None
    assert (rf.path / "trials.jsonl").read_text().splitlines()[3] == '{"trial": 3, "outc'


def test_update_manifest_is_atomic_and_open_checks(tmp_path):
    rf = RunFolder.create(tmp_path, "x", {"status": "running"})
    m = rf.update_manifest(status="ok", ended=5.0)
    assert m["status"] == "ok" and rf.read_manifest()["ended"] == 5.0
    assert not list(rf.path.glob(".manifest*"))
    with pytest.raises(ConfigError, match="not a run folder"):
        RunFolder.open(tmp_path / "nothing")
