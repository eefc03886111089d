"""tempod-service with a dummy long-running daemon (does not need tempod itself)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tempod.profile import DriftProfile, dump_profile
from tempod.servicectl import PidRecord, build_command, format_pidfile, parse_pidfile, parse_stat

SERVICE = [sys.executable, "-m", "tempod.servicectl"]
# A dummy daemon: ignores its '--config X' arguments, sleeps, exits 0 on SIGTERM.
DUMMY = f"{sys.executable} -c 'import time,signal,sys; signal.signal(signal.SIGTERM, lambda *a: sys.exit(0)); print(\"dummy up\", flush=True); time.sleep(600)'"
STUBBORN = f"{sys.executable} -c 'import time,signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(\"stubborn\", flush=True); time.sleep(600)'"
FAILING = f"{sys.executable} -c 'import sys; print(\"config error: bad key\", flush=True); sys.exit(3)'"
CLOCKREADER = (
    "/usr/bin/python3 -c 'import time,os; print(\"clock\", repr(time.time()), os.environ.get(\"FAKETIME\"), flush=True); time.sleep(600)'"
)


def run(tmp: Path, action: str, daemon: str = DUMMY, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *SERVICE,
            "--config", str(tmp / "tempod.toml"),
            "--pidfile", str(tmp / "run" / "tempod.pid"),
            "--stdout", str(tmp / "log" / "tempod.out"),
            "--daemon-cmd", daemon,
            "--stop-timeout", "1",
            *extra,
            action,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def svc_dir(tmp_path: Path):
    yield tmp_path
    # Never leave a dummy behind, whatever the test did.
    rec = parse_pidfile((tmp_path / "run" / "tempod.pid").read_text()) if (tmp_path / "run" / "tempod.pid").exists() else None
    if rec is not None:
        try:
            os.kill(rec.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def gone(pid: int) -> bool:
    """Exited (a zombie waiting for init to reap it counts as exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):  # gone, or reaped between open and read
        return True
    return state in ("Z", "X")


def pid_of(tmp: Path) -> int:
    rec = parse_pidfile((tmp / "run" / "tempod.pid").read_text())
    assert rec is not None
    return rec.pid


def test_start_status_stop_cycle(svc_dir: Path) -> None:
    assert run(svc_dir, "status").returncode == 3
    r = run(svc_dir, "start")
    assert r.returncode == 0, r.stderr
    assert "started" in r.stdout
    pid = pid_of(svc_dir)
    os.kill(pid, 0)
    # Detached: not our child, its own session differs from ours.
    assert os.getsid(pid) != os.getsid(0)
    r = run(svc_dir, "status")
    assert r.returncode == 0 and f"pid {pid}" in r.stdout
    r = run(svc_dir, "start")
    assert r.returncode == 0 and "already running" in r.stdout
    assert pid_of(svc_dir) == pid
    r = run(svc_dir, "stop")
    assert r.returncode == 0 and "stopped" in r.stdout
    assert not (svc_dir / "run" / "tempod.pid").exists()
    assert gone(pid)
    assert "dummy up" in (svc_dir / "log" / "tempod.out").read_text()
    r = run(svc_dir, "stop")
    assert r.returncode == 0 and "not running" in r.stdout


def test_restart_gives_a_new_process(svc_dir: Path) -> None:
    assert run(svc_dir, "start").returncode == 0
    old = pid_of(svc_dir)
    r = run(svc_dir, "restart")
    assert r.returncode == 0, r.stderr
    new = pid_of(svc_dir)
    assert new != old
    assert run(svc_dir, "stop").returncode == 0


def test_start_fails_clearly_when_daemon_dies(svc_dir: Path) -> None:
    r = run(svc_dir, "start", FAILING)
    assert r.returncode == 1
    assert "exited within" in r.stderr and "config error: bad key" in r.stderr
    assert not (svc_dir / "run" / "tempod.pid").exists()


def test_stale_pidfile_is_reported_and_replaced(svc_dir: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    (svc_dir / "run").mkdir()
    (svc_dir / "run" / "tempod.pid").write_text(f"{dead.pid}\n")
    r = run(svc_dir, "status")
    assert r.returncode == 1 and "stale" in r.stdout
    # A live pid whose start time does not match is not ours either: never signalled.
    me = os.getpid()
    (svc_dir / "run" / "tempod.pid").write_text(format_pidfile(PidRecord(me, 1)))
    assert run(svc_dir, "status").returncode == 1
    assert run(svc_dir, "start").returncode == 0
    assert pid_of(svc_dir) != me
    assert run(svc_dir, "stop").returncode == 0


def test_stop_escalates_to_sigkill(svc_dir: Path) -> None:
    assert run(svc_dir, "start", STUBBORN).returncode == 0
    pid = pid_of(svc_dir)
    r = run(svc_dir, "stop", STUBBORN)
    assert r.returncode == 0 and "killed" in r.stdout
    assert gone(pid)


def test_start_through_launcher_with_profile(svc_dir: Path) -> None:
    prof = DriftProfile(epoch_unix_s=time.time(), offset_s=1000.0, rate_ppm=0.0)
    (svc_dir / "drift.toml").write_text(dump_profile(prof))
    r = run(svc_dir, "start", CLOCKREADER, "--profile", str(svc_dir / "drift.toml"))
    assert r.returncode == 0, r.stderr
    out = svc_dir / "log" / "tempod.out"
    for _ in range(50):
        if "clock" in out.read_text():
            break
        time.sleep(0.1)
    words = out.read_text().split()
    assert float(words[1]) - time.time() == pytest.approx(1000.0, abs=5.0)
    assert run(svc_dir, "stop").returncode == 0


def test_pure_helpers() -> None:
    assert parse_pidfile("123\nstarttime=456\n") == PidRecord(123, 456)
    assert parse_pidfile("123") == PidRecord(123, None)
    assert parse_pidfile("") is None and parse_pidfile("abc") is None and parse_pidfile("1") is None
    assert parse_pidfile(format_pidfile(PidRecord(9, 77))) == PidRecord(9, 77)
    stat = "42 (my (odd) name) S 1 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 98765 1000 1"
    assert parse_stat(stat) == ("S", 98765)
    assert build_command("/c.toml", None, ["tempod"], None) == ["tempod", "--config", "/c.toml"]
    assert build_command("/c.toml", "/d.toml", ["tempod"], "/bin/tempod-launch") == [
        "/bin/tempod-launch", "--profile", "/d.toml", "--", "tempod", "--config", "/c.toml",
    ]
    assert build_command("/c", "/d", ["t"], "/l", 0.002) == ["/l", "--profile", "/d", "--exec-latency", "0.002", "--", "t", "--config", "/c"]


def test_concurrent_starts_spawn_one_daemon(svc_dir: Path) -> None:
    procs = [
        subprocess.Popen(
            [*SERVICE, "--config", str(svc_dir / "tempod.toml"), "--pidfile", str(svc_dir / "run" / "tempod.pid"),
             "--stdout", str(svc_dir / "log" / "tempod.out"), "--daemon-cmd", DUMMY, "start"],
            stdout=subprocess.PIPE, text=True,
        )
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=60)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sum("started" in o for o in outs) == 1 and sum("already running" in o for o in outs) == 2
    assert (svc_dir / "log" / "tempod.out").read_text().count("dummy up") == 1
    assert run(svc_dir, "stop").returncode == 0
