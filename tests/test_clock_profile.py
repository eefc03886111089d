"""Drift profiles: parsing and errors, the hw/true mapping, FAKETIME, generation."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tempod.profile import (
    DriftProfile,
    ProfileError,
    RateChange,
    dump_profile,
    faketime_env,
    faketime_spec,
    generate_profiles,
    load_profile,
    loads_profile,
)

EPOCH = 1_795_000_000.0

EXAMPLE = """
epoch_unix_s = 1795000000.0
offset_s = 2.5
rate_ppm = 100.0
[[changes]]
at_s = 600.0
rate_ppm = -50.0
"""


def test_example_from_architecture_doc() -> None:
    p = loads_profile(EXAMPLE)
    assert p == DriftProfile(EPOCH, 2.5, 100.0, (RateChange(600.0, -50.0),))
    assert p.hw_at(EPOCH) == EPOCH + 2.5
    assert p.hw_at(EPOCH + 600.0) == pytest.approx(EPOCH + 600.0 + 2.5 + 600.0 * 100e-6, abs=1e-6)
    # After the change the clock runs 50 ppm slow, starting from where it was (continuous).
    assert p.hw_at(EPOCH + 1600.0) == pytest.approx(EPOCH + 1600.0 + 2.5 + 0.06 - 0.05, abs=1e-6)
    assert p.rate_at(EPOCH + 599.0) == 100.0 and p.rate_at(EPOCH + 601.0) == -50.0


def test_before_epoch_initial_rate_is_extrapolated() -> None:
    p = DriftProfile(EPOCH, 1.0, 1000.0)
    assert p.hw_at(EPOCH - 1000.0) == pytest.approx(EPOCH - 1000.0 + 1.0 - 1.0, abs=1e-6)


@pytest.mark.parametrize(
    "text, field",
    [
        ("offset_s = 1.0\nrate_ppm = 0.0", "epoch_unix_s: missing"),
        ("epoch_unix_s = 1.0\noffset_s = 'x'\nrate_ppm = 0.0", "offset_s: expected a number"),
        ("epoch_unix_s = 1.0\noffset_s = 0.0\nrate_ppm = 600000.0", "rate_ppm: |rate| must be"),
        ("epoch_unix_s = 1.0\noffset_s = 0.0\nrate_ppm = 0.0\nwobble = 1", "wobble: unknown key"),
        ("epoch_unix_s = 1.0\noffset_s = 0.0\nrate_ppm = 0.0\n[[changes]]\nrate_ppm = 1.0", "changes[0].at_s: missing"),
        (
            "epoch_unix_s = 1.0\noffset_s = 0.0\nrate_ppm = 0.0\n[[changes]]\nat_s = 5.0\nrate_ppm = 1.0\n"
            "[[changes]]\nat_s = 5.0\nrate_ppm = 2.0",
            "changes[1].at_s: must be strictly increasing",
        ),
        ("epoch_unix_s = 1.0\noffset_s = nan\nrate_ppm = 0.0", "offset_s: must be finite"),
        ("epoch_unix_s = true\noffset_s = 0.0\nrate_ppm = 0.0", "epoch_unix_s: expected a number"),
        ("epoch_unix_s = = 1", "not valid TOML"),
    ],
)
def test_errors_name_the_field(text: str, field: str) -> None:
    with pytest.raises(ProfileError) as exc:
        loads_profile(text, "drift.toml")
    assert field in str(exc.value)
    assert str(exc.value).startswith("drift.toml: ")


def test_load_profile_missing_file(tmp_path) -> None:
    with pytest.raises(ProfileError, match="cannot read drift profile"):
        load_profile(tmp_path / "nope.toml")


def test_dump_round_trips(tmp_path) -> None:
    p = loads_profile(EXAMPLE)
    f = tmp_path / "d.toml"
    f.write_text(dump_profile(p))
    assert load_profile(f) == p


profiles = st.builds(
    lambda off, rate, chs: DriftProfile(
        EPOCH,
        off,
        rate,
        tuple(RateChange(at, r) for at, r in zip(sorted(set(a for a, _ in chs)), (r for _, r in chs))),
    ),
    st.floats(-100.0, 100.0),
    st.floats(-200_000.0, 200_000.0),
    st.lists(st.tuples(st.floats(1.0, 1e5), st.floats(-200_000.0, 200_000.0)), max_size=5),
)


@settings(max_examples=200, deadline=None)
@given(profiles, st.floats(-1e5, 2e5), st.floats(0.0, 1e4))
def test_property_hw_is_increasing_and_invertible(p: DriftProfile, t_rel: float, dt: float) -> None:
    t = EPOCH + t_rel
    assert p.hw_at(t + dt) >= p.hw_at(t)
    assert p.true_at(p.hw_at(t)) == pytest.approx(t, abs=1e-5)


@settings(max_examples=100, deadline=None)
@given(profiles)
def test_property_continuous_at_changes(p: DriftProfile) -> None:
    for ch in p.changes:
        t = EPOCH + ch.at_s
        assert p.hw_at(t + 1e-3) - p.hw_at(t - 1e-3) == pytest.approx(2e-3, abs=1e-3)


def test_faketime_spec_matches_profile_at_launch() -> None:
    p = DriftProfile(EPOCH, 2.5, 100_000.0)
    t0 = EPOCH + 10.0
    spec = faketime_spec(p, t0)
    x, m = spec.split(" x")
    assert float(x) == pytest.approx(p.hw_at(t0) - t0, abs=1e-9)  # 2.5 + 1.0
    assert float(m) == pytest.approx(1.1, abs=1e-12)
    assert spec.startswith("+3.500000000")
    neg = faketime_spec(DriftProfile(EPOCH, -3.25, -100_000.0), EPOCH)
    assert neg == "-3.250000000 x0.900000000000"


def test_faketime_env_keeps_other_preloads_and_sets_shm_off() -> None:
    p = DriftProfile(EPOCH, 0.0, 0.0)
    env = faketime_env(p, EPOCH, "/lib/ft.so.1", {"LD_PRELOAD": "/x/a.so /old/libfaketime.so.1", "HOME": "/r"})
    assert env["LD_PRELOAD"] == "/lib/ft.so.1:/x/a.so"
    assert env["FAKETIME_DISABLE_SHM"] == "1"
    assert env["HOME"] == "/r"
    assert float(env["TEMPO_LAUNCH_TRUE_S"]) == EPOCH
    assert env["TEMPO_CLOCK_MODE"] == "faketime"


def test_generate_is_reproducible_and_per_node() -> None:
    a = generate_profiles(["n1", "n2", "n3"], seed=7, epoch_unix_s=EPOCH, rate_ppm=(-100_000, 100_000))
    b = generate_profiles(["n3", "n1"], seed=7, epoch_unix_s=EPOCH, rate_ppm=(-100_000, 100_000))
    assert a["n1"] == b["n1"] and a["n3"] == b["n3"]
    c = generate_profiles(["n1"], seed=8, epoch_unix_s=EPOCH, rate_ppm=(-100_000, 100_000))
    assert c["n1"] != a["n1"]
    assert len({p.rate_ppm for p in a.values()}) == 3


@pytest.mark.parametrize("dist", ["uniform", "normal"])
def test_generate_respects_bounds(dist: str) -> None:
    names = [f"n{i}" for i in range(300)]
    ps = generate_profiles(names, seed=1, distribution=dist, epoch_unix_s=EPOCH, offset_s=(-2, 3), rate_ppm=(50, 80))
    offs = [p.offset_s for p in ps.values()]
    rates = [p.rate_ppm for p in ps.values()]
    assert min(offs) >= -2 and max(offs) <= 3 and min(rates) >= 50 and max(rates) <= 80
    mean = sum(offs) / len(offs)
    assert 0.0 < mean < 1.0  # both distributions are centred on 0.5


def test_generate_rejects_bad_arguments() -> None:
    with pytest.raises(ProfileError, match="distribution"):
        generate_profiles(["a"], 1, "cauchy", epoch_unix_s=EPOCH)
    with pytest.raises(ProfileError, match="offset_s: lower bound"):
        generate_profiles(["a"], 1, epoch_unix_s=EPOCH, offset_s=(2, 1))
    with pytest.raises(ProfileError, match="duplicate"):
        generate_profiles(["a", "a"], 1, epoch_unix_s=EPOCH)


def test_analysis_helpers_offset_and_largest_rate() -> None:
    # The analysis reads profiles through this same model (no second parser).
    p = DriftProfile(0.0, 2.5, 100.0, (RateChange(600.0, -50.0),))
    assert p.offset_at(600.0) == pytest.approx(2.5 + 600 * 100e-6)
    assert p.max_abs_rate_ppm() == 100.0 and p.rate_at(650.0) == -50.0
    assert math.isnan(p.true_at(float("nan")))
