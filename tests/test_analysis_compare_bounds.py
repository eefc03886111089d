"""`tempo compare` judges each run's rounds against the same bound as that run's own
report: the run's slew/step limits, observer bound and round interval (it used the
defaults and no observer term, so a compared run could be within bound in one and not
in the other)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd

from tempolab.analysis import compare
from tempolab.analysis import summary as summ
from tempolab.analysis.load import load_run
from tempolab.analysis.tables import build_tables

EXAMPLE = Path(__file__).resolve().parents[1] / "results" / "example"


def test_compare_round_summary_is_the_reports(tmp_path):
    # a copy of the example whose daemons slewed at most 50 ppm (the default is 500):
    # the slew term of the bound is then another, and compare must use it
    copy = tmp_path / "run"
    shutil.copytree(EXAMPLE, copy)
    m = json.loads((copy / "manifest.json").read_text())
    m["suite"].setdefault("daemon", {})["slew_max_ppm"] = 50.0
    (copy / "manifest.json").write_text(json.dumps(m))
    view = compare._view(copy, lambda name, fn, fb: fn(), "example")
    run = load_run(copy)
    report_rs = summ.run_round_summary(run, build_tables(run, lambda name, fn, fb: fn()))
    assert len(view.round_sum) == len(report_rs) > 0
    pd.testing.assert_series_equal(view.round_sum["bound_s"].reset_index(drop=True),
                                   report_rs["bound_s"].reset_index(drop=True))
