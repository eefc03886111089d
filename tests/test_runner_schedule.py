"""runner/schedule.py: the trial timeline is a pure function of the suite, the trial
number, the nodes, the master and the seed."""

from __future__ import annotations

import pytest

from tempolab.errors import ConfigError
from tempolab.runner import schedule
from tempolab.runner.faults import NodeRef
from tempolab.runner.suite import parse_suite

NODES = [NodeRef(f"n{i}", f"10.0.0.{i}") for i in range(1, 6)]


def suite(**over):
    d = {"name": "s", "nodes": 5, "seed": 11, "trials": 3, "trial_duration_s": 30, "warm_up_s": 4,
         "daemon": {"round_interval_s": 0.5},
         "faults": [{"kind": "partition", "at_s": [1, 5], "duration_s": 6, "side_a": 2},
                    {"kind": "stop", "at_s": [2, 9], "duration_s": 3, "targets": "side_a"},
                    {"kind": "kill", "at_s": [3, 4], "targets": "random_follower"}]}
    d.update(over)
    return parse_suite(d, "s.yaml")


def test_same_seed_same_timeline_other_seed_another():
    s = suite()
    spec = schedule.trial_spec(s, 2)
    a = schedule.plan_faults(s, spec, NODES, "n1")
    b = schedule.plan_faults(s, schedule.trial_spec(s, 2), NODES, "n1")
    assert a == b
    other = schedule.plan_faults(s, schedule.trial_spec(s, 3), NODES, "n1")
    assert [f.at_s for f in other.faults] != [f.at_s for f in a.faults]
    reseeded = schedule.plan_faults(suite(seed=12), spec, NODES, "n1")
    assert [f.at_s for f in reseeded.faults] != [f.at_s for f in a.faults]


def test_steps_are_in_time_order_with_reverts_at_planned_ends():
    s = suite()
    plan = schedule.plan_faults(s, schedule.trial_spec(s, 1), NODES, "n1")
    times = [st.at_s for st in plan.steps]
    assert times == sorted(times)
    applies = {st.index: st.at_s for st in plan.steps if st.action == "apply"}
    reverts = {st.index: st.at_s for st in plan.steps if st.action == "revert"}
    assert sorted(applies) == [0, 1, 2] and sorted(reverts) == [0, 1]  # the kill has no duration
    for i, f in enumerate(plan.faults):
        assert applies[i] == f.at_s and 1 <= f.at_s <= 9
        assert plan.planned_end_s(i) == (None if i == 2 else f.at_s + f.duration_s)
        if i in reverts:
            assert reverts[i] == plan.planned_end_s(i)
    # the stop targets the partition's side a; the kill never hits the master
    assert plan.faults[1].targets[0] in plan.faults[0].sides[0]
    assert plan.faults[2].targets[0] != "n1"


def test_apply_before_revert_at_the_same_time():
    s = suite(faults=[{"kind": "stop", "at_s": 1, "duration_s": 2, "targets": "master"},
                      {"kind": "partition", "at_s": 3, "duration_s": 2}])
    plan = schedule.plan_faults(s, schedule.trial_spec(s, 1), NODES, "n1")
    assert [(st.at_s, st.action, st.index) for st in plan.steps] == [
        (1, "apply", 0), (3, "apply", 1), (3, "revert", 0), (5, "revert", 1)]


def test_protocols_share_the_fault_draw_and_stable_is_a_round_at_least_1s():
    s = suite(protocol=["berkeley", "cristian"], trials=2)
    specs = [schedule.trial_spec(s, k) for k in range(1, s.n_trials + 1)]
    assert [(sp.protocol, sp.base_trial) for sp in specs] == [
        ("berkeley", 1), ("berkeley", 2), ("cristian", 1), ("cristian", 2)]
    by_base = {}
    for sp in specs:
        plan = schedule.plan_faults(s, sp, NODES, "n1")
        by_base.setdefault(sp.base_trial, []).append([(f.at_s, f.targets) for f in plan.faults])
    assert all(a == b for a, b in by_base.values())
    assert specs[0].stable_s == 1.0 and specs[0].warm_up_s == 4 and specs[0].duration_s == 30
    assert schedule.trial_spec(suite(daemon={"round_interval_s": 2.5}), 1).stable_s == 2.5


def test_a_master_fault_without_a_master_is_a_config_error():
    s = suite(faults=[{"kind": "kill", "at_s": 1, "targets": "master"}])
    with pytest.raises(ConfigError, match="no master"):
        schedule.plan_faults(s, schedule.trial_spec(s, 1), NODES, None)
