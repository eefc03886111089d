"""The Linux kernel clock as a tempod clock: adjtimex / clock_adjtime through ctypes.

This module owns everything tempod does to a *real* system clock: reading its timex
state, and the three write paths -- slew (BSD adjtime), forward step (ADJ_SETOFFSET)
and the frequency, set as ``tick`` plus ``freq`` together as chrony does, because the
kernel's ``freq`` alone stops at +-500 ppm while a VM whose TSC was calibrated under a
faked rate may be 10 % off. :class:`KernelDiscipline` maps the Discipline interface
(clocks.py) onto those writes with the same rules as discipline.SoftwareClock where the
kernel allows them. Standard library only.

Sign conventions (as discipline.py): a correction is ADDED to the clock; a positive
frequency makes the clock run faster; ``offset = local - reference`` so the correction
for an offset is ``-offset``.

Frequency arithmetic (kernel/time/ntp.c): one second of the clock is
``tick_us * USER_HZ * 1000 ns + freq`` of clocksource time, so the total frequency
correction is ``(tick_us - nominal) * 1e6 / nominal + freq_ppm`` ppm (additive), with
``tick_us`` in [0.9, 1.1] x nominal (EINVAL outside) and ``|freq_ppm| <= 500``.

Backward corrections beyond the step threshold (and any backward set_time) are never
stepped: they are a *hold*, the total frequency lowered by ``hold_ppm`` for exactly as
long as the correction needs, measured on CLOCK_MONOTONIC_RAW (the clocksource, which
the frequency does not touch), so the amount removed is known exactly; the runtime ends
a hold through :meth:`KernelDiscipline.poll` and the lateness of that call is put
back with a small adjtime slew. The kernel's own adjtime slews at a fixed 500 ppm,
which would take 2000 s for a 1 s correction.

SAFETY: writes need ``allow_write=True``, and constructing a writable KernelClock runs
the guard (kernelguard.py) first, which refuses on any machine that was not booted as
a tempo VM guest -- the shared development host above all.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
import time
from dataclasses import dataclass
from typing import Callable, Protocol

from .discipline import HOLD, SLEW, STEP


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
ADJ_TICK = 0x4000
ADJ_OFFSET_SINGLESHOT = 0x8001  # BSD adjtime(): slew at the kernel's fixed 500 ppm
ADJ_OFFSET_SS_READ = 0xA001     # read the pending adjtime slew (no privilege needed)
STA_PLL = 0x0001
STA_FLL = 0x0008
STA_UNSYNC = 0x0040
STA_NANO = 0x2000
CLOCK_REALTIME = 0
FREQ_SCALE = 65536.0  # timex.freq is ppm with a 16-bit binary fraction
KERNEL_MAX_FREQ_PPM = 500.0  # |timex.freq| limit
KERNEL_SLEW_PPM = 500.0  # rate of ADJ_OFFSET_SINGLESHOT slewing
NOMINAL_TICK_US = 10_000  # 1e6 / USER_HZ, USER_HZ = 100 on Linux x86-64
TICK_SPAN = 0.1  # the kernel accepts tick in [0.9, 1.1] x nominal
TIME_STATES = {0: "TIME_OK", 1: "TIME_INS", 2: "TIME_DEL", 3: "TIME_OOP", 4: "TIME_WAIT", 5: "TIME_ERROR"}


def max_total_ppm(nominal_tick_us: int = NOMINAL_TICK_US) -> float:
    """Largest |total frequency correction| tick + freq can give (100500 ppm at USER_HZ 100)."""
    return TICK_SPAN * 1e6 + KERNEL_MAX_FREQ_PPM - 1e6 / nominal_tick_us  # one tick step of margin


def split_frequency(total_ppm: float, nominal_tick_us: int = NOMINAL_TICK_US) -> tuple[int, float]:
    """(tick_us, freq_ppm) whose sum is ``total_ppm``: tick takes whole steps, freq the rest.

    One microsecond of tick is ``1e6 / nominal`` ppm (100 ppm at USER_HZ 100); the tick
    nearest the total leaves ``|freq| <= 50 ppm``, well inside the kernel's 500 ppm, as
    chrony's sys_linux does. Raises ValueError beyond :func:`max_total_ppm`.
    """
    if not math.isfinite(total_ppm):
        raise ValueError(f"total_ppm: must be finite, got {total_ppm!r}")
    limit = max_total_ppm(nominal_tick_us)
    if abs(total_ppm) > limit:
        raise ValueError(f"total_ppm: |{total_ppm:.1f}| exceeds what tick + freq can give ({limit:.0f} ppm)")
    per_us = 1e6 / nominal_tick_us
    tick = nominal_tick_us + int(round(total_ppm / per_us))
    lo = int(math.ceil(nominal_tick_us * (1 - TICK_SPAN)))
    hi = int(math.floor(nominal_tick_us * (1 + TICK_SPAN)))
    tick = max(lo, min(hi, tick))
    freq = total_ppm - (tick - nominal_tick_us) * per_us
    return tick, freq


def total_frequency_ppm(tick_us: int, freq_ppm: float, nominal_tick_us: int = NOMINAL_TICK_US) -> float:
    """Inverse of :func:`split_frequency`."""
    return (tick_us - nominal_tick_us) * 1e6 / nominal_tick_us + freq_ppm


@dataclass(frozen=True)
class KernelTimex:
    """Decoded result of a read-only adjtimex call."""

    state: str  # TIME_OK, ..., TIME_ERROR (unsynchronized)
    status: int  # STA_* bits
    offset_s: float  # PLL offset still to be applied
    freq_ppm: float  # kernel frequency correction (timex.freq only, without tick)
    maxerror_s: float
    esterror_s: float
    time_s: float  # CLOCK_REALTIME at the call
    tick_us: int
    tai_s: int

    @property
    def unsynchronized(self) -> bool:
        return bool(self.status & STA_UNSYNC)

    @property
    def total_freq_ppm(self) -> float:
        return total_frequency_ppm(self.tick_us, self.freq_ppm)


class KernelError(OSError):
    pass


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


def encode_step(delta_s: float) -> _Timex:
    """ADJ_SETOFFSET | ADJ_NANO for ``delta_s`` (kernel wants 0 <= nsec < 1e9)."""
    tx = _Timex()
    tx.modes = ADJ_SETOFFSET | ADJ_NANO
    sec, nsec = divmod(int(round(delta_s * 1e9)), 1_000_000_000)
    tx.time.tv_sec = sec
    tx.time.tv_usec = nsec
    return tx


def encode_tick_frequency(tick_us: int, freq_ppm: float) -> _Timex:
    """ADJ_TICK | ADJ_FREQUENCY in one call, so the total never passes through a mix."""
    if abs(freq_ppm) > KERNEL_MAX_FREQ_PPM:
        raise ValueError(f"freq_ppm: kernel limit is +-{KERNEL_MAX_FREQ_PPM} ppm, got {freq_ppm}")
    tx = _Timex()
    tx.modes = ADJ_TICK | ADJ_FREQUENCY
    tx.tick = int(tick_us)
    tx.freq = int(round(freq_ppm * FREQ_SCALE))
    return tx


class KernelClock:
    """The Linux system clock: ``read_s()`` is CLOCK_REALTIME, ``raw_s()`` the clocksource.

    Writes (``slew``, ``step``, ``set_tick_frequency``) need CAP_SYS_TIME and refuse to
    run unless ``allow_write=True``; building a writable one runs
    :func:`tempod.kernelguard.require_vm_guest` first (raises KernelGuardError on a
    machine that was not booted as a tempo VM guest). Under libfaketime the read path
    is faked but adjtimex is not intercepted (DESIGN.md): the guard refuses that too.
    """

    def __init__(self, allow_write: bool = False, libc_path: str | None = None) -> None:
        if allow_write:
            from .kernelguard import require_vm_guest
            require_vm_guest()
        self.allow_write = allow_write
        self._libc = ctypes.CDLL(libc_path or ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self._libc.adjtimex.argtypes = [ctypes.POINTER(_Timex)]
        self._libc.adjtimex.restype = ctypes.c_int
        self._libc.clock_adjtime.argtypes = [ctypes.c_int, ctypes.POINTER(_Timex)]
        self._libc.clock_adjtime.restype = ctypes.c_int

    def read_s(self) -> float:
        return time.time()

    @staticmethod
    def raw_s() -> float:
        return time.clock_gettime(time.CLOCK_MONOTONIC_RAW)

    def _call(self, tx: _Timex, what: str, *, clock: bool = False) -> int:
        rc = (self._libc.clock_adjtime(CLOCK_REALTIME, ctypes.byref(tx)) if clock
              else self._libc.adjtimex(ctypes.byref(tx)))
        if rc < 0:
            err = ctypes.get_errno()
            raise KernelError(err, f"{what}: {os.strerror(err)}")
        return rc

    def timex(self) -> KernelTimex:
        """Read-only adjtimex (modes = 0): needs no privilege, changes nothing."""
        tx = _Timex()
        tx.modes = 0
        rc = self._call(tx, "adjtimex(modes=0)")
        return decode_timex(tx, rc)

    def slew_remaining(self) -> float:
        """The adjtime slew still pending (ADJ_OFFSET_SS_READ: read-only, no privilege)."""
        tx = _Timex()
        tx.modes = ADJ_OFFSET_SS_READ
        self._call(tx, "adjtimex(ADJ_OFFSET_SS_READ)")
        return tx.offset * 1e-6

    # -- write paths -------------------------------------------------------------------
    def _write(self, tx: _Timex, what: str, *, clock: bool = False) -> int:
        if not self.allow_write:
            raise PermissionError(f"KernelClock.{what}: writes are disabled (allow_write=False)")
        return self._call(tx, what, clock=clock)

    def slew(self, delta_s: float) -> None:
        """BSD adjtime(): slew by ``delta_s`` at 500 ppm, replacing a pending slew."""
        tx = _Timex()
        tx.modes = ADJ_OFFSET_SINGLESHOT
        tx.offset = int(round(delta_s * 1e6))  # microseconds (singleshot ignores ADJ_NANO)
        self._write(tx, "slew")

    def step(self, delta_s: float) -> None:
        """Step CLOCK_REALTIME by ``delta_s`` (ADJ_SETOFFSET | ADJ_NANO via clock_adjtime)."""
        self._write(encode_step(delta_s), "step", clock=True)

    def set_tick_frequency(self, tick_us: int, freq_ppm: float) -> None:
        """ADJ_TICK | ADJ_FREQUENCY together (see :func:`split_frequency`)."""
        self._write(encode_tick_frequency(tick_us, freq_ppm), "set_tick_frequency")

    def set_frequency(self, freq_ppm: float) -> None:
        """Total frequency correction (ppm), split into tick and freq."""
        self.set_tick_frequency(*split_frequency(freq_ppm))


class KernelBackend(Protocol):
    """What KernelDiscipline needs from the kernel (KernelClock, or a simulated one)."""

    def timex(self) -> KernelTimex: ...

    def raw_s(self) -> float: ...

    def slew_remaining(self) -> float: ...

    def slew(self, delta_s: float) -> None: ...

    def step(self, delta_s: float) -> None: ...

    def set_tick_frequency(self, tick_us: int, freq_ppm: float) -> None: ...


@dataclass
class _Hold:
    raw_start_s: float
    rate: float          # fraction the total frequency is lowered by (> 0)
    target_s: float      # the (negative) correction the hold removes
    end_raw_s: float


class KernelDiscipline:
    """The Discipline interface mapped onto the kernel clock (VM guests, CAP_SYS_TIME).

    The kernel clock *is* the corrected clock, so ``corrected(hw) == hw``. Rules:

    * forward corrections beyond ``step_threshold_s`` and forward ``set_time``: step
      (ADJ_SETOFFSET); the clock jumps ahead, never back;
    * ``|delta| <= step_threshold_s``: adjtime slew at the kernel's 500 ppm;
    * backward beyond the threshold, any backward ``set_time``, or a backward correction
      while a hold still runs: a hold (module doc), ``hold_ppm`` below the learned
      frequency, so -1 s takes 20 s at 50000 ppm;
    * a new correction replaces what is still pending (as SoftwareClock); the FLL
      learns ``(delta - remaining) / interval`` with the same error-bound weighting and
      sets the total frequency as tick + freq, bounded by ``freq_max_ppm`` and by
      what tick + freq can give (+-100400 ppm).

    ``poll(hw)`` must be called by the event loop by ``next_poll_s(hw)`` seconds from now.
    """

    def __init__(
        self,
        backend: KernelBackend,
        step_threshold_s: float = 0.128,
        freq_max_ppm: float = 150_000.0,
        *,
        hold_ppm: float = 50_000.0,
        fll_gain: float = 1.0,
        fll_min_interval_s: float = 1.0,
        listener: Callable[[str], None] | None = None,
    ) -> None:
        if not (KERNEL_SLEW_PPM < hold_ppm <= 100_000.0):
            raise ValueError(f"hold_ppm: must be in ({KERNEL_SLEW_PPM:g}, 100000], got {hold_ppm!r}")
        self.backend = backend
        self.step_threshold_s = step_threshold_s
        self.freq_max_ppm = min(freq_max_ppm, max_total_ppm())
        self.hold_ppm = hold_ppm
        self.fll_gain = fll_gain
        self.fll_min_interval_s = fll_min_interval_s
        self._freq_ppm = backend.timex().total_freq_ppm  # what a previous run left
        self._last_hw: float | None = None
        self._last_bound_s = 0.0
        self._fll_armed = False
        self._hold: _Hold | None = None
        self._note = listener or (lambda _msg: None)

    # -- reading -------------------------------------------------------------------
    def corrected(self, hw_s: float) -> float:
        return hw_s

    @property
    def freq_ppm(self) -> float:
        """The learned total frequency correction (tick + freq), ppm."""
        return self._freq_ppm

    def _remaining(self) -> float:
        if self._hold is not None:
            h = self._hold
            applied = -h.rate * max(0.0, self.backend.raw_s() - h.raw_start_s)
            return h.target_s - max(applied, h.target_s)
        return self.backend.slew_remaining()

    def state(self, hw_s: float) -> dict[str, float]:
        tx = self.backend.timex()
        return {
            "hw_s": hw_s,
            "clk_s": hw_s,
            "adjust_s": 0.0,
            "freq_ppm": tx.total_freq_ppm,
            "tick_us": float(tx.tick_us),
            "slew_remaining_s": self._remaining(),
        }

    # -- the event loop's hook -------------------------------------------------------
    def next_poll_s(self, hw_s: float) -> float | None:
        """Seconds until :meth:`poll` is due (None: no hold in progress)."""
        if self._hold is None:
            return None
        return max(0.0, self._hold.end_raw_s - self.backend.raw_s())

    def poll(self, hw_s: float) -> None:
        """End a hold whose time is up; put back what the late call removed too much."""
        if self._hold is not None and self.backend.raw_s() >= self._hold.end_raw_s:
            rest = self._end_hold()
            if rest != 0.0:
                self.backend.slew(rest)

    def _set_total(self, total_ppm: float) -> None:
        self.backend.set_tick_frequency(*split_frequency(total_ppm))

    def _end_hold(self) -> float:
        """Restore the learned frequency; return the part of the target not removed
        (negative: too little, positive: the call came late and removed too much)."""
        h = self._hold
        assert h is not None
        r0 = self.backend.raw_s()
        self._set_total(self._freq_ppm)
        r1 = self.backend.raw_s()
        self._hold = None
        applied = -h.rate * ((r0 + r1) / 2.0 - h.raw_start_s)
        return h.target_s - applied

    # -- corrections -----------------------------------------------------------------
    def adjust(self, delta_s: float, hw_s: float, bound_s: float = 0.0) -> str:
        _check_finite("delta_s", delta_s)
        _check_finite("hw_s", hw_s)
        if bound_s < 0 or not math.isfinite(bound_s):
            raise ValueError(f"bound_s: must be a finite number >= 0, got {bound_s!r}")
        holding = self._hold is not None
        remaining = self._cancel_pending()
        if self._last_hw is not None and self._fll_armed:
            interval = hw_s - self._last_hw
            if interval >= self.fll_min_interval_s:
                ferr = (delta_s - remaining) / interval
                noise = (self._last_bound_s + bound_s) / interval
                w = 1.0 if noise == 0.0 else ferr * ferr / (ferr * ferr + noise * noise)
                f = self._freq_ppm + self.fll_gain * w * ferr * 1e6
                f = max(-self.freq_max_ppm, min(self.freq_max_ppm, f))
                if f != self._freq_ppm:
                    self._freq_ppm = f
                    self._set_total(f)
        self._last_hw = hw_s
        self._last_bound_s = bound_s
        self._fll_armed = True
        return self._apply(delta_s, always_step_forward=False, holding=holding)

    def set_time(self, target_clk_s: float, hw_s: float, bound_s: float = 0.0) -> str:
        _check_finite("target_clk_s", target_clk_s)
        _check_finite("hw_s", hw_s)
        self._cancel_pending()
        self._last_hw = hw_s
        self._last_bound_s = bound_s
        self._fll_armed = False
        return self._apply(target_clk_s - hw_s, always_step_forward=True, holding=False)

    def _cancel_pending(self) -> float:
        """Stop whatever correction is pending; return its unapplied part (signed)."""
        if self._hold is not None:
            return self._end_hold()
        rest = self.backend.slew_remaining()
        if rest != 0.0:
            self.backend.slew(0.0)
        return rest

    def _apply(self, delta: float, *, always_step_forward: bool, holding: bool) -> str:
        if delta > 0 and (always_step_forward or delta > self.step_threshold_s):
            self.backend.step(delta)
            return STEP
        # a backward correction arriving while a hold still runs is the same error seen
        # again: it keeps the hold rate (as SoftwareClock), not 500 ppm
        if delta < 0 and (always_step_forward or holding or delta < -self.step_threshold_s):
            # as fast as tick + freq allow below the learned frequency, at most hold_ppm
            room = max_total_ppm() + self._freq_ppm
            rate_ppm = min(self.hold_ppm, room)
            if rate_ppm > 2 * KERNEL_SLEW_PPM:
                raw0 = self.backend.raw_s()
                self._set_total(self._freq_ppm - rate_ppm)
                rate = rate_ppm * 1e-6
                self._hold = _Hold(raw0, rate, delta, raw0 + (-delta) / rate)
                return HOLD
            self._note(f"hold: only {room:.0f} ppm of frequency room left; slewing at 500 ppm")
            self.backend.slew(delta)
            return HOLD
        if delta != 0.0:
            self.backend.slew(delta)
        return SLEW


def _check_finite(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name}: must be a finite number, got {value!r}")
