"""The kernel clock mode's pure parts (tempolab.vm.kclock): the qemu environment from a
drift profile, the delivered rate from dmesg and from outside reads, the relative step,
the run folder's delivered profile, and the provider refusal."""

from __future__ import annotations

import json
import random

import pytest

from tempod.profile import DriftProfile, RateChange, load_profile
from tempolab.errors import ConfigError
from tempolab.vm import kclock
from tempolab.vm.kclock import ClockRead, KernelClockRecord, KernelModeError

EPOCH = 1_796_000_000.0

GUEST_DMESG = """[    0.000000] tsc: Fast TSC calibration using PIT
[    0.000000] tsc: Detected 2545.237 MHz processor
[    3.262300] clocksource: tsc: mask: 0xffffffffffffffff max_cycles: 0x256df08b5a3
[    4.101000] tsc: Refined TSC clocksource calibration: 2545.244 MHz
"""
HOST_DMESG = "[    0.000060] tsc: Detected 2596.142 MHz processor\n"


def test_qemu_env_puts_only_the_rate_below_the_kernel() -> None:
    env = kclock.qemu_env(DriftProfile(EPOCH, 0.37, 506.4))
    assert env == {"LD_PRELOAD": kclock.LIBFAKETIME_MT, "FAKETIME": "+0 x1.000506400",
                   "FAKETIME_DISABLE_SHM": "1"}
    assert "FAKETIME_DONT_FAKE_MONOTONIC" not in env  # with it the guest sees no drift
    assert kclock.qemu_env(DriftProfile(EPOCH, 0.0, -190.6))["FAKETIME"] == "+0 x0.999809400"
    assert kclock.qemu_env(DriftProfile(EPOCH, 0.0, 100000.0))["FAKETIME"] == "+0 x1.100000000"


def test_qemu_env_refuses_rate_changes() -> None:
    with pytest.raises(KernelModeError, match="rate changes"):
        kclock.qemu_env(DriftProfile(EPOCH, 0.0, 10.0, (RateChange(60.0, 50.0),)))


def test_tsc_parsing_and_the_delivered_rate() -> None:
    assert kclock.tsc_mhz(GUEST_DMESG) == 2545.244  # the refined value wins
    assert kclock.tsc_mhz(HOST_DMESG) == 2596.142
    assert kclock.tsc_mhz("nothing here") is None
    # a guest that believes its TSC is slower than it is runs fast
    r = kclock.tsc_rate_ppm(GUEST_DMESG, 2596.142)
    assert r == pytest.approx((2596.142 / 2545.244 - 1) * 1e6)
    assert r == pytest.approx(19997.5, abs=1.0)
    assert kclock.tsc_rate_ppm("", 2596.142) is None
    assert kclock.host_tsc_mhz(None, "processor : 0\ncpu MHz\t\t: 2596.142\n") == 2596.142


