"""Host-side actions for the lab: the only module here that runs ``ip``, starts and
kills processes, and probes the host's routes.

Each function does one idempotent thing (``ensure_*`` creates only what is missing,
``remove_*`` succeeds when the thing is already gone) so that ``up`` can be re-run and
``down`` can finish a half-made lab.  It must not know the lab's layout: names and
addresses come in as arguments from :mod:`tempolab.lab.plan`.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..errors import EnvironmentProblem

BOOTSTRAP_HINT = "run `bash scripts/bootstrap.sh` as root"
REQUIRED_TOOLS = ("ip", "sshd", "nft", "unshare", "nsenter", "ssh-keygen", "mount")


class CommandFailed(EnvironmentProblem):
    def __init__(self, argv: Sequence[str], rc: int, stderr: str):
        self.argv = list(argv)
        self.rc = rc
        self.stderr = stderr
        super().__init__(f"`{' '.join(argv)}` failed (exit {rc}): {stderr.strip()}")


def which(tool: str) -> str | None:
    # root's PATH usually has /usr/sbin, but a venv-activated shell may not
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin:/usr/bin:/bin")


def run(argv: Sequence[str], check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(argv), capture_output=True, text=True, input=input)
    if check and proc.returncode != 0:
        raise CommandFailed(argv, proc.returncode, proc.stderr or proc.stdout)
    return proc


# ----------------------------------------------------------------------- preflight


def check_root() -> None:
    if os.geteuid() != 0:
        raise EnvironmentProblem(
            "the lab needs root (network namespaces, a bridge, mounts); run `sudo .venv/bin/tempo lab ...`"
        )


def check_tools(tools: Iterable[str] = REQUIRED_TOOLS) -> dict[str, str]:
    found = {t: which(t) for t in tools}
    missing = [t for t, p in found.items() if p is None]
    if missing:
        raise EnvironmentProblem(f"missing tools: {', '.join(missing)}; {BOOTSTRAP_HINT}")
    return {t: p for t, p in found.items() if p}


def host_networks(exclude_dev: str | None = None) -> list[tuple[str, ipaddress.IPv4Network]]:
    """(device, network) of every IPv4 route and address on the host, except ``exclude_dev``."""
    out: list[tuple[str, ipaddress.IPv4Network]] = []
    routes = json.loads(run(["ip", "-j", "-4", "route", "show", "table", "all"]).stdout or "[]")
    for r in routes:
        dst = r.get("dst", "")
        dev = r.get("dev", "")
        if dev == exclude_dev or dst in ("", "default") or r.get("type") in ("broadcast", "local"):
            continue
        try:
            out.append((dev, ipaddress.ip_network(dst if "/" in dst else dst + "/32", strict=False)))
        except ValueError:
            continue
    addrs = json.loads(run(["ip", "-j", "-4", "addr", "show"]).stdout or "[]")
    for link in addrs:
        dev = link.get("ifname", "")
        if dev == exclude_dev:
            continue
        for a in link.get("addr_info", []):
            out.append((dev, ipaddress.ip_network(f"{a['local']}/{a['prefixlen']}", strict=False)))
    return out


def check_subnet_free(net: ipaddress.IPv4Network, own_bridge: str) -> None:
    clashes = sorted({f"{n} on {dev}" for dev, n in host_networks(exclude_dev=own_bridge) if n.overlaps(net)})
    if clashes:
        raise EnvironmentProblem(
            f"subnet {net} overlaps what this host already uses: {'; '.join(clashes)}; "
            "choose another with --subnet"
        )


# ------------------------------------------------------------------------ network


def link_exists(name: str) -> bool:
    return run(["ip", "link", "show", "dev", name], check=False).returncode == 0


def netns_list() -> list[str]:
    out = run(["ip", "-j", "netns", "list"], check=False).stdout.strip()
    return [n["name"] for n in json.loads(out)] if out else []


def ensure_bridge(bridge: str, address: str, prefixlen: int) -> None:
    if not link_exists(bridge):
        run(["ip", "link", "add", "name", bridge, "type", "bridge"])
    have = run(["ip", "-j", "-4", "addr", "show", "dev", bridge]).stdout
    if f'"{address}"' not in have:
        run(["ip", "addr", "add", f"{address}/{prefixlen}", "dev", bridge])
    run(["ip", "link", "set", bridge, "up"])


def ensure_node_net(netns: str, veth_host: str, veth_node: str, address: str, prefixlen: int, bridge: str) -> None:
    if netns not in netns_list():
        run(["ip", "netns", "add", netns])
    if not link_exists(veth_host):
        run(["ip", "link", "add", veth_host, "type", "veth", "peer", "name", veth_node, "netns", netns])
    run(["ip", "link", "set", veth_host, "master", bridge, "up"])
    have = run(["ip", "-n", netns, "-j", "-4", "addr", "show", "dev", veth_node]).stdout
    if f'"{address}"' not in have:
        run(["ip", "-n", netns, "addr", "add", f"{address}/{prefixlen}", "dev", veth_node])
    run(["ip", "-n", netns, "link", "set", "lo", "up"])
    run(["ip", "-n", netns, "link", "set", veth_node, "up"])


def remove_netns(netns: str) -> None:
    # deleting the namespace removes the veth pair with it (the host end goes too)
    if netns in netns_list():
        run(["ip", "netns", "del", netns])


def remove_link(name: str) -> None:
    # The kernel removes a veth's host end asynchronously after its namespace is deleted,
    # so the link can vanish between the check and the delete: only a link that is still
    # there after a failed delete is an error.
    if link_exists(name):
        proc = run(["ip", "link", "del", name], check=False)
        if proc.returncode != 0 and link_exists(name):
            raise CommandFailed(["ip", "link", "del", name], proc.returncode, proc.stderr or proc.stdout)


# ---------------------------------------------------------------------- processes


def netns_pids(netns: str) -> list[int]:
    """Every host PID whose network namespace is ``netns``: all of a node's processes."""
    proc = run(["ip", "netns", "pids", netns], check=False)
    return [int(p) for p in proc.stdout.split()] if proc.returncode == 0 else []


