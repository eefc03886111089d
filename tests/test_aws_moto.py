"""AWS as a provider, against a local EC2 API (moto_server on 127.0.0.1; tests/motokit.py).

playbooks/aws-provision.yml and aws-teardown.yml run for real, unchanged, with the
emulator's URL in their ``aws_endpoint_url`` variable; what they made is then read back
with boto3 (the security group's actual ingress permissions, the instances and their
tags), inventory/aws/aws_ec2.yml is read by ``ansible-inventory`` with the URL in
``AWS_URL`` (the ``amazon.aws.aws_ec2`` plugin's ``endpoint_url`` option), and the
inventory provider resolves the hosts through it.

What moto does not check: the AMI is one registered in moto (not Debian's), no instance
boots, the public addresses are made up and nothing answers on them (no SSH is tried,
no deploy), and IAM permissions are not evaluated.  Loopback only, no root, no lab.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import boto3
import pytest

from motokit import BIN, aws_env, moto_server, refusing_port
from tempolab.providers.inventory import InventoryProvider

REPO = Path(__file__).resolve().parents[1]
REGION = "eu-west-1"          # the playbooks' and the inventory's default region
CONTROLLER_CIDR = "203.0.113.7/32"
KEY = "tempo-moto"
LIVE = ["pending", "running", "stopping", "stopped"]


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("moto")
    with refusing_port() as dead, moto_server(tmp, dead) as m:
        yield m


@pytest.fixture(scope="module")
def ec2(moto):
    return boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                         region_name=REGION).client("ec2", endpoint_url=moto.url)


@pytest.fixture(scope="module")
def ami(ec2):
    # moto ships no Debian image; the playbook only needs an id that exists
    ec2.create_key_pair(KeyName=KEY)
    return ec2.register_image(Name="debian-12-amd64-moto", Architecture="x86_64",
                              RootDeviceName="/dev/xvda", VirtualizationType="hvm")["ImageId"]


def _ansible_env(moto, **extra: str) -> dict[str, str]:
    env = dict(moto.env, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_FORCE_COLOR="0", PATH=f"{BIN}:{moto.env.get('PATH', '')}")
    env.update(extra)
    return env


def _playbook(moto, name: str, **extra_vars) -> int:
    """Run a playbook as the README does, against the emulator; the recap's changed count."""
    extra_vars["aws_endpoint_url"] = moto.url
    proc = subprocess.run([str(BIN / "ansible-playbook"), f"playbooks/{name}", "-e", json.dumps(extra_vars)],
                          cwd=REPO, env=_ansible_env(moto), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    recap = re.search(r"localhost\s+:\s+ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=0", proc.stdout)
    assert recap, proc.stdout[-2000:]
    return int(recap.group(1))


def _provision(moto, ami: str, lab: str, nodes: int) -> int:
    return _playbook(moto, "aws-provision.yml", aws_lab=lab, aws_nodes=nodes, aws_ami=ami,
                     aws_key_name=KEY, aws_controller_cidr=CONTROLLER_CIDR)


def _instances(ec2, lab: str) -> dict[str, dict]:
    """Live instances of one lab by Name tag."""
    out = {}
    for r in ec2.describe_instances(Filters=[{"Name": "tag:TempoLab", "Values": [lab]},
                                             {"Name": "instance-state-name", "Values": LIVE}])["Reservations"]:
        for i in r["Instances"]:
            tags = {t["Key"]: t["Value"] for t in i.get("Tags", [])}
            assert tags["Name"] not in out, f"two live instances named {tags['Name']} in lab {lab}"
            out[tags["Name"]] = dict(i, tags=tags)
    return out


def _group(ec2, lab: str) -> dict | None:
    found = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [f"tempo-lab-{lab}"]}])
    assert len(found["SecurityGroups"]) <= 1
    return found["SecurityGroups"][0] if found["SecurityGroups"] else None


def _ingress(group: dict) -> set[tuple]:
    """(protocol, from port, to port, source) for every permission the group admits."""
    out = set()
    for p in group["IpPermissions"]:
        assert not p.get("Ipv6Ranges") and not p.get("PrefixListIds"), p
        key = (p["IpProtocol"], p.get("FromPort"), p.get("ToPort"))
        out |= {key + (("cidr", r["CidrIp"]),) for r in p.get("IpRanges", [])}
        out |= {key + (("group", g["GroupId"]),) for g in p.get("UserIdGroupPairs", [])}
    return out


