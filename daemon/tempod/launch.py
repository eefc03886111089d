"""``tempod-launch``: exec a command on a node's drifted hardware clock.

Owns one thing: turning a drift profile into the environment of a new process and
replacing itself with that process (``os.execvpe``), so the child's pid is the
launcher's pid (pidfiles and ``kill`` keep working). It must not know what the command
is; it is usually ``tempod --config ...``. Standard library only.

The libfaketime offset is computed at the last moment before ``exec`` from the current
true time, so the child's clock agrees with ``profile.hw_at(t)`` whenever it starts: a
restarted daemon finds its hardware clock where it would have been. The residual error
is ``-rate * (exec latency)`` (measured in docs/clock.md).

Usage::

    tempod-launch --profile /etc/tempo/drift.toml -- tempod --config /etc/tempo/tempod.toml
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from typing import Sequence

from . import profile as _profile

DEFAULT_LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
EXIT_USAGE = 2


class LaunchError(Exception):
    """Bad input to the launcher (message is shown to the user as is)."""


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="tempod-launch",
        description="Run a command whose clock follows a drift profile (libfaketime).",
        epilog="example: tempod-launch --profile /etc/tempo/drift.toml -- tempod --config /etc/tempo/tempod.toml",
    )
    ap.add_argument("--profile", required=True, help="drift profile TOML (see docs/architecture.md)")
    ap.add_argument("--libfaketime", default=DEFAULT_LIBFAKETIME, help=f"path of libfaketime (default {DEFAULT_LIBFAKETIME})")
    ap.add_argument(
        "--no-faketime",
        action="store_true",
        help="do not preload libfaketime; the child's ProcessClock applies the whole profile in software",
    )
    ap.add_argument(
        "--exec-latency",
        type=float,
        default=0.0,
        metavar="S",
        help="expected seconds from here to libfaketime's start in the child (about 0.002 on the "
        "dev machine, see docs/clock.md); the offset is computed for that instant, cancelling "
        "the rate x latency launch error. Default 0",
    )
    ap.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    return ap


def prepare(
    args: argparse.Namespace, environ: dict[str, str]
) -> tuple[list[str], _profile.DriftProfile, str | None]:
    """Validate everything that can be validated before the clock-critical moment."""
    cmd = list(args.command)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        raise LaunchError("no command given (usage: tempod-launch --profile FILE -- CMD ARGS...)")
    if shutil.which(cmd[0], path=environ.get("PATH", os.defpath)) is None and not os.access(cmd[0], os.X_OK):
        raise LaunchError(f"command not found or not executable: {cmd[0]}")
    try:
        prof = _profile.load_profile(args.profile)
    except _profile.ProfileError as exc:
        raise LaunchError(str(exc)) from None
    if not (0.0 <= args.exec_latency <= 1.0):
        raise LaunchError(f"--exec-latency: must be between 0 and 1 s, got {args.exec_latency}")
    if "FAKETIME" in environ or "faketime" in environ.get("LD_PRELOAD", ""):
        # Our own time.time() would be faked and the offset computed from it wrong.
        raise LaunchError("tempod-launch itself runs under libfaketime (FAKETIME/LD_PRELOAD set); run it on the real clock")
    lib: str | None = None
    if not args.no_faketime:
        lib = os.path.abspath(args.libfaketime)
        if not os.path.isfile(lib) or not os.access(lib, os.R_OK):
            raise LaunchError(
                f"libfaketime not found at {lib} (install the 'libfaketime' package, "
                "pass --libfaketime PATH, or --no-faketime)"
            )
    return cmd, prof, lib


def child_env(
    prof: _profile.DriftProfile, profile_path: str, lib: str | None, environ: dict[str, str], now_true_s: float
) -> dict[str, str]:
    """The child's environment; pure apart from the arguments."""
    base = {k: v for k, v in environ.items() if k not in ("FAKETIME", _profile.ENV_LAUNCH_TRUE_S)}
    if lib is None:
        env = dict(base)
        env[_profile.ENV_CLOCK_MODE] = "software"
    else:
        env = _profile.faketime_env(prof, now_true_s, lib, base)
    env[_profile.ENV_PROFILE] = os.path.abspath(profile_path)
    return env


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    environ = dict(os.environ)
    try:
        cmd, prof, lib = prepare(args, environ)
    except LaunchError as exc:
        print(f"tempod-launch: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    sys.stdout.flush()
    sys.stderr.flush()
    # Last moment: the offset's error is rate x (time from here to libfaketime's init),
    # less the latency we were told to expect.
    env = child_env(prof, args.profile, lib, environ, time.time() + args.exec_latency)
    try:
        os.execvpe(cmd[0], cmd, env)
    except OSError as exc:
        print(f"tempod-launch: error: cannot exec {cmd[0]}: {exc.strerror or exc}", file=sys.stderr)
        return 127
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
