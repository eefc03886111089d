"""CPU sampling of the daemon process from ``/proc`` over SSH, at ns resolution.

Owns the one shell command a sample round runs on a node (pidfile -> /proc stat ->
clock ticks per second -> schedstat, in a single round trip) and the parsing of its
output into cumulative ``utime_s`` / ``stime_s`` (clock ticks, 10 ms: too coarse for a
daemon that uses 0.1 % of a core over a 2 s interval) and ``cpu_ns``: the on-CPU time
from ``/proc/<pid>/task/*/schedstat`` (field 1, ns, summed over threads), the kernel's
own ``sum_exec_runtime``, independent of the daemon's self-report
(``CLOCK_PROCESS_CPUTIME_ID``).  ``base_cpu_ns`` is the same counter for PID 1 of the
node (the lab node's sshd, a VM's init): a process that is idle between SSH
connections, the node's baseline next to the daemon.  Sums are printed with ``%.0f``:
Debian's mawk clamps ``%d`` to 2^31 - 1 (2.1 s of CPU). Parsing is pure and tested on captured text; the
sampling loop takes a ``run(node, cmd)`` callable so it knows nothing about paramiko.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

from .faults import PID_SNIPPET, PIDFILE  # noqa: F401 - PIDFILE re-exported for tests

CPU_CMD = (PID_SNIPPET + "echo \"pid $pid\"; getconf CLK_TCK; "
           "if [ -n \"$pid\" ] && cat /proc/$pid/stat 2>/dev/null; then "
           "cat /proc/$pid/task/*/schedstat 2>/dev/null | awk '{s+=$1} END {if (NR) printf \"sched %.0f\\n\", s}'; fi; "
           "awk '{printf \"base %.0f\\n\", $1}' /proc/1/schedstat 2>/dev/null; true")


class CpuParseError(ValueError):
    pass


@dataclass(frozen=True)
class CpuReading:
    pid: int
    utime_s: float
    stime_s: float
    cpu_ns: int | None = None        # schedstat on-CPU ns of the daemon (all threads)
    base_cpu_ns: int | None = None   # schedstat on-CPU ns of the node's PID 1


def parse_stat(stat: str, clk_tck: int) -> tuple[float, float]:
    """(utime_s, stime_s) from a /proc/<pid>/stat line.

    The command name (field 2) is in parentheses and may contain spaces and ')', so the
    fields are counted from the *last* ')': utime and stime are fields 14 and 15
    (1-based, proc(5)), i.e. indexes 11 and 12 after the state field.
    """
    end = stat.rfind(")")
    if end < 0:
        raise CpuParseError(f"not a /proc stat line: {stat[:80]!r}")
    rest = stat[end + 1:].split()
    if len(rest) < 13:
        raise CpuParseError(f"truncated /proc stat line: {stat[:80]!r}")
    try:
        return int(rest[11]) / clk_tck, int(rest[12]) / clk_tck
    except ValueError as exc:
        raise CpuParseError(f"bad utime/stime in {stat[:80]!r}") from exc


def parse_output(out: str) -> CpuReading | None:
    """Parse CPU_CMD's output; None when the daemon is not running."""
    all_lines = [ln for ln in out.splitlines() if ln.strip()]
    tagged = {}
    for ln in all_lines:
        head, _, val = ln.partition(" ")
        if head in ("sched", "base"):
            try:
                tagged[head] = int(val.strip())
            except ValueError as exc:
                raise CpuParseError(f"bad {head} line in sampler output: {ln[:80]!r}") from exc
    lines = [ln for ln in all_lines if ln.partition(" ")[0] not in ("sched", "base")]
    if len(lines) < 2 or not lines[0].startswith("pid"):
        raise CpuParseError(f"unexpected sampler output: {out[:120]!r}")
    pid_s = lines[0][3:].strip()
    if not pid_s or len(lines) < 3:
        return None
    try:
        pid, tck = int(pid_s), int(lines[1])
    except ValueError as exc:
        raise CpuParseError(f"unexpected sampler output: {out[:120]!r}") from exc
    u, s = parse_stat(lines[2], tck)
    return CpuReading(pid, u, s, tagged.get("sched"), tagged.get("base"))


class CpuSampler:
    """Every ``interval_s``, one command per node; records go to ``sink``.

    ``run(node, cmd) -> stdout`` may raise; a failed node gets an ``error`` record and
    the loop goes on (a killed or partitioned node is what the trials are about).
    ``role(node)`` gives the node's state at that moment (from the observer).
    """

    def __init__(self, nodes: list[str], run: Callable[[str, str], str],
                 sink: Callable[[dict], None], role: Callable[[str], str | None],
                 interval_s: float, clock: Callable[[], float] = time.time):
        self.nodes = list(nodes)
        self.run = run
        self.sink = sink
        self.role = role
        self.interval_s = interval_s
        self.clock = clock
        self.trial: int | None = None
        self._stop = threading.Event()
        self.paused = threading.Event()  # set: skip rounds (deployment in progress)
        self._thread: threading.Thread | None = None

    def sample_once(self) -> list[dict]:
        records = []
        for node in list(self.nodes):
            # a pause (deployment, restart) can begin in the middle of a sweep: the rest
            # of the sweep, and a reading that straddled it, would show the restart
            if self.paused.is_set():
                break
            t = self.clock()
            rec: dict = {"t_ref": t, "trial": self.trial, "node": node, "role": self.role(node)}
            try:
                reading = parse_output(self.run(node, CPU_CMD))
            except Exception as exc:  # noqa: BLE001 - recorded, never fatal
                rec.update(pid=None, utime_s=None, stime_s=None, error=str(exc)[:200])
            else:
                if reading is None:
                    rec.update(pid=None, utime_s=None, stime_s=None, error="not running")
                else:
                    rec.update(pid=reading.pid, utime_s=reading.utime_s, stime_s=reading.stime_s,
                               cpu_ns=reading.cpu_ns, base_cpu_ns=reading.base_cpu_ns)
            if self.paused.is_set():
                break
            self.sink(rec)
            records.append(rec)
        return records

    def _loop(self) -> None:
        next_t = time.monotonic()
        while not self._stop.is_set():
            if not self.paused.is_set():
                self.sample_once()
            next_t += self.interval_s
            self._stop.wait(max(0.0, next_t - time.monotonic()))

    def start(self) -> "CpuSampler":
        self._thread = threading.Thread(target=self._loop, name="cpu-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
