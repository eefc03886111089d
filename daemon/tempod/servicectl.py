"""``tempod-service``: a pidfile service manager for hosts without systemd (the lab).

Owns starting the daemon in the background (double fork + setsid, output to a log
file, a pidfile), stopping it (SIGTERM, then SIGKILL after a timeout), LSB-style status
and restart. It must not know what the daemon does and never restarts it on its own
(experiments kill it on purpose). Standard library only.

Pidfile format: the pid on the first line (what LSB tools and Ansible read) and, on the
second line, ``starttime=<ticks>`` from /proc/<pid>/stat: a recycled pid belonging to
another process is then recognised as a stale pidfile instead of being signalled.

Exit codes: start/stop/restart 0 on success (also "already running" / "not running"),
1 on failure; status 0 running, 1 dead but pidfile exists (stale), 3 not running (LSB).

Example::

    tempod-service --config /etc/tempo/tempod.toml --profile /etc/tempo/drift.toml start
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import os
import shlex
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

EXIT_OK = 0
EXIT_FAIL = 1
STATUS_RUNNING = 0
STATUS_STALE = 1
STATUS_STOPPED = 3


# -- pure helpers ----------------------------------------------------------------------
@dataclass(frozen=True)
class PidRecord:
    pid: int
    starttime: int | None  # clock ticks since boot, field 22 of /proc/<pid>/stat


def parse_pidfile(text: str) -> PidRecord | None:
    """Parse pidfile text; None if it holds no valid pid."""
    lines = text.strip().splitlines()
    if not lines or not lines[0].strip().isdigit():
        return None
    pid = int(lines[0].strip())
    if pid <= 1:
        return None
    start = None
    for line in lines[1:]:
        key, _, value = line.partition("=")
        if key.strip() == "starttime" and value.strip().isdigit():
            start = int(value.strip())
    return PidRecord(pid, start)


def format_pidfile(rec: PidRecord) -> str:
    text = f"{rec.pid}\n"
    if rec.starttime is not None:
        text += f"starttime={rec.starttime}\n"
    return text


def parse_stat(stat: str) -> tuple[str, int]:
    """(state letter, starttime ticks) from /proc/<pid>/stat text (comm may hold spaces)."""
    rest = stat[stat.rindex(")") + 2 :].split()
    return rest[0], int(rest[19])  # fields 3 and 22 of proc(5)


def build_command(
    config: str,
    profile: str | None,
    daemon_cmd: Sequence[str],
    launcher: str | None,
    exec_latency_s: float = 0.0,
) -> list[str]:
    """The argv to exec: ``[tempod-launch --profile P [--exec-latency S] --] DAEMON --config C``."""
    cmd = [*daemon_cmd, "--config", config]
    if profile:
        if launcher is None:
            raise ServiceError("tempod-launch not found (needed for --profile)")
        latency = ["--exec-latency", repr(exec_latency_s)] if exec_latency_s else []
        cmd = [launcher, "--profile", profile, *latency, "--", *cmd]
    return cmd


class ServiceError(Exception):
    pass


# -- process inspection ------------------------------------------------------------------
def _proc_stat(pid: int) -> tuple[str, int] | None:
    try:
        return parse_stat(Path(f"/proc/{pid}/stat").read_text())
    except (OSError, ValueError, IndexError):
        return None


def is_alive(rec: PidRecord) -> bool:
    """The recorded process exists, is not a zombie, and (if recorded) has the same start time."""
    st = _proc_stat(rec.pid)
    if st is None:
        return False
    state, start = st
    if state in ("Z", "X"):
        return False
    return rec.starttime is None or rec.starttime == start


def read_pidfile(path: Path) -> PidRecord | None:
    try:
        return parse_pidfile(path.read_text())
    except FileNotFoundError:
        return None


def write_pidfile(path: Path, rec: PidRecord) -> None:
    """Atomic write (temp + rename) so a reader never sees half a pidfile."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(format_pidfile(rec))
    os.replace(tmp, path)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        data = path.read_bytes()[-8192:]
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


