"""What `tempo demo` prints at its end: the headline numbers and what is still up."""

from __future__ import annotations

from tempolab.analysis import build_report
from tempolab.testing.synthetic import SyntheticSpec, make_run
from tempolab.cmd_demo import headline_lines
from tempolab.leftovers import still_up_line


def test_headline_lines_name_accuracy_failover_resync_and_cpu(tmp_path):
    make_run(tmp_path / "r", SyntheticSpec(seed=2))
    s = build_report(tmp_path / "r", write=False, figures=False).summary
    text = "\n".join(headline_lines(s))
    for what in ("pre-sync skew", "post-sync skew", "rounds within the stated bound", "new master",
                 "first round", "CPU per 10 s round", "master", "follower", "baseline", "cross-check"):
        assert what in text, what
    assert "n/a" not in text.split("restart")[0]


def test_still_up_for_a_lab_that_does_not_exist():
    assert still_up_line("tnone") == "still up: nothing (lab 'tnone' is down)"
