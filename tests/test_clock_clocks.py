"""Hardware clock drivers: SimClock, ProcessClock (pure parts), KernelClock read path.
The kernel backend's writes and KernelDiscipline: tests/test_clock_kernel.py."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tempod.clocks import (
    HardwareClock,
    KernelClock,
    ProcessClock,
    SimClock,
)
from tempod.profile import DriftProfile, RateChange, dump_profile

EPOCH = 1_795_000_000.0


# -- SimClock -------------------------------------------------------------------------
def test_simclock_offset_and_rate_sign() -> None:
    c = SimClock(offset_s=2.5, rate_ppm=100.0, epoch_s=EPOCH)
    assert c.read(EPOCH) == EPOCH + 2.5
    assert c.read(EPOCH + 1000.0) == pytest.approx(EPOCH + 1000.0 + 2.5 + 0.1, abs=1e-6)  # fast: ahead
    assert c.true_at(c.read(EPOCH + 1000.0)) == pytest.approx(EPOCH + 1000.0, abs=1e-6)


def test_simclock_wander_is_deterministic_and_varies_rate() -> None:
    a = SimClock(0.0, 50.0, wander_ppm_per_sqrt_s=10.0, seed=3)
    b = SimClock(0.0, 50.0, wander_ppm_per_sqrt_s=10.0, seed=3)
    other = SimClock(0.0, 50.0, wander_ppm_per_sqrt_s=10.0, seed=4)
    ts = [0.5 + 37.3 * k for k in range(30)]
    # Query b in a different order: the lazily drawn path must not depend on it.
    rb = {t: b.read(t) for t in reversed(ts)}
    assert [a.read(t) for t in ts] == [rb[t] for t in ts]
    assert [a.read(t) for t in ts] != [other.read(t) for t in ts]
    rates = {a.rate_at(t) for t in ts}
    assert len(rates) > 10
    # After ~1000 s the rate spread is about 10 * sqrt(1000) = 316 ppm: not tiny, not huge.
    assert 1.0 < max(abs(r - 50.0) for r in rates) < 5000.0


@settings(max_examples=200, deadline=None)
@given(
    st.floats(-10.0, 10.0),
    st.floats(-100_000.0, 100_000.0),
    st.floats(0.0, 200.0),
    st.integers(0, 2**32),
    st.floats(-50.0, 2000.0),
    st.floats(0.0, 100.0),
)
def test_property_simclock_monotonic_and_inverse(off, rate, wander, seed, t, dt) -> None:
    c = SimClock(off, rate, wander, seed)
    h1, h2 = c.read(t), c.read(t + dt)
    assert h2 >= h1
    assert c.true_at(h1) == pytest.approx(t, abs=1e-9)
    assert c.true_at(h2) == pytest.approx(t + dt, abs=1e-9)


def test_simclock_read_s_needs_a_time_source() -> None:
    with pytest.raises(RuntimeError):
        SimClock().read_s()
    now = [10.0]
    c = SimClock(1.0, 0.0, true_now=lambda: now[0])
    assert c.read_s() == 11.0
    assert isinstance(c, HardwareClock)


def test_simclock_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="rate_ppm"):
        SimClock(0.0, 2e6)
    with pytest.raises(ValueError, match="wander"):
        SimClock(0.0, 0.0, -1.0)


# -- ProcessClock ---------------------------------------------------------------------
def test_processclock_plain_is_time_time() -> None:
    c = ProcessClock.from_environ({})
    assert c.mode == "plain"
    assert abs(c.read_s() - time.time()) < 0.01


def test_processclock_faketime_mode_equals_source_until_a_change() -> None:
    prof = DriftProfile(EPOCH, 2.0, 100_000.0, (RateChange(1000.0, 0.0),))
    t0 = EPOCH + 100.0
    fake = [0.0]
    c = ProcessClock(prof, mode="faketime", launch_true_s=t0, source=lambda: fake[0])

    def libfaketime_reading(t: float) -> float:  # what a fixed FAKETIME gives at true t
        return prof.hw_at(t0) + 1.1 * (t - t0)

    for t in (t0, t0 + 500.0, t0 + 899.0):
        fake[0] = libfaketime_reading(t)
        assert c.read_s() == pytest.approx(fake[0], abs=1e-6)
    # After the change at epoch+1000 the profile runs at true rate; libfaketime does not.
    t = EPOCH + 1500.0
    fake[0] = libfaketime_reading(t)
    assert c.read_s() == pytest.approx(prof.hw_at(t), abs=1e-6)
    assert fake[0] - c.read_s() == pytest.approx(0.1 * 500.0, abs=1e-6)  # integral of the rate drop


def test_processclock_from_environ(tmp_path) -> None:
    prof = DriftProfile(EPOCH, 1.0, 0.0)
    p = tmp_path / "drift.toml"
    p.write_text(dump_profile(prof))
    c = ProcessClock.from_environ({"TEMPO_DRIFT_PROFILE": str(p), "TEMPO_CLOCK_MODE": "software"})
    assert c.mode == "software"
    assert abs(c.read_s() - (time.time() + 1.0)) < 0.01
    with pytest.raises(ValueError, match="TEMPO_LAUNCH_TRUE_S"):
        ProcessClock.from_environ({"TEMPO_DRIFT_PROFILE": str(p)})
    with pytest.raises(ValueError, match="mode"):
        ProcessClock(prof, mode="bogus")


# -- KernelClock (read only) ------------------------------------------------------------
def test_kernel_clock_read_path_is_plausible() -> None:
    k = KernelClock()
    assert k.allow_write is False
    before = time.time()
    tx = k.timex()
    after = time.time()
    assert before - 1e-3 <= tx.time_s <= after + 1e-3
    assert abs(k.read_s() - time.time()) < 1e-3
    assert abs(tx.freq_ppm) <= 500.0  # kernel's own bound
    assert tx.state in {"TIME_OK", "TIME_INS", "TIME_DEL", "TIME_OOP", "TIME_WAIT", "TIME_ERROR"}
    assert 9000 <= tx.tick_us <= 11000  # USER_HZ 100: 10000 us nominal
    assert tx.maxerror_s >= 0.0


def test_make_clock_process_backend(tmp_path) -> None:
    from tempod.clocks import make_clock
    from tempod.discipline import SoftwareClock

    p = tmp_path / "drift.toml"
    p.write_text(dump_profile(DriftProfile(EPOCH, 0.5, 0.0)))
    hw, disc = make_clock("process", 500.0, 0.128, 150_000.0, {"TEMPO_DRIFT_PROFILE": str(p), "TEMPO_CLOCK_MODE": "software"})
    assert isinstance(hw, ProcessClock) and isinstance(disc, SoftwareClock)
    assert hw.read_s() - time.time() == pytest.approx(0.5, abs=0.01)
    assert disc.step_threshold_s == 0.128
    with pytest.raises(ValueError, match="clock.backend"):
        make_clock("ntp", 500.0, 0.128, 150_000.0, {})


@settings(max_examples=200, deadline=None)
@given(
    st.floats(-100_000.0, 100_000.0),
    st.lists(st.tuples(st.floats(1.0, 500.0), st.floats(-100_000.0, 100_000.0)), min_size=1, max_size=4),
    st.floats(0.0, 300.0),
    st.lists(st.floats(0.0, 2000.0), min_size=2, max_size=30),
)
def test_property_processclock_follows_profile_through_changes(rate0, chs, launch_rel, ts) -> None:
    """Whatever the changes, the faketime-mode reading is the profile, hence monotonic."""
    ats = sorted({round(a, 3) for a, _ in chs})
    prof = DriftProfile(EPOCH, 1.0, rate0, tuple(RateChange(a, r) for a, (_, r) in zip(ats, chs)))
    t0 = EPOCH + launch_rel
    m0 = 1.0 + prof.rate_at(t0) * 1e-6
    fake = [0.0]
    c = ProcessClock(prof, mode="faketime", launch_true_s=t0, source=lambda: fake[0])
    readings = []
    for rel in sorted(ts):
        t = t0 + rel
        fake[0] = prof.hw_at(t0) + m0 * (t - t0)  # what libfaketime's fixed rate gives
        readings.append(c.read_s())
        assert readings[-1] == pytest.approx(prof.hw_at(t), abs=1e-5)
    assert readings == sorted(readings)


@pytest.mark.parametrize("tool", ["tempod-launch", "tempod-service"])
def test_console_scripts_have_help_with_example(tool: str) -> None:
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).parent / tool
    path = str(exe) if exe.exists() else shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} not installed (pip install -e .)")
    r = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "example:" in r.stdout
