"""Real libfaketime on this machine: tempod-launch gives a child the profile's clock.

No root needed. The child is /usr/bin/python3 (pyenv shims misbehave under LD_PRELOAD);
it answers each line on stdin with its clock reading, and the test compares that with
``profile.hw_at(t)`` at the real time ``t`` of the exchange (midpoint of the round trip).

Tolerance: the launch error is rate x exec latency (0.1 x a few ms here) plus half the
pipe round trip; 5 ms leaves room for a loaded 2-core machine and still catches every
real mistake (a wrong anchor, unscaled rate or sign is >= 10 ms after 0.1 s at 10%).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tempod.launch import DEFAULT_LIBFAKETIME
from tempod.profile import DriftProfile, RateChange, dump_profile

pytestmark = pytest.mark.skipif(not os.path.exists(DEFAULT_LIBFAKETIME), reason="libfaketime not installed")

TOL_S = 5e-3
DAEMON_DIR = str(Path(__file__).resolve().parents[1] / "daemon")
LAUNCH = [sys.executable, "-m", "tempod.launch"]

CHILD_TIME = "import sys, time\nfor _ in sys.stdin:\n    print(repr(time.time()), flush=True)\n"
CHILD_PROCESSCLOCK = (
    "import sys\nfrom tempod.clocks import ProcessClock\nc = ProcessClock.from_environ()\n"
    "for _ in sys.stdin:\n    print(repr(c.read_s()), flush=True)\n"
)


class Child:
    def __init__(self, profile_path: Path, code: str, *extra: str) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "FAKETIME")}
        env["PYTHONPATH"] = DAEMON_DIR
        self.proc = subprocess.Popen(
            [*LAUNCH, "--profile", str(profile_path), *extra, "--", "/usr/bin/python3", "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )

    def sample(self) -> tuple[float, float, float]:
        """(real midpoint, child reading, round trip)."""
        assert self.proc.stdin and self.proc.stdout
        a = time.time()
        self.proc.stdin.write("q\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        b = time.time()
        if not line:
            raise AssertionError(f"child died: {self.proc.stderr.read() if self.proc.stderr else ''}")
        return (a + b) / 2, float(line), b - a

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=10)


def write_profile(tmp_path: Path, prof: DriftProfile, name: str = "drift.toml") -> Path:
    p = tmp_path / name
    p.write_text(dump_profile(prof))
    return p


def test_launch_follows_profile_offset_and_10_percent_rate(tmp_path: Path) -> None:
    prof = DriftProfile(epoch_unix_s=time.time() - 100.0, offset_s=2.5, rate_ppm=100_000.0)
    path = write_profile(tmp_path, prof)
    child = Child(path, CHILD_TIME)
    try:
        child.sample()  # warm-up: the first answer waits for the interpreter to start
        t1, hw1, rtt1 = child.sample()
        time.sleep(1.0)
        t2, hw2, rtt2 = child.sample()
    finally:
        child.close()
    # hw - t is 2.5 + 10 s at launch and grows 0.1 s per real second.
    assert abs(hw1 - prof.hw_at(t1)) < TOL_S + rtt1 / 2
    assert abs(hw2 - prof.hw_at(t2)) < TOL_S + rtt2 / 2
    assert (hw2 - hw1) / (t2 - t1) == pytest.approx(1.1, abs=0.01)


def test_exec_latency_option_shifts_the_anchor(tmp_path: Path) -> None:
    """--exec-latency L computes the offset for t0 + L: at 10% the clock reads 0.1 L more."""
    prof = DriftProfile(epoch_unix_s=time.time(), offset_s=0.0, rate_ppm=100_000.0)
    child = Child(write_profile(tmp_path, prof), CHILD_TIME, "--exec-latency", "0.5")
    try:
        child.sample()
        t, hw, rtt = child.sample()
    finally:
        child.close()
    assert hw - prof.hw_at(t) == pytest.approx(0.05, abs=TOL_S + rtt / 2)


def test_restart_keeps_the_hardware_clock_continuous(tmp_path: Path) -> None:
    prof = DriftProfile(epoch_unix_s=time.time() - 50.0, offset_s=-1.25, rate_ppm=100_000.0)
    path = write_profile(tmp_path, prof)
    errors = []
    for _ in range(2):
        child = Child(path, CHILD_TIME)
        try:
            child.sample()
            t, hw, rtt = child.sample()
        finally:
            child.close()
        errors.append(hw - prof.hw_at(t))
        time.sleep(1.0)
    # Both launches agree with the profile, so the second start continues the first's clock
    # (a naive fixed FAKETIME would be off by 0.1 x 1 s = 100 ms).
    assert all(abs(e) < TOL_S for e in errors), errors


def test_negative_offset_slow_rate(tmp_path: Path) -> None:
    prof = DriftProfile(epoch_unix_s=time.time(), offset_s=-3.25, rate_ppm=-100_000.0)
    child = Child(write_profile(tmp_path, prof), CHILD_TIME)
    try:
        child.sample()
        t, hw, rtt = child.sample()
    finally:
        child.close()
    assert abs(hw - prof.hw_at(t)) < TOL_S + rtt / 2


def test_rate_change_after_launch_is_applied_smoothly_by_processclock(tmp_path: Path) -> None:
    now = time.time()
    # +10% until 0.6 s after launch, then -5%: libfaketime alone would keep +10%.
    prof = DriftProfile(epoch_unix_s=now - 10.0, offset_s=1.0, rate_ppm=100_000.0, changes=(RateChange(10.6, -50_000.0),))
    child = Child(write_profile(tmp_path, prof), CHILD_PROCESSCLOCK)
    samples = []
    try:
        child.sample()
        deadline = time.time() + 1.6
        while time.time() < deadline:
            samples.append(child.sample())
            time.sleep(0.05)
    finally:
        child.close()
    assert samples[-1][0] > now + 1.2  # we really sampled well past the change
    for t, hw, rtt in samples:
        assert abs(hw - prof.hw_at(t)) < TOL_S + rtt / 2, (t - now, hw - prof.hw_at(t))
    readings = [hw for _, hw, _ in samples]
    assert readings == sorted(readings)


def test_no_faketime_applies_the_profile_in_software(tmp_path: Path) -> None:
    prof = DriftProfile(epoch_unix_s=time.time() - 5.0, offset_s=0.75, rate_ppm=100_000.0)
    child = Child(write_profile(tmp_path, prof), CHILD_PROCESSCLOCK, "--no-faketime")
    try:
        child.sample()
        t, hw, rtt = child.sample()
    finally:
        child.close()
    assert abs(hw - prof.hw_at(t)) < 1e-3 + rtt / 2


def test_launcher_errors_are_clear(tmp_path: Path) -> None:
    prof_path = write_profile(tmp_path, DriftProfile(time.time(), 0.0, 0.0))
    bad = tmp_path / "bad.toml"
    bad.write_text("epoch_unix_s = 1.0\noffset_s = 0.0\nrate_ppm = 'fast'\n")
    cases = [
        (["--profile", str(prof_path), "--libfaketime", "/nonexistent/libfaketime.so.1", "--", "true"], "libfaketime not found"),
        (["--profile", str(bad), "--", "true"], "rate_ppm: expected a number"),
        (["--profile", str(prof_path), "--"], "no command given"),
        (["--profile", str(prof_path), "--", "/nonexistent/cmd"], "command not found"),
    ]
    for args, msg in cases:
        r = subprocess.run([*LAUNCH, *args], capture_output=True, text=True, timeout=30)
        assert r.returncode == 2, (args, r.stderr)
        assert msg in r.stderr


def test_launcher_passes_profile_path_and_exec_keeps_pid(tmp_path: Path) -> None:
    prof_path = write_profile(tmp_path, DriftProfile(time.time(), 0.0, 10.0))
    code = "import os; print(os.getpid(), os.environ['TEMPO_DRIFT_PROFILE'], os.environ['FAKETIME_DISABLE_SHM'])"
    proc = subprocess.Popen(
        [*LAUNCH, "--profile", str(prof_path), "--", "/usr/bin/python3", "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "LD_PRELOAD"},
    )
    out, _ = proc.communicate(timeout=30)
    pid, path, shm = out.split()
    assert int(pid) == proc.pid  # exec, not fork: pidfiles stay valid
    assert path == str(prof_path) and shm == "1"
