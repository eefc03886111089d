"""The kernel clock backend: tick + freq split, timex encoding, KernelDiscipline against a
simulated kernel (the adjtimex arithmetic of kernel/time/ntp.c), and the guard that keeps
it off this machine. Nothing here writes the real kernel clock: the only real-kernel
calls are read-only (modes = 0, ADJ_OFFSET_SS_READ) and the guard's refusals."""

from __future__ import annotations

import math
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tempod import kernelguard
from tempod.clocks import Discipline, make_clock
from tempod.kernelclock import (
    ADJ_FREQUENCY,
    ADJ_NANO,
    ADJ_SETOFFSET,
    ADJ_TICK,
    KERNEL_SLEW_PPM,
    KernelClock,
    KernelDiscipline,
    KernelTimex,
    encode_step,
    encode_tick_frequency,
    max_total_ppm,
    split_frequency,
    total_frequency_ppm,
)

REPO = Path(__file__).resolve().parents[1]


class SimKernel:
    """A guest kernel clock driven by true time (epoch 1000 s: float resolution).

    The clocksource (CLOCK_MONOTONIC_RAW) runs ``1 + hw_ppm`` raw seconds per true
    second: the mis-calibrated TSC of a guest booted under a faked qemu rate. Per raw
    second CLOCK_REALTIME advances ``1 + total`` (tick and freq, additive as in ntp.c)
    plus 500 ppm in the direction of a pending adjtime slew. Writes are validated as
    the kernel does (EINVAL for tick outside +-10 %, freq clamped at 500 ppm is an error
    here so a discipline that relies on clamping fails).
    """

    def __init__(self, hw_ppm: float = 0.0, rt0: float = 1000.0) -> None:
        self.h = hw_ppm * 1e-6
        self.true = 0.0
        self.raw = 100.0
        self.rt = rt0
        self.tick = 10000
        self.freq = 0.0
        self.pending = 0.0
        self.calls: list[tuple] = []

    @property
    def total(self) -> float:
        return total_frequency_ppm(self.tick, self.freq) * 1e-6

    def advance(self, dt_true: float) -> None:
        self.true += dt_true
        raw_dt = dt_true * (1.0 + self.h)
        self.raw += raw_dt
        if self.pending != 0.0:
            s = KERNEL_SLEW_PPM * 1e-6
            seg = min(raw_dt, abs(self.pending) / s)
            self.rt += seg * (1.0 + self.total) + math.copysign(s * seg, self.pending)
            left = abs(self.pending) - s * seg
            self.pending = 0.0 if left <= 1e-12 else math.copysign(left, self.pending)
            raw_dt -= seg
        self.rt += raw_dt * (1.0 + self.total)

    def offset_s(self, true0: float = 1000.0) -> float:
        """local - reference, reference = true time on the same epoch."""
        return self.rt - (true0 + self.true)

    def rate_ppm(self) -> float:
        """The realtime clock's rate error against true time right now (no slew)."""
        return ((1.0 + self.h) * (1.0 + self.total) - 1.0) * 1e6

    # -- KernelBackend ----------------------------------------------------------------
    def timex(self) -> KernelTimex:
        return KernelTimex("TIME_ERROR", 0x40, 0.0, self.freq, 16.0, 16.0, self.rt, self.tick, 0)

    def raw_s(self) -> float:
        return self.raw

    def slew_remaining(self) -> float:
        return self.pending

    def slew(self, delta_s: float) -> None:
        self.calls.append(("slew", delta_s))
        self.pending = delta_s

    def step(self, delta_s: float) -> None:
        self.calls.append(("step", delta_s))
        self.rt += delta_s

    def set_tick_frequency(self, tick_us: int, freq_ppm: float) -> None:
        if not 9000 <= tick_us <= 11000:
            raise OSError(22, "adjtimex: Invalid argument (tick)")
        if abs(freq_ppm) > 500.0:
            raise AssertionError(f"freq {freq_ppm} beyond the kernel's 500 ppm")
        self.calls.append(("tickfreq", tick_us, freq_ppm))
        self.tick, self.freq = tick_us, freq_ppm


# -- tick + freq ------------------------------------------------------------------------
@pytest.mark.parametrize("total, tick, freq", [
    (0.0, 10000, 0.0),
    (20000.0, 10200, 0.0),
    (-190.6, 9998, 9.4),
    (506.4, 10005, 6.4),
    (-90909.1, 9091, -9.1),
    (100000.0, 11000, 0.0),
])
def test_split_frequency_known_values(total, tick, freq) -> None:
    t, f = split_frequency(total)
    assert t == tick and f == pytest.approx(freq, abs=1e-9)


