"""Unit tests of the lab's pure parts: layout plan, state record, inventory, wheel hash.

No root needed: nothing here creates namespaces or runs ssh.
"""

from __future__ import annotations

import ipaddress
import json
import sys
from pathlib import Path

import pytest
import yaml

from tempolab.errors import ConfigError
from tempolab.lab import plan, state

REPO = Path(__file__).resolve().parents[1]


def test_node_addresses_and_names_follow_the_contract():
    net = plan.parse_subnet("10.77.0.0/24", 3)
    nodes = plan.plan_nodes("tslab", net, 3)
    assert [n.name for n in nodes] == ["n1", "n2", "n3"]
    assert [n.address for n in nodes] == ["10.77.0.11", "10.77.0.12", "10.77.0.13"]
    assert [n.netns for n in nodes] == ["tslab-n1", "tslab-n2", "tslab-n3"]
    assert plan.bridge_name("tslab") == "tslab0"
    assert plan.host_address(net) == "10.77.0.1"


def test_interface_names_fit_ifnamsiz_for_the_longest_name():
    name = plan.validate_name("abcdefghij")
    net = plan.parse_subnet("10.0.0.0/16", plan.MAX_NODES)
    last = plan.node_plan(name, net, plan.MAX_NODES)
    assert len(last.veth_host) <= 15 and len(plan.bridge_name(name)) <= 15


@pytest.mark.parametrize("bad", ["", "Tslab", "1lab", "tslab-x", "abcdefghijk", "t lab"])
def test_bad_lab_names_are_refused(bad):
    with pytest.raises(ConfigError, match="lab name"):
        plan.validate_name(bad)


@pytest.mark.parametrize(
    "subnet,n,msg",
    [("10.77.0.0/33", 1, "not a network"), ("10.77.0.1/24", 1, "not a network"),
     ("fd00::/64", 1, "not IPv4"), ("10.77.0.0/28", 5, "prefix of at most /27"), ("nonsense", 1, "not a network")],
)
def test_bad_subnets_are_refused_with_the_reason(subnet, n, msg):
    with pytest.raises(ConfigError, match=msg):
        plan.parse_subnet(subnet, n)


def test_subnet_capacity_boundary():
    # /27 = 32 addresses: .11 .. .30 plus broadcast .31 -> 20 nodes fit, 21 do not
    plan.parse_subnet("10.1.0.0/27", 20)
    with pytest.raises(ConfigError):
        plan.parse_subnet("10.1.0.0/27", 21)


@pytest.mark.parametrize("n", [0, -1, plan.MAX_NODES + 1])
def test_node_count_bounds(n):
    with pytest.raises(ConfigError, match="--nodes"):
        plan.validate_count(n)


