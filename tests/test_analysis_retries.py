"""The observer's clock filter in the analysis: one sample per node per sweep, the one
with the smallest error bound; run folders written before retries existed give the same
figures as before."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tempolab.analysis import summary as summ
from tempolab.analysis.load import load_run
from tempolab.testing.synthetic import SyntheticSpec, make_run
from tempolab.analysis.tables import best_per_sweep, build_tables, samples_table, sweeps_table


def _accuracy(path):
    run = load_run(path)
    t = build_tables(run)
    return run, t, summ.accuracy_section(run, t), summ.observer_section(t)


def test_best_per_sweep_keeps_the_smallest_bound_per_node():
    df = pd.DataFrame([
        {"trial": 1, "sweep": 7, "node": "n1", "offset_s": 2.1e-3, "bound_s": 2.0e-3, "retry": 0, "superseded": True},
        {"trial": 1, "sweep": 7, "node": "n1", "offset_s": 0.2e-3, "bound_s": 0.4e-3, "retry": 1, "superseded": True},
        {"trial": 1, "sweep": 7, "node": "n1", "offset_s": 0.1e-3, "bound_s": 0.04e-3, "retry": 2, "superseded": False},
        {"trial": 1, "sweep": 7, "node": "n2", "offset_s": 0.0, "bound_s": 0.03e-3, "retry": 0, "superseded": False},
        # a lost retry does not replace an answer
        {"trial": 1, "sweep": 8, "node": "n1", "offset_s": 0.3e-3, "bound_s": 0.9e-3, "retry": 0, "superseded": False},
        {"trial": 1, "sweep": 8, "node": "n1", "offset_s": None, "bound_s": None, "retry": 1, "superseded": True},
        # the same sweep number in another trial is another sweep
        {"trial": 2, "sweep": 7, "node": "n1", "offset_s": 5e-3, "bound_s": 1e-3, "retry": 0, "superseded": False},
    ])
    got = best_per_sweep(df)
    assert list(got.index) == [2, 3, 4, 6]
    assert not got["superseded"].any()        # the analysis' pick is the observer's pick


def test_old_run_folders_give_the_same_figures(tmp_path):
    """A synthetic run folder has no retry fields, as every folder written before them."""
    path = tmp_path / "20261123-100000-leader-kill"
    make_run(path, SyntheticSpec(nodes=5, seed=11, trials=2))
    run, t, acc, obs = _accuracy(path)
    assert obs["superseded"] == 0
    raw = samples_table(run, [], best_only=False)
    pd.testing.assert_frame_equal(t.samples.reset_index(drop=True), raw.reset_index(drop=True))


def test_retried_samples_are_left_out_of_every_skew(tmp_path):
    path = tmp_path / "20261123-100000-leader-kill"
    make_run(path, SyntheticSpec(nodes=5, seed=11, trials=2))
    _, _, before, obs_before = _accuracy(path)
    # add, for every 10th sweep of n2, a preempted first reply 3 ms off with a 3 ms bound
    # that the observer re-queried; the recorded retry is the sample already there
    lines = [json.loads(x) for x in (path / "observer.jsonl").read_text().splitlines() if x.strip()]
    out = []
    added = 0
    for rec in lines:
        if rec["node"] == "n2" and rec.get("offset_s") is not None and rec["sweep"] % 10 == 0:
            out.append({**rec, "t_ref": rec["t_ref"] - 0.004, "offset_s": rec["offset_s"] + 3e-3,
                        "bound_s": 3e-3, "rtt_s": 6e-3, "retry": 0, "superseded": True})
            rec = {**rec, "retry": 1, "superseded": False}
            added += 1
        out.append(rec)
    assert added >= 5
    (path / "observer.jsonl").write_text("".join(json.dumps(r) + "\n" for r in out))
    run, t, after, obs_after = _accuracy(path)
    assert obs_after["superseded"] == added
    for key in ("post_sync_skew_s", "between_round_max_skew_s"):
        assert after[key] == before[key], key
    assert obs_after["bound_s_p99"] == obs_before["bound_s_p99"]
    # the all-samples view still sees the preempted replies
    raw = samples_table(run, [], best_only=False)
    assert len(raw) == len(t.samples) + added
    assert sweeps_table(raw)["max_skew_s"].max() > sweeps_table(t.samples)["max_skew_s"].max() + 2e-3
