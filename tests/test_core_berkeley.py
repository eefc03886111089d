"""Berkeley round maths: probe sample signs, min-RTT choice, fault-tolerant average."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings, strategies as st

from tempod.berkeley import (ADJTIME, SETTIME, Sample, best_sample, corrections,
                             fault_tolerant_average, probe_sample)


def test_probe_sample_sign_and_bound():
    # follower 5 ms ahead of the master, 1 ms each way, 0.2 ms hold
    t1 = 100.0
    t2 = t1 + 0.001 + 0.005
    t3 = t2 + 0.0002
    t4 = t3 - 0.005 + 0.001
    s = probe_sample(t1, t2, t3, t4)
    assert s.offset_s == pytest.approx(0.005, abs=1e-12)   # follower - master, positive = ahead
    assert s.rtt_s == pytest.approx(0.002, abs=1e-12)
    assert s.bound_s == pytest.approx(0.001, abs=1e-12)


def test_probe_sample_asymmetric_delay_error_within_bound():
    t1 = 0.0
    t2 = 0.003          # 3 ms out, follower exactly in step
    t3 = 0.003
    t4 = 0.004          # 1 ms back
    s = probe_sample(t1, t2, t3, t4)
    assert abs(s.offset_s - 0.0) <= s.bound_s + 1e-15
    assert s.offset_s == pytest.approx(0.001)


def test_best_sample_keeps_min_rtt():
    a, b, c = Sample(0.1, 0.004, 0.002), Sample(0.2, 0.001, 0.0005), Sample(0.3, 0.002, 0.001)
    assert best_sample([a, b, c]) is b
    with pytest.raises(ValueError):
        best_sample([])


def test_fta_largest_group_and_master_counted():
    offs = {"a": (0.010, 0.0), "b": (0.012, 0.0), "c": (5.0, 0.0)}
    avg, group = fault_tolerant_average(offs, 0.020, master="m")
    assert group == {"m", "a", "b"}
    assert avg == pytest.approx((0.0 + 0.010 + 0.012) / 3)


def test_fta_tie_prefers_group_with_master():
    # two groups of two: {m, a} around 0 and {b, c} around 1 s
    offs = {"a": (0.005, 0.0), "b": (1.0, 0.0), "c": (1.001, 0.0)}
    avg, group = fault_tolerant_average(offs, 0.020, master="m")
    assert group == {"m", "a"}
    assert avg == pytest.approx(0.0025)


def test_fta_rejects_bad_input():
    with pytest.raises(ValueError):
        fault_tolerant_average({"a": (0.0, 0.0)}, 0.0)
    with pytest.raises(ValueError):
        fault_tolerant_average({"a": (math.nan, 0.0)}, 0.02)
    with pytest.raises(ValueError):
        fault_tolerant_average({}, 0.02)


def test_corrections_kinds_and_signs():
    corr, mine = corrections({"a": 0.004, "b": -2.0, "c": 0.0}, 0.001, 1.0, joined=["c"])
    assert corr["a"].correction_s == pytest.approx(-0.003) and corr["a"].kind == ADJTIME
    assert corr["b"].correction_s == pytest.approx(2.001) and corr["b"].kind == SETTIME
    assert corr["c"].kind == SETTIME          # just joined
    assert mine == 0.001
    # after applying, every follower sits at the average (relative to the old master clock)
    for name, off in {"a": 0.004, "b": -2.0}.items():
        assert off + corr[name].correction_s == pytest.approx(0.001)


offsets_st = st.dictionaries(st.sampled_from([f"n{i}" for i in range(2, 12)]),
                             st.floats(-0.05, 0.05, allow_nan=False), min_size=1, max_size=10)


@settings(max_examples=200, deadline=None)
@given(offsets_st, st.floats(10.0, 1e3))
def test_outliers_never_move_the_average(offs, outlier):
    base = {k: (v, 0.0) for k, v in offs.items()}
    avg, group = fault_tolerant_average(base, 0.020, master="n1")
    if len(group) < 2:
        return   # a lone clock's group can tie with a lone outlier; the property is about majorities
    with_out = dict(base, x=(outlier, 0.0))
    avg2, group2 = fault_tolerant_average(with_out, 0.020, master="n1")
    assert "x" not in group2
    assert avg2 == avg and group2 == group


@settings(max_examples=200, deadline=None)
@given(offsets_st, st.floats(0.001, 0.1))
def test_average_within_group_range_and_group_agrees(offs, agree):
    base = {k: (v, 0.0) for k, v in offs.items()}
    avg, group = fault_tolerant_average(base, agree, master="n1")
    vals = [0.0 if n == "n1" else base[n][0] for n in group]
    assert min(vals) - 1e-12 <= avg <= max(vals) + 1e-12
    assert max(vals) - min(vals) <= agree
    # no larger agreeing group exists: any window of width `agree` holds <= len(group)
    allv = sorted([v for v, _ in base.values()] + [0.0])
    for lo in allv:
        assert sum(1 for v in allv if lo <= v <= lo + agree) <= len(group)


@settings(max_examples=100, deadline=None)
@given(offsets_st, st.randoms(use_true_random=False))
def test_permutation_invariance(offs, rnd):
    items = list(offs.items())
    a = fault_tolerant_average({k: (v, 0.0) for k, v in items}, 0.02, master="n1")
    rnd.shuffle(items)
    b = fault_tolerant_average({k: (v, 0.0) for k, v in items}, 0.02, master="n1")
    assert a[1] == b[1]
    assert a[0] == pytest.approx(b[0], abs=1e-15)
