"""Helpers shared by the lab tests and benchmarks that need a deployed lab (tests/ and
benchmarks/ import it from here; neither puts the other on sys.path).

Owns: bringing a lab up and deploying it with the real playbook through the runner's
own ``deploy_vars`` / ``run_playbook`` (so tests deploy exactly as ``tempo run`` does),
and reading a node's state from the outside: ``tempoctl status --json`` inside the
node, its event log on the host side of the bind mount, its nftables tables, whether
its daemon is stopped, and its corrected clock through the NTP responder (ntplib).

Knows nothing about what a test asserts. Needs root (the lab).
"""

from __future__ import annotations

import contextlib
import json
import signal
import time
from pathlib import Path
from typing import Iterator

import ntplib
import paramiko

from tempolab.lab import Lab
from tempolab.runner.deploy import deploy_vars, run_playbook
from tempolab.runner.suite import Suite, parse_suite

# short timers keep lab tests to a few minutes: rounds 1.5 s, elections 2-4 s
FAST_TIMERS = {"round_interval_s": 1.5, "election_timeout_min_s": 2.0, "election_timeout_max_s": 4.0,
               "probe_timeout_s": 0.1}
TEMPOCTL = "/opt/tempo/venv/bin/tempoctl"


def lab_suite(lab: str, subnet: str, name: str, nodes: int = 3, **over) -> tuple[Suite, dict]:
    """A suite for ``lab`` with FAST_TIMERS (``over`` replaces top-level fields)."""
    raw = {"name": name, "nodes": nodes, "seed": 3, "lab": {"name": lab, "subnet": subnet},
           "drift": {"max_ppm": 200, "max_offset_s": 0.5}, "daemon": dict(FAST_TIMERS),
           "warm_up_s": 3, "trials": 1, "trial_duration_s": 15, "healthy_timeout_s": 40,
           "observer_hz": 10, "cpu_interval_s": 2}
    raw.update(over)
    return parse_suite(raw, f"{name}.yaml"), raw


@contextlib.contextmanager
def deployed_lab(name: str, subnet: str, workdir: Path, nodes: int = 3) -> Iterator[Lab]:
    """A fresh lab of ``nodes`` nodes deployed with FAST_TIMERS; always taken down."""
    Lab(name, subnet).down()  # leftovers of an earlier, killed session
    lab = Lab(name, subnet=subnet)
    try:
        lab.up(nodes)
        suite, _ = lab_suite(name, subnet, "deploy", nodes)
        run_playbook("deploy", lab.inventory_path, deploy_vars(suite), workdir / "ansible")
        yield lab
    finally:
        lab.down()


def status(lab: Lab, node: str) -> dict:
    """``tempoctl status --json`` run inside ``node``."""
    return json.loads(lab.exec(node, [TEMPOCTL, "status", "--json"], timeout_s=20).stdout)


def statuses(lab: Lab) -> dict[str, dict]:
    return {n.name: status(lab, n.name) for n in lab.nodes}


def wait_one_master(lab: Lab, timeout_s: float = 60) -> tuple[str, dict[str, dict]]:
    """Wait until exactly one LEADER and every node follows it and is synchronized."""
    deadline = time.monotonic() + timeout_s
    while True:
        st = statuses(lab)
        leaders = [n for n, s in st.items() if s["state"] == "LEADER"]
        if len(leaders) == 1 and all(s["master"] == leaders[0] and s["synchronized"] for s in st.values()):
            return leaders[0], st
        if time.monotonic() > deadline:
            raise AssertionError(f"no single synchronized master after {timeout_s} s: "
                                 + json.dumps({n: (s["state"], s["master"], s["synchronized"]) for n, s in st.items()}))
        time.sleep(1)


def node_dir(lab: Lab, node: str) -> Path:
    """Host-side folder bind-mounted into ``node`` (docs/architecture.md, Local lab)."""
    return lab.dir / "nodes" / node


def events(lab: Lab, node: str) -> list[dict]:
    """The node's event log, parsed (a half-written last line is skipped)."""
    path = node_dir(lab, node) / "log" / "events.jsonl"
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return out


def nft_tables(lab: Lab) -> dict[str, str]:
    return {n.name: lab.exec(n.name, ["nft", "list", "tables"]).stdout for n in lab.nodes}


def stopped_daemons(lab: Lab) -> list[str]:
    """Nodes whose daemon is in state T (stopped by SIGSTOP)."""
    out = []
    for n in lab.nodes:
        r = lab.exec(n.name, ["sh", "-c", "ps -o stat= -p $(head -n 1 /run/tempo/tempod.pid) 2>/dev/null"],
                     check=False)
        if r.stdout.strip().startswith("T"):
            out.append(n.name)
    return out


def running_daemons(lab: Lab) -> list[str]:
    return [s.name for s in lab.status() if s.daemon_pid]


def ntp_offset(address: str, tries: int = 5) -> float:
    """The node's corrected clock minus true time (s), from the reply with the least delay."""
    client = ntplib.NTPClient()
    best = min((client.request(address, version=4, timeout=2) for _ in range(tries)), key=lambda r: r.delay)
    return best.offset


def ssh(lab: Lab, node: str, command: str, timeout_s: float = 30.0) -> str:
    """Run ``command`` on a lab node over real SSH (paramiko) with the lab's key; its
    stdout, asserting exit status 0 (stderr in the message)."""
    c = paramiko.SSHClient()
    c.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    c.connect(lab.state.node(node).address, username="root", key_filename=str(lab.ssh_key_path),
              timeout=10, allow_agent=False, look_for_keys=False)
    try:
        _, out, err = c.exec_command(command, timeout=timeout_s)
        text = out.read().decode()
        assert out.channel.recv_exit_status() == 0, err.read().decode()
        return text
    finally:
        c.close()


def default_sigint() -> None:
    """``preexec_fn`` for a runner the test interrupts with SIGINT: a test suite started in
    the background by a non-interactive shell inherits SIGINT *ignored*, and Python then
    installs no KeyboardInterrupt handler in the child, so the signal would do nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
