"""Checks of the Ansible side without hosts: syntax of every playbook, ansible-lint in
the production profile, argument specs covering every default, and the tempod role's
configuration and drift-profile tasks run for real against local "hosts" whose files
the daemon's own parsers then read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PLAYBOOKS = sorted((REPO / "playbooks").glob("*.yml"))
ROLES = ["libfaketime", "tempod", "chrony"]


def _env() -> dict[str, str]:
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    return env


def test_every_expected_playbook_exists():
    names = {p.stem for p in PLAYBOOKS}
    assert {"deploy", "start", "stop", "collect", "teardown", "aws-provision", "aws-teardown"} <= names


@pytest.mark.parametrize("playbook", PLAYBOOKS, ids=lambda p: p.name)
def test_playbook_syntax(playbook):
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "--syntax-check", "-i", str(REPO / "inventory/vagrant/hosts.yml"), str(playbook)],
        cwd=REPO, env=_env(), capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ansible_lint_production_profile_passes():
    proc = subprocess.run(
        [str(BIN / "ansible-lint"), "--offline", "--nocolor", "roles", "playbooks"],
        cwd=REPO, env=_env(), capture_output=True, text=True,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Profile 'production' was required, and it passed" in out


def test_lint_config_lists_a_reason_for_each_skip():
    cfg = (REPO / ".ansible-lint").read_text()
    data = yaml.safe_load(cfg)
    assert data["profile"] == "production"
    for rule in data.get("skip_list") or []:
        # a comment on the same line as the skip gives its reason
        line = next(line for line in cfg.splitlines() if line.strip().startswith(f"- {rule}"))
        assert "#" in line, f"skip {rule} has no reason"


@pytest.mark.parametrize("role", ROLES)
def test_argument_specs_document_every_default(role):
    defaults = yaml.safe_load((REPO / f"roles/{role}/defaults/main.yml").read_text())
    spec = yaml.safe_load((REPO / f"roles/{role}/meta/argument_specs.yml").read_text())
    options = spec["argument_specs"]["main"]["options"]
    assert set(defaults) == set(options)
    for name, opt in options.items():
        assert name.startswith(f"{role}_"), name
        assert opt.get("description"), name


@pytest.mark.parametrize("role", ROLES)
def test_internal_vars_are_prefixed(role):
    for f in (REPO / f"roles/{role}/vars").glob("*.yml"):
        for name in yaml.safe_load(f.read_text()) or {}:
            assert name.startswith("_"), f"{f}: {name}"


@pytest.mark.parametrize("template", sorted((REPO / "roles").glob("*/templates/*.j2")), ids=lambda p: p.name)
def test_templates_start_with_ansible_managed(template):
    assert template.read_text().startswith("{{ ansible_managed | comment }}")


def test_vagrant_inventory_parses():
    proc = subprocess.run(
        [str(BIN / "ansible-inventory"), "-i", str(REPO / "inventory/vagrant/hosts.yml"), "--list"],
        cwd=REPO, env=_env(), capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    inv = json.loads(proc.stdout)
    assert inv["tempo_nodes"]["hosts"] == ["n1", "n2", "n3"]


def test_aws_inventory_is_keyed_on_tags():
    inv = yaml.safe_load((REPO / "inventory/aws/aws_ec2.yml").read_text())
    assert inv["plugin"] == "amazon.aws.aws_ec2"
    assert inv["filters"]["tag:Project"] == "tempo-lab"
    assert "tempo_nodes" in inv["groups"]
    assert inv["compose"]["tempod_address"] == "private_ip_address"


# ------------------------------------------------- the tempod role, run on localhost

CONFIGURE_PLAY = """
- name: Render tempod files for local pseudo-hosts
  hosts: tempo_nodes
  gather_facts: false
  vars:
    tempod_state: stopped
    tempod_auth_key: "{{ '00' * 32 }}"
  tasks:
    - name: Preflight
      ansible.builtin.include_role:
        name: tempod
        tasks_from: preflight.yml
    - name: Configure
      ansible.builtin.include_role:
        name: tempod
        tasks_from: configure.yml