def test_sshd_config_is_key_only_and_bound_to_the_node():
    node = plan.node_plan("tslab", ipaddress.ip_network("10.77.0.0/24"), 2)
    text = plan.sshd_config(node, Path("/var/lib/tempo-lab/tslab/ssh"))
    lines = dict(line.split(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    assert lines["ListenAddress"] == "10.77.0.12:22"
    assert lines["PermitRootLogin"] == "prohibit-password"
    assert lines["PasswordAuthentication"] == "no"
    assert lines["UsePAM"] == "no"
    assert lines["HostKey"].startswith("/var/lib/tempo-lab/tslab/ssh/")
    assert lines["AuthorizedKeysFile"].startswith("/var/lib/tempo-lab/tslab/ssh/")
    assert "/etc/ssh" not in text


def test_start_script_binds_every_path_then_execs_sshd():
    node = plan.node_plan("tslab", ipaddress.ip_network("10.77.0.0/24"), 1)
    script = plan.node_start_script(node, Path("/L/nodes/n1"), Path("/L/nodes/n1/sshd_config"), "/usr/sbin/sshd")
    lines = script.splitlines()
    assert lines[1] == "hostname n1"
    for sub, target in plan.NODE_BINDS.items():
        assert f"mount --bind /L/nodes/n1/{sub} {target}" in lines
    assert lines[-1] == "exec /usr/sbin/sshd -D -e -f /L/nodes/n1/sshd_config"


def test_inventory_has_the_group_and_the_role_vars(tmp_path):
    net = plan.parse_subnet("10.79.0.0/24", 2)
    inv = plan.inventory("tlabt", plan.plan_nodes("tlabt", net, 2), Path("/k/id"), Path("/cp"))
    group = inv["all"]["children"]["tempo_nodes"]
    assert group["hosts"]["n2"] == {
        "ansible_host": "10.79.0.12", "tempod_node_name": "n2", "tempod_address": "10.79.0.12",
        "tempo_lab_netns": "tlabt-n2",
    }
    v = group["vars"]
    assert v["ansible_user"] == "root" and v["ansible_python_interpreter"] == "/usr/bin/python3"
    assert v["ansible_ssh_private_key_file"] == "/k/id"
    assert "StrictHostKeyChecking=no" in v["ansible_ssh_common_args"]
    assert "ControlPersist" in v["ansible_ssh_common_args"]
    # it must survive a YAML round trip (that is how it is written)
    assert yaml.safe_load(yaml.safe_dump(inv)) == inv


def test_inventory_path_depends_on_the_name():
    assert plan.inventory_path("tslab", REPO) == REPO / "inventory/lab/hosts.yml"
    assert plan.inventory_path("tlabt", REPO) == REPO / "inventory/lab-tlabt/hosts.yml"


def test_state_round_trips_and_writes_atomically(tmp_path):
    st = state.LabState(name="x", subnet="10.79.0.0/24", bridge="x0", host_address="10.79.0.1",
                        nodes=[state.NodeState("n1", "10.79.0.11", "x-n1", "xv1", 1234)])
    path = tmp_path / "lab.json"
    state.save(st, path)
    assert state.load(path) == st
    assert [p.name for p in tmp_path.iterdir()] == ["lab.json"]  # no temp file left
    assert state.load(tmp_path / "missing.json") is None
    assert st.node("n1").sshd_pid == 1234
    with pytest.raises(ConfigError, match="no node 'n9'"):
        st.node("n9")


def test_unreadable_state_is_a_clear_error(tmp_path):
    path = tmp_path / "lab.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="unreadable lab state"):
        state.load(path)
    path.write_text(json.dumps({"name": "x", "bogus": 1}))
    with pytest.raises(ConfigError, match="unreadable lab state"):
        state.load(path)


def test_failed_atomic_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "f"
    state.write_atomic(path, "old")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(state.os, "replace", boom)
    with pytest.raises(OSError):
        state.write_atomic(path, "new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def _load_build_wheel():
    sys.path.insert(0, str(REPO / "roles/tempod/files"))
    try:
        import build_wheel
    finally:
        sys.path.pop(0)
    return build_wheel


def test_wheel_source_hash_tracks_content_and_ignores_caches(tmp_path):
    bw = _load_build_wheel()
    (tmp_path / "pyproject.toml").write_text("[project]\nname='x'\n")
    pkg = tmp_path / "daemon" / "tempod"
    pkg.mkdir(parents=True)
    (pkg / "a.py").write_text("A = 1\n")
    h1 = bw.source_hash(tmp_path)
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0junk")
    assert bw.source_hash(tmp_path) == h1
    (pkg / "a.py").write_text("A = 2\n")
    h2 = bw.source_hash(tmp_path)
    assert h2 != h1
    (pkg / "b.py").write_text("")
    assert bw.source_hash(tmp_path) != h2


def test_wheel_build_is_skipped_when_a_wheel_for_the_hash_exists(tmp_path):
    bw = _load_build_wheel()
    src = tmp_path / "src"
    (src / "daemon").mkdir(parents=True)
    (src / "pyproject.toml").write_text("x")
    cache = tmp_path / "cache"
    digest = bw.source_hash(src)
    (cache / digest).mkdir(parents=True)
    (cache / digest / "tempo_lab-0.1.0-py3-none-any.whl").write_bytes(b"PK")
    out = bw.build(src, cache)
    assert out == {"wheel": str(cache / digest / "tempo_lab-0.1.0-py3-none-any.whl"), "sha256": digest, "built": False}


def test_deploy_command_builds_the_ansible_playbook_call(tmp_path):
    import argparse

    from tempolab import cmd_deploy
    from tempolab.errors import EnvironmentProblem

    parser = argparse.ArgumentParser()
    cmd_deploy.register(parser.add_subparsers())
    inv = tmp_path / "hosts.yml"
    inv.write_text("all: {}\n")
    args = parser.parse_args(["deploy", "-i", str(inv), "-p", "collect", "-e", "collect_dir=/x", "--", "--limit", "n1"])
    argv = cmd_deploy.build_argv(args)
    assert argv[1:] == ["-i", str(inv), str(REPO / "playbooks/collect.yml"), "-e", "collect_dir=/x", "--limit", "n1"]
    missing = parser.parse_args(["deploy", "--name", "nosuchlab"])
    with pytest.raises(EnvironmentProblem, match="tempo lab up --nodes 3 --name nosuchlab"):
        cmd_deploy.build_argv(missing)
