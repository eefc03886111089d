"""Reading a guest's clock from the controller through one open SSH channel.

Owns the I/O side of the kernel clock mode's measurements (kclock.py holds the maths):
a :class:`GuestClockProbe` starts ``kclock.READER_CMD`` in the guest over one SSH
session and then reads the guest's CLOCK_REALTIME once per line written, bracketed by
the controller's own clock (the reference: DESIGN.md 2, "on VMs the controller's clock is
the reference"). One read costs one round trip of an open channel (about 1-3 ms to a
TCG guest inside the VM namespace), not an SSH handshake.

:func:`measure_and_set` is the runner's step before tempod starts on a kernel-mode
guest: measure the delivered rate (``seconds`` of reads), step the guest clock to the
profile's initial offset with a relative step, and check where it landed.
"""

from __future__ import annotations

import subprocess
import time
from typing import Callable, Sequence

from . import kclock


class _Pipe:
    """A line pipe to the reader: a local ``ssh`` subprocess, or a paramiko channel."""

    def __init__(self, write, readline, close) -> None:
        self.write, self.readline, self.close = write, readline, close


class GuestClockProbe:
    """``with GuestClockProbe(ssh_argv) as p: p.read()`` -> kclock.ClockRead.

    ``ssh_argv``: the command that runs a shell command on the guest as root (e.g.
    ``["ip", "netns", "exec", NS, "ssh", "-i", KEY, "root@10.x.y.z"]``); the reader is
    appended. Or ``client=`` an open paramiko SSHClient (the runner's pool), with
    ``sudo=True`` for a non-root login.
    """

    def __init__(self, ssh_argv: Sequence[str] | None = None, clock: Callable[[], float] = time.time,
                 *, client=None, sudo: bool = False) -> None:
        if (ssh_argv is None) == (client is None):
            raise ValueError("GuestClockProbe: give ssh_argv or client")
        self.cmd = ("sudo -n " if sudo else "") + kclock.READER_CMD
        self.argv = None if ssh_argv is None else [*ssh_argv, self.cmd]
        self.client = client
        self.clock = clock
        self._p: _Pipe | None = None

    def __enter__(self) -> "GuestClockProbe":
        if self.argv is not None:
            proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, bufsize=1)

            def write(line: str) -> None:
                proc.stdin.write(line)  # type: ignore[union-attr]
                proc.stdin.flush()  # type: ignore[union-attr]

            def close() -> None:
                try:
                    proc.stdin.close()  # type: ignore[union-attr]
                    proc.wait(timeout=5)
                except (OSError, subprocess.TimeoutExpired):
                    proc.kill()
                    proc.wait()

            self._p = _Pipe(write, proc.stdout.readline, close)  # type: ignore[union-attr]
        else:
            stdin, stdout, _stderr = self.client.exec_command(self.cmd)

            def pwrite(line: str) -> None:
                stdin.write(line)
                stdin.flush()

            def pclose() -> None:
                stdin.close()
                stdout.channel.close()

            self._p = _Pipe(pwrite, stdout.readline, pclose)
        try:
            self.read()  # the first read pays for the session start; discard it
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        p, self._p = self._p, None
        if p is not None:
            p.close()

    def read(self, line: str = "") -> kclock.ClockRead:
        p = self._p
        if p is None:
            raise RuntimeError("GuestClockProbe used outside its with-block")
        t0 = self.clock()
        try:
            p.write(line + "\n")
            answer = p.readline()
        except OSError as exc:  # the reader (or its SSH session) is gone
            answer = f"<{exc}>"
        t1 = self.clock()
        try:
            return kclock.ClockRead(t0, float(answer), t1)
        except ValueError:
            raise kclock.KernelModeError(f"guest clock reader: unexpected answer {answer[-200:]!r}") from None

    def reads(self, seconds: float, interval_s: float = 0.1) -> list[kclock.ClockRead]:
        out = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            out.append(self.read())
            time.sleep(interval_s)
        return out

    def offset(self, n: int = 8) -> kclock.ClockRead:
        """The tightest of ``n`` quick reads (its offset is the best estimate now)."""
        return min((self.read() for _ in range(n)), key=lambda r: r.rtt_s)

    def step(self, delta_s: float) -> kclock.ClockRead:
        """Step the guest clock by ``delta_s`` (needs root in the guest); returns a read."""
        kclock.step_cmd(delta_s)  # the same bounds
        return self.read(f"step {delta_s:.9f}")

    def set_offset(self, target_s: Callable[[float], float], tolerance_s: float = 0.5e-3,
                   tries: int = 3) -> kclock.ClockRead:
        """Step until a tight read finds the guest at ``target_s(t)`` (guest - controller
        at controller time t: a drifting profile's offset moves while we set it)."""
        now = self.offset()
        for _ in range(tries):
            mid = (now.sent_s + now.received_s) / 2.0
            if abs(now.offset_s - target_s(mid)) <= tolerance_s:
                break
            # guest and profile drift at about the same rate: both move alike until the step
            self.step(target_s(mid) - now.offset_s)
            now = self.offset()
        return now


