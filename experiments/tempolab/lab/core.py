"""The lab as one object: ``Lab(name, subnet).up(n)``, ``.status()``, ``.down()``.

It owns the order of operations and the state record: preflight, record intent,
create, verify, write the inventory.  Layout decisions come from :mod:`.plan`, host
actions from :mod:`.host`, the record from :mod:`.state`.  It must not know anything
about the daemon or Ansible beyond writing the inventory file.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from .. import paths
from ..errors import EnvironmentProblem
from . import host, plan, state
from .state import LabState, NodeState

SSHD_READY_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class NodeStatus:
    name: str
    address: str
    netns: str
    sshd_pid: int | None
    sshd_alive: bool
    netns_present: bool
    daemon_pid: int | None


class Lab:
    """A named lab on this host.  Several labs with different names and subnets coexist."""

    def __init__(
        self,
        name: str = plan.DEFAULT_NAME,
        subnet: str | None = None,
        *,
        root: Path | None = None,
        repo: Path | None = None,
        progress: Callable[[str], None] | None = None,
    ):
        self.name = plan.validate_name(name)
        here = paths.project_paths()
        self.root = Path(root) if root is not None else here.lab_state
        # the project folder gets the generated inventory (paths.py); tests pass a tmp dir
        self.repo = Path(repo) if repo is not None else here.root
        self._progress = progress or (lambda msg: None)
        self.state: LabState | None = state.load(self.state_path)
        if subnet is None:
            subnet = self.state.subnet if self.state else plan.DEFAULT_SUBNET
        self.subnet = str(plan.parse_subnet(subnet))

    # ------------------------------------------------------------------ paths
    @property
    def dir(self) -> Path:
        return plan.lab_dir(self.name, self.root)

    @property
    def state_path(self) -> Path:
        return self.dir / "lab.json"

    @property
    def ssh_dir(self) -> Path:
        return self.dir / "ssh"

    @property
    def ssh_key_path(self) -> Path:
        return self.ssh_dir / "id_ed25519"

    @property
    def control_path_dir(self) -> Path:
        return self.dir / "cp"

    @property
    def inventory_path(self) -> Path:
        return plan.inventory_path(self.name, self.repo)

    @property
    def nodes(self) -> list[NodeState]:
        return list(self.state.nodes) if self.state else []

    @classmethod
    def load(cls, name: str = plan.DEFAULT_NAME, *, root: Path | None = None, repo: Path | None = None) -> Lab:
        lab = cls(name, root=root, repo=repo)
        if lab.state is None:
            raise EnvironmentProblem(f"no lab named {name!r} (no {lab.state_path}); start one with `tempo lab up`")
        return lab

    # ------------------------------------------------------------- up / down
    def _save(self) -> None:
        assert self.state is not None
        state.save(self.state, self.state_path)

    def preflight(self, n: int) -> dict[str, str]:
        host.check_root()
        tools = host.check_tools()
        net = plan.parse_subnet(self.subnet, plan.validate_count(n))
        if self.state and self.state.subnet != str(net):
            raise EnvironmentProblem(
                f"lab {self.name!r} already exists with subnet {self.state.subnet}, not {net}; "
                f"run `tempo lab down --name {self.name}` first or use another --name"
            )
        host.check_subnet_free(net, own_bridge=plan.bridge_name(self.name))
        return tools

    def up(self, n: int) -> LabState:
        """Create the lab with ``n`` nodes, or bring an existing one to ``n`` nodes.

        Safe to repeat: what exists and works is kept, what is missing or dead is
        (re)made, nodes beyond ``n`` are removed.
        """
        tools = self.preflight(n)
        net = plan.parse_subnet(self.subnet, n)
        bridge = plan.bridge_name(self.name)
        if self.state is None:
            self.state = LabState(
                name=self.name, subnet=str(net), bridge=bridge, host_address=plan.host_address(net)
            )
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o755)
        self._save()

        # -- host-wide prerequisites (mount points and sshd's privilege-separation dir)
        for p in [*plan.NODE_BINDS.values(), "/run/sshd"]:
            path = Path(p)
            if not path.exists():
                path.mkdir(parents=True, mode=0o755)
                self.state.created_paths.append(p)  # recorded; left in place while other labs may use it
        self._save()

        # -- keys: one controller key and one host key per lab
        host.ssh_keygen(self.ssh_key_path, f"tempo-lab {self.name} controller")
        host.ssh_keygen(self.ssh_dir / "ssh_host_ed25519_key", f"tempo-lab {self.name} host")
        pub = (self.ssh_key_path.with_suffix(".pub")).read_text()
        state.write_atomic(self.ssh_dir / "authorized_keys", pub, mode=0o600)
        self.control_path_dir.mkdir(exist_ok=True, mode=0o700)

        # -- shrink first, so a smaller lab never keeps stray nodes
        for extra in [x for x in self.state.nodes if int(x.name[1:]) > n]:
            self._progress(f"removing {extra.name}")
            self._remove_node(extra)
            self.state.nodes.remove(extra)
            self._save()

        host.ensure_bridge(bridge, self.state.host_address, net.prefixlen)
        wanted = plan.plan_nodes(self.name, net, n)
        known = {x.name: x for x in self.state.nodes}
        started: list[tuple[NodeState, subprocess.Popen | None]] = []
        for p in wanted:
            ns = known.get(p.name)
            if ns is None:
                ns = NodeState(name=p.name, address=p.address, netns=p.netns, veth_host=p.veth_host)
                self.state.nodes.append(ns)
                self._save()  # intent before creation: down can clean a half-made node
            host.ensure_node_net(p.netns, p.veth_host, p.veth_node, p.address, net.prefixlen, bridge)
            ns.sshd_pid = host.find_node_init(p.netns)
            if host.alive(ns.sshd_pid):
                continue  # running node: keep it (and whatever runs inside)
            started.append((ns, self._start_node(p, tools["unshare"], tools["sshd"])))
        self.state.nodes.sort(key=lambda x: int(x.name[1:]))

        # -- wait for every sshd, then learn its host PID (PID 1 of the node)
        bad = host.wait_tcp([(ns.address, plan.SSH_PORT) for ns, _ in started], SSHD_READY_TIMEOUT_S)
        for ns, _ in started:
            ns.sshd_pid = host.find_node_init(ns.netns)
        self._save()
        if bad:
            logs = "; ".join(
                f"{a}: {(self.dir / 'nodes' / ns.name / 'sshd.log').read_text()[-300:].strip()}"
                for ns, _ in started
                for a, _port in bad
                if a == ns.address
            )
            raise EnvironmentProblem(f"sshd did not start on {', '.join(a for a, _ in bad)} ({logs})")

        self._write_inventory()
        return self.state

    def _start_node(self, p: plan.NodePlan, unshare: str, sshd: str) -> subprocess.Popen:
        ndir = plan.node_dir(self.name, p.name, self.root)
        for sub in plan.NODE_BINDS:
            (ndir / sub).mkdir(parents=True, exist_ok=True, mode=0o755)
        cfg = ndir / "sshd_config"
        state.write_atomic(cfg, plan.sshd_config(p, self.ssh_dir), mode=0o600)
        script = plan.node_start_script(p, ndir, cfg, sshd)
        self._progress(f"starting {p.name} ({p.address}) in {p.netns}")
        return host.start_node(p.netns, script, ndir / "sshd.log", unshare)

    def _remove_node(self, ns: NodeState) -> None:
        host.kill_netns_processes(ns.netns)
        host.remove_netns(ns.netns)
        host.remove_link(ns.veth_host)
        shutil.rmtree(plan.node_dir(self.name, ns.name, self.root), ignore_errors=True)

    def _write_inventory(self) -> None:
        assert self.state is not None
        net = plan.parse_subnet(self.subnet, len(self.state.nodes))
        plans = [plan.node_plan(self.name, net, int(x.name[1:])) for x in self.state.nodes]
        inv = plan.inventory(self.name, plans, self.ssh_key_path, self.control_path_dir)
        text = (
            f"# Generated by `tempo lab up --name {self.name}`; rewritten on every up, removed by down.\n"
            + yaml.safe_dump(inv, sort_keys=False)
        )
        state.write_atomic(self.inventory_path, text)
        self.state.inventory_path = str(self.inventory_path)
        self._save()

    def down(self) -> list[str]:
        """Remove everything this lab made, also after a crash or a half-finished ``up``.

        Besides the state record it sweeps by name (namespaces ``<name>-n*``, links
        ``<name>v*`` and the bridge), so resources the record missed go too.  Returns
        what was removed; calling it on a lab that is gone removes nothing and succeeds.
        """
        host.check_root()
        removed: list[str] = []
        prefix = f"{self.name}-n"
        netns = {x.netns for x in self.nodes} | {
            n for n in host.netns_list() if n.startswith(prefix) and n[len(prefix):].isdigit()
        }
        for ns in sorted(netns):
            host.kill_netns_processes(ns)
            host.remove_netns(ns)
            removed.append(f"netns {ns}")
        links = {x.veth_host for x in self.nodes} | self._own_links() | {plan.bridge_name(self.name)}
        for link in sorted(links):
            if host.link_exists(link):
                host.remove_link(link)
                removed.append(f"link {link}")
        host.close_ssh_masters(self.control_path_dir)
        inv = Path(self.state.inventory_path) if self.state and self.state.inventory_path else self.inventory_path
        if inv.exists():
            inv.unlink()
            removed.append(f"inventory {inv}")
            try:
                inv.parent.rmdir()
            except OSError:
                pass
        if self.dir.exists():
            shutil.rmtree(self.dir)
            removed.append(f"folder {self.dir}")
        self.state = None
        return removed

    def _own_links(self) -> set[str]:
        out = host.run(["ip", "-j", "link", "show"], check=False).stdout
        names = {link["ifname"] for link in json.loads(out or "[]")}
        pre = f"{self.name}v"
        return {n for n in names if n.startswith(pre) and n[len(pre):].isdigit()}

    # --------------------------------------------------------------- queries
    def status(self) -> list[NodeStatus]:
        present = set(host.netns_list())
        out = []
        for x in self.nodes:
            pid = host.find_node_init(x.netns) if x.netns in present else None
            out.append(
                NodeStatus(
                    name=x.name,
                    address=x.address,
                    netns=x.netns,
                    sshd_pid=pid,
                    sshd_alive=host.alive(pid),
                    netns_present=x.netns in present,
                    daemon_pid=self._daemon_pid(x.netns) if x.netns in present else None,
                )
            )
        return out

    @staticmethod
    def _daemon_pid(netns: str) -> int | None:
        """Host PID of a running tempod in the node (its command line names tempod.main or
        ends in bin/tempod); None if there is none."""
        for pid in host.netns_pids(netns):
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except (FileNotFoundError, ProcessLookupError):  # exited while we looked
                continue
            args = [c.decode(errors="replace") for c in cmd if c]
            if any(a.endswith("/tempod") or a == "tempod" or a == "tempod.main" for a in args):
                if host.alive(pid):
                    return pid
        return None

    def exec(
        self, node: str, argv: Sequence[str], *, check: bool = True, input: str | None = None, timeout_s: float | None = 60
    ) -> subprocess.CompletedProcess:
        """Run ``argv`` inside ``node``'s namespaces (network, mount, UTS, PID) as root."""
        if self.state is None:
            raise EnvironmentProblem(f"lab {self.name!r} is not up")
        ns = self.state.node(node)
        pid = host.find_node_init(ns.netns)
        if not host.alive(pid):
            raise EnvironmentProblem(f"node {node} of lab {self.name!r} is not running (no sshd in {ns.netns})")
        assert pid is not None
        proc = subprocess.run(
            host.nsenter_argv(pid, argv), capture_output=True, text=True, input=input, timeout=timeout_s
        )
        if check and proc.returncode != 0:
            raise host.CommandFailed(list(argv), proc.returncode, proc.stderr)
        return proc

