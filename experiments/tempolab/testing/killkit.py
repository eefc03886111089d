"""Killing ``tempo run`` at a chosen moment and checking what it left behind.

Shared by ``benchmarks/bench_runner_kill.py`` (10 seeded kills) and
``tests/test_hardening_runner.py`` (2 kills in CI). One kill: start ``tempo run SUITE
--no-deploy`` on an already deployed lab, wait for the moment (seconds after the first
fault went in, or after launch), count the complete records of every JSON-lines file
in the run folder, send the signal, wait until the dead-man margin has passed, then
check: every record file parses except at most a torn last line, no stream lost
records, no ``inet tempo_fault`` table on any node, no daemon stopped (state T), every
daemon running.

Knows the run folder layout and the lab; knows nothing about trial facts.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tempolab.lab import Lab
from tempolab.paths import project_paths
from tempolab.runner import faults
from tempolab.testing.labkit import default_sigint, nft_tables, running_daemons, stopped_daemons


@dataclass
class FileCheck:
    records: int        # lines that parse as JSON objects
    torn_last: bool     # the last line is cut (a writer died mid-line)
    bad_middle: int     # unparsable lines that are not the last one


def check_jsonl(path: Path) -> FileCheck:
    """Parse a JSON-lines file the way the loader must: only the last line may be torn."""
    data = path.read_bytes()
    lines = data.split(b"\n")
    ends_clean = data.endswith(b"\n") or not data
    body, last = (lines[:-1], None) if ends_clean else (lines[:-1], lines[-1])
    ok = bad = 0
    for line in body:
        if not line.strip():
            continue
        try:
            json.loads(line)
            ok += 1
        except json.JSONDecodeError:
            bad += 1
    torn = False
    if last is not None and last.strip():
        try:
            json.loads(last)
            ok += 1   # a complete record without its newline yet
        except json.JSONDecodeError:
            torn = True
    return FileCheck(ok, torn, bad)


def record_counts(run_dir: Path) -> dict[str, int]:
    """Complete records per JSON-lines file (relative path -> count)."""
    return {str(p.relative_to(run_dir)): check_jsonl(p).records for p in sorted(run_dir.rglob("*.jsonl"))}


@dataclass
class KillResult:
    n: int
    sig: str
    anchor: str
    at_s: float                      # seconds after the anchor
    t_since_launch_s: float
    active_faults: int               # fault starts without an end on disk at the kill
    before: dict[str, int]
    after: dict[str, int]
    torn: list[str]
    bad_files: list[str]             # files with an unparsable line that is not the last
    lost: dict[str, tuple[int, int]]  # stream -> (before, after) where after < before
    tables_left: list[str]
    stopped: list[str]
    not_running: list[str]
    rc: int | None
    run_dir: str | None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        clean_exit = self.sig == "SIGKILL" or self.rc == 130
        return (not self.bad_files and not self.lost and not self.tables_left and not self.stopped
                and not self.not_running and clean_exit and self.run_dir is not None)


def write_suite(raw: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _fault_state(run_dir: Path) -> tuple[float | None, int]:
    """(reference time of the first fault start, number of faults still active)."""
    p = run_dir / "faults.jsonl"
    if not p.exists():
        return None, 0
    starts, ends, first = set(), set(), None
    for line in p.read_text().splitlines():
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue
        key = (r.get("trial"), r.get("fault_id"))
        if r.get("phase") == "start":
            starts.add(key)
            first = r["t_ref"] if first is None else min(first, r["t_ref"])
        elif r.get("phase") == "end":
            ends.add(key)
    return first, len(starts - ends)


def kill_once(n: int, lab: Lab, suite_path: Path, out: Path, *, sig: signal.Signals, anchor: str,
              at_s: float, max_fault_s: float, launch_timeout_s: float = 120) -> KillResult:
    """Run the suite, send ``sig`` ``at_s`` seconds after ``anchor`` ("fault" or "launch"),
    then check the aftermath (see the module doc)."""
    out.mkdir(parents=True, exist_ok=True)
    existing = {p for p in out.iterdir()}
    cmd = [sys.executable, "-m", "tempolab.cli", "run", str(suite_path), "--quiet", "--lab", lab.name,
           "--subnet", lab.subnet, "--out", str(out), "--no-deploy"]
    log = open(out / f"kill{n}.log", "w")
    t_launch = time.time()
    proc = subprocess.Popen(cmd, cwd=project_paths().root, env=dict(os.environ, PYTHONUNBUFFERED="1"), stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=default_sigint)
    notes: list[str] = []
    run_dir: Path | None = None
    try:
        deadline = t_launch + launch_timeout_s
        t_anchor = t_launch
        while time.time() < deadline and proc.poll() is None:
            new = [p for p in out.iterdir() if p.is_dir() and p not in existing]
            run_dir = new[0] if new else None
            if anchor == "launch":
                break
            if run_dir is not None:
                first, _ = _fault_state(run_dir)
                if first is not None:
                    t_anchor = time.time()
                    break
            time.sleep(0.1)
        else:
            notes.append("anchor not reached" if proc.poll() is None else f"runner exited rc={proc.returncode}")
        while time.time() < t_anchor + at_s and proc.poll() is None:
            time.sleep(0.02)
        if run_dir is None:
            new = [p for p in out.iterdir() if p.is_dir() and p not in existing]
            run_dir = new[0] if new else None
        before = record_counts(run_dir) if run_dir else {}
        active = _fault_state(run_dir)[1] if run_dir else 0
        t_kill = time.time()
        if proc.poll() is None:
            proc.send_signal(sig)
        else:
            notes.append(f"runner had already exited rc={proc.returncode}")
        try:
            rc = proc.wait(timeout=150)
        except subprocess.TimeoutExpired:
            notes.append("runner did not exit within 150 s of the signal; SIGKILLed")
            proc.kill()
            rc = proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    # a SIGKILLed runner leaves its faults to the watchdogs: wait out the longest
    # planned end plus the margin (+2 s for SSH-free slack: the watchdogs are local)
    if sig == signal.SIGKILL:
        time.sleep(max(0.0, t_kill + max_fault_s + faults.DEADMAN_MARGIN_S + 2.0 - time.time()))
    if run_dir is None:
        new = [p for p in out.iterdir() if p.is_dir() and p not in existing]
        run_dir = new[0] if new else None
    after = record_counts(run_dir) if run_dir else {}
    checks = {str(p.relative_to(run_dir)): check_jsonl(p) for p in run_dir.rglob("*.jsonl")} if run_dir else {}
    tables = nft_tables(lab)
    running = set(running_daemons(lab))
    return KillResult(
        n=n, sig=sig.name, anchor=anchor, at_s=at_s, t_since_launch_s=t_kill - t_launch,
        active_faults=active, before=before, after=after,
        torn=[f for f, c in checks.items() if c.torn_last],
        bad_files=[f for f, c in checks.items() if c.bad_middle],
        lost={f: (b, after.get(f, 0)) for f, b in before.items() if after.get(f, 0) < b},
        tables_left=[n_ for n_, t in tables.items() if "tempo_fault" in t],
        stopped=stopped_daemons(lab),
        not_running=[x.name for x in lab.nodes if x.name not in running],
        rc=rc, run_dir=str(run_dir) if run_dir else None, notes=notes,
    )
