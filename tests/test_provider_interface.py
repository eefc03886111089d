"""The Provider interface: choosing a provider, static inventories, VM-lab plans.

Real ``ansible-inventory`` reads the inventories; the qemu wrapper runs under real sh.
Nothing here starts a VM (tests/test_vm_system.py does).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tempolab.errors import ConfigError, EnvironmentProblem
from tempolab.providers import make_provider
from tempolab.providers.inventory import InventoryProvider
from tempolab.runner.driver import Runner, RunOptions
from tempolab.runner.hosts import Host, hosts_from_inventory_json
from tempolab.runner.suite import Suite, parse_suite
from tempolab.vm import box
from tempolab.vm.lab import VmLab, wrapper_script


def _inventory(tmp_path: Path, netns: dict[str, str | None]) -> Path:
    hosts = {}
    for i, (name, ns) in enumerate(netns.items()):
        hosts[name] = {"ansible_host": f"10.86.0.{11 + i}"}
        if ns:
            hosts[name]["tempo_netns"] = ns
    p = tmp_path / "hosts.yml"
    p.write_text(yaml.safe_dump({"all": {"children": {"tempo_nodes": {"hosts": hosts}}}}))
    return p


def test_unknown_provider_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown provider 'aws'"):
        make_provider("aws")
    with pytest.raises(ConfigError, match="needs an inventory"):
        make_provider("inventory")


def test_inventory_provider_reads_hosts_and_their_namespace(tmp_path):
    prov = InventoryProvider(_inventory(tmp_path, {"n1": "tvm", "n2": "tvm"}))
    dep = prov.init(3)  # a static inventory is not resized
    assert [h.name for h in dep.hosts] == ["n1", "n2"]
    assert {h.netns for h in dep.hosts} == {"tvm"}
    assert dep.netns == "tvm" and not dep.shares_host_kernel
    assert prov.destroy() == [] and not prov.would_change(5)


def test_inventory_provider_refuses_hosts_in_two_namespaces(tmp_path):
    prov = InventoryProvider(_inventory(tmp_path, {"n1": "tvm", "n2": None}))
    with pytest.raises(ConfigError, match="several network namespaces"):
        prov.existing()



def test_plugin_computed_host_vars_are_read_as_plain_strings():
    # ansible-inventory --list output for a host of the amazon.aws.aws_ec2 plugin (shape
    # from ansible-core 2.19 against moto, tests/test_aws_moto.py): compose vars come
    # wrapped, vars from group_vars files do not
    data = {"tempo_nodes": {"hosts": ["n1"]}, "_meta": {"hostvars": {"n1": {
        "ansible_host": {"__ansible_unsafe": "54.214.138.63"},
        "tempod_address": {"__ansible_unsafe": "172.31.0.4"},
        "tempod_node_name": {"__ansible_unsafe": "n1"},
        "ansible_user": {"__ansible_unsafe": "admin"},
        "tags": {"Name": {"__ansible_unsafe": "n1"}},
        "ansible_port": 2222,
    }}}}
    assert hosts_from_inventory_json(data, "aws_ec2.yml") == [
        Host(name="n1", address="172.31.0.4", ssh_host="54.214.138.63", user="admin", port=2222)]

@pytest.mark.parametrize("opts, suite_kw, want", [
    ({}, {}, "lab"),
    ({"inventory": Path("x.yml")}, {}, "inventory"),
    ({}, {"inventory": "x.yml"}, "inventory"),
    ({}, {"provider": "vagrant"}, "vagrant"),
    ({"provider": "vagrant"}, {"inventory": "x.yml"}, "vagrant"),
    ({"provider": "lab"}, {"provider": "vagrant"}, "lab"),
])
def test_runner_picks_the_provider(opts, suite_kw, want):
    r = Runner(Suite(name="s", source="s.yaml", **suite_kw), RunOptions(**opts))
    assert r.provider_name == want
    assert r.provider.name == want
    assert r.provider.shares_host_kernel == (want == "lab")


def test_suite_provider_key_is_validated():
    assert parse_suite({"provider": "vagrant"}, "s.yaml").provider == "vagrant"
    with pytest.raises(ConfigError, match="provider"):
        parse_suite({"provider": "docker"}, "s.yaml")


def test_qemu_wrapper_bounds_the_tcg_translation_cache(tmp_path):
    w = tmp_path / "qemu"
    w.write_text(wrapper_script("/bin/echo", 64))
    w.chmod(0o755)

    def run(*args: str) -> str:
        return subprocess.run([str(w), *args], capture_output=True, text=True, check=True).stdout.strip()

    assert run("-name", "guest=a b", "-accel", "tcg", "-m", "320") == "-name guest=a b -accel tcg,tb-size=64 -m 320"
    assert run("-accel", "tcg,thread=single") == "-accel tcg,thread=single,tb-size=64"
    assert run("-accel", "tcg,tb-size=32") == "-accel tcg,tb-size=32"
    assert run("-version") == "-version"


def test_vm_network_is_isolated_and_inventory_goes_through_the_namespace(tmp_path, monkeypatch):
    monkeypatch.setattr(box, "ssh_key", lambda cache=box.CACHE: tmp_path / "id_ed25519")
    vm = VmLab("tvm", repo=tmp_path)
    xml = vm.network_xml(3)
    assert "<forward" not in xml  # isolated: no route out of the namespace
    assert "<bridge name='tvmbr0'" in xml and "ip='10.86.0.13'" in xml
    inv = vm.inventory(3)["all"]["children"]["tempo_nodes"]
    assert list(inv["hosts"]) == ["n1", "n2", "n3"]
    assert inv["hosts"]["n2"]["ansible_host"] == "10.86.0.12"
    assert "ProxyCommand='ip netns exec tvm nc %h %p'" in inv["vars"]["ansible_ssh_common_args"]
    assert inv["vars"]["tempo_netns"] == "tvm"
    assert vm.inventory_path == tmp_path / "inventory" / "vagrant" / "tvm" / "hosts.yml"


def test_vm_lab_name_is_checked():
    with pytest.raises(ConfigError, match="VM lab name"):
        VmLab("Bad-Name")


def test_box_recipe_hash_follows_the_recipe():
    a = box.recipe_digest(box.recipe("ssh-ed25519 AAAA key1"))
    assert a == box.recipe_digest(box.recipe("ssh-ed25519 AAAA key1\n"))
    assert a != box.recipe_digest(box.recipe("ssh-ed25519 AAAA key2"))
    script = box._customize_script("ssh-ed25519 AAAA key1")
    for unit in box.MASKED_UNITS:
        assert unit in script
    assert "systemctl disable chrony.service" in script
    assert "libfaketime" in box.PACKAGES and "python3-venv" in box.PACKAGES


def test_deploy_on_vagrant_without_vms_says_how_to_start_them(monkeypatch, tmp_path):
    import argparse

    from tempolab import cmd_deploy
    from tempolab.vm import lab as vmlab

    monkeypatch.setattr(vmlab, "REPO", tmp_path)
    args = argparse.Namespace(provider="vagrant", vm_name="tvq", inventory=None, name="tslab",
                              playbook="deploy", extra_vars=[], ansible_args=[])
    with pytest.raises(EnvironmentProblem, match="tempo vm up --nodes 3 --name tvq"):
        cmd_deploy.build_argv(args)
