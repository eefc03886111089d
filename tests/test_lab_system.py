"""The local lab for real (root): namespaces, sshd, isolation, idempotence, clean down.

Uses its own lab names and subnets (tlabt 10.79.0.0/24, ...) so it can run while other
engineers' labs are up.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import paramiko
import pytest

from tempolab.testing import labkit
from tempolab.errors import EnvironmentProblem
from tempolab.lab import Lab, host

pytestmark = pytest.mark.lab

NAME, SUBNET = "tlabt", "10.79.0.0/24"
REPO = Path(__file__).resolve().parents[1]


def leftovers(name: str) -> list[str]:
    """Everything a lab called ``name`` could leave on the host."""
    out = []
    out += [f"netns {n}" for n in host.netns_list() if n.startswith(f"{name}-")]
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    out += [f"link {line.split(':')[1].strip()}" for line in links.splitlines()
            if line.split(":")[1].strip().split("@")[0].startswith((f"{name}v", f"{name}0"))]
    out += [f"mount {line}" for line in Path("/proc/mounts").read_text().splitlines()
            if f"/tempo-lab/{name}/" in line or f"/run/netns/{name}-" in line]
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    out += [f"process {line.strip()}" for line in ps.splitlines() if f"/tempo-lab/{name}/" in line or f" {name}-n" in line]
    if Path(f"/var/lib/tempo-lab/{name}").exists():
        out.append(f"folder /var/lib/tempo-lab/{name}")
    return out


@pytest.fixture(scope="module")
def lab():
    Lab(NAME, SUBNET).down()  # a previous crashed run
    lab = Lab(NAME, SUBNET)
    lab.up(3)
    yield lab
    Lab(NAME).down()
    assert leftovers(NAME) == []


def ssh(lab: Lab, node: str, command: str) -> str:
    return labkit.ssh(lab, node, command, timeout_s=20)


def test_each_node_has_its_hostname_pid_namespace_and_sshd_as_init(lab):
    pidns = set()
    for node in ("n1", "n2", "n3"):
        out = ssh(lab, node, "hostname; cat /proc/1/comm; readlink /proc/self/ns/pid; ip -4 -o addr show dev eth0")
        hostname, init, ns, addr = out.splitlines()
        assert hostname == node
        assert init == "sshd"
        assert lab.state.node(node).address + "/24" in addr
        pidns.add(ns)
    assert len(pidns) == 3
    assert os.readlink("/proc/self/ns/pid") not in pidns


def test_sshd_uses_no_password_and_listens_only_on_the_node_address(lab):
    out = lab.exec("n1", ["ss", "-H", "-l", "-t", "-n"]).stdout
    listeners = {line.split()[3] for line in out.splitlines()}
    assert listeners == {"10.79.0.11:22"}
    t = paramiko.Transport((lab.state.node("n1").address, 22))
    try:
        t.connect()
        # the server's answer to "none" lists the methods it accepts: public key only
        with pytest.raises(paramiko.BadAuthenticationType) as info:
            t.auth_none("root")
        assert info.value.allowed_types == ["publickey"]
    finally:
        t.close()


def test_bind_mounts_are_private_per_node(lab):
    ssh(lab, "n1", "echo from-n1 > /etc/tempo/marker && echo log > /var/log/tempo/marker")
    assert ssh(lab, "n1", "cat /etc/tempo/marker") == "from-n1\n"
    assert ssh(lab, "n2", "ls -A /etc/tempo /var/log/tempo /opt/tempo /run/tempo | grep -c marker || true") == "0\n"
    # the host's own paths are untouched, the node's folder has the file
    assert not Path("/etc/tempo/marker").exists()
    assert Path(f"/var/lib/tempo-lab/{NAME}/nodes/n1/etc/marker").read_text() == "from-n1\n"
    ssh(lab, "n1", "rm /etc/tempo/marker /var/log/tempo/marker")


def test_pkill_inside_one_node_cannot_touch_another(lab):
    for node in ("n1", "n2"):
        lab.exec(node, ["sh", "-c", "setsid sleep 1000 </dev/null >/dev/null 2>&1 &"])
    # the backgrounded child is still "sh" or "setsid" for a moment after sh returns (a
    # pkill then misses it: seen under load in CI); wait until both are "sleep"
    deadline = time.monotonic() + 30
    while not all(lab.exec(n, ["pgrep", "-x", "sleep"], check=False).returncode == 0 for n in ("n1", "n2")):
        assert time.monotonic() < deadline, "sleep did not start in both nodes"
        time.sleep(0.05)
    lab.exec("n1", ["pkill", "-x", "sleep"])
    assert lab.exec("n1", ["pgrep", "-x", "sleep"], check=False).returncode == 1
    assert lab.exec("n2", ["pgrep", "-x", "sleep"]).returncode == 0  # still alive
    # and a pkill over ssh behaves the same
    ssh(lab, "n2", "pkill -x sleep")
    assert lab.exec("n2", ["pgrep", "-x", "sleep"], check=False).returncode == 1


def test_up_twice_keeps_the_running_lab(lab):
    before = {n.name: n.sshd_pid for n in lab.status()}
    lab.exec("n3", ["sh", "-c", "setsid sleep 1000 </dev/null >/dev/null 2>&1 &"])
    Lab(NAME, SUBNET).up(3)
    after = {n.name: n.sshd_pid for n in Lab.load(NAME).status()}
    assert after == before
    assert lab.exec("n3", ["pgrep", "-x", "sleep"]).returncode == 0
    lab.exec("n3", ["pkill", "-x", "sleep"])


def test_up_with_another_size_adds_and_removes_nodes(lab):
    bigger = Lab(NAME).up(4)
    assert [n.name for n in bigger.nodes] == ["n1", "n2", "n3", "n4"]
    assert ssh(Lab.load(NAME), "n4", "hostname") == "n4\n"
    Lab(NAME).up(3)
    assert f"{NAME}-n4" not in host.netns_list()
    assert [n.name for n in Lab.load(NAME).nodes] == ["n1", "n2", "n3"]


def test_a_dead_sshd_is_restarted_by_up(lab):
    old = Lab.load(NAME).state.node("n2").sshd_pid
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while host.alive(old) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Lab.load(NAME).status()[1].sshd_alive
    Lab(NAME).up(3)
    st = Lab.load(NAME).status()[1]
    assert st.sshd_alive and st.sshd_pid != old
    assert ssh(Lab.load(NAME), "n2", "hostname") == "n2\n"


def test_status_and_inventory(lab):
    st = Lab.load(NAME).status()
    assert [(s.name, s.address, s.sshd_alive) for s in st] == [
        ("n1", "10.79.0.11", True), ("n2", "10.79.0.12", True), ("n3", "10.79.0.13", True)]
    import yaml

    inv = yaml.safe_load(lab.inventory_path.read_text())
    hosts = inv["all"]["children"]["tempo_nodes"]["hosts"]
    assert hosts["n3"]["tempod_address"] == "10.79.0.13"
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible"), "-i", str(lab.inventory_path), "tempo_nodes", "-m",
         "ansible.builtin.command", "-a", "hostname"],
        cwd=REPO, capture_output=True, text=True, env=dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg")),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for node in ("n1", "n2", "n3"):
        assert f"{node} | CHANGED | rc=0 >>\n{node}" in proc.stdout


def test_preflight_name_in_use_with_another_subnet(lab):
    with pytest.raises(EnvironmentProblem, match="already exists with subnet 10.79.0.0/24"):
        Lab(NAME, "10.79.9.0/24").up(3)


def test_preflight_subnet_overlap(lab):
    with pytest.raises(EnvironmentProblem, match=r"overlaps .*tlabt0"):
        Lab("tlabo", "10.79.0.0/25").up(1)
    assert leftovers("tlabo") == []


def test_preflight_not_root_and_missing_tools(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(EnvironmentProblem, match="needs root"):
        Lab("tlabp", "10.79.7.0/24").up(1)
    monkeypatch.undo()
    monkeypatch.setattr(host, "which", lambda t: None if t in ("sshd", "nft") else "/bin/" + t)
    with pytest.raises(EnvironmentProblem, match=r"missing tools: sshd, nft; run `bash scripts/bootstrap.sh`"):
        Lab("tlabp", "10.79.7.0/24").up(1)


def test_down_cleans_a_lab_made_by_hand_without_state():
    name = "tlabh"
    subprocess.run(["ip", "netns", "add", f"{name}-n1"], check=True)
    subprocess.run(["ip", "netns", "add", f"{name}-n7"], check=True)
    subprocess.run(["ip", "link", "add", f"{name}0", "type", "bridge"], check=True)
    subprocess.run(["ip", "link", "add", f"{name}v1", "type", "veth", "peer", "name", "eth0", "netns", f"{name}-n1"],
                   check=True)
    # a process inside a namespace, as a crashed node would leave
    p = subprocess.Popen(["ip", "netns", "exec", f"{name}-n7", "sleep", "1000"])
    try:
        assert leftovers(name)
        removed = Lab(name).down()
        assert "netns tlabh-n1" in removed and "link tlabh0" in removed
        assert p.wait(timeout=5) == -signal.SIGKILL
        assert leftovers(name) == []
        assert Lab(name).down() == []  # idempotent
    finally:
        p.kill()


def test_down_after_up_killed_in_the_middle():
    name = "tlabk"
    Lab(name, "10.79.3.0/24").down()
    proc = subprocess.Popen([str(Path(sys.executable).parent / "tempo"), "lab", "up", "--nodes", "6", "--name", name,
                             "--subnet", "10.79.3.0/24"], stdout=subprocess.PIPE, text=True)
    # kill it as soon as the second node starts: some nodes exist, some do not
    for line in proc.stdout:
        if "starting n2" in line:
            break
    proc.kill()
    proc.wait()
    assert leftovers(name), "the interrupted up left nothing: the test did not interrupt it"
    Lab(name).down()
    assert leftovers(name) == []


def test_cli_up_status_down_round_trip():
    name, subnet = "tlabc", "10.79.4.0/24"
    tempo = str(Path(sys.executable).parent / "tempo")
    try:
        up = subprocess.run([tempo, "lab", "up", "--nodes", "2", "--name", name, "--subnet", subnet, "-q"],
                            capture_output=True, text=True)
        assert up.returncode == 0, up.stderr
        assert "2 nodes on tlabc0 (10.79.4.0/24) up in" in up.stdout
        st = subprocess.run([tempo, "lab", "status", "--name", name, "--json"], capture_output=True, text=True)
        assert st.returncode == 0
        import json

        data = json.loads(st.stdout)
        assert [n["address"] for n in data["nodes"]] == ["10.79.4.11", "10.79.4.12"]
        bad = subprocess.run([tempo, "lab", "up", "--nodes", "2", "--name", name, "--subnet", "10.79.5.0/24"],
                             capture_output=True, text=True)
        assert bad.returncode == 2 and "tempo lab: error:" in bad.stderr and "down" in bad.stderr
    finally:
        dn = subprocess.run([tempo, "lab", "down", "--name", name], capture_output=True, text=True)
    assert dn.returncode == 0
    assert leftovers(name) == []


def test_remove_link_tolerates_a_link_the_kernel_removed_meanwhile(monkeypatch):
    # the veth's host end goes asynchronously after its namespace: present at the
    # check, gone at the delete
    seen = iter([True, False])
    monkeypatch.setattr(host, "link_exists", lambda name: next(seen))
    host.remove_link("tslabgone0")
    # a delete that fails while the link is still there is an error
    monkeypatch.setattr(host, "link_exists", lambda name: True)
    with pytest.raises(host.CommandFailed, match="tslabgone0"):
        host.remove_link("tslabgone0")
