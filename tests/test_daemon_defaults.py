"""One place for each node default: NodeConfig.  The config schema and the simulator
read it from there; the role's defaults, its argument specs and the profile files
cannot (YAML), so this checks that they agree."""

from __future__ import annotations

from dataclasses import fields

import pytest
import yaml

from tempod import config
from tempod.nodeconfig import PROFILES, NodeConfig, Peer
from tempod.nodeconfig import default as node_default
from tempod.sim import SimConfig

FIELDS = {f.name for f in fields(NodeConfig)}


def test_schema_defaults_are_nodeconfig_defaults():
    checked = 0
    for section, keys in config.SCHEMA.items():
        for key, spec in keys.items():
            if key in FIELDS and spec.default is not None and section != "peers":
                assert spec.default == node_default(key), f"{section}.{key}"
                checked += 1
    assert checked >= 20


def test_role_defaults_and_argument_specs_agree_with_nodeconfig(repo):
    defaults = yaml.safe_load((repo / "roles/tempod/defaults/main.yml").read_text())
    options = yaml.safe_load((repo / "roles/tempod/meta/argument_specs.yml").read_text())[
        "argument_specs"]["main"]["options"]
    checked = 0
    for var, value in defaults.items():
        key = var.removeprefix("tempod_")
        if key in FIELDS and key not in ("name", "address", "peers", "trusted"):
            assert value == node_default(key), var
            assert options[var].get("default") == node_default(key), f"argument_specs {var}"
            checked += 1
    assert {"tempod_heartbeat_interval_s", "tempod_master_timeout_min_s", "tempod_master_timeout_max_s"} <= set(defaults)
    assert checked >= 15


@pytest.mark.parametrize("name", [p for p in PROFILES if p != "default"])
def test_profile_files_are_nodeconfig_profiles(repo, name):
    shipped = yaml.safe_load((repo / f"playbooks/profiles/{name}.yml").read_text())
    assert shipped == {f"tempod_{k}": v for k, v in PROFILES[name].items()}
    NodeConfig("n1", peers=(Peer("n2", "10.0.0.2"),), **PROFILES[name])   # a valid config


def test_simulator_uses_nodeconfig_defaults_and_profiles():
    c = SimConfig(nodes=2).node_configs()[0]
    for k in ("round_interval_s", "heartbeat_interval_s", "master_timeout_min_s", "master_timeout_max_s",
              "probe_timeout_s", "election_timeout_min_s", "election_timeout_max_s", "refuse_window_s"):
        assert getattr(c, k) == node_default(k), k
    f = SimConfig(nodes=2, profile="fast").node_configs()[0]
    for k, v in PROFILES["fast"].items():
        assert getattr(f, k) == v, k
    with pytest.raises(ValueError, match="profile"):
        SimConfig(profile="warp")


def test_bad_heartbeat_config_names_the_key(tmp_path):
    p = tmp_path / "tempod.toml"
    p.write_text('[node]\nname = "n1"\naddress = "127.0.0.1"\n[auth]\nrequired = false\n'
                 '[timers]\nheartbeat_interval_s = 0.5\n')
    with pytest.raises(config.ConfigError, match="timers.master_timeout_min_s"):
        config.load(p)