def test_split_frequency_refuses_what_tick_cannot_reach() -> None:
    assert max_total_ppm() == pytest.approx(100400.0)
    with pytest.raises(ValueError, match="exceeds"):
        split_frequency(150000.0)
    with pytest.raises(ValueError, match="finite"):
        split_frequency(float("nan"))


@settings(max_examples=300, deadline=None)
@given(st.floats(-100400.0, 100400.0))
def test_property_split_is_exact_and_inside_the_kernel_limits(total) -> None:
    tick, freq = split_frequency(total)
    assert 9000 <= tick <= 11000
    assert abs(freq) <= 500.0
    assert total_frequency_ppm(tick, freq) == pytest.approx(total, abs=1e-6)


def test_encodings() -> None:
    tx = encode_tick_frequency(10200, -12.5)
    assert tx.modes == ADJ_TICK | ADJ_FREQUENCY
    assert tx.tick == 10200 and tx.freq == int(-12.5 * 65536)
    with pytest.raises(ValueError, match="500"):
        encode_tick_frequency(10000, 600.0)
    st_ = encode_step(0.25)
    assert st_.modes == ADJ_SETOFFSET | ADJ_NANO
    assert (st_.time.tv_sec, st_.time.tv_usec) == (0, 250_000_000)
    neg = encode_step(-0.25)  # the kernel wants 0 <= nsec < 1e9
    assert (neg.time.tv_sec, neg.time.tv_usec) == (-1, 750_000_000)


# -- the real kernel, read only -----------------------------------------------------------
def test_kernel_clock_read_paths_here() -> None:
    k = KernelClock()
    before = time.time()
    tx = k.timex()
    assert before - 1e-3 <= tx.time_s <= time.time() + 1e-3
    assert 9000 <= tx.tick_us <= 11000
    assert abs(tx.total_freq_ppm) <= max_total_ppm()
    assert k.slew_remaining() == pytest.approx(0.0, abs=1.0)  # read only, needs no privilege
    r0 = k.raw_s()
    assert k.raw_s() >= r0


def test_kernel_clock_writes_are_refused_without_allow_write() -> None:
    k = KernelClock()
    for call in (lambda: k.slew(0.001), lambda: k.step(0.001), lambda: k.set_frequency(1.0),
                 lambda: k.set_tick_frequency(10000, 0.0)):
        with pytest.raises(PermissionError, match="allow_write"):
            call()


# -- the guard on THIS machine ---------------------------------------------------------------
def test_guard_refuses_this_host() -> None:
    facts = kernelguard.gather()
    why = kernelguard.refusals(facts)
    assert any(kernelguard.CMDLINE_TOKEN in w for w in why), why
    with pytest.raises(kernelguard.KernelGuardError, match="refused"):
        kernelguard.require_vm_guest()
    # and so no writable kernel clock can even be built here
    with pytest.raises(kernelguard.KernelGuardError, match=r"tempo\.kernel_clock=allow"):
        KernelClock(allow_write=True)
    with pytest.raises(ValueError, match="refused"):
        make_clock("kernel", 500.0, 0.128, 150_000.0, {})


def test_tempod_refuses_the_kernel_backend_here(tmp_path) -> None:
    (tmp_path / "tempo.key").write_text("ab" * 32 + "\n")
    cfg = tmp_path / "tempod.toml"
    cfg.write_text('[node]\nname = "n1"\naddress = "127.0.0.11"\n[clock]\nbackend = "kernel"\n'
                   '[auth]\nkey_file = "tempo.key"\n[log]\nevent_log = "ev.jsonl"\n')
    env = {"PYTHONPATH": str(REPO / "daemon"), "PATH": "/usr/bin:/bin"}
    for extra in (["--check"], []):
        r = subprocess.run([sys.executable, "-m", "tempod.main", "--config", str(cfg), *extra],
                           capture_output=True, text=True, timeout=60, env=env)
        assert r.returncode == 2, (r.stdout, r.stderr)
        assert "refused" in r.stderr and kernelguard.CMDLINE_TOKEN in r.stderr
    assert not (tmp_path / "ev.jsonl").exists()  # it stopped before opening anything


def _facts(cmdline="quiet tempo.kernel_clock=allow", vendor="QEMU", hyp=False, env=None):
    return kernelguard.GuardFacts(cmdline, vendor, hyp, env or {})