@pytest.fixture(scope="module")
def lab_default(moto, ec2, ami):
    """Lab ``default`` (the one inventory/aws/aws_ec2.yml selects) with 3 nodes, next to an
    instance of another lab that reuses the name n1 and must stay out of everything."""
    other = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, InstanceType="t3.micro", TagSpecifications=[{
        "ResourceType": "instance",
        "Tags": [{"Key": "Name", "Value": "n1"}, {"Key": "Project", "Value": "tempo-lab"},
                 {"Key": "TempoLab", "Value": "other"}, {"Key": "Role", "Value": "tempo_nodes"}]}])
    changed = _provision(moto, ami, "default", 3)
    return {"changed": changed, "other": other["Instances"][0]["InstanceId"]}


def test_the_proxy_guard_stops_a_client_that_was_not_pointed_at_moto(moto):
    # the environment every playbook here runs in: without an endpoint, boto3 goes for the
    # real EC2 endpoint, through the proxy, which refuses on loopback
    code = ("import boto3, botocore.exceptions as e\n"
            "try:\n    boto3.client('ec2', region_name='eu-west-1').describe_regions()\n"
            "except e.ProxyConnectionError:\n    print('refused')\n")
    proc = subprocess.run([str(BIN / "python"), "-c", code], env=moto.env, capture_output=True,
                          text=True, timeout=120)
    assert proc.stdout.strip() == "refused", proc.stdout + proc.stderr


def test_security_group_admits_exactly_the_stated_rules(ec2, lab_default):
    assert lab_default["changed"] >= 2   # the group and the instances were created
    group = _group(ec2, "default")
    assert group is not None
    me = ("group", group["GroupId"])
    ctl = ("cidr", CONTROLLER_CIDR)
    # UDP 525 (TSP) and 123 (NTP) from the group and from the controller; SSH from the
    # controller and the group; nothing else, in particular nothing from 0.0.0.0/0
    assert _ingress(group) == {
        ("udp", 525, 525, me), ("udp", 525, 525, ctl),
        ("udp", 123, 123, me), ("udp", 123, 123, ctl),
        ("tcp", 22, 22, ctl), ("tcp", 22, 22, me),
    }
    tags = {t["Key"]: t["Value"] for t in group.get("Tags", [])}
    assert tags == {"Project": "tempo-lab", "TempoLab": "default"}
    default_vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    assert group["VpcId"] == default_vpc


def test_instances_are_named_tagged_and_in_the_group(ec2, ami, lab_default):
    nodes = _instances(ec2, "default")
    assert sorted(nodes) == ["n1", "n2", "n3"]
    gid = _group(ec2, "default")["GroupId"]
    for name, i in nodes.items():
        assert i["State"]["Name"] == "running", name   # wait: true waited for it
        assert i["tags"] == {"Name": name, "Project": "tempo-lab", "TempoLab": "default", "Role": "tempo_nodes"}
        assert [g["GroupId"] for g in i["SecurityGroups"]] == [gid]
        assert (i["ImageId"], i["InstanceType"], i["KeyName"]) == (ami, "t3.micro", KEY)
        assert i.get("PublicIpAddress") and i.get("PrivateIpAddress")


def test_provisioning_again_changes_nothing(moto, ec2, ami, lab_default):
    before = {n: i["InstanceId"] for n, i in _instances(ec2, "default").items()}
    assert _provision(moto, ami, "default", 3) == 0
    assert {n: i["InstanceId"] for n, i in _instances(ec2, "default").items()} == before


