"""One value per default and bound: the daemon's NodeConfig is the definition, and every
other place that states one (config schema, the role's defaults and argument specs, the
suite parser, the simulator's scenario, the drift model's rate bound) must agree with it."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pytest
import yaml

from tempod import clocks, profile
from tempod.nodeconfig import NodeConfig
from tempod.sim.scenario import SimConfig
from tempolab.runner import suite

REPO = Path(__file__).resolve().parents[1]
# Fields the role sets per host from the inventory, not from a group-wide default.
PER_HOST = {"name", "address", "peers", "trusted", "master_eligible"}
NODE_DEFAULTS = {f.name: f.default for f in dataclasses.fields(NodeConfig)
                 if f.default is not dataclasses.MISSING and f.name not in PER_HOST}


def _role_yaml(path: str) -> dict:
    return yaml.safe_load((REPO / "roles/tempod" / path).read_text())


@pytest.mark.parametrize("key", sorted(NODE_DEFAULTS))
def test_role_default_matches_the_daemon(key):
    defaults = _role_yaml("defaults/main.yml")
    specs = _role_yaml("meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    var = f"tempod_{key}"
    if var not in defaults:
        return  # not every core field is a role variable (name, peers, ...)
    assert defaults[var] == NODE_DEFAULTS[key], var
    if "default" in specs[var]:
        assert specs[var]["default"] == NODE_DEFAULTS[key], f"argument_specs {var}"


def test_role_exposes_every_timer_and_clock_bound():
    defaults = _role_yaml("defaults/main.yml")
    for key in ("round_interval_s", "probes_per_round", "probe_timeout_s", "election_timeout_min_s",
                "election_timeout_max_s", "slew_max_ppm", "step_threshold_s", "freq_max_ppm"):
        assert f"tempod_{key}" in defaults, key


def test_suite_defaults_are_the_daemon_defaults():
    for key, value in suite.DAEMON_DEFAULTS.items():
        assert value == NODE_DEFAULTS[key], key
    assert suite.MAX_DRIFT_PPM == NODE_DEFAULTS["freq_max_ppm"]


def test_simulator_scenario_defaults_are_the_daemon_defaults():
    fields = {f.name: f.default for f in dataclasses.fields(SimConfig)}
    shared = set(fields) & set(NODE_DEFAULTS)
    assert {"round_interval_s", "election_timeout_min_s", "election_timeout_max_s"} <= shared
    for key in shared:
        if fields[key] is None:
            continue  # derived from the scenario's drift (SimConfig documents the rule)
        assert fields[key] == NODE_DEFAULTS[key], key


def test_one_rate_bound_for_every_drift_clock():
    bound = profile.MAX_ABS_RATE_PPM
    assert _role_yaml("vars/main.yml")["_tempod_rate_limit_ppm"] == bound
    sim_default = inspect.signature(clocks.SimClock).parameters["max_rate_ppm"].default
    assert sim_default == bound
    with pytest.raises(profile.ProfileError):
        profile.DriftProfile(0.0, 0.0, bound)
