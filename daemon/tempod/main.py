"""``tempod --config FILE [--check] [--foreground]``: the daemon's entry point.

Owns process start-up: parse arguments, load the config (``config``), the key
(``channel``/``auth``), pick the clock backend (``clocks``/``discipline``), bind the
sockets and open the event log, then hand over to ``runtime.Runtime``.  Failures are
one line on stderr: exit 2 for a bad config or key, exit 1 for a bind or log failure
(the message names the address and port).  It always runs in the foreground;
daemonizing is systemd's or ``tempod-service``'s job.

Knows nothing about the protocol or the event loop.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable, Sequence

from . import __version__
from .auth import KeyFileError
from .channel import Channel
from .config import DEFAULT_PATH, ConfigError, DaemonConfig, load, to_toml

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_CONFIG = 2


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="tempod",
        description="Tempo node daemon: Berkeley clock synchronization with Gusella-Zatti election.",
        epilog="examples:\n  tempod --config /etc/tempo/tempod.toml --check   validate, print the effective config\n"
               "  tempod-launch --profile /etc/tempo/drift.toml -- tempod --config /etc/tempo/tempod.toml\n\n"
               "exit status: 0 stopped by SIGTERM/SIGINT, 1 cannot bind or open the log, 2 bad config or key",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=DEFAULT_PATH, help=f"config file (default {DEFAULT_PATH})")
    ap.add_argument("--check", action="store_true", help="validate the config and key, print the effective config, exit")
    ap.add_argument("--foreground", action="store_true",
                    help="accepted for compatibility: tempod always runs in the foreground")
    ap.add_argument("--version", action="version", version=f"tempod {__version__}")
    return ap


def make_clock(cfg: DaemonConfig) -> tuple[Callable[[], float], Any]:
    """(read hardware seconds, discipline) for the configured backend.

    ``process``: this process's clock (libfaketime's drifted clock under tempod-launch)
    with a SoftwareClock on top.  ``kernel``: the system clock, disciplined through
    adjtimex (needs CAP_SYS_TIME; tempo VM guests only: kernelguard refuses anywhere
    else, the shared lab host above all, with a ValueError naming the reason).
    """
    from .clocks import make_clock as _make
    n = cfg.node
    hw, disc = _make(n.backend, n.slew_max_ppm, n.step_threshold_s, n.freq_max_ppm)
    return hw.read_s, disc


def set_realtime_priority(priority: int) -> str | None:
    """Switch this process to SCHED_FIFO at ``priority`` (0: leave it alone).

    Returns a warning when the kernel refuses: the daemon still works at normal
    priority, only its timestamps are then exposed to preemption on a busy host.
    Threads started later inherit the policy.
    """
    if priority <= 0:
        return None
    fifo = getattr(os, "SCHED_FIFO", None)
    if fifo is None or not hasattr(os, "sched_setscheduler"):
        return (f"process.realtime_priority = {priority}: this platform has no SCHED_FIFO; "
                "running at normal priority")
    try:
        os.sched_setscheduler(0, fifo, os.sched_param(priority))
    except OSError as exc:
        why = "not permitted (needs root, CAP_SYS_NICE or RLIMIT_RTPRIO >= the priority)" \
            if isinstance(exc, PermissionError) else (exc.strerror or str(exc))
        return f"process.realtime_priority = {priority}: cannot switch to SCHED_FIFO: {why}; running at normal priority"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = load(args.config)
        channel, warnings = Channel.from_key_file(cfg.runtime.key_file, cfg.runtime.key_id,
                                                  required=cfg.runtime.auth_required, local_name=cfg.node.name)
    except ConfigError as exc:
        print(f"tempod: config {args.config}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyFileError as exc:
        print(f"tempod: config {args.config}: auth.key_file: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    for w in warnings:
        print(f"tempod: warning: {w}", file=sys.stderr)
    if args.check:
        if cfg.node.backend == "kernel":
            from .kernelguard import KernelGuardError, require_vm_guest
            try:
                require_vm_guest()
            except KernelGuardError as exc:
                print(f"tempod: config {args.config}: {exc}", file=sys.stderr)
                return EXIT_CONFIG
        sys.stdout.write(f"# effective config of {args.config} (valid)\n" + to_toml(cfg))
        return EXIT_OK

    rt_warning = set_realtime_priority(cfg.runtime.realtime_priority)
    if rt_warning is not None:
        print(f"tempod: warning: {rt_warning}", file=sys.stderr)
        warnings = [*warnings, rt_warning]
    try:
        read_hw, clock = make_clock(cfg)
    except (ValueError, OSError) as exc:  # bad drift profile / environment from tempod-launch
        print(f"tempod: clock backend {cfg.node.backend}: {exc}", file=sys.stderr)
        return EXIT_CONFIG

    from .eventlog import EventLog
    from .runtime import BindError, Runtime, open_sockets
    try:
        sockets = open_sockets(cfg)
    except BindError as exc:
        print(f"tempod: {exc.strerror}", file=sys.stderr)
        return EXIT_RUNTIME
    try:
        log = EventLog(cfg.runtime.event_log, cfg.node.name, read_hw, lambda: clock.corrected(read_hw()))
    except OSError as exc:
        sockets.close()
        print(f"tempod: cannot open event log {cfg.runtime.event_log}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_RUNTIME
    with log:
        for w in warnings:
            log.write("warning", detail=w)
        rt = Runtime(cfg, sockets, read_hw, clock, channel, log, backend=cfg.node.backend)
        return rt.run()


if __name__ == "__main__":
    sys.exit(main())
