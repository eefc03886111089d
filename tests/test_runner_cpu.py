"""CPU sampling: /proc/<pid>/stat parsing (comm with spaces and parens) and the sampler."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tempolab.runner import cpu

STAT = ("4242 (tempod (x) y) S 1 4242 4242 0 -1 4194560 1234 0 0 0 "
        "250 75 0 0 20 0 3 0 12345 100000 2000 18446744073709551615")


def test_parse_stat_counts_fields_after_the_last_paren():
    assert cpu.parse_stat(STAT, 100) == (2.5, 0.75)
    with pytest.raises(cpu.CpuParseError):
        cpu.parse_stat("4242 tempod S 1", 100)
    with pytest.raises(cpu.CpuParseError):
        cpu.parse_stat("4242 (tempod) S 1 2", 100)


def test_parse_output_of_the_sampling_command():
    r = cpu.parse_output(f"pid 4242\n100\n{STAT}\n")
    assert r == cpu.CpuReading(4242, 2.5, 0.75)
    assert cpu.parse_output("pid \n100\n") is None  # daemon not running
    with pytest.raises(cpu.CpuParseError):
        cpu.parse_output("sh: 1: oops\n")


def test_command_against_this_process(tmp_path, monkeypatch):
    # run the real command with the pidfile pointed at this test process
    pidfile = tmp_path / "tempod.pid"
    pidfile.write_text(f"{os.getpid()}\nstarttime=123\n")  # tempod-service's format
    sum(i * i for i in range(300000))  # burn a little CPU so utime > 0
    out = subprocess.run(["sh", "-c", cpu.CPU_CMD.replace(cpu.PIDFILE, str(pidfile))],
                         capture_output=True, text=True, check=True).stdout
    r = cpu.parse_output(out)
    assert r is not None and r.pid == os.getpid()
    t = os.times()
    assert r.utime_s == pytest.approx(t.user, abs=0.05)
    assert r.stime_s == pytest.approx(t.system, abs=0.05)


def test_sampler_records_role_and_errors():
    outs = {"n1": f"pid 4242\n100\n{STAT}\n", "n2": "pid \n100\n"}

    def run(node: str, cmd: str) -> str:
        assert cmd == cpu.CPU_CMD
        if node == "n3":
            raise OSError("connection reset")
        return outs[node]

    sunk = []
    s = cpu.CpuSampler(["n1", "n2", "n3"], run, sunk.append,
                       role=lambda n: {"n1": "LEADER"}.get(n, "FOLLOWER"), interval_s=1,
                       clock=lambda: 7.0)
    s.trial = 2
    recs = s.sample_once()
    assert recs == sunk
    assert recs[0] == {"t_ref": 7.0, "trial": 2, "node": "n1", "role": "LEADER", "pid": 4242,
                       "utime_s": 2.5, "stime_s": 0.75, "cpu_ns": None, "base_cpu_ns": None}
    assert recs[1]["error"] == "not running" and recs[1]["pid"] is None
    assert "connection reset" in recs[2]["error"]


def test_a_pause_in_the_middle_of_a_sweep_drops_the_straddling_reading_and_the_rest():
    sunk: list[dict] = []
    s = None
    restarts = [True]

    def run(node: str, cmd: str) -> str:
        if node == "n2" and restarts:  # the runner starts a restart while n2 is being read
            restarts.pop()
            s.paused.set()
        return f"pid 7\n100\n{STAT}\n"

    s = cpu.CpuSampler(["n1", "n2", "n3"], run, sunk.append, lambda n: "FOLLOWER", 1.0)
    s.sample_once()
    assert [r["node"] for r in sunk] == ["n1"]
    s.paused.clear()
    s.sample_once()
    assert [r["node"] for r in sunk] == ["n1", "n1", "n2", "n3"]


def test_parse_output_with_schedstat_ns():
    r = cpu.parse_output(f"pid 4242\n100\n{STAT}\nsched 3300123456\nbase 17\n")
    assert r == cpu.CpuReading(4242, 2.5, 0.75, 3300123456, 17)
    # the node's baseline is read even when the daemon is down
    assert cpu.parse_output("pid \n100\nbase 17\n") is None
    with pytest.raises(cpu.CpuParseError):
        cpu.parse_output(f"pid 4242\n100\n{STAT}\nsched x\n")


def test_schedstat_ns_matches_the_process_cpu_clock(tmp_path):
    # two independent counters of the same CPU time: the kernel's schedstat (read from
    # outside, as the sampler does) and CLOCK_PROCESS_CPUTIME_ID (the daemon's self-report).
    # Measured on a fresh single-threaded child like tempod: in this pytest process the
    # CPU of threads that earlier tests started and ended counts in the process clock but
    # has no /proc/<pid>/task entry any more (2.2 s apart after a full CI run).
    child = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\n"
         "sum(i * i for i in range(2_000_000))\n"  # > 2.1 s of CPU would also catch a %d clamp
         "print(time.clock_gettime_ns(time.CLOCK_PROCESS_CPUTIME_ID), flush=True)\n"
         "sys.stdin.read()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        inside = int(child.stdout.readline())
        pidfile = tmp_path / "tempod.pid"
        pidfile.write_text(f"{child.pid}\n")
        out = subprocess.run(["sh", "-c", cpu.CPU_CMD.replace(cpu.PIDFILE, str(pidfile))],
                             capture_output=True, text=True, check=True).stdout
    finally:
        child.stdin.close()
        child.wait(timeout=30)
    r = cpu.parse_output(out)
    assert r is not None and r.cpu_ns is not None and r.base_cpu_ns is not None
    # the child is blocked on stdin between the two reads; schedstat lags by a slice at most
    assert abs(r.cpu_ns - inside) < 20_000_000
    assert r.cpu_ns % 10_000_000 != 0 or r.cpu_ns == 0  # not clock ticks


def test_awk_sum_is_not_clamped_to_31_bits(tmp_path):
    d = tmp_path / "task" / "1"
    d.mkdir(parents=True)
    (d / "schedstat").write_text("5000000000 0 1\n")
    cmd = f"cat {tmp_path}/task/*/schedstat | awk '{{s+=$1}} END {{printf \"sched %.0f\\n\", s}}'"
    assert "%.0f" in cpu.CPU_CMD
    out = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "sched 5000000000"