def nspid_chain(pid: int) -> list[int]:
    """The PID of ``pid`` in each nested PID namespace, outermost first (``NSpid``)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("NSpid:"):
                return [int(x) for x in line.split()[1:]]
    except (FileNotFoundError, ProcessLookupError):
        pass
    return []


def find_node_init(netns: str) -> int | None:
    """Host PID of the process that is PID 1 of a node's own PID namespace (its sshd)."""
    for pid in netns_pids(netns):
        chain = nspid_chain(pid)
        if len(chain) >= 2 and chain[-1] == 1:
            return pid
    return None


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is not alive for our purposes
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        # reaped between open and read: /proc answers ESRCH then
        return False


def kill_netns_processes(netns: str, timeout_s: float = 5.0) -> None:
    """SIGKILL everything in the node; killing its PID 1 already takes its PID namespace
    down, the loop also catches processes that entered the netns some other way."""
    deadline = time.monotonic() + timeout_s
    while True:
        pids = [p for p in netns_pids(netns) if alive(p)]
        if not pids:
            return
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if time.monotonic() > deadline:
            raise EnvironmentProblem(f"processes in {netns} survive SIGKILL: {pids}")
        time.sleep(0.02)


def start_node(netns: str, script: str, log_path: Path, unshare: str) -> subprocess.Popen:
    """Start the node: fresh mount, UTS and PID namespaces inside the netns, running
    ``script`` (which ends by exec'ing sshd as the node's PID 1).  The process is put
    in its own session so that it outlives the ``tempo`` command that started it."""
    log = open(log_path, "ab")
    try:
        return subprocess.Popen(
            ["ip", "netns", "exec", netns, unshare, "--mount", "--uts", "--pid", "--fork",
             "--mount-proc", "--propagation", "private", "/bin/sh", "-c", script],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, close_fds=True,
        )
    finally:
        log.close()


def wait_tcp(addresses: Iterable[tuple[str, int]], timeout_s: float) -> list[tuple[str, int]]:
    """Wait until each address accepts TCP; return the ones that never did."""
    pending = list(addresses)
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        still = []
        for addr in pending:
            try:
                with socket.create_connection(addr, timeout=0.2):
                    pass
            except OSError:
                still.append(addr)
        pending = still
        if pending:
            time.sleep(0.05)
    return pending


def nsenter_argv(pid: int, argv: Sequence[str]) -> list[str]:
    """Run ``argv`` in every namespace of ``pid`` (net, mount, UTS, PID, ...), with
    its root and working directory; nsenter forks so the command is a member of the
    node's PID namespace, not just a visitor."""
    return ["nsenter", "--target", str(pid), "--all", "--root", "--wd=/", "--", *argv]


def ssh_keygen(path: Path, comment: str) -> None:
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])


def close_ssh_masters(control_dir: Path) -> None:
    """Ask every SSH ControlMaster with a socket in ``control_dir`` to exit, so no
    stale multiplexed connection to a removed node outlives the lab."""
    if not control_dir.is_dir():
        return
    for sock in control_dir.iterdir():
        if sock.is_socket():
            run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "lab-node"], check=False)