def test_guard_rules() -> None:
    assert kernelguard.refusals(_facts()) == []
    assert kernelguard.refusals(_facts(vendor="", hyp=True)) == []
    assert len(kernelguard.refusals(_facts(cmdline="quiet tempo.kernel_clock=allowed"))) == 1
    assert len(kernelguard.refusals(_facts(cmdline="quiet"))) == 1
    assert "not a virtual machine" in kernelguard.refusals(_facts(vendor="Dell Inc."))[0]
    lf = {"LD_PRELOAD": "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"}
    assert "libfaketime" in kernelguard.refusals(_facts(env=lf))[0]
    assert "libfaketime" in kernelguard.refusals(_facts(env={"FAKETIME": "+0 x1.0005"}))[0]
    kernelguard.require_vm_guest(_facts())  # does not raise


def test_guard_reads_its_facts_from_files(tmp_path) -> None:
    (tmp_path / "cmdline").write_text("root=/dev/vda tempo.kernel_clock=allow\n")
    (tmp_path / "vendor").write_text("QEMU\n")
    (tmp_path / "cpuinfo").write_text("processor : 0\nflags : fpu sse\n")
    f = kernelguard.gather(str(tmp_path / "cmdline"), str(tmp_path / "vendor"), str(tmp_path / "cpuinfo"), {})
    assert f.dmi_vendor == "QEMU" and not f.cpu_hypervisor and kernelguard.refusals(f) == []
    f = kernelguard.gather(str(tmp_path / "none"), str(tmp_path / "none"), str(tmp_path / "none"), {})
    assert len(kernelguard.refusals(f)) == 2


# -- KernelDiscipline against the simulated kernel ----------------------------------------------
def _run(k: SimKernel, d: KernelDiscipline, seconds: float, dt: float = 0.01, samples=None) -> None:
    """Advance true time, calling poll when due (as runtime._step does)."""
    n = int(round(seconds / dt))
    for _ in range(n):
        k.advance(dt)
        if samples is not None:
            samples.append(k.rt)
        p = d.next_poll_s(k.rt)
        if p is not None and p <= 0.0:
            d.poll(k.rt)


def test_sign_conventions_correction_is_added() -> None:
    k = SimKernel()
    d = KernelDiscipline(k, fll_gain=0.0)  # offsets only: no frequency learned
    assert isinstance(d, Discipline)
    assert d.corrected(123.0) == 123.0
    assert d.adjust(+0.01, k.rt) == "slew"
    _run(k, d, 25.0)
    assert k.offset_s() == pytest.approx(+0.01, abs=1e-9)  # the clock reads 10 ms more
    # offset = local - reference; the correction to send is -offset
    assert d.adjust(-k.offset_s(), k.rt) == "slew"
    _run(k, d, 25.0)
    assert k.offset_s() == pytest.approx(0.0, abs=1e-9)


def test_forward_beyond_threshold_steps_backward_holds() -> None:
    k = SimKernel()
    d = KernelDiscipline(k, step_threshold_s=0.128)
    assert d.adjust(0.5, k.rt) == "step"
    assert k.offset_s() == pytest.approx(0.5)
    samples: list[float] = []
    assert d.adjust(-0.5, k.rt + 0.0) == "hold"
    assert ("step", -0.5) not in k.calls
    held_tick = k.tick
    assert held_tick < 10000  # the hold lowers the frequency through tick
    _run(k, d, 5.0, samples=samples)
    assert d.state(k.rt)["slew_remaining_s"] < -0.2  # still absorbing
    _run(k, d, 10.0, samples=samples)
    assert d.next_poll_s(k.rt) is None and k.tick == 10000 and k.freq == 0.0
    _run(k, d, 2.0, samples=samples)  # the small rest of a late poll, slewed at 500 ppm
    assert k.offset_s() == pytest.approx(0.0, abs=1e-6)
    assert all(b > a for a, b in zip(samples, samples[1:]))  # never backwards


def test_a_late_poll_is_put_back() -> None:
    k = SimKernel()
    d = KernelDiscipline(k, hold_ppm=50_000.0)
    d.set_time(k.rt - 1.0, k.rt)            # SETTIME 1 s back: a hold of 20 s
    due = d.next_poll_s(k.rt)
    assert due == pytest.approx(20.0)
    k.advance(due + 0.3)                    # the loop was 0.3 s late: 15 ms removed too much
    d.poll(k.rt)
    assert k.pending == pytest.approx(0.3 * 0.05, rel=1e-6)
    k.advance(60.0)
    assert k.offset_s() == pytest.approx(-1.0, abs=1e-9)


