"""Sockets that live in a named network namespace, for hosts only reachable there.

Owns ``socket_in(ns, ...)`` and ``connect_in(ns, host, port)``: a socket belongs to the
namespace of the thread that created it, so a short-lived helper thread ``setns()``-es
into ``/run/netns/<ns>`` (only that thread changes namespace), creates the socket and
hands it back; the caller then uses it from any thread.  This is how the runner's
paramiko connections (``sock=``) and the observer's UDP socket reach VMs whose network
exists only inside the VM namespace, while the host's own namespace never gets an
address in the guests' range.  Also the argv prefix for subprocesses
(``ip netns exec``).  Needs root (CAP_SYS_ADMIN) like everything that enters a netns.
"""

from __future__ import annotations

import ctypes
import os
import socket
import threading
from pathlib import Path

from ..errors import EnvironmentProblem

CLONE_NEWNET = 0x40000000
NETNS_DIR = Path("/run/netns")

_libc = ctypes.CDLL(None, use_errno=True)


def exists(ns: str) -> bool:
    return (NETNS_DIR / ns).exists()


def exec_argv(ns: str | None, argv: list[str]) -> list[str]:
    return list(argv) if not ns else ["ip", "netns", "exec", ns, *argv]


def _in_namespace(ns: str, make):
    """Run ``make()`` on a helper thread that joined namespace ``ns``; return its result."""
    out: dict = {}

    def body() -> None:
        try:
            fd = os.open(NETNS_DIR / ns, os.O_RDONLY)
        except OSError as exc:
            out["err"] = EnvironmentProblem(f"network namespace {ns!r} not found ({exc})")
            return
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                e = ctypes.get_errno()
                out["err"] = EnvironmentProblem(
                    f"setns into {ns!r} failed: {os.strerror(e)} (needs root)")
                return
            out["val"] = make()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            out["err"] = exc
        finally:
            os.close(fd)

    # the helper thread ends here, so its changed namespace dies with it
    t = threading.Thread(target=body, name=f"setns-{ns}", daemon=True)
    t.start()
    t.join()
    if "err" in out:
        raise out["err"]
    return out["val"]


def socket_in(ns: str | None, family: int = socket.AF_INET, type: int = socket.SOCK_DGRAM,
              proto: int = 0) -> socket.socket:
    if not ns:
        return socket.socket(family, type, proto)
    return _in_namespace(ns, lambda: socket.socket(family, type, proto))


def connect_in(ns: str | None, host: str, port: int, timeout_s: float) -> socket.socket:
    """A connected TCP socket to ``host:port`` as seen from namespace ``ns``."""
    if not ns:
        return socket.create_connection((host, port), timeout=timeout_s)
    return _in_namespace(ns, lambda: socket.create_connection((host, port), timeout=timeout_s))
