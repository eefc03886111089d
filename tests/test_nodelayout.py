"""nodelayout.py against the roles: render the roles' own path variables from their
defaults and compare them with the layout the runner, the faults and the lab use."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import jinja2
from jinja2.nativetypes import NativeEnvironment
import pytest
import yaml

from tempolab.lab import plan
from tempolab.nodelayout import LAYOUT, NodeLayout
from tempolab.runner import faults, protocols

REPO = Path(__file__).resolve().parents[1]
ROLES = REPO / "roles"


def _load(role: str, rel: str) -> dict:
    return yaml.safe_load((ROLES / role / rel).read_text())


def _spec_defaults(role: str) -> dict:
    spec = _load(role, "meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    return {k: v["default"] for k, v in spec.items() if "default" in v}


def _render(role: str) -> dict:
    """The role's defaults and internal vars with every path variable rendered (the
    node-side ones only; the controller-side ones need playbook_dir)."""
    # native types, as Ansible renders: "{{ a + b }}" of two lists is a list
    env = NativeEnvironment(undefined=jinja2.StrictUndefined)
    env.filters["to_json"] = json.dumps
    ctx = dict(_load(role, "defaults/main.yml"))
    ctx.update(_load(role, "vars/main.yml"))
    out: dict = {}

    def render(v):
        if isinstance(v, list):
            return [render(x) for x in v]
        return env.from_string(v).render(**{**ctx, **out}) if isinstance(v, str) else v

    for _ in range(3):  # internal vars refer to each other
        for k, v in ctx.items():
            try:
                out[k] = render(v)
            except (jinja2.UndefinedError, jinja2.TemplateError, TypeError):
                pass  # Ansible filters, facts, playbook_dir: not a node path
    return out


@pytest.fixture(scope="module")
def tempod():
    return _render("tempod")


@pytest.fixture(scope="module")
def chrony():
    return _render("chrony")


def test_folders_are_the_roles_defaults_and_specs():
    for role, prefix in (("tempod", "tempod"), ("chrony", "chrony")):
        defaults, spec = _load(role, "defaults/main.yml"), _spec_defaults(role)
        for field in ("config_dir", "log_dir", "run_dir"):
            assert defaults[f"{prefix}_{field}"] == getattr(LAYOUT, field), (role, field)
            assert spec[f"{prefix}_{field}"] == getattr(LAYOUT, field), (role, field)
    assert _load("tempod", "defaults/main.yml")["tempod_install_dir"] == LAYOUT.install_dir
    assert _spec_defaults("tempod")["tempod_install_dir"] == LAYOUT.install_dir
    assert _load("chrony", "defaults/main.yml")["chrony_install_dir"] == LAYOUT.chrony_install_dir
    assert _spec_defaults("chrony")["chrony_install_dir"] == LAYOUT.chrony_install_dir


def test_tempod_files_are_the_roles(tempod):
    assert tempod["_tempod_config"] == LAYOUT.config
    assert tempod["_tempod_profile"] == LAYOUT.profile
    assert tempod["_tempod_key"] == LAYOUT.key
    assert tempod["_tempod_pidfile"] == LAYOUT.pidfile
    assert tempod["_tempod_venv"] == LAYOUT.venv
    # the process clock backend's argv: what faults.service_cmd runs by hand
    assert tempod["_tempod_service_argv"] == LAYOUT.tempod_service_argv()
    # the event log is set in the config template
    line = next(x for x in (ROLES / "tempod/templates/tempod.toml.j2").read_text().splitlines()
                if x.startswith("event_log"))
    env = jinja2.Environment()
    env.filters["to_json"] = json.dumps
    rendered = env.from_string(line).render(tempod_log_dir=LAYOUT.log_dir)
    assert rendered == f"event_log = {json.dumps(LAYOUT.event_log)}"


def test_chrony_files_are_the_roles(chrony):
    assert chrony["_chrony_config"] == LAYOUT.chrony_config
    assert chrony["_chrony_pidfile"] == LAYOUT.chrony_pidfile
    assert chrony["_chrony_launcher"] == LAYOUT.chrony_launcher
    assert chrony["_chrony_chronyc"] == LAYOUT.chronyc
    assert chrony["_chrony_socket"] == LAYOUT.chrony_socket
    assert chrony["_chrony_own_pidfile"] == LAYOUT.chrony_own_pidfile
    assert chrony["chrony_drift_profile"] == LAYOUT.profile
    assert chrony["chrony_service_tool"] == LAYOUT.service_tool
    assert chrony["_chrony_service_argv"] == LAYOUT.chrony_service_argv()
    conf = (ROLES / "chrony/templates/chrony.conf.j2").read_text()
    logdir = re.search(r"^logdir (.*)$", conf, re.M).group(1)
    # chronyd's own pidfile, which tempo run --cleanup removes after a crash
    assert re.search(r"^pidfile (.*)$", conf, re.M).group(1) == "{{ _chrony_own_pidfile }}"
    assert jinja2.Environment().from_string(logdir).render(chrony_log_dir=LAYOUT.log_dir) == LAYOUT.chrony_log_dir


def test_runner_uses_the_layout():
    assert shlex.split(faults.service_cmd("stop", "chronyd")) == [*LAYOUT.chrony_service_argv(), "stop"]
    assert f"else {shlex.join([*LAYOUT.tempod_service_argv(), 'start'])}; fi" in faults.service_cmd("start")
    assert (faults.DEADMAN_DIR, faults.DEADMAN_LOG) == (LAYOUT.deadman_dir, LAYOUT.deadman_log)
    assert protocols.CHRONY_LOG_DIR == LAYOUT.chrony_log_dir
    assert plan.NODE_BINDS == LAYOUT.binds


def test_every_node_file_is_inside_a_lab_bind():
    # the lab gives each node private copies of exactly these folders
    binds = tuple(LAYOUT.binds.values())
    paths = [getattr(LAYOUT, k) for k in dir(NodeLayout)
             if isinstance(getattr(NodeLayout, k), property) and k != "binds"]
    assert paths and all(any(p == b or p.startswith(b + "/") for b in binds) for p in paths), paths