def test_set_time_forward_is_a_step_and_does_not_teach_the_fll() -> None:
    k = SimKernel(hw_ppm=300.0)
    d = KernelDiscipline(k)
    assert d.set_time(k.rt + 0.01, k.rt) == "step"
    _run(k, d, 10.0)
    d.adjust(-k.offset_s(), k.rt)  # the interval began at a set: no frequency learned
    assert k.tick == 10000 and k.freq == 0.0


@pytest.mark.parametrize("hw_ppm", [506.4, -190.6, 20000.0, 100000.0, -50000.0])
def test_fll_cancels_hardware_rates_beyond_500_ppm_with_tick(hw_ppm) -> None:
    """Berkeley-like rounds every 2 s against true time: the learned frequency cancels
    the hardware rate to 1 ppm (tick + freq beyond 500 ppm) and the offset, holds
    included, is the kernel's pending adjtime slew to 0.1 ms (a rest under the threshold
    goes at its 500 ppm: 40 ms take 80 s); the clock never runs backwards."""
    k = SimKernel(hw_ppm=hw_ppm)
    d = KernelDiscipline(k)
    samples: list[float] = []
    for _ in range(100):
        d.adjust(-k.offset_s(), k.rt)
        _run(k, d, 2.0, dt=0.02, samples=samples)
    learned = ((1.0 + hw_ppm * 1e-6) * (1.0 + d.freq_ppm * 1e-6) - 1.0) * 1e6
    assert abs(learned) < 1.0, (k.tick, k.freq)
    assert d.next_poll_s(k.rt) is None and abs(k.rate_ppm()) < 1.0
    assert abs(d.freq_ppm - total_frequency_ppm(k.tick, k.freq)) < 1e-6
    if abs(hw_ppm) > 500:
        assert k.tick != 10000
    # what is left of the error is exactly what the kernel's adjtime is still slewing
    assert abs(k.offset_s() + k.pending) < 1e-4 and abs(k.pending) < 0.128
    assert all(b > a for a, b in zip(samples, samples[1:]))


def test_fll_weighting_by_error_bounds_and_bounds() -> None:
    k = SimKernel()
    d = KernelDiscipline(k, freq_max_ppm=1000.0)
    d.adjust(0.0, k.rt)
    k.advance(10.0)
    d.adjust(1.0, k.rt)  # 0.1 = 100000 ppm asked: clipped to freq_max_ppm
    assert d.freq_ppm == pytest.approx(1000.0)
    k2 = SimKernel()
    d2 = KernelDiscipline(k2)
    d2.adjust(0.0, k2.rt, bound_s=0.001)
    k2.advance(10.0)
    d2.adjust(0.001, k2.rt, bound_s=0.001)  # error 100 ppm, noise 200 ppm: weight 0.2
    assert d2.freq_ppm == pytest.approx(100.0 * 0.2, rel=1e-6)
    with pytest.raises(ValueError, match="bound_s"):
        d2.adjust(0.0, k2.rt, bound_s=-1.0)
    with pytest.raises(ValueError, match="delta_s"):
        d2.adjust(float("nan"), k2.rt)
    with pytest.raises(ValueError, match="hold_ppm"):
        KernelDiscipline(k2, hold_ppm=100.0)


def test_hold_when_the_frequency_leaves_little_room() -> None:
    """A +10 % guest runs at total -90909 ppm: the hold gets only what tick has left."""
    k = SimKernel(hw_ppm=100000.0)
    d = KernelDiscipline(k)
    d.adjust(0.0, k.rt)
    _run(k, d, 2.0)
    samples: list[float] = []
    assert d.adjust(-k.offset_s(), k.rt) == "hold"   # learns -90909 ppm, holds 0.2 s back
    assert total_frequency_ppm(k.tick, k.freq) == pytest.approx(-max_total_ppm())
    _run(k, d, 30.0, samples=samples)
    assert all(b > a for a, b in zip(samples, samples[1:]))
    assert d.next_poll_s(k.rt) is None and abs(k.rate_ppm()) < 1.0
    assert abs(k.offset_s()) < 1e-4


def test_a_new_correction_replaces_a_running_hold_and_the_fll_sees_the_rest() -> None:
    k = SimKernel()
    d = KernelDiscipline(k)
    d.adjust(-1.0, k.rt)       # hold, 20 s (the first correction: nothing to learn)
    _run(k, d, 10.0)           # half done: -0.5 still to go
    before = d.freq_ppm
    d.adjust(-0.5, k.rt)       # the same error seen again: no frequency error
    assert d.freq_ppm == pytest.approx(before, abs=1.0)
    _run(k, d, 15.0)
    assert k.offset_s() == pytest.approx(-1.0, abs=1e-4)