"""


def _run_configure(tmp_path: Path, extra: dict | None = None, hostvars: dict | None = None) -> subprocess.CompletedProcess:
    hosts = {}
    for k in (1, 2, 3):
        d = tmp_path / f"h{k}"
        hosts[f"h{k}"] = {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "tempod_node_name": f"node{k}",
            "tempod_address": f"10.99.0.{10 + k}",
            "tempod_config_dir": str(d / "etc"),
            "tempod_log_dir": str(d / "log"),
            **(hostvars or {}).get(f"h{k}", {}),
        }
        (d / "etc").mkdir(parents=True, exist_ok=True)
    inv = tmp_path / "hosts.yml"
    inv.write_text(yaml.safe_dump({"all": {"children": {"tempo_nodes": {"hosts": hosts}}}}))
    play = tmp_path / "play.yml"
    play.write_text(CONFIGURE_PLAY)
    argv = [str(BIN / "ansible-playbook"), "-i", str(inv), str(play)]
    for k, v in (extra or {}).items():
        argv += ["-e", json.dumps({k: v})]
    env = _env() | {"ANSIBLE_ROLES_PATH": str(REPO / "roles")}
    return subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True)


def test_role_renders_configs_the_daemon_accepts(tmp_path):
    tempod_config = pytest.importorskip("tempod.config")
    profile = pytest.importorskip("tempod.profile")
    proc = _run_configure(tmp_path, {"tempod_round_interval_s": 2, "tempod_drift_seed": 7},
                          {"h2": {"tempod_drift_rate_ppm": 250.0, "tempod_drift_offset_s": -3.5}})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    import tomllib

    for k in (1, 2, 3):
        etc = tmp_path / f"h{k}" / "etc"
        raw = tomllib.loads((etc / "tempod.toml").read_text())
        assert raw["node"]["name"] == f"node{k}"
        assert raw["timers"]["round_interval_s"] == 2.0
        peers = {p["name"]: p["address"] for p in raw["peers"]["hosts"]}
        assert peers == {f"node{j}": f"10.99.0.{10 + j}" for j in (1, 2, 3) if j != k}
        # the daemon's own loader accepts it (key path rewritten to the test's copy)
        raw["auth"]["key_file"] = str(etc / "tempo.key")
        tempod_config.from_dict(raw, base_dir=etc, source=etc / "tempod.toml", check_files=True)
        assert (etc / "tempo.key").stat().st_mode & 0o777 == 0o600
        prof = profile.load_profile(etc / "drift.toml")
        if k == 2:
            assert (prof.offset_s, prof.rate_ppm) == (-3.5, 250.0)
        else:
            drawn = profile.generate_profiles([f"node{k}"], 7, epoch_unix_s=prof.epoch_unix_s)[f"node{k}"]
            assert (prof.offset_s, prof.rate_ppm) == (drawn.offset_s, drawn.rate_ppm)


def test_role_keeps_the_epoch_and_changes_nothing_on_a_second_run(tmp_path):
    pytest.importorskip("tempod.profile")
    first = _run_configure(tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    before = (tmp_path / "h1/etc/drift.toml").read_text()
    second = _run_configure(tmp_path)
    assert second.returncode == 0, second.stdout
    assert (tmp_path / "h1/etc/drift.toml").read_text() == before
    recap = [line for line in second.stdout.splitlines() if line.startswith("h") and "changed=" in line]
    assert len(recap) == 3 and all("changed=0" in line for line in recap), "\n".join(recap)


@pytest.mark.parametrize(
    "extra,hostvars,needle",
    [
        ({"tempod_drift_rate_ppm": 600000}, None, "Drift profile out of bounds"),
        ({"tempod_drift_rate_range_ppm": [100, -100]}, None, "Drift profile out of bounds"),
        ({"tempod_drift_changes": [{"at_s": 10, "rate_ppm": -1e6}]}, None, "Drift profile out of bounds"),
        (None, {"h3": {"tempod_node_name": "node1"}}, "must be unique"),
        ({"tempod_auth_key": "abc"}, None, "tempod_auth_key must be hex"),
        ({"tempod_state": "running"}, None, "tempod_state must be"),
    ],
)
def test_role_preflight_refuses_bad_input(tmp_path, extra, hostvars, needle):
    proc = _run_configure(tmp_path, extra, hostvars)
    assert proc.returncode != 0
    assert needle in proc.stdout, proc.stdout[-3000:]
