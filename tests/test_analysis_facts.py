"""The run folder's history (tempod.facts.history.from_records) and the analysis agree:
on results/example (20 leader-kill trials, real records) the failovers the checker
finds over the history built from the raw records are the analysis' log failovers."""

from __future__ import annotations

import math
from pathlib import Path

from tempod.facts import checker, history
from tempolab.analysis.load import load_run
from tempolab.analysis.tables import build_tables

EXAMPLE = Path(__file__).resolve().parents[1] / "results" / "example"


def test_history_from_a_run_folder_gives_the_analysis_failovers():
    run = load_run(EXAMPLE)
    t = build_tables(run)
    # event records in reference time as the analysis placed them (drift profile)
    ev = {n: g.to_dict("records") for n, g in t.events.groupby("node")}
    h = history.from_records(run.faults, ev, run.observer, run.nodes)
    assert h.faults and h.changes and h.rounds and h.samples
    assert all(f.kind in history.FAULT_KINDS for f in h.faults)
    got = checker.failovers(h, kinds=history.MASTER_FAULTS)
    rows = t.failovers.sort_values("fault_t")
    assert len(got) == len(rows) > 0
    for (f, fo), (_, r) in zip(got, rows.iterrows()):
        assert math.isclose(f.start, r["fault_t"], abs_tol=1e-6)
        assert fo.new_master == r["new_master"]
        assert math.isclose(fo.new_master_t, r["log_new_master_t"], rel_tol=0, abs_tol=1e-9)
        assert math.isclose(fo.first_round_t, r["log_first_round_t"], rel_tol=0, abs_tol=1e-9)
    # the observer never saw two masters at once in this run (8848 sweeps), and it saw
    # nothing after its last sample: unknown, not true
    r = checker.one_master(h.samples, h.samples[0].t)
    assert r.valid is True and r.details["sweeps"] > 8000
    assert checker.one_master(h.samples, h.samples[-1].t + 1.0).valid == "unknown"
