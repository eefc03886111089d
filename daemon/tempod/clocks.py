"""Hardware clock drivers and the Discipline interface the node core calls.

This module owns *where hardware time comes from*: the process's own clock (drifted by
libfaketime, plus profile rate changes applied in software), a simulated clock for the
simulator, and the Linux kernel clock read through ``adjtimex``. It also defines the
``Discipline`` protocol (implemented by :class:`tempod.discipline.SoftwareClock` and by
:class:`KernelDiscipline` here). It must not know about the protocol, the election or
the event log. Standard library only (ctypes for the kernel).

Every driver has ``read_s() -> float``: hardware seconds (Unix epoch scale). Sign
convention shared with discipline.py: a correction is ADDED to the clock.

SAFETY: :class:`KernelClock` only ever calls ``adjtimex`` with ``modes = 0`` (read-only)
unless it was built with ``allow_write=True``; the tests never set it on a shared
machine, so the kernel write paths are untested here.
"""

from __future__ import annotations

import bisect
import ctypes
import ctypes.util
import math
import os
import random
import time
from dataclasses import dataclass
from typing import Callable, Mapping, Protocol, runtime_checkable

from . import profile as _profile
from .discipline import HOLD, SLEW, STEP


@runtime_checkable
class HardwareClock(Protocol):
    def read_s(self) -> float:
        """Current hardware time, seconds."""
        ...


@runtime_checkable
class Discipline(Protocol):
    """What node.py calls; hw_s is always the node's hardware time (seconds)."""

    def corrected(self, hw_s: float) -> float: ...

    def adjust(self, delta_s: float, hw_s: float, bound_s: float = 0.0) -> str: ...

    def set_time(self, target_clk_s: float, hw_s: float, bound_s: float = 0.0) -> str: ...

    def state(self, hw_s: float) -> dict[str, float]: ...


# --------------------------------------------------------------------------------------
# Process clock
# --------------------------------------------------------------------------------------
class ProcessClock:
    """CLOCK_REALTIME of this process, with the drift profile's later rate changes.

    Modes (normally taken from the environment ``tempod-launch`` sets, see
    :meth:`from_environ`):

    * ``"plain"``: no profile; ``read_s() == time.time()``.
    * ``"faketime"``: libfaketime already gives ``hw_lin(t) = hw(t0) + (1 + r0)(t - t0)``
      with the rate ``r0`` in force at the launch time ``t0``. A fixed ``FAKETIME`` cannot
      change its rate later, so this driver recovers true time from its own reading
      (``t = t0 + (f - hw(t0)) / (1 + r0)``) and returns ``profile.hw_at(t)``; that is ``f``
      itself until the first rate change after launch, and afterwards ``f`` plus the
      integral of ``(rate(t) - r0)`` since the change: continuous, no step. Honest limit:
      libfaketime keeps scaling this process's sleeps and timers by ``1 + r0``, so after
      a rate change timers run at the old rate (a few ppm to % of a timeout).
    * ``"software"``: no libfaketime (``tempod-launch --no-faketime``): the whole profile
      is applied here, ``read_s() == profile.hw_at(time.time())``; sleeps are not scaled.
    """

    def __init__(
        self,
        profile: _profile.DriftProfile | None = None,
        *,
        mode: str = "plain",
        launch_true_s: float | None = None,
        source: Callable[[], float] = time.time,
    ) -> None:
        if mode not in ("plain", "faketime", "software"):
            raise ValueError(f"mode: must be plain, faketime or software, got {mode!r}")
        if mode != "plain" and profile is None:
            raise ValueError(f"mode {mode!r} needs a drift profile")
        if mode == "faketime" and launch_true_s is None:
            raise ValueError("mode 'faketime' needs launch_true_s (TEMPO_LAUNCH_TRUE_S)")
        self.profile = profile
        self.mode = mode
        self._source = source
        if mode == "faketime":
            assert profile is not None and launch_true_s is not None
            self._t0 = float(launch_true_s)
            self._hw0 = profile.hw_at(self._t0)
            self._m0 = 1.0 + profile.rate_at(self._t0) * 1e-6
            # Only needed when a rate change lies after the launch.
            last_start = profile.epoch_unix_s + (profile.changes[-1].at_s if profile.changes else -math.inf)
            self._needs_correction = last_start > self._t0

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> "ProcessClock":
        """Build from TEMPO_DRIFT_PROFILE / TEMPO_CLOCK_MODE / TEMPO_LAUNCH_TRUE_S."""
        env = os.environ if environ is None else environ
        path = env.get(_profile.ENV_PROFILE)
        if not path:
            return cls()
        prof = _profile.load_profile(path)
        mode = env.get(_profile.ENV_CLOCK_MODE, "faketime")
        t0_text = env.get(_profile.ENV_LAUNCH_TRUE_S)
        if mode == "faketime":
            if not t0_text:
                raise ValueError(f"{_profile.ENV_LAUNCH_TRUE_S} is not set; start the daemon with tempod-launch")
            try:
                t0 = float(t0_text)
            except ValueError:
                raise ValueError(f"{_profile.ENV_LAUNCH_TRUE_S}: not a number: {t0_text!r}") from None
            return cls(prof, mode="faketime", launch_true_s=t0)
        return cls(prof, mode=mode)

    def read_s(self) -> float:
        f = self._source()
        if self.mode == "plain":
            return f
        assert self.profile is not None
        if self.mode == "software":
            return self.profile.hw_at(f)
        if not self._needs_correction:
            return f
        return self.profile.hw_at(self._t0 + (f - self._hw0) / self._m0)


