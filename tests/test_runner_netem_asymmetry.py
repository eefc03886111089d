"""The asymmetry suite's analysis on synthetic observer data: the measured bias, the
theory -(d_out - d_back) / 2, the windows read back from fault records, the figure."""

from __future__ import annotations

import random

import pandas as pd
import pytest

from tempolab.analysis import asymmetry
from tempolab.analysis.asymmetry import Window, expected_bias_s, measure, windows_from_faults

WINDOWS = [Window(100.0, 130.0, "n2", 4.0, 0.0), Window(137.0, 167.0, "n2", 0.0, 4.0),
           Window(174.0, 204.0, "n2", 8.0, 0.0), Window(211.0, 241.0, "n2", 10.0, 2.0)]


def synthetic(windows, *, bias_scale: float = 1.0, noise_s: float = 200e-6, seed: int = 1,
              transient_s: float = 6.0) -> pd.DataFrame:
    """Observer samples at 5 Hz: the master wanders, followers sit at bias_scale x theory
    after a transient (which settle_s must exclude), plus Gaussian noise."""
    rng = random.Random(seed)
    rows = []
    t = 90.0
    while t < 245.0:
        master_off = 0.002 * (t - 90.0) / 155.0  # the group drifts slowly against true time
        w = next((w for w in windows if w.t_start <= t <= w.t_end), None)
        for node in ("n1", "n2", "n3"):
            off = master_off
            if node != "n2" and w is not None:
                target = bias_scale * expected_bias_s(w.asymmetry_ms)
                off += target if t > w.t_start + transient_s else target * 5  # transient overshoot
            rows.append({"t_ref": t, "node": node, "offset_s": off + rng.gauss(0.0, noise_s)})
        t += 0.2
    return pd.DataFrame(rows)


def test_theory_sign() -> None:
    # the master's packets wait longer: its estimate of a follower is too high, so the
    # follower is corrected to below the master
    assert expected_bias_s(4.0) == pytest.approx(-0.002)
    assert expected_bias_s(-4.0) == pytest.approx(+0.002)


def test_measured_bias_matches_theory_on_synthetic_data() -> None:
    r = measure(synthetic(WINDOWS), WINDOWS, settle_s=10.0)
    assert list(r["asymmetry_ms"]) == [4.0, -4.0, 8.0, 8.0]
    assert r["measured_bias_s"].tolist() == pytest.approx(r["expected_bias_s"].tolist(), abs=1e-4)
    assert r["within"].all()
    assert (r["samples"] > 100).all()
    assert r["follower_spread_s"].max() < 5e-4


def test_a_loop_without_the_bias_fails_the_check() -> None:
    r = measure(synthetic(WINDOWS, bias_scale=0.0), WINDOWS, settle_s=10.0)
    assert not r.loc[r["asymmetry_ms"].abs() >= 8.0, "within"].any()  # 4 ms off: outside the 1 ms floor
    r = measure(synthetic(WINDOWS, bias_scale=2.0), WINDOWS, settle_s=10.0)
    assert not r["within"].any()


def test_settle_time_excludes_the_transient() -> None:
    data = synthetic(WINDOWS, transient_s=20.0)
    assert measure(data, WINDOWS, settle_s=22.0)["within"].all()
    assert not measure(data, WINDOWS, settle_s=0.0)["within"].any()


def test_a_window_without_the_master_is_not_within() -> None:
    r = measure(synthetic(WINDOWS).query("node != 'n2'"), WINDOWS)
    assert r["measured_bias_s"].isna().all() and not r["within"].any()


def test_windows_from_fault_records() -> None:
    recs = [
        {"t_ref": 100.0, "trial": 0, "fault_id": 0, "kind": "asym_delay", "phase": "start", "targets": ["n2"],
         "detail": "netem asymmetric delay: n2 -> others 4 ms, others -> n2 0 ms"},
        {"t_ref": 130.0, "trial": 0, "fault_id": 0, "kind": "asym_delay", "phase": "end", "targets": ["n2"], "detail": ""},
        {"t_ref": 137.0, "trial": 0, "fault_id": 1, "kind": "asym_delay", "phase": "start", "targets": ["n2"],
         "detail": "x", "delay_ms": 0.0, "reverse_delay_ms": 4.0},
        {"t_ref": 140.0, "trial": 0, "fault_id": 2, "kind": "kill", "phase": "start", "targets": ["n1"], "detail": ""},
    ]
    ws = windows_from_faults(pd.DataFrame(recs), t_last=170.0)
    assert ws == [Window(100.0, 130.0, "n2", 4.0, 0.0), Window(137.0, 170.0, "n2", 0.0, 4.0)]


def test_figure_draws_theory_and_points(tmp_path) -> None:
    fig = asymmetry.figure(measure(synthetic(WINDOWS), WINDOWS))
    ax = fig.axes[0]
    assert "theory" in ax.get_legend_handles_labels()[1][0]
    assert ax.get_xlabel().startswith("delay asymmetry")
    fig.savefig(tmp_path / "asym.png")
    assert (tmp_path / "asym.png").stat().st_size > 5000