def _reads(rate_ppm: float, offset_s: float, n: int = 200, seed: int = 3) -> list[ClockRead]:
    """Reads at 10 Hz; the reply is stamped at a random point of a random round trip."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        t0 = EPOCH + 0.1 * i
        rtt = 0.002 + rng.expovariate(1 / 0.01)  # queueing: a long tail
        at = t0 + rng.uniform(0.0, rtt)
        out.append(ClockRead(t0, at + offset_s + rate_ppm * 1e-6 * (at - EPOCH), t0 + rtt))
    return out


@pytest.mark.parametrize("rate", [506.4, -190.6, 19997.3, 0.0])
def test_fit_rate_recovers_the_rate_from_noisy_reads(rate) -> None:
    fit = kclock.fit_rate(_reads(rate, 0.25))
    assert fit.rate_ppm == pytest.approx(rate, abs=30.0)
    assert abs(fit.rate_ppm - rate) < 4 * fit.rate_se_ppm + 1.0
    assert fit.used == 100 and fit.span_s > 19.0
    assert fit.offset_s == pytest.approx(0.25 + rate * 1e-6 * 19.9, abs=2e-3)


def test_fit_rate_refuses_too_little() -> None:
    with pytest.raises(KernelModeError, match="at least 3"):
        kclock.fit_rate(_reads(0.0, 0.0, n=3))


def test_best_reads_keep_the_tight_round_trips() -> None:
    reads = _reads(0.0, 0.0, n=20)
    best = kclock.best_reads(reads, 0.25)
    assert len(best) == 5 and max(r.rtt_s for r in best) <= min(r.rtt_s for r in reads if r not in best)


def test_step_cmd_is_relative_and_bounded() -> None:
    cmd = kclock.step_cmd(-0.125)
    assert "time.clock_settime(c, time.clock_gettime(c) + -0.125000000)" in cmd
    for bad in (float("nan"), 1e9):
        with pytest.raises(KernelModeError):
            kclock.step_cmd(bad)
    assert 'float(line[5:])' in kclock.READER_CMD


def test_record_writes_the_delivered_profile(tmp_path) -> None:
    req = DriftProfile(EPOCH, 0.4, 500.0)
    rec = KernelClockRecord(node="n1", requested_rate_ppm=500.0, requested_offset_s=0.4,
                            qemu_faketime="+0 x1.000500000", dmesg_rate_ppm=506.4, measured_rate_ppm=511.0,
                            measured_residual_s=3e-4, measured_span_s=20.0, measured_reads=100,
                            initial_offset_s=0.41, at_true_s=EPOCH + 100.0, measured_rate_se_ppm=4.0)
    assert rec.rate_source == "dmesg" and rec.delivered_rate_ppm == 506.4
    assert rec.disagreement_ppm == pytest.approx(4.6)
    prof = kclock.record(tmp_path, rec, req)
    got = load_profile(tmp_path / "nodes" / "n1" / "drift.toml")
    assert got.rate_ppm == pytest.approx(506.4) and got.epoch_unix_s == EPOCH
    # the delivered profile passes through the measured offset at the measured time
    assert got.hw_at(EPOCH + 100.0) - (EPOCH + 100.0) == pytest.approx(0.41, abs=1e-6)  # float epoch
    assert prof == got
    assert load_profile(tmp_path / "nodes" / "n1" / "drift.requested.toml").rate_ppm == 500.0
    data = json.loads((tmp_path / "nodes" / "n1" / "kernel_clock.json").read_text())
    assert data["rate_source"] == "dmesg" and data["requested_rate_ppm"] == 500.0
    no_dmesg = KernelClockRecord(**{**rec.__dict__, "dmesg_rate_ppm": None})
    assert no_dmesg.rate_source == "measured" and no_dmesg.delivered_rate_ppm == 511.0


def test_kernel_mode_is_refused_on_the_lab_and_on_plain_inventories() -> None:
    kclock.require_provider("faketime", provider="lab", shares_host_kernel=True, has_vms=False)
    kclock.require_provider("kernel", provider="vagrant", shares_host_kernel=False, has_vms=True)
    with pytest.raises(ConfigError, match="share this host's kernel clock"):
        kclock.require_provider("kernel", provider="lab", shares_host_kernel=True, has_vms=False)
    with pytest.raises(ConfigError, match="needs VMs"):
        kclock.require_provider("kernel", provider="inventory", shares_host_kernel=False, has_vms=False)
    with pytest.raises(ConfigError, match="clock_mode"):
        kclock.require_provider("ntp", provider="lab", shares_host_kernel=True, has_vms=False)


def test_guest_clock_probe_reads_a_real_clock_through_a_pipe() -> None:
    """The reader run locally through `sh -c` (reads only: a step is never sent here)."""
    from tempolab.vm.kclock_probe import GuestClockProbe

    with GuestClockProbe(["sh", "-c"]) as probe:
        reads = probe.reads(1.0, 0.02)
        best = probe.offset()
    assert len(reads) > 10
    assert abs(best.offset_s) <= best.rtt_s  # the same clock on both ends
    fit = kclock.fit_rate(reads)
    assert abs(fit.rate_ppm) < 5000.0  # 1 s of reads through a pipe on a busy host
    assert GuestClockProbe(["sh", "-c"], sudo=True).cmd.startswith("sudo -n python3")
    with pytest.raises(ValueError):
        GuestClockProbe()


def test_guest_clock_probe_reports_a_dead_reader() -> None:
    from tempolab.vm.kclock_probe import GuestClockProbe

    with pytest.raises(KernelModeError, match="unexpected answer"):
        with GuestClockProbe(["sh", "-c", "exit 3", "x"]):
            pass


def test_qemu_envs_use_the_rates_the_role_will_draw() -> None:
    """The role's filter (roles/tempod/filter_plugins/tempod_drift.py) draws per node name
    with the suite's seed; the qemu of each guest must start with that same rate."""
    import sys
    from pathlib import Path

    from tempolab.runner.suite import parse_suite

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "roles/tempod/filter_plugins"))
    import tomllib

    from tempod_drift import tempod_drift_profile

    s = parse_suite({"name": "k", "nodes": 3, "clock_mode": "kernel", "seed": 7,
                     "drift": {"max_ppm": 500, "max_offset_s": 0.2}}, "k.yaml")
    envs = kclock.qemu_envs(["n1", "n2", "n3"], s)
    for n in ("n1", "n2", "n3"):
        toml = tempod_drift_profile(n, seed=7, distribution="uniform", offset_range_s=[-0.2, 0.2],
                                    rate_range_ppm=[-500, 500], epoch_unix_s=EPOCH)
        rate = tomllib.loads(toml)["rate_ppm"]
        assert envs[n]["FAKETIME"] == f"+0 x{1 + rate * 1e-6:.9f}"
    assert len({e["FAKETIME"] for e in envs.values()}) == 3