# --------------------------------------------------------------------------------------
# Simulated clock
# --------------------------------------------------------------------------------------
class SimClock:
    """A simulated oscillator: hw = read(true), with an exact inverse true_at(hw).

    ``offset_s``: hw - true at true time ``epoch_s``; ``rate_ppm``: initial rate error
    (positive = fast). With ``wander_ppm_per_sqrt_s > 0`` the rate does a random walk:
    it is constant over steps of ``wander_step_s`` true seconds and changes by
    N(0, wander * sqrt(step)) ppm between steps (so after T seconds its spread is about
    wander * sqrt(T) ppm), clipped to +-``max_rate_ppm``. The path is drawn lazily from
    ``seed`` and cached, so it is deterministic and the mapping is piecewise linear,
    strictly increasing and exactly invertible. Before ``epoch_s`` the initial rate is
    extrapolated.
    """

    def __init__(
        self,
        offset_s: float = 0.0,
        rate_ppm: float = 0.0,
        wander_ppm_per_sqrt_s: float = 0.0,
        seed: int | str = 0,
        *,
        epoch_s: float = 0.0,
        wander_step_s: float = 1.0,
        max_rate_ppm: float = _profile.MAX_ABS_RATE_PPM,
        true_now: Callable[[], float] | None = None,
        max_segments: int = 10_000_000,
    ) -> None:
        for name, v in (("offset_s", offset_s), ("rate_ppm", rate_ppm), ("epoch_s", epoch_s)):
            if not math.isfinite(v):
                raise ValueError(f"{name}: must be finite, got {v!r}")
        if not (0 < max_rate_ppm < 1e6):
            raise ValueError("max_rate_ppm: must be in (0, 1e6)")
        if abs(rate_ppm) > max_rate_ppm:
            raise ValueError(f"rate_ppm: |{rate_ppm}| exceeds max_rate_ppm {max_rate_ppm}")
        if wander_ppm_per_sqrt_s < 0 or not math.isfinite(wander_ppm_per_sqrt_s):
            raise ValueError("wander_ppm_per_sqrt_s: must be finite and >= 0")
        if wander_step_s <= 0:
            raise ValueError("wander_step_s: must be > 0")
        self.offset_s = offset_s
        self.rate_ppm = rate_ppm
        self.wander = wander_ppm_per_sqrt_s
        self.epoch_s = epoch_s
        self.step_s = wander_step_s
        self.max_rate = max_rate_ppm * 1e-6
        self._rng = random.Random(f"simclock:{seed}")
        self._true_now = true_now
        self._max_segments = max_segments
        # Segment k covers true [epoch + k*step, epoch + (k+1)*step) at rate _rates[k].
        self._rates: list[float] = [rate_ppm * 1e-6]
        self._hw_starts: list[float] = [epoch_s + offset_s]

    def _extend_to_segment(self, k: int) -> None:
        if k >= self._max_segments:
            raise ValueError(
                f"SimClock: time {self.epoch_s + k * self.step_s} s needs more than "
                f"{self._max_segments} wander segments; raise wander_step_s"
            )
        sd = self.wander * math.sqrt(self.step_s) * 1e-6
        while len(self._rates) <= k:
            prev_rate = self._rates[-1]
            prev_hw = self._hw_starts[-1]
            self._hw_starts.append(prev_hw + (1.0 + prev_rate) * self.step_s)
            r = prev_rate + self._rng.gauss(0.0, sd)
            self._rates.append(max(-self.max_rate, min(self.max_rate, r)))

    def read(self, true_s: float) -> float:
        """Hardware time at true time ``true_s``."""
        dt = true_s - self.epoch_s
        if self.wander == 0.0 or dt < 0.0:
            return self._hw_starts[0] + (1.0 + self._rates[0]) * dt
        k = int(dt // self.step_s)
        self._extend_to_segment(k)
        return self._hw_starts[k] + (1.0 + self._rates[k]) * (dt - k * self.step_s)

    def true_at(self, hw_s: float) -> float:
        """True time at which the hardware clock reads ``hw_s`` (exact inverse of read)."""
        h0 = self._hw_starts[0]
        if self.wander == 0.0 or hw_s < h0:
            return self.epoch_s + (hw_s - h0) / (1.0 + self._rates[0])
        while self._hw_starts[-1] <= hw_s:
            self._extend_to_segment(len(self._rates))
        k = bisect.bisect_right(self._hw_starts, hw_s) - 1
        return self.epoch_s + k * self.step_s + (hw_s - self._hw_starts[k]) / (1.0 + self._rates[k])

    def rate_at(self, true_s: float) -> float:
        """Rate error (ppm) in force at ``true_s``."""
        dt = true_s - self.epoch_s
        if self.wander == 0.0 or dt < 0.0:
            return self._rates[0] * 1e6
        k = int(dt // self.step_s)
        self._extend_to_segment(k)
        return self._rates[k] * 1e6

    def read_s(self) -> float:
        if self._true_now is None:
            raise RuntimeError("SimClock.read_s needs true_now=...; the simulator calls read(true_s)")
        return self.read(self._true_now())


# --------------------------------------------------------------------------------------
# Kernel clock (adjtimex)
# --------------------------------------------------------------------------------------
class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _Timex(ctypes.Structure):
    """``struct timex`` from <sys/timex.h> (Linux, LP64); ctypes adds the same padding."""

    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time", _Timeval),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_reserved", ctypes.c_int * 11),
    ]


