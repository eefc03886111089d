"""Suite validation: every built-in suite loads; bad fields are named with file and path."""

from __future__ import annotations

import random
import re

import pytest
import yaml

from tempolab.errors import ConfigError
from tempolab.runner.suite import builtin_suites, load_suite, parse_suite

BUILTIN = ["accuracy", "asymmetry", "demo", "drift-sweep", "failover", "failover-stop", "leader-kill", "load",
           "loss", "partition-heal", "pause", "protocols", "scale", "smoke", "stress", "timers",
           "vm-leader-kill"]


def test_builtin_suites_present_and_valid():
    assert builtin_suites() == BUILTIN
    for name in BUILTIN:
        s = load_suite(name)
        assert s.name == name
        assert s.n_trials >= 1


def test_builtin_requirements_of_the_brief():
    assert load_suite("smoke").nodes == 3
    lk = load_suite("leader-kill")
    assert lk.nodes == 5 and lk.trials >= 10 and lk.faults[0].kind == "kill"
    assert lk.faults[0].window_s is not None  # randomized time
    assert load_suite("pause").faults[0].duration_s > load_suite("pause").daemon["election_timeout_max_s"]
    sweep = [p["drift.max_ppm"] for p in load_suite("drift-sweep").sweep]
    assert min(sweep) == 10 and max(sweep) == 100000
    nodes = [p["nodes"] for p in load_suite("scale").sweep]
    assert min(nodes) == 3 and max(nodes) == 32


def _err(data, source="leader-kill.yaml") -> str:
    with pytest.raises(ConfigError) as exc:
        parse_suite(data, source)
    return str(exc.value)


@pytest.mark.parametrize("data, expected", [
    ({"faults": [{"kind": "kill", "at_s": "soon"}]},
     "leader-kill.yaml: faults[0].at_s: expected a number, got 'soon'"),
    ({"faults": [{"kind": "explode", "at_s": 1}]}, "faults[0].kind: expected one of"),
    ({"faults": [{"kind": "kill"}]}, "faults[0].at_s: missing"),
    ({"faults": [{"kind": "kill", "at_s": [5, 1]}]}, "faults[0].at_s: window min 5 > max 1"),
    ({"faults": [{"kind": "loss", "at_s": 1, "duration_s": 2}]}, "faults[0].percent: missing"),
    ({"faults": [{"kind": "loss", "at_s": 1, "duration_s": 2, "percent": 120}]},
     "faults[0].percent: must be <= 100"),
    ({"faults": [{"kind": "partition", "at_s": 1}]}, "faults[0].duration_s: a partition fault needs"),
    ({"faults": [{"kind": "kill", "at_s": 1, "targets": "leader"}]}, "faults[0].targets: expected one of"),
    ({"faults": [{"kind": "kill", "at_s": 25, "duration_s": 10}], "trial_duration_s": 30},
     "faults[0]: ends at 35 s, after trial_duration_s 30 s"),
    ({"nodes": "five"}, "nodes: expected an integer, got 'five'"),
    ({"nodes": 0}, "nodes: must be >= 1"),
    ({"trials": True}, "trials: expected an integer, got True"),
    ({"colour": "red"}, "colour: unknown field"),
    ({"daemon": {"round_interval": 2}}, "daemon.round_interval: unknown field"),
    ({"daemon": {"election_timeout_min_s": 9}}, "daemon.election_timeout_min_s: 9.0 > election_timeout_max_s"),
    ({"drift": {"max_ppm": 200000}}, "drift.max_ppm: must be <= 150000"),
    ({"drift": {"distribution": "cauchy"}}, "drift.distribution: expected one of uniform, normal"),
    ({"sweep": [{"nodes": 2}, {"colour": 1}]}, "sweep[1].colour: unknown sweep key"),
    ({"requires": ["gpu"]}, "requires[0]: expected one of"),
    ({"observer_hz": 0}, "observer_hz: must be > 0"),
    ([1, 2], "a suite file is a mapping"),
])
def test_validation_errors_name_file_and_field(data, expected):
    assert expected in _err(data)


def test_delay_implies_netem_requirement():
    s = parse_suite({"faults": [{"kind": "delay", "at_s": 1, "duration_s": 2, "delay_ms": 5}]}, "d.yaml")
    assert s.requires == ("netem",)