def test_inventory_plugin_reads_the_lab_back(moto, ec2, lab_default):
    proc = subprocess.run([str(BIN / "ansible-inventory"), "-i", "inventory/aws/aws_ec2.yml", "--list"],
                          cwd=REPO, env=_ansible_env(moto, AWS_URL=moto.url), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    inv = json.loads(proc.stdout)
    assert sorted(inv["tempo_nodes"]["hosts"]) == ["n1", "n2", "n3"]   # lab "other"'s n1 is not here
    hostvars = inv["_meta"]["hostvars"]

    def plain(v):  # ansible-inventory marks plugin-computed strings (runner/hosts.py)
        return v["__ansible_unsafe"] if isinstance(v, dict) else v

    keys = ("tempod_address", "ansible_host", "tempod_node_name", "ansible_user", "tempod_clock_backend")
    for name, i in _instances(ec2, "default").items():
        hv = {k: plain(hostvars[name][k]) for k in keys}
        assert hv["tempod_address"] == i["PrivateIpAddress"]
        assert hv["ansible_host"] == i["PublicIpAddress"]
        assert hv["tempod_node_name"] == name and hv["ansible_user"] == "admin"
        assert hv["tempod_clock_backend"] == "process"   # inventory/aws/group_vars/tempo_nodes.yml


def test_inventory_provider_resolves_the_hosts(moto, ec2, lab_default, monkeypatch):
    # `tempo ... --provider inventory -i inventory/aws/aws_ec2.yml` reads os.environ
    for k in [k for k in os.environ if k.startswith("AWS_") or k.lower().endswith("_proxy")]:
        monkeypatch.delenv(k)
    for k, v in dict(moto.env, AWS_URL=moto.url).items():
        monkeypatch.setenv(k, v)
    dep = InventoryProvider(REPO / "inventory/aws/aws_ec2.yml").existing()
    got = {h.name: h for h in dep.hosts}
    nodes = _instances(ec2, "default")
    assert sorted(got) == sorted(nodes)
    for name, i in nodes.items():
        h = got[name]
        assert (h.address, h.ssh_host, h.user, h.port, h.netns) == (
            i["PrivateIpAddress"], i["PublicIpAddress"], "admin", 22, None)
    assert dep.netns is None and not dep.shares_host_kernel


def test_teardown_removes_one_lab_and_nothing_else(moto, ec2, ami, lab_default):
    assert _provision(moto, ami, "gone", 2) >= 2
    assert sorted(_instances(ec2, "gone")) == ["n1", "n2"] and _group(ec2, "gone") is not None
    keep = {n: i["InstanceId"] for n, i in _instances(ec2, "default").items()}

    assert _playbook(moto, "aws-teardown.yml", aws_lab="gone") >= 2
    assert _instances(ec2, "gone") == {}
    assert _group(ec2, "gone") is None
    # the other labs are untouched
    assert {n: i["InstanceId"] for n, i in _instances(ec2, "default").items()} == keep
    assert _group(ec2, "default") is not None
    other = ec2.describe_instances(InstanceIds=[lab_default["other"]])["Reservations"][0]["Instances"][0]
    assert other["State"]["Name"] == "running"
    # and a second teardown finds nothing to do
    assert _playbook(moto, "aws-teardown.yml", aws_lab="gone") == 0


def test_no_default_subnet_is_a_clear_error_and_creates_nothing(moto, ami):
    region = "eu-west-2"   # its default subnets deleted: like an account without a default VPC
    ec2 = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                        region_name=region).client("ec2", endpoint_url=moto.url)
    for sn in ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]:
        ec2.delete_subnet(SubnetId=sn["SubnetId"])
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "playbooks/aws-provision.yml", "-e", json.dumps({
            "aws_endpoint_url": moto.url, "aws_region": region, "aws_lab": "nosubnet", "aws_ami": ami,
            "aws_key_name": KEY, "aws_controller_cidr": CONTROLLER_CIDR})],
        cwd=REPO, env=_ansible_env(moto), capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "no default subnet in eu-west-2" in proc.stdout and "set aws_vpc_subnet_id" in proc.stdout, proc.stdout
    assert ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["tempo-lab-nosubnet"]}])["SecurityGroups"] == []
    assert ec2.describe_instances(Filters=[{"Name": "tag:TempoLab", "Values": ["nosubnet"]}])["Reservations"] == []


def test_moto_is_stopped_even_when_the_test_fails(tmp_path):
    with refusing_port() as dead:
        with pytest.raises(RuntimeError, match="a failing test"):
            with moto_server(tmp_path, dead) as m:
                pid = m.pid
                raise RuntimeError("a failing test")
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert "Running on http://127.0.0.1:" in m.log.read_text()


def test_aws_env_drops_the_users_aws_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_PROFILE", "production")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://example.invalid")
    monkeypatch.setenv("https_proxy", "http://proxy.invalid:3128")
    env = aws_env(tmp_path, 9)
    assert "AWS_PROFILE" not in env and "AWS_ENDPOINT_URL" not in env
    assert env["https_proxy"] == env["HTTPS_PROXY"] == "http://127.0.0.1:9"
    assert not Path(env["AWS_CONFIG_FILE"]).exists() and not Path(env["AWS_SHARED_CREDENTIALS_FILE"]).exists()
