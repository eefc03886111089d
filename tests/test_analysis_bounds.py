"""The per-round bound: corrections the daemon is still slewing when the observer takes
its post sample are part of the bound; rounds over it get a class with a stated cause."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from tempod.facts import checker
from tempolab.analysis import summary as summ


def test_slew_remaining_follows_the_clock_discipline():
    # 500 ppm slew: 1 ms left of 2 ms after 2 s; a forward SETTIME steps; a backward one holds at half speed
    assert checker.slew_remaining_s(0.002, "adjtime", 2.0) == pytest.approx(0.001)
    assert checker.slew_remaining_s(-0.002, "master", 10.0) == 0.0
    assert checker.slew_remaining_s(0.005, "settime", 0.01) == 0.0
    assert checker.slew_remaining_s(-0.005, "settime", 0.004) == pytest.approx(0.003)
    assert checker.slew_remaining_s(float("nan"), "adjtime", 1.0) == 0.0


def _round(rid, nodes):
    rows = []
    for name, corr, kind, post, lag in nodes:
        rows.append({"round_id": rid, "round": rid, "trial": 1, "master": "n1", "t_ref": 100.0 + rid,
                     "t_apply": 100.0 + rid, "node": name, "daemon_bound_s": 2e-5, "correction_s": corr,
                     "kind": kind, "obs_pre_offset_s": 0.0, "obs_post_offset_s": post, "obs_post_bound_s": 3e-5,
                     "obs_post_t_ref": 100.0 + rid + lag})
    return rows


def test_a_group_still_slewing_the_average_is_within_the_bound_and_a_rejoin_is_classed():
    rounds = pd.DataFrame(
        # the demo's round 40: the group slews -2.67 ms, the restarted node steps: 2.66 ms apart 10 ms later
        _round(1, [("n1", -0.00267, "master", -0.14637, 0.0097), ("n2", -0.00268, "adjtime", -0.14639, 0.0095),
                   ("n3", 0.00535, "settime", -0.14903, 0.0099)])
        # a plain round over its bound with nothing to explain it
        + _round(2, [("n1", 1e-6, "master", 0.0, 0.01), ("n2", 1e-6, "adjtime", 0.0009, 0.01)]))
    rs = summ.round_summary(rounds, 100.0, obs_bound_median_s=3e-5, interval_s=2.0)
    r1, r2 = rs.iloc[0], rs.iloc[1]
    assert r1["post_skew_s"] > r1["landed_bound_s"]          # the old bound said "violated"
    assert r1["within_bound"] and r1["slew_remaining_s"] > 0.005
    assert r2["within_bound"] is False or not r2["within_bound"]
    assert r2["exception"] == "unexplained"
    ex = summ.bound_exceptions(rs)
    assert ex == {"unexplained": {"rounds": 1, "round_ids": [2], "max_post_skew_s": pytest.approx(0.0009),
                                  "cause": summ.EXCEPTION_CAUSES["unexplained"]}}
    assert math.isfinite(r2["bound_s"])