# -- actions -------------------------------------------------------------------------------
@dataclass
class Service:
    command: list[str]
    pidfile: Path
    stdout: Path
    startup_check_s: float = 1.0
    stop_timeout_s: float = 10.0

    def status(self) -> tuple[int, str]:
        rec = read_pidfile(self.pidfile)
        if rec is None:
            if self.pidfile.exists():
                return STATUS_STALE, f"not running (unreadable pidfile {self.pidfile})"
            return STATUS_STOPPED, "not running"
        if is_alive(rec):
            return STATUS_RUNNING, f"running (pid {rec.pid})"
        return STATUS_STALE, f"not running (stale pidfile {self.pidfile}, pid {rec.pid})"

    def start(self) -> tuple[int, str]:
        rec = read_pidfile(self.pidfile)
        if rec is not None and is_alive(rec):
            return EXIT_OK, f"already running (pid {rec.pid})"
        if self.pidfile.exists():
            self.pidfile.unlink()  # stale
        self.stdout.parent.mkdir(parents=True, exist_ok=True)
        offset = self.stdout.stat().st_size if self.stdout.exists() else 0
        pid = _spawn_detached(self.command, self.stdout)
        st = _proc_stat(pid)
        write_pidfile(self.pidfile, PidRecord(pid, st[1] if st else None))
        # Wait, returning early if it dies: a daemon that fails on its config dies at once.
        deadline = time.monotonic() + self.startup_check_s
        new = read_pidfile(self.pidfile)
        assert new is not None
        while time.monotonic() < deadline:
            if not is_alive(new):
                break
            time.sleep(0.05)
        if not is_alive(new):
            self.pidfile.unlink(missing_ok=True)
            out = _tail_from(self.stdout, offset)
            return EXIT_FAIL, f"failed: process {pid} exited within {self.startup_check_s:g} s\n{out}".rstrip()
        return EXIT_OK, f"started (pid {pid})"

    def stop(self) -> tuple[int, str]:
        rec = read_pidfile(self.pidfile)
        if rec is None or not is_alive(rec):
            self.pidfile.unlink(missing_ok=True)
            return EXIT_OK, "not running"
        try:
            os.kill(rec.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        if not _wait_dead(rec, self.stop_timeout_s):
            try:
                os.kill(rec.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if not _wait_dead(rec, 5.0):
                return EXIT_FAIL, f"failed: pid {rec.pid} survived SIGKILL"
            self.pidfile.unlink(missing_ok=True)
            return EXIT_OK, f"killed (pid {rec.pid} ignored SIGTERM for {self.stop_timeout_s:g} s)"
        self.pidfile.unlink(missing_ok=True)
        return EXIT_OK, f"stopped (pid {rec.pid})"

    def restart(self) -> tuple[int, str]:
        code, msg = self.stop()
        if code != EXIT_OK:
            return code, msg
        code2, msg2 = self.start()
        return code2, f"{msg}; {msg2}"


def _tail_from(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            data = f.read()[-8192:]
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-20:])


def _wait_dead(rec: PidRecord, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not is_alive(rec):
            return True
        # If the daemon happens to be our child (not after a double fork), reap it.
        try:
            os.waitpid(rec.pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.05)
    return not is_alive(rec)


def _spawn_detached(command: list[str], stdout: Path) -> int:
    """Double fork + setsid; returns the grandchild's pid (which then execs ``command``).

    The grandchild is not a session leader (cannot reacquire a terminal) and is
    re-parented to init, so it outlives this tool and the SSH session that ran it.
    """
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # first child
        try:
            os.close(rfd)
            os.setsid()
            gpid = os.fork()
            if gpid == 0:  # grandchild: the daemon
                os.close(wfd)
                _exec_daemon(command, stdout)  # never returns
            os.write(wfd, str(gpid).encode())
        finally:
            os._exit(0)
    os.close(wfd)
    try:
        data = b""
        while chunk := os.read(rfd, 64):
            data += chunk
    finally:
        os.close(rfd)
    os.waitpid(pid, 0)
    if not data:
        raise ServiceError("could not start the daemon (fork failed)")
    return int(data)


def _exec_daemon(command: list[str], stdout: Path) -> None:
    try:
        os.chdir("/")
        null = os.open(os.devnull, os.O_RDONLY)
        out = os.open(stdout, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.closerange(3, 65536)
        os.execvp(command[0], command)
    except OSError as exc:
        os.write(2, f"tempod-service: cannot exec {command[0]}: {exc.strerror or exc}\n".encode())
    finally:
        os._exit(127)


# -- CLI -------------------------------------------------------------------------------------
def _find_tool(name: str) -> str | None:
    # Prefer the tool next to this interpreter (a venv's bin), then PATH.
    here = os.path.dirname(sys.executable)
    return shutil.which(name, path=os.pathsep.join([here, os.environ.get("PATH", os.defpath)]))


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="tempod-service",
        description="Start/stop tempod with a pidfile on hosts without systemd (no auto-restart).",
        epilog="example: tempod-service --config /etc/tempo/tempod.toml --profile /etc/tempo/drift.toml start",
    )
    ap.add_argument("--config", required=True, help="tempod config file")
    ap.add_argument("--profile", help="drift profile: run the daemon through tempod-launch")
    ap.add_argument("--pidfile", default="/run/tempo/tempod.pid")
    ap.add_argument("--stdout", default="/var/log/tempo/tempod.out", help="file for the daemon's stdout/stderr (appended)")
    ap.add_argument(
        "--daemon-cmd",
        default="tempod",
        help="daemon command line (shell-split) before '--config C'; default: tempod (for tests and custom builds)",
    )
    ap.add_argument("--exec-latency", type=float, default=0.0, metavar="S", help="passed to tempod-launch (see its --help)")
    ap.add_argument("--stop-timeout", type=float, default=10.0, help="seconds between SIGTERM and SIGKILL")
    ap.add_argument("--startup-check", type=float, default=1.0, help="seconds the process must survive for start to succeed")
    ap.add_argument("action", choices=["start", "stop", "restart", "status"])
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    daemon_cmd = shlex.split(args.daemon_cmd)
    if not daemon_cmd:
        print("tempod-service: error: --daemon-cmd is empty", file=sys.stderr)
        return 2
    resolved = _find_tool(daemon_cmd[0])
    if resolved is None:
        if args.action in ("start", "restart"):
            print(f"tempod-service: error: daemon command not found: {daemon_cmd[0]}", file=sys.stderr)
            return EXIT_FAIL
    else:
        daemon_cmd[0] = resolved
    try:
        command = build_command(
            args.config, args.profile, daemon_cmd, _find_tool("tempod-launch"), args.exec_latency
        )
        svc = Service(command, Path(args.pidfile), Path(args.stdout), args.startup_check, args.stop_timeout)
        if args.action == "status":
            code, msg = svc.status()
        else:
            # Serialise concurrent start/stop on the same pidfile (e.g. Ansible and the runner).
            lock_path = Path(args.pidfile).with_name(Path(args.pidfile).name + ".lock")
            lock_path.parent.mkdir(parents=True, exist_ok=True)
            with open(lock_path, "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                code, msg = getattr(svc, args.action)()
    except (ServiceError, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno == errno.EACCES:
            msg = f"permission denied: {exc.filename}"
        else:
            msg = str(exc)
        print(f"tempod-service: error: {msg}", file=sys.stderr)
        return EXIT_FAIL
    stream = sys.stdout if code == EXIT_OK or args.action == "status" else sys.stderr
    print(f"tempod: {msg}", file=stream)
    return code


if __name__ == "__main__":
    sys.exit(main())
