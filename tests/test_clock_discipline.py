"""SoftwareClock: sign convention, slew/step/hold rules, FLL convergence, invariants."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tempod.clocks import Discipline, SimClock
from tempod.discipline import HOLD, SLEW, STEP, ClockChange, SoftwareClock

HW0 = 1_795_000_000.0  # a realistic Unix time: float spacing here is ~2.4e-7 s


def test_sign_convention_correction_is_added() -> None:
    c = SoftwareClock(slew_max_ppm=500.0, step_threshold_s=0.128, freq_max_ppm=0.0)
    assert c.adjust(+0.001, HW0) == SLEW
    # 1 ms at 500 ppm takes 2 s; after that the clock reads exactly 1 ms more than hw.
    assert c.corrected(HW0 + 10.0) == pytest.approx(HW0 + 10.0 + 0.001, abs=1e-6)
    c2 = SoftwareClock(freq_max_ppm=0.0)
    c2.adjust(-0.001, HW0)
    assert c2.corrected(HW0 + 10.0) == pytest.approx(HW0 + 10.0 - 0.001, abs=1e-6)


def test_clock_is_hw_before_any_correction() -> None:
    c = SoftwareClock()
    assert c.corrected(HW0) == HW0
    assert c.state(HW0) == {"hw_s": HW0, "clk_s": HW0, "adjust_s": 0.0, "freq_ppm": 0.0, "slew_remaining_s": 0.0}


def test_slew_rate_is_bounded_and_remaining_reported() -> None:
    c = SoftwareClock(slew_max_ppm=500.0, freq_max_ppm=0.0)
    c.adjust(0.1, HW0)  # below the 0.128 s threshold: slewed, takes 200 s
    assert c.corrected(HW0 + 100.0) - (HW0 + 100.0) == pytest.approx(0.05, abs=1e-6)
    assert c.state(HW0 + 100.0)["slew_remaining_s"] == pytest.approx(0.05, abs=1e-9)
    assert c.state(HW0 + 300.0)["slew_remaining_s"] == 0.0


def test_large_positive_correction_steps_forward() -> None:
    c = SoftwareClock(freq_max_ppm=0.0)
    assert c.adjust(2.0, HW0) == STEP
    assert c.corrected(HW0) == pytest.approx(HW0 + 2.0, abs=1e-6)


def test_large_negative_correction_holds_at_reduced_rate_never_backwards() -> None:
    c = SoftwareClock(freq_max_ppm=0.0, backward_slew_ppm=500_000.0)
    before = c.corrected(HW0)
    assert c.adjust(-1.0, HW0) == HOLD
    assert c.corrected(HW0) == before  # no jump
    # Half speed: after 1 hw second the clock advanced 0.5 s; absorbed after 2 s.
    assert c.corrected(HW0 + 1.0) - before == pytest.approx(0.5, abs=1e-6)
    assert c.corrected(HW0 + 5.0) == pytest.approx(HW0 + 5.0 - 1.0, abs=1e-6)


def test_set_time_forward_steps_backward_holds() -> None:
    c = SoftwareClock(freq_max_ppm=0.0)
    assert c.set_time(HW0 + 0.05, HW0) == STEP  # forward: step even below the threshold
    assert c.corrected(HW0) == pytest.approx(HW0 + 0.05, abs=1e-6)
    assert c.set_time(HW0 + 10.0 - 3.0, HW0 + 10.0) == HOLD
    assert c.corrected(HW0 + 10.0) == pytest.approx(HW0 + 10.05, abs=1e-6)  # not moved back
    assert c.corrected(HW0 + 30.0) == pytest.approx(HW0 + 27.0, abs=1e-6)


def test_new_adjust_replaces_pending_slew_and_listener_sees_it() -> None:
    seen: list[ClockChange] = []
    c = SoftwareClock(freq_max_ppm=0.0)
    c.add_listener(seen.append)
    c.adjust(0.01, HW0)  # 20 s of slewing
    c.adjust(0.0, HW0 + 10.0)
    assert seen[-1].discarded_s == pytest.approx(0.005, abs=1e-9)
    assert c.corrected(HW0 + 100.0) - (HW0 + 100.0) == pytest.approx(0.005, abs=1e-6)
    c.adjust(1.0, HW0 + 200.0)
    assert seen[-1].kind == STEP and seen[-1].step_s == 1.0


def test_fll_cancels_a_10_percent_rate_error() -> None:
    """+10% hardware, exact corrections every 10 s: well under 1 ms between rounds soon."""
    hw_clock = SimClock(offset_s=2.5, rate_ppm=100_000.0, epoch_s=HW0)
    c = SoftwareClock(slew_max_ppm=500.0, step_threshold_s=0.128, freq_max_ppm=150_000.0)
    worst_by_round = []
    for r in range(6):
        t = HW0 + 10.0 * r
        hw = hw_clock.read(t)
        c.adjust(t - c.corrected(hw), hw)  # exact correction: true - clk
        worst = max(
            abs(c.corrected(hw_clock.read(t + k * 0.25)) - (t + k * 0.25)) for k in range(1, 40)
        )
        worst_by_round.append(worst)
    assert c.freq_ppm == pytest.approx(1e6 / 1.1 - 1e6, rel=1e-6)  # -90909 ppm
    assert all(w < 1e-4 for w in worst_by_round[2:]), worst_by_round
    assert worst_by_round[0] > 0.5  # the first intervals really had an error to remove


def test_fll_is_bounded_by_freq_max() -> None:
    c = SoftwareClock(freq_max_ppm=1000.0)
    c.adjust(0.0, HW0)
    c.adjust(-1.0, HW0 + 10.0)  # would imply -100000 ppm
    assert c.freq_ppm == -1000.0


def test_short_intervals_do_not_teach_frequency() -> None:
    c = SoftwareClock(fll_min_interval_s=1.0)
    c.adjust(0.0, HW0)
    c.adjust(0.01, HW0 + 0.5)
    assert c.freq_ppm == 0.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"slew_max_ppm": 0.0},
        {"freq_max_ppm": 600_000.0},
        {"step_threshold_s": -1.0},
        {"slew_max_ppm": math.nan},
    ],
)
def test_bad_parameters_are_rejected(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        SoftwareClock(**kwargs)


def test_bad_inputs_are_rejected() -> None:
    c = SoftwareClock()
    with pytest.raises(ValueError, match="delta_s"):
        c.adjust(math.inf, HW0)
    with pytest.raises(ValueError, match="hw_s"):
        c.adjust(0.0, math.nan)


def test_software_clock_implements_discipline() -> None:
    assert isinstance(SoftwareClock(), Discipline)


# -- property tests ------------------------------------------------------------------
SLEW_PPM = 500.0
FREQ_PPM = 150_000.0
BACK_PPM = 500_000.0

ops = st.lists(
    st.tuples(
        st.sampled_from(["adjust", "set_time", "read"]),
        st.floats(min_value=0.0, max_value=30.0, allow_nan=False),  # hw advance, s
        st.floats(min_value=-3.0, max_value=3.0, allow_nan=False),  # delta / target offset
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_property_monotonic_and_rate_bounded(seq: list[tuple[str, float, float]]) -> None:
    c = SoftwareClock(SLEW_PPM, 0.128, FREQ_PPM, backward_slew_ppm=BACK_PPM)
    hw = HW0
    last_hw, last_clk = hw, c.corrected(hw)
    for op, advance, value in seq:
        # Sample the interval before the operation: rate within bounds, never backwards.
        for frac in (0.25, 0.5, 1.0):
            h = hw + advance * frac
            clk = c.corrected(h)
            assert clk >= last_clk
            if h - last_hw > 1e-3:
                rate = (clk - last_clk) / (h - last_hw)
                # Float resolution at 1.8e9 s is 2.4e-7 s: allow that over the interval.
                slack = 5e-7 / (h - last_hw)
                assert rate <= 1 + (FREQ_PPM + SLEW_PPM) * 1e-6 + slack
                assert rate >= 1 - (FREQ_PPM + BACK_PPM) * 1e-6 - slack
            last_hw, last_clk = h, clk
        hw += advance
        if op == "adjust":
            c.adjust(value, hw)
        elif op == "set_time":
            c.set_time(c.corrected(hw) + value, hw)
        after = c.corrected(hw)
        assert after >= last_clk  # steps only go forward
        # A step makes the instantaneous "rate" infinite: restart the rate window.
        last_hw, last_clk = hw, after


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0.0, max_value=50.0, allow_nan=False),
            st.floats(min_value=-0.128, max_value=0.128, allow_nan=False),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_property_applied_offset_equals_requests_minus_discarded(seq: list[tuple[float, float]]) -> None:
    """After every slew completes: applied = sum(requested) - sum(discarded by replacement)."""
    c = SoftwareClock(SLEW_PPM, 0.128, freq_max_ppm=0.0)
    discarded: list[float] = []
    c.add_listener(lambda ch: discarded.append(ch.discarded_s))
    hw = HW0
    requested = 0.0
    for advance, delta in seq:
        hw += advance
        c.adjust(delta, hw)
        requested += delta
    end = hw + 0.128 / (SLEW_PPM * 1e-6) + 1.0  # every slew has finished by now
    applied = c.corrected(end) - end
    assert applied == pytest.approx(requested - sum(discarded), abs=2e-6)
    assert c.state(end)["slew_remaining_s"] == 0.0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=-0.128, max_value=0.128, allow_nan=False), min_size=1, max_size=20))
def test_property_completed_slews_sum_exactly(deltas: list[float]) -> None:
    """Corrections spaced so each slew completes first: the applied offset is their sum."""
    c = SoftwareClock(SLEW_PPM, 0.128, freq_max_ppm=0.0)
    hw = HW0
    for d in deltas:
        c.adjust(d, hw)
        hw += abs(d) / (SLEW_PPM * 1e-6) + 1.0
    assert c.corrected(hw) - hw == pytest.approx(sum(deltas), abs=2e-6)


def test_a_backward_adjust_during_a_hold_keeps_the_hold_rate():
    # A restarted node: SETTIME 1.0128 s back (hold at half speed, 2.03 s), and the next
    # round's ADJTIME 2 s later asks again for what is left (12.8 ms here). Before, that
    # rest was slewed at 500 ppm; a 44 ms rest measured in the lab took 90 s.
    c = SoftwareClock(freq_max_ppm=0.0)
    c.set_time(100.0 - 1.0128, hw_s=100.0)
    left = c.slew_remaining(102.0)
    assert -0.02 < left < 0.0
    assert c.adjust(left, hw_s=102.0) == HOLD
    assert c.slew_remaining(102.0 + 2 * abs(left) + 1e-9) == 0.0
    # once the hold is over, a small backward correction is an ordinary slew again
    assert c.adjust(-0.001, hw_s=110.0) == SLEW
    # a forward correction during a hold is not held
    c.set_time(c.corrected(120.0) - 0.5, hw_s=120.0)
    assert c.adjust(+0.001, hw_s=120.1) == SLEW
