"""libvirt's daemons and the VM namespace on a machine without systemd.

Owns creating/removing the VM network namespace and starting ``virtlogd -d`` and
``libvirtd -d`` *inside* it (``ip netns exec``), so every bridge, dnsmasq and tap that
libvirt creates lives there and the host's own namespace never sees the guests'
addresses.  Also ``virsh`` calls and the refusal to share a libvirtd that something
else started in another namespace.  It knows nothing about Vagrant or boxes.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from ..errors import EnvironmentProblem
from ..providers import netns

PIDFILES = {"libvirtd": Path("/run/libvirtd.pid"), "virtlogd": Path("/run/virtlogd.pid")}
SOCKET = Path("/run/libvirt/libvirt-sock")
URI = "qemu:///system"


def _pid(name: str) -> int | None:
    try:
        pid = int(PIDFILES[name].read_text().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None
    # a daemon reparented to an init that does not reap stays a zombie: not running
    return pid if comm == name and "zombie" not in _state(pid) else None


def _netns_inode(pid: int | str) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def ns_inode(ns: str) -> int | None:
    try:
        return os.stat(netns.NETNS_DIR / ns).st_ino
    except OSError:
        return None


def running(ns: str) -> dict[str, int | None]:
    """Daemon name -> pid when it runs inside ``ns``; raise if one runs elsewhere."""
    want = ns_inode(ns)
    out: dict[str, int | None] = {}
    for name in PIDFILES:
        pid = _pid(name)
        if pid is not None and (want is None or _netns_inode(pid) != want):
            raise EnvironmentProblem(
                f"a {name} (pid {pid}) already runs outside the VM namespace {ns!r}; "
                f"the VM lab needs its own. Stop it first (kill {pid}) or `tempo vm down`.")
        out[name] = pid
    return out


def create_ns(ns: str) -> None:
    if not netns.exists(ns):
        subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
    subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True, capture_output=True)


def start(ns: str, timeout_s: float = 30.0) -> dict[str, int]:
    for tool in ("libvirtd", "virtlogd", "virsh"):
        if shutil.which(tool) is None:
            raise EnvironmentProblem(f"{tool} not found (bash scripts/bootstrap-vm.sh installs "
                                     "libvirt-daemon-system and libvirt-clients)")
    create_ns(ns)
    have = running(ns)
    for name in ("virtlogd", "libvirtd"):
        if have[name] is None:
            subprocess.run(netns.exec_argv(ns, [name, "-d"]), check=True, capture_output=True)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        have = running(ns)
        if all(have.values()) and virsh(["version"], check=False).returncode == 0:
            return {k: int(v) for k, v in have.items() if v}
        time.sleep(0.3)
    raise EnvironmentProblem(f"libvirtd did not answer within {timeout_s:.0f} s inside {ns!r}")


def virsh(args: list[str], check: bool = True, timeout_s: float = 120) -> subprocess.CompletedProcess:
    p = subprocess.run(["virsh", "-c", URI, "-q", *args], capture_output=True, text=True,
                       timeout=timeout_s)
    if check and p.returncode != 0:
        raise EnvironmentProblem(f"virsh {' '.join(args)}: {p.stderr.strip()[-300:]}")
    return p


def stop(ns: str, timeout_s: float = 15.0) -> list[str]:
    """Stop the daemons and every other process in ``ns``, then delete ``ns``."""
    done: list[str] = []
    try:
        have = running(ns)
    except EnvironmentProblem:
        have = {}  # not ours: leave it alone
    victims: set[int] = {p for p in have.values() if p}
    if netns.exists(ns):
        p = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
        victims |= {int(x) for x in p.stdout.split() if x.isdigit()}
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in list(victims):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                victims.discard(pid)
        deadline = time.monotonic() + (timeout_s if sig == signal.SIGTERM else 5)
        while victims and time.monotonic() < deadline:
            victims = {p for p in victims if Path(f"/proc/{p}").exists()
                       and "zombie" not in _state(p)}
            time.sleep(0.2)
        if not victims:
            break
    for name, pid in have.items():
        if pid:
            done.append(f"stopped {name} (pid {pid})")
            PIDFILES[name].unlink(missing_ok=True)
    if netns.exists(ns):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        done.append(f"removed network namespace {ns}")
    return done


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split("\n")[0].lower()
    except (OSError, IndexError):
        return "zombie"