# <sys/timex.h> constants
ADJ_OFFSET = 0x0001
ADJ_FREQUENCY = 0x0002
ADJ_STATUS = 0x0010
ADJ_SETOFFSET = 0x0100
ADJ_NANO = 0x2000
ADJ_OFFSET_SINGLESHOT = 0x8001  # BSD adjtime(): slew at the kernel's fixed 500 ppm
STA_PLL = 0x0001
STA_UNSYNC = 0x0040
STA_NANO = 0x2000
CLOCK_REALTIME = 0
FREQ_SCALE = 65536.0  # timex.freq is ppm with a 16-bit binary fraction
KERNEL_MAX_FREQ_PPM = 500.0  # the kernel rejects/clamps larger ADJ_FREQUENCY values
KERNEL_SLEW_PPM = 500.0  # rate of ADJ_OFFSET_SINGLESHOT slewing
TIME_STATES = {0: "TIME_OK", 1: "TIME_INS", 2: "TIME_DEL", 3: "TIME_OOP", 4: "TIME_WAIT", 5: "TIME_ERROR"}


@dataclass(frozen=True)
class KernelTimex:
    """Decoded result of a read-only adjtimex call."""

    state: str  # TIME_OK, ..., TIME_ERROR (unsynchronized)
    status: int  # STA_* bits
    offset_s: float  # PLL offset still to be applied
    freq_ppm: float  # kernel frequency correction
    maxerror_s: float
    esterror_s: float
    time_s: float  # CLOCK_REALTIME at the call
    tick_us: int
    tai_s: int

    @property
    def unsynchronized(self) -> bool:
        return bool(self.status & STA_UNSYNC)


class KernelError(OSError):
    pass


