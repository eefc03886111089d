"""A killed writer leaves at most a torn last line: the kill checker and the run loaders
must accept exactly that, and flag anything worse (no lab needed)."""

from __future__ import annotations

import json
from pathlib import Path

from tempolab.testing.killkit import check_jsonl, record_counts
from tempolab.runschema import read_jsonl
from tempolab.runner.runfolder import RunFolder

REC = json.dumps({"t_ref": 1.0, "node": "n1"})


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_torn_last_line_is_tolerated_and_counted_apart(tmp_path):
    p = write(tmp_path / "observer.jsonl", f"{REC}\n{REC}\n{REC[:9]}")
    c = check_jsonl(p)
    assert (c.records, c.torn_last, c.bad_middle) == (2, True, 0)
    problems: list[str] = []
    assert len(read_jsonl(p, problems)) == 2
    assert problems == ["observer.jsonl: last line 3 is truncated and was ignored"]


def test_bad_line_in_the_middle_is_not_a_torn_tail(tmp_path):
    p = write(tmp_path / "observer.jsonl", f"{REC}\n{REC[:9]}\n{REC}\n")
    c = check_jsonl(p)
    assert (c.records, c.torn_last, c.bad_middle) == (2, False, 1)
    problems: list[str] = []
    read_jsonl(p, problems)
    assert problems == ["observer.jsonl: line 2 is not valid JSON and was ignored"]


def test_complete_last_record_without_newline_counts(tmp_path):
    c = check_jsonl(write(tmp_path / "a.jsonl", f"{REC}\n{REC}"))
    assert (c.records, c.torn_last) == (2, False)
    assert check_jsonl(write(tmp_path / "e.jsonl", "")).records == 0


def test_appending_after_a_torn_tail_keeps_the_new_record_whole(tmp_path):
    """--resume appends to files a killed runner left: the torn line must stay one bad
    line and not swallow the next record."""
    rf = RunFolder(tmp_path)
    write(tmp_path / "observer.jsonl", f"{REC}\n{REC[:9]}")
    rf.append("observer", {"t_ref": 2.0, "node": "n2"})
    rf.close()
    c = check_jsonl(tmp_path / "observer.jsonl")
    assert (c.records, c.bad_middle) == (2, 1)
    assert rf.read("observer")[-1] == {"t_ref": 2.0, "node": "n2"}
    assert record_counts(tmp_path) == {"observer.jsonl": 2}
