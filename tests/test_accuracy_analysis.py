"""Issue #6: unsynchronized samples (a restarted node before its first correction) are
left out of the skew figures and reported with their count and duration."""

from __future__ import annotations

import pandas as pd
import pytest

from tempolab.analysis.summary import unsynchronized_samples
from tempolab.analysis.tables import UNSYNCED_STATE, rounds_table


def _samples(rows: list[tuple[float, str, float, str]]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["t_ref", "node", "offset_s", "state"])
    df["bound_s"] = 1e-5
    df["responded"] = df["offset_s"].notna()
    df["in_sync"] = df["responded"] & df["state"].isin(["LEADER", "FOLLOWER"])
    df["trial"] = 1
    return df


def test_unsynchronized_count_and_duration_per_node() -> None:
    rows = []
    for k in range(10):                       # 10 Hz sweeps, t = 0.0 .. 0.9
        t = k * 0.1
        rows.append((t, "n1", 0.0, "LEADER"))
        # n2 restarted: UNSYNCED (raw clock 0.4 s off) for t = 0.2 .. 0.5, then corrected
        unsynced = 0.2 <= t < 0.55
        rows.append((t, "n2", 0.4 if unsynced else 1e-5, UNSYNCED_STATE if unsynced else "FOLLOWER"))
    got = unsynchronized_samples(_samples(rows))
    assert got["samples"] == 4
    assert got["nodes"] == {"n2": {"samples": 4, "duration_s": pytest.approx(0.4)}}
    assert got["duration_s"] == pytest.approx(0.4)


def test_unsynchronized_run_at_the_end_counts_one_sampling_period() -> None:
    rows = [(k * 0.1, "n3", 0.2, UNSYNCED_STATE) for k in range(3)]
    got = unsynchronized_samples(_samples(rows))
    assert got["samples"] == 3 and got["duration_s"] == pytest.approx(0.3)


def test_none_unsynchronized() -> None:
    got = unsynchronized_samples(_samples([(0.0, "n1", 0.0, "LEADER"), (0.1, "n1", 0.0, "LEADER")]))
    assert got == {"samples": 0, "nodes": {}, "duration_s": 0.0}


def test_round_post_sample_skips_unsynchronized_samples() -> None:
    # A round at t=1.0 corrects n2; the observer's next n2 sample (t=1.05) still came
    # from before the correction reached it (UNSYNCED, raw clock 0.3 s off): the post
    # sample must be the first synchronized one (t=1.15).
    samples = _samples([(0.95, "n1", 0.0, "LEADER"), (0.95, "n2", 0.3, UNSYNCED_STATE),
                        (1.05, "n1", 0.0, "LEADER"), (1.05, "n2", 0.3, UNSYNCED_STATE),
                        (1.15, "n1", 0.0, "LEADER"), (1.15, "n2", 2e-5, "FOLLOWER")])
    events = pd.DataFrame([{"ev": "round", "node": "n1", "round": 1, "hw": 1.0, "t_ref": 1.0,
                            "t_ref_source": "profile", "master": "n1", "duration_s": 0.0,
                            "master_correction_s": 0.0,
                            "followers": [{"name": "n2", "offset_s": 0.3, "bound_s": 1e-5, "rtt_s": 2e-5,
                                           "in_group": False, "correction_s": -0.3, "kind": "settime"}]}])
    trials = pd.DataFrame([{"trial": 1, "t_start": 0.0, "t_end": 2.0}])
    r = rounds_table(events, samples, trials, 1.0, []).set_index("node")
    assert r.loc["n2", "obs_post_offset_s"] == pytest.approx(2e-5)
    assert pd.isna(r.loc["n2", "obs_pre_offset_s"])     # its only earlier samples were UNSYNCED