class KernelClock:
    """The Linux system clock: ``read_s()`` is CLOCK_REALTIME; ``timex()`` its discipline state.

    Writes (``slew``, ``step``, ``set_frequency``) need CAP_SYS_TIME and refuse to run
    unless ``allow_write=True``: never on a shared machine. Under libfaketime the read
    path is faked but adjtimex is not intercepted (DESIGN.md), so this backend is for
    real machines only.
    """

    def __init__(self, allow_write: bool = False, libc_path: str | None = None) -> None:
        self.allow_write = allow_write
        self._libc = ctypes.CDLL(libc_path or ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self._libc.adjtimex.argtypes = [ctypes.POINTER(_Timex)]
        self._libc.adjtimex.restype = ctypes.c_int
        self._libc.clock_adjtime.argtypes = [ctypes.c_int, ctypes.POINTER(_Timex)]
        self._libc.clock_adjtime.restype = ctypes.c_int

    def read_s(self) -> float:
        return time.time()

    def timex(self) -> KernelTimex:
        """Read-only adjtimex (modes = 0): needs no privilege, changes nothing."""
        tx = _Timex()
        tx.modes = 0
        rc = self._libc.adjtimex(ctypes.byref(tx))
        if rc < 0:
            err = ctypes.get_errno()
            raise KernelError(err, f"adjtimex(modes=0): {os.strerror(err)}")
        return decode_timex(tx, rc)

    # -- write paths (untested on the shared machine) --------------------------------
    def _write(self, tx: _Timex, what: str, *, clock: bool = False) -> int:
        if not self.allow_write:
            raise PermissionError(f"KernelClock.{what}: writes are disabled (allow_write=False)")
        rc = (
            self._libc.clock_adjtime(CLOCK_REALTIME, ctypes.byref(tx))
            if clock
            else self._libc.adjtimex(ctypes.byref(tx))
        )
        if rc < 0:
            err = ctypes.get_errno()
            raise KernelError(err, f"{what}: {os.strerror(err)}")
        return rc

    def slew(self, delta_s: float) -> None:
        """BSD adjtime(): slew by ``delta_s`` at 500 ppm, replacing a pending slew."""
        tx = _Timex()
        tx.modes = ADJ_OFFSET_SINGLESHOT
        tx.offset = int(round(delta_s * 1e6))  # microseconds (singleshot ignores ADJ_NANO)
        self._write(tx, "slew")

    def step(self, delta_s: float) -> None:
        """Step CLOCK_REALTIME by ``delta_s`` (ADJ_SETOFFSET | ADJ_NANO via clock_adjtime)."""
        tx = _Timex()
        tx.modes = ADJ_SETOFFSET | ADJ_NANO
        ns = int(round(delta_s * 1e9))
        sec, nsec = divmod(ns, 1_000_000_000)  # kernel requires 0 <= nsec < 1e9
        tx.time.tv_sec = sec
        tx.time.tv_usec = nsec
        self._write(tx, "step", clock=True)

    def set_frequency(self, freq_ppm: float) -> None:
        """ADJ_FREQUENCY: set the kernel's frequency correction (bounded to +-500 ppm)."""
        if abs(freq_ppm) > KERNEL_MAX_FREQ_PPM:
            raise ValueError(f"freq_ppm: kernel limit is +-{KERNEL_MAX_FREQ_PPM} ppm, got {freq_ppm}")
        tx = _Timex()
        tx.modes = ADJ_FREQUENCY
        tx.freq = int(round(freq_ppm * FREQ_SCALE))
        self._write(tx, "set_frequency")


def decode_timex(tx: _Timex, rc: int) -> KernelTimex:
    """Pure decoding of a filled struct timex (units depend on STA_NANO)."""
    nano = bool(tx.status & STA_NANO)
    sub = 1e-9 if nano else 1e-6
    return KernelTimex(
        state=TIME_STATES.get(rc, f"state{rc}"),
        status=int(tx.status),
        offset_s=tx.offset * sub,
        freq_ppm=tx.freq / FREQ_SCALE,
        maxerror_s=tx.maxerror * 1e-6,  # always microseconds
        esterror_s=tx.esterror * 1e-6,
        time_s=tx.time.tv_sec + tx.time.tv_usec * sub,
        tick_us=int(tx.tick),
        tai_s=int(tx.tai),
    )


class KernelBackend(Protocol):
    """What KernelDiscipline needs from the kernel (KernelClock, or a fake in tests)."""

    def timex(self) -> KernelTimex: ...

    def slew(self, delta_s: float) -> None: ...

    def step(self, delta_s: float) -> None: ...

    def set_frequency(self, freq_ppm: float) -> None: ...


class KernelDiscipline:
    """The Discipline interface mapped onto the kernel clock (real machines, CAP_SYS_TIME).

    Here the kernel clock *is* the corrected clock, so ``corrected(hw) == hw`` and
    ``adjust_s`` is 0. Same rules as SoftwareClock where the kernel allows them: small
    or negative corrections -> ``slew`` (adjtime at the kernel's fixed 500 ppm; a large
    negative correction is slewed, never stepped back, and takes |delta| / 500 ppm),
    large positive ones -> ``step`` (ADJ_SETOFFSET). The same FLL as SoftwareClock sets
    ADJ_FREQUENCY, bounded by min(freq_max_ppm, 500 ppm). The mapping is unit-tested
    with a fake backend; the real write paths are NOT exercised on the shared machine.
    """

    def __init__(
        self,
        backend: KernelBackend,
        step_threshold_s: float = 0.128,
        freq_max_ppm: float = KERNEL_MAX_FREQ_PPM,
        *,
        fll_gain: float = 1.0,
        fll_min_interval_s: float = 1.0,
    ) -> None:
        self.backend = backend
        self.step_threshold_s = step_threshold_s
        self.freq_max_ppm = min(freq_max_ppm, KERNEL_MAX_FREQ_PPM)
        self.fll_gain = fll_gain
        self.fll_min_interval_s = fll_min_interval_s
        self._freq_ppm = backend.timex().freq_ppm
        self._last_hw: float | None = None
        self._last_bound_s = 0.0
        self._fll_armed = True
        self._slew_hw = 0.0
        self._slew_s = 0.0

    def corrected(self, hw_s: float) -> float:
        return hw_s

    def _remaining(self, hw_s: float) -> float:
        # Estimated from the kernel's fixed slew rate (modes=0 cannot read it back).
        done = KERNEL_SLEW_PPM * 1e-6 * max(0.0, hw_s - self._slew_hw)
        return math.copysign(max(0.0, abs(self._slew_s) - done), self._slew_s)

    def adjust(self, delta_s: float, hw_s: float, bound_s: float = 0.0) -> str:
        # Same FLL rules as SoftwareClock (discipline.py): no learning across a set_time,
        # updates weighted by e^2 / (e^2 + n^2) with n = (b_prev + b) / interval.
        remaining = self._remaining(hw_s)
        if self._last_hw is not None and self._fll_armed:
            interval = hw_s - self._last_hw
            if interval >= self.fll_min_interval_s:
                ferr = (delta_s - remaining) / interval
                noise = (self._last_bound_s + bound_s) / interval
                w = 1.0 if noise == 0.0 else ferr * ferr / (ferr * ferr + noise * noise)
                f = self._freq_ppm + self.fll_gain * w * ferr * 1e6
                f = max(-self.freq_max_ppm, min(self.freq_max_ppm, f))
                if f != self._freq_ppm:
                    self.backend.set_frequency(f)
                    self._freq_ppm = f
        self._last_hw = hw_s
        self._last_bound_s = bound_s
        self._fll_armed = True
        return self._apply(delta_s, hw_s, always_step_forward=False)

    def set_time(self, target_clk_s: float, hw_s: float, bound_s: float = 0.0) -> str:
        self._last_hw = hw_s
        self._last_bound_s = bound_s
        self._fll_armed = False
        return self._apply(target_clk_s - hw_s, hw_s, always_step_forward=True)

    def _apply(self, delta: float, hw_s: float, *, always_step_forward: bool) -> str:
        if delta > 0 and (always_step_forward or delta > self.step_threshold_s):
            if self._remaining(hw_s) != 0.0:
                self.backend.slew(0.0)  # ADJ_SETOFFSET leaves a pending adjtime running
            self.backend.step(delta)
            self._slew_s = 0.0
            return STEP
        self.backend.slew(delta)
        self._slew_hw, self._slew_s = hw_s, delta
        return HOLD if delta < -self.step_threshold_s else SLEW

    def state(self, hw_s: float) -> dict[str, float]:
        tx = self.backend.timex()
        return {
            "hw_s": hw_s,
            "clk_s": hw_s,
            "adjust_s": 0.0,
            "freq_ppm": tx.freq_ppm,
            "slew_remaining_s": self._remaining(hw_s),
        }


def make_clock(
    backend: str,
    slew_max_ppm: float,
    step_threshold_s: float,
    freq_max_ppm: float,
    environ: Mapping[str, str] | None = None,
) -> tuple[HardwareClock, Discipline]:
    """The hardware clock and discipline for the config's ``[clock]`` section.

    ``"process"``: :meth:`ProcessClock.from_environ` + SoftwareClock (the lab: libfaketime
    drifts the process clock). ``"kernel"``: KernelClock with writes enabled +
    KernelDiscipline (real machines with CAP_SYS_TIME; never used on the shared dev
    machine, and this branch is not exercised by the tests).
    """
    from .discipline import SoftwareClock

    if backend == "process":
        return ProcessClock.from_environ(environ), SoftwareClock(slew_max_ppm, step_threshold_s, freq_max_ppm)
    if backend == "kernel":
        kc = KernelClock(allow_write=True)
        return kc, KernelDiscipline(kc, step_threshold_s, freq_max_ppm)
    raise ValueError(f"clock.backend: must be 'process' or 'kernel', got {backend!r}")