def measure_and_set(probe: GuestClockProbe, target_offset_s: Callable[[float], float], *,
                    seconds: float = 20.0) -> tuple[kclock.RateFit, kclock.ClockRead]:
    """Measure the guest's rate, step it to its profile's offset, return (fit, check read).

    ``probe``: not yet entered (it must reach the guest as root). ``target_offset_s(t)``: the offset (guest - controller) the profile wants at
    controller time ``t``. The steps are relative and go through the open channel, so
    the error is a read's half round trip plus the rate times one round trip.
    """
    with probe:
        fit = kclock.fit_rate(probe.reads(seconds))
        check = probe.set_offset(target_offset_s)
    return fit, check


RESET_TIMEX_CMD = "adjtimex --tick 10000 --frequency 0"  # the guest's "crystal" without any discipline


def prepare_nodes(pool, hosts, run_dir, profiles, *, host_tsc_mhz: float | None,
                  seconds: float = 20.0, progress: Callable[[str], None] = lambda m: None
                  ) -> dict[str, kclock.KernelClockRecord]:
    """Kernel mode, before tempod starts: per guest (in parallel) undo any earlier
    discipline (tick 10000, freq 0), read its boot's TSC calibration, measure its rate
    for ``seconds``, step it to its profile's offset, and record what it delivered
    (kclock.record: the run folder's drift.toml becomes the delivered profile).

    ``pool``: the runner's SshPool (``run(name, cmd)``, ``client(name)``); ``hosts``:
    its Host objects; ``profiles``: node -> the requested DriftProfile (the node's
    /etc/tempo/drift.toml as rendered by the role). Raises KernelModeError naming the
    nodes that failed; nothing is left half-done on the others (a step is complete or
    not made).
    """
    import threading

    out: dict[str, kclock.KernelClockRecord] = {}
    errors: dict[str, str] = {}

    def one(h) -> None:
        try:
            sudo = "" if h.user == "root" else "sudo -n "
            prof = profiles[h.name]
            pool.run(h.name, sudo + RESET_TIMEX_CMD).check("reset the guest's timex")
            dmesg = pool.run(h.name, sudo + "dmesg").stdout
            dm = kclock.tsc_rate_ppm(dmesg, host_tsc_mhz) if host_tsc_mhz else None
            probe = GuestClockProbe(client=pool.client(h.name), sudo=bool(sudo))
            fit, check = measure_and_set(probe, lambda t: prof.hw_at(t) - t, seconds=seconds)
            mid = (check.sent_s + check.received_s) / 2.0
            rec = kclock.KernelClockRecord(
                node=h.name, requested_rate_ppm=prof.rate_ppm, requested_offset_s=prof.offset_s,
                qemu_faketime=kclock.qemu_env(prof)["FAKETIME"], dmesg_rate_ppm=dm,
                measured_rate_ppm=fit.rate_ppm, measured_residual_s=fit.residual_s,
                measured_span_s=fit.span_s, measured_reads=fit.used, initial_offset_s=check.offset_s,
                at_true_s=mid, measured_rate_se_ppm=fit.rate_se_ppm)
            kclock.record(run_dir, rec, prof)
            out[h.name] = rec
            progress(f"{h.name}: delivered {rec.delivered_rate_ppm:+.1f} ppm ({rec.rate_source}; "
                     f"measured {fit.rate_ppm:+.1f} +- {fit.rate_se_ppm:.1f}), requested {prof.rate_ppm:+.1f}; "
                     f"offset {check.offset_s * 1e3:+.2f} ms")
        except Exception as exc:  # noqa: BLE001 - reported per node below
            errors[h.name] = str(exc)

    threads = [threading.Thread(target=one, args=(h,), daemon=True) for h in hosts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise kclock.KernelModeError("kernel clock mode: preparing the guest clocks failed: "
                                     + "; ".join(f"{n}: {e}" for n, e in sorted(errors.items())))
    return out
