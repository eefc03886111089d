"""tempod.facts: the typed history and the checker (one definition of each fact)."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tempod.facts import checker, history
from tempod.facts.history import Fault, RoundDone, Sample, StateChange


# --- failover --------------------------------------------------------------------------

def test_new_master_is_the_first_other_node_becoming_master_after_the_fault():
    ch = [StateChange(5.0, "n2", "CANDIDATE", "LEADER"),          # before the fault
          StateChange(10.5, "n1", "CANDIDATE", "LEADER"),         # the old master itself
          StateChange(10.7, "n3", "CONFLICT", "LEADER"),          # resolving: not new
          StateChange(11.0, "n4", "CANDIDATE", "LEADER"),
          StateChange(11.2, "n5", "CANDIDATE", "LEADER")]
    rounds = [RoundDone(10.9, "n4"), RoundDone(11.6, "n5"), RoundDone(11.5, "n4")]
    f = checker.failover(ch, rounds, 10.0, "n1")
    assert (f.new_master, f.new_master_t, f.first_round_t) == ("n4", 11.0, 11.5)
    assert abs(f.to_new_master_s - 1.0) < 1e-12 and abs(f.to_first_round_s - 1.5) < 1e-12
    assert f.result().valid is True
    assert checker.failover(ch, rounds, 10.0, "n1", until=10.9).new_master is None
    none = checker.failover([], [], 3.0, "n1")
    assert none.new_master is None and none.to_new_master_s is None and none.to_first_round_s is None
    assert none.result().valid is False
    assert checker.failover([], [], 3.0, None).result().valid == "unknown"   # no master to lose


def test_events_history_reads_event_log_records():
    ch, rounds = history.events_history({"n2": [{"ev": "state", "from": "ACCEPT", "to": "LEADER", "t_ref": 2.0},
                                                {"ev": "round", "t_ref": 3.0},
                                                {"ev": "state", "to": "LEADER"},            # no time: skipped
                                                {"ev": "state", "to": "LEADER", "t_ref": math.nan},
                                                {"ev": "adjust", "t_ref": 4.0}]})
    assert ch == [StateChange(2.0, "n2", "ACCEPT", "LEADER")] and rounds == [RoundDone(3.0, "n2")]
    assert history.events_from_rows([{"ev": "round", "node": "n2", "t_ref": 3.0}]) == ([], [RoundDone(3.0, "n2")])


# --- vocabulary and faults ----------------------------------------------------------------

def test_one_fault_vocabulary_old_names_accepted():
    assert [history.fault_kind(k) for k in ("kill-master", "pause-master", "pause", "kill", "stop", "delay")] \
        == ["kill", "stop", "stop", "kill", "stop", "delay"]
    assert history.fault_kind("brand-new") == "brand-new"     # a newer folder's kind still loads


def test_faults_pair_by_fault_id_else_by_kind_and_targets():
    recs = [{"t_ref": 1.0, "kind": "kill", "phase": "start", "targets": ["n1"], "fault_id": 1, "trial": 1},
            {"t_ref": 2.0, "kind": "kill", "phase": "end", "targets": ["n1"], "fault_id": 2, "trial": 1},
            {"t_ref": 3.0, "kind": "kill", "phase": "end", "targets": ["n1"], "fault_id": 1, "trial": 1},
            {"t_ref": 4.0, "kind": "pause", "targets": ["n2"]},                      # old names, no fault_id
            {"t_ref": 5.0, "kind": "cont", "targets": ["n2"]},
            {"t_ref": 6.0, "kind": "partition", "phase": "start", "targets": ["n1", "n2", "n3"],
             "sides": {"a": ["n1"], "b": ["n2", "n3"]}},         # as the runner writes it
            {"t_ref": 7.0, "kind": "loss", "phase": "start", "targets": []}]
    fs = history.faults_from_records(recs, ["n1", "n2", "n3"])
    assert [(f.kind, f.start, f.end) for f in fs] == [("kill", 1.0, 3.0), ("stop", 4.0, 5.0),
                                                      ("partition", 6.0, None), ("loss", 7.0, None)]
    assert fs[2].groups == (frozenset({"n1"}), frozenset({"n2", "n3"}))


def test_sim_trace_history_partition_groups_from_minority():
    h = history.from_sim([(5.0, "n2", "CANDIDATE", "LEADER")], [{"t": 6.0, "master": "n2"}],
                         [{"t": 4.0, "kind": "partition", "phase": "start", "target": "n1", "minority": ["n1"]},
                          {"t": 9.0, "kind": "partition", "phase": "end", "target": None}], ["n1", "n2", "n3"])
    (f,) = h.faults
    assert (f.end, f.groups) == (9.0, (frozenset({"n1"}), frozenset({"n2", "n3"})))
    ((_, fo),) = checker.failovers(h)
    assert (fo.new_master, fo.to_new_master_s, fo.to_first_round_s) == ("n2", 1.0, 2.0)


# --- one master per connected group (properties) -----------------------------------------

NODES = [f"n{i}" for i in range(1, 7)]


def _sweep(k: int, states: dict[str, str]) -> list[Sample]:
    return [Sample(10.0 * k + 0.01 * i, n, 0.0, 1e-4, s, None, k, 1) for i, (n, s) in enumerate(states.items())]


@st.composite
def partitioned_history(draw):
    """Sweeps of NODES split into two groups, each group with exactly one master."""
    cut = draw(st.integers(1, len(NODES) - 1))
    groups = [NODES[:cut], NODES[cut:]]
    sweeps = []
    for k in range(draw(st.integers(1, 6))):
        states = {}
        for g in groups:
            m = draw(st.sampled_from(g))
            for n in g:
                states[n] = draw(st.sampled_from(["LEADER", "CONFLICT"])) if n == m else \
                    draw(st.sampled_from(["FOLLOWER", "CANDIDATE", "UNSYNCED", "unreachable"]))
        sweeps.append(states)
    return groups, sweeps


@settings(max_examples=200, deadline=None)
@given(partitioned_history(), st.data())
def test_one_master_per_group_valid_and_a_second_master_invalidates(hg, data):
    groups, sweeps = hg
    samples = [s for k, states in enumerate(sweeps) for s in _sweep(k, states)]
    ok = checker.one_master(samples, 0.0, groups)
    assert ok.valid is True and ok.details["bad"] == []
    # a second concurrent master in one group, in one sweep: invalid, and that sweep is named
    k = data.draw(st.integers(0, len(sweeps) - 1))
    g = data.draw(st.sampled_from(groups))
    others = [n for n in g if sweeps[k][n] not in history.MASTER_STATES]
    if not others:
        return
    bad = dict(sweeps[k])
    bad[data.draw(st.sampled_from(others))] = data.draw(st.sampled_from(["LEADER", "CONFLICT"]))
    samples2 = [s for j, states in enumerate(sweeps) for s in _sweep(j, bad if j == k else states)]
    r = checker.one_master(samples2, 0.0, groups)
    assert r.valid is False and [b["t_ref"] for b in r.details["bad"]] == [10.0 * k]
    # the two groups seen as one cluster always have two masters
    assert checker.one_master(samples, 0.0, None).valid is False


@settings(max_examples=50, deadline=None)
@given(partitioned_history(), st.floats(0.0, 1e6))
def test_one_master_without_data_is_unknown_never_true(hg, since):
    groups, sweeps = hg
    samples = [s for k, states in enumerate(sweeps) for s in _sweep(k, states)]
    later = since + 10.0 * len(sweeps)     # after every sweep
    assert checker.one_master(samples, later, groups).valid == "unknown"
    assert checker.one_master([], since, groups).valid == "unknown"


def test_healthy_and_settled():
    s = {n: Sample(1.0, n, 0.0, None, "FOLLOWER", "n1", 1) for n in ("n2", "n3")}
    s["n1"] = Sample(1.0, "n1", 0.0, None, "LEADER", None, 1)
    assert checker.healthy(s, ["n1", "n2", "n3"]).valid is True
    s["n3"] = Sample(1.0, "n3", 0.0, None, "FOLLOWER", "n2", 1)
    r = checker.healthy(s, ["n1", "n2", "n3"])
    assert r.valid is False and r.details["master"] == "n1" and "n3=FOLLOWER" in r.reason
    assert checker.healthy({}, ["n1"]).reason == "no answer from n1"
    assert checker.settled(list(s.values()), 0.0, ["n1", "n2"]) == (1.0, "n1")
    assert checker.settled(list(s.values()), 0.0, ["n1", "n3"]) == (None, None)


# --- skew, rounds ----------------------------------------------------------------------

def test_sweep_skew_counts_in_sync_nodes_only():
    g = [Sample(0.0, "n1", 0.001, state="LEADER"), Sample(0.0, "n2", -0.002, state="FOLLOWER"),
         Sample(0.0, "n3", 0.5, state="UNSYNCED"), Sample(0.0, "n4", None, state="unreachable"),
         Sample(0.0, "n5", 0.004, state="FOLLOWER")]
    assert checker.sweep_skew(g) == pytest.approx(0.006)
    assert checker.sweep_skew(g, exclude=["n5"]) == pytest.approx(0.003)
    assert checker.sweep_skew(g[:1]) is None


def _member(post, kind="adjtime", corr=0.0, pb=1e-4, lag=0.1):
    return checker.RoundMember(kind, corr, 1e-4, math.nan, post, pb, lag)


def test_round_check_within_unknown_and_exception_classes():
    ok = checker.round_check([_member(0.0), _member(1e-4)], 100.0)
    assert ok.within.valid is True and ok.exception is None
    assert ok.bound_s == pytest.approx(2 * 2e-4 + 2 * 100e-6 * 0.1)
    assert checker.round_check([_member(0.0)], 100.0).within.valid == "unknown"
    assert checker.round_check([_member(0.0, pb=math.nan), _member(1.0, pb=math.nan)], 100.0).within.valid \
        == "unknown"
    over = [_member(0.0), _member(0.01)]
    assert checker.round_check(over, 100.0).exception == "unexplained"
    assert checker.round_check(over, 100.0, interval_s=0.2).exception == "late_sample"
    assert checker.round_check(over, 100.0, obs_bound_median_s=1e-5).exception == "observer"
    r = checker.round_check([_member(0.0), _member(0.01, kind="settime")], 100.0)
    assert r.exception == "rejoin" and r.within.valid is False and "rejoin" in r.within.reason


def test_between_rounds():
    assert checker.between_rounds(1.0, 2.0, "n1", "n1")
    assert not checker.between_rounds(3.5, 2.0, "n1", "n1")       # > 1.5 intervals
    assert not checker.between_rounds(1.0, 2.0, "n1,n2", "n1")    # two leaders
    assert not checker.between_rounds(math.nan, 2.0, "n1", "n1")
    assert not checker.between_rounds(-0.1, 2.0, "n1", "n1")


def test_fault_is_a_value():
    f = Fault("kill", ("n1",), 1.0)
    assert f.end is None and f.groups == ()


def test_importable_without_pandas():
    code = ("import sys; sys.modules['pandas'] = None; sys.modules['numpy'] = None\n"
            "import tempod.facts, tempod.facts.checker, tempod.sim\nprint('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr



def test_suite_faults_use_the_vocabulary_and_accept_old_names():
    from tempolab.errors import ConfigError
    from tempolab.runner.suite import FAULT_KINDS, parse_suite

    assert FAULT_KINDS == history.FAULT_KINDS
    s = parse_suite({"faults": [{"kind": "pause", "at_s": 5, "duration_s": 3}]}, "p.yaml")
    assert s.faults[0].kind == "stop"
    with pytest.raises(ConfigError, match="expected one of kill, stop"):
        parse_suite({"faults": [{"kind": "explode", "at_s": 5}]}, "p.yaml")


finite_or_nan = st.one_of(st.just(math.nan), st.floats(-1e-2, 1e-2))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(finite_or_nan, finite_or_nan, st.floats(0.0, 1.0)), min_size=0, max_size=6),
       st.floats(0.0, 1e3))
def test_round_check_is_true_only_with_two_post_samples_and_a_bound(rows, rho):
    members = [checker.RoundMember("adjtime", 0.0, 1e-4, math.nan, post, pb, lag) for post, pb, lag in rows]
    r = checker.round_check(members, rho)
    posts = [m.post_offset_s for m in members if math.isfinite(m.post_offset_s)]
    bounds = [m.post_bound_s for m in members if math.isfinite(m.post_bound_s)]
    if len(posts) < 2 or not bounds:
        assert r.within.valid == "unknown" and r.exception is None
    else:
        assert r.within.valid is (r.post_skew_s <= r.bound_s)
        assert (r.exception is None) is (r.within.valid is True)


def test_stepped_down_and_detected():
    ss = [Sample(1.0, "n1", 0.0, state="LEADER"), Sample(2.0, "n1", None, state="unreachable"),
          Sample(3.0, "n1", 0.0, state="FOLLOWER", master="n2"), Sample(2.5, "n2", 0.0, state="CANDIDATE")]
    assert checker.stepped_down(ss, "n1", 0.0) == 3.0
    assert checker.stepped_down(ss, "n1", 0.0, until=2.9) is None
    assert checker.detected_by_observer(ss, 0.5, "n1") == 2.5
    ch = [StateChange(2.0, "n1", "FOLLOWER", "START"), StateChange(2.4, "n3", "FOLLOWER", "START"),
          StateChange(2.6, "n2", "FOLLOWER", "CANDIDATE")]
    assert checker.detected(ch, 1.0, "n1") == 2.4          # the old master's own change does not count
    assert checker.detected(ch, 2.5, "n1") == 2.6 and checker.detected(ch, 3.0, "n1") is None
