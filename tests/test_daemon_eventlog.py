"""eventlog.py: line format, flush per event, reopen for rotation, crash safety."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tempod.eventlog import EventLog, format_event


def test_line_has_reserved_fields_first_and_is_one_json_object() -> None:
    line = format_event("state", "n1", 10.5, 10.25, 10.5, {"from": "START", "to": "LEADER", "x": float("inf")})
    assert line.endswith("\n") and line.count("\n") == 1
    obj = json.loads(line)
    assert list(obj)[:5] == ["ev", "node", "hw", "clk", "wall"]
    assert obj["ev"] == "state" and obj["clk"] == 10.25 and obj["to"] == "LEADER"
    assert obj["x"] is None  # non-finite floats would make the line unparseable


def test_reserved_names_are_refused() -> None:
    with pytest.raises(ValueError, match="reserved"):
        format_event("x", "n1", 0, 0, 0, {"hw": 1})


def test_written_lines_are_visible_before_close_and_reopen_follows_rotation(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "events.jsonl"
    hw = iter(range(100))
    log = EventLog(path, "n1", read_hw=lambda: float(next(hw)), read_clk=lambda: 5.0, wall=lambda: 7.0)
    log.write("start", pid=1)
    # Visible to another reader without close(): flushed per event.
    assert json.loads(path.read_text())["pid"] == 1
    path.rename(tmp_path / "sub" / "events.jsonl.1")
    log.write("after_rotate_before_hup")
    log.reopen()
    log.write("after_hup")
    log.close()
    assert [json.loads(x)["ev"] for x in (tmp_path / "sub" / "events.jsonl.1").read_text().splitlines()] == [
        "start", "after_rotate_before_hup"]
    assert [json.loads(x)["ev"] for x in path.read_text().splitlines()] == ["after_hup"]
    assert log.lines_written == 3


def test_sigkill_loses_nothing_already_written(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    code = (
        "import sys, time, os\n"
        "from tempod.eventlog import EventLog\n"
        f"log = EventLog({str(path)!r}, 'n1', time.time, time.time)\n"
        "for i in range(50): log.write('tick', i=i)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        os.kill(p.pid, signal.SIGKILL)
        p.wait(10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    lines = path.read_text().splitlines()
    assert [json.loads(x)["i"] for x in lines] == list(range(50))


def test_a_full_disk_is_counted_not_raised() -> None:
    # /dev/full fails every write with ENOSPC: the daemon must keep keeping time.
    log = EventLog("/dev/full", "n1", read_hw=lambda: 1.0, read_clk=lambda: 1.0)
    log.write("start")
    log.write("cpu", utime_s=0.1)
    assert log.write_errors == 2 and log.lines_written == 0
    log.close()  # must not raise either
    assert log.write_errors >= 2