def test_window_is_drawn_from_the_seed_and_within_bounds():
    s = load_suite("leader-kill")
    f = s.faults[0]
    a = [f.draw_at(random.Random("7:1")) for _ in range(3)]
    assert a[0] == a[1] == a[2]  # same seed, same draw
    draws = {f.draw_at(random.Random(f"7:{k}")) for k in range(1, 20)}
    assert len(draws) > 10 and all(f.window_s[0] <= d <= f.window_s[1] for d in draws)


def test_sweep_points_apply_overrides():
    s = load_suite("drift-sweep")
    assert s.n_trials == len(s.sweep) * s.trials
    assert s.at_point(0).drift.max_ppm == 10
    assert s.at_point(s.n_trials - 1).drift.max_ppm == 100000
    sc = parse_suite({"nodes": 3, "sweep": [{"nodes": 3}, {"nodes": 8, "daemon.round_interval_s": 4}],
                      "trials": 2}, "x.yaml")
    assert [sc.at_point(k).nodes for k in range(4)] == [3, 3, 8, 8]
    assert sc.at_point(3).daemon["round_interval_s"] == 4.0


def test_unknown_suite_lists_builtins(tmp_path):
    with pytest.raises(ConfigError, match="built-in: accuracy, asymmetry, demo, drift-sweep"):
        load_suite("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("faults: [kind: kill\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_suite(str(bad))
    ok = tmp_path / "mine.yaml"
    ok.write_text(yaml.safe_dump({"nodes": 4}))
    assert load_suite(str(ok)).name == "mine"


def test_deploy_vars_are_role_variables():
    import yaml as _yaml

    from tempolab.runner.deploy import deploy_vars
    from tempolab.paths import project_paths

    roles = project_paths().root / "roles"
    v = deploy_vars(load_suite("drift-sweep").at_point(4))
    assert v["tempod_drift_rate_range_ppm"] == [-100000.0, 100000.0]
    assert v["tempod_round_interval_s"] == 2.0 and v["tempod_drift_seed"] == 19
    # every var we pass must be a documented role variable (or the playbook's protocol)
    known = {"tempo_protocol"}
    for role in ("tempod", "chrony"):
        known |= set(_yaml.safe_load((roles / role / "defaults" / "main.yml").read_text()))
    assert set(v) <= known, set(v) - known
    assert v["tempo_protocol"] == "berkeley" and v["tempod_state"] == "started"
    ntp = deploy_vars(load_suite("drift-sweep").at_point(4), "ntp")
    assert ntp["tempo_protocol"] == "ntp" and ntp["tempod_state"] == "stopped"
    assert "chrony_state" not in ntp    # an extra var would beat deploy.yml's pre-task that stops chronyd


def test_protocol_axis_runs_every_trial_once_per_protocol():
    from tempolab.runner.suite import parse_suite

    s = parse_suite({"protocol": ["berkeley", "ntp", "cristian"], "trials": 2,
                     "sweep": [{"nodes": 3}, {"nodes": 5}]}, "p.yaml")
    assert s.trials_per_protocol == 4 and s.n_trials == 12
    assert [s.protocol_of(k) for k in range(12)] == ["berkeley"] * 4 + ["ntp"] * 4 + ["cristian"] * 4
    # trial j of every protocol is the same sweep point (and fault draw)
    assert [s.base_trial(k) for k in (1, 5, 9)] == [1, 1, 1]
    assert [s.at_point(k).nodes for k in (0, 2, 4, 6, 8, 10)] == [3, 5, 3, 5, 3, 5]
    assert parse_suite({"protocol": "ntp"}, "p.yaml").protocols == ("ntp",)
    assert parse_suite({}, "p.yaml").protocols == ("berkeley",)


@pytest.mark.parametrize("raw, msg", [
    ("sntp", "protocol: expected one of berkeley, cristian, ntp"),
    ([], "got []"),
    (["ntp", "ntp"], "lists a protocol twice"),
    ([3], "protocol[0]: expected a string"),
])
def test_protocol_axis_rejects_bad_values(raw, msg):
    from tempolab.errors import ConfigError
    from tempolab.runner.suite import parse_suite

    with pytest.raises(ConfigError, match=re.escape(msg)):
        parse_suite({"protocol": raw}, "p.yaml")
