"""The software clock discipline: a node's corrected clock on top of its hardware clock.

This module owns the rules by which corrections change the node's corrected clock
(``clk``), the way a kernel disciplines the system clock on top of an oscillator:
bounded slewing, forward-only steps, a never-backwards rule, and a frequency correction
learned from successive corrections (a frequency-locked loop). It is pure: every call
takes the hardware time ``hw_s`` as an argument; it must not read any clock, sleep, log
or know about the protocol. Standard library only.

Sign convention (pinned by tests): a correction is ADDED to the clock. ``adjust(+0.01)``
makes the clock read 10 ms more (once slewed) than it otherwise would; with
``offset = local - reference`` the correction to send is ``-offset``.

Rules
-----
* ``adjust(delta)`` with ``|delta| <= step_threshold_s``: slew, i.e. change the rate by at
  most ``slew_max_ppm`` until ``delta`` has been absorbed (BSD ``adjtime``).
* ``delta > step_threshold_s``: step forward at once (time jumps ahead, never back).
* ``delta < -step_threshold_s`` (or any backward correction while a hold is still in
  progress): **hold** -- the clock keeps running forward at a reduced
  rate, ``1 + freq - backward_slew_ppm*1e-6`` (default: half speed), until ``delta`` is
  absorbed. Chosen over a plain 500 ppm slew because a 1 s correction would then take
  2000 s, far longer than a 10 s round; chosen over a step because steps back break the
  event log's and the observer's monotonic time. The rate never reaches zero or below
  (checked at construction), so clk is strictly increasing.
* A new ``adjust`` *replaces* whatever slew is still pending (like BSD ``adjtime``, and
  unlike chrony's accumulating ``accrue_offset``): a Berkeley correction is measured
  against the clock as it reads now, which already includes the part of the old slew
  that was applied, so the unapplied rest would be counted twice. The discarded rest is
  reported to listeners (``ClockChange.discarded_s``).
* ``set_time(target)`` (SETTIME) makes clk read ``target`` as fast as the never-backwards
  rule allows: any forward correction is stepped, whatever its size, and any backward
  one is absorbed at the hold rate (half speed), whatever its size -- a SETTIME says the
  clock is wrong now, so even a small backward correction must not take |delta| / 500
  ppm (28 s for 14 ms) to absorb. It does not teach the frequency loop (an absolute set
  usually means the reference changed), and the *next* correction does not either: its
  interval starts at a set whose error is unknown (ntpd likewise never computes a
  frequency across a step: after one it starts a fresh frequency measurement interval).
* Frequency (FLL): between two corrections at hardware times t_{k-1}, t_k the clock
  error grew by ``delta_k - rem_k`` where ``rem_k`` is the part of the previous
  correction not yet applied at t_k. So the rate error per hardware second is
  ``(delta_k - rem_k) / (t_k - t_{k-1})``; ``freq += gain * that``, clipped to
  ``+-freq_max_ppm``. With exact corrections and gain 1 a constant rate error is
  cancelled after two corrections. Intervals shorter than ``fll_min_interval_s`` are not
  used (a small measurement error over a short interval is a large frequency error).
* FLL weighting by the measurement error: each correction may carry its error bound
  ``bound_s`` (half the round trip of the sample it came from). The frequency estimate
  of an interval T between corrections with bounds b_{k-1}, b_k is wrong by up to
  ``n = (b_{k-1} + b_k) / T``; the update is scaled by ``w = e^2 / (e^2 + n^2)`` where
  ``e`` is the estimate. A frequency error far above the noise is taken at (almost)
  full gain (convergence after two corrections is kept), one comparable to the noise
  at half gain, one far below it hardly at all -- so measurement jitter does not turn
  into frequency jitter between rounds. (chrony weights its regression by each
  sample's dispersion for the same reason.) Bounds of 0 (the default) give w = 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

# Names of what an adjust/set_time did; these strings go into the event log's `applied`.
SLEW = "slew"
STEP = "step"
HOLD = "hold"


@dataclass(frozen=True)
class ClockChange:
    """What a correction did, for listeners that hold samples in clk time (chrony-style).

    ``step_s`` is the instantaneous jump of clk at ``hw_s`` (0 unless kind == "step"):
    a sample buffer re-bases by adding it to stored clk timestamps. ``slew_s`` is the
    amount that will be absorbed gradually, ``discarded_s`` the pending slew that was
    dropped, ``dfreq_ppm`` the change of frequency correction made now.
    """

    hw_s: float
    kind: str
    step_s: float
    slew_s: float
    discarded_s: float
    dfreq_ppm: float
    freq_ppm: float


Listener = Callable[[ClockChange], None]


class SoftwareClock:
    """clk = f(hw): the node's corrected clock; see the module docstring for the rules.

    Internal representation: from anchor ``(hw_a, clk_a)`` on, the clock runs at
    ``1 + freq`` clk seconds per hardware second, plus a pending slew ``pending_s`` that
    is absorbed at ``slew_rate`` (a fraction, sign taken from ``pending_s``).
    """

    def __init__(
        self,
        slew_max_ppm: float = 500.0,
        step_threshold_s: float = 0.128,
        freq_max_ppm: float = 150_000.0,
        *,
        backward_slew_ppm: float = 500_000.0,
        fll_gain: float = 1.0,
        fll_min_interval_s: float = 1.0,
        initial_freq_ppm: float = 0.0,
    ) -> None:
        for name, value in (
            ("slew_max_ppm", slew_max_ppm),
            ("step_threshold_s", step_threshold_s),
            ("freq_max_ppm", freq_max_ppm),
            ("backward_slew_ppm", backward_slew_ppm),
            ("fll_min_interval_s", fll_min_interval_s),
        ):
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name}: must be a finite number >= 0, got {value!r}")
        if slew_max_ppm <= 0:
            raise ValueError(f"slew_max_ppm: must be > 0, got {slew_max_ppm!r}")
        if backward_slew_ppm < slew_max_ppm:
            raise ValueError("backward_slew_ppm: must be >= slew_max_ppm")
        # The slowest the clock may run is 1 - freq_max - backward_slew; keep it > 0 so
        # clk is strictly increasing whatever the state.
        if freq_max_ppm + backward_slew_ppm >= 1e6:
            raise ValueError(
                f"freq_max_ppm + backward_slew_ppm must be < 1e6 (the clock would stop or run "
                f"backwards), got {freq_max_ppm} + {backward_slew_ppm}"
            )
        if not (0.0 <= fll_gain <= 1.0):
            raise ValueError(f"fll_gain: must be in [0, 1], got {fll_gain!r}")
        if abs(initial_freq_ppm) > freq_max_ppm:
            raise ValueError("initial_freq_ppm: must be within +-freq_max_ppm")
        self.slew_max = slew_max_ppm * 1e-6
        self.step_threshold_s = step_threshold_s
        self.freq_max = freq_max_ppm * 1e-6
        self.backward_slew = backward_slew_ppm * 1e-6
        self.fll_gain = fll_gain
        self.fll_min_interval_s = fll_min_interval_s
        self._freq = initial_freq_ppm * 1e-6
        self._hw_a: float | None = None  # anchor; None until the first call
        self._clk_a = 0.0
        self._pending = 0.0
        self._slew_rate = self.slew_max
        self._last_correction_hw: float | None = None
        self._last_bound_s = 0.0          # error bound of the correction that started the interval
        self._fll_armed = False           # False: the interval started at a set_time (unknown error)
        self._listeners: list[Listener] = []

    # -- reading ---------------------------------------------------------------------
    def corrected(self, hw_s: float) -> float:
        """The corrected clock at hardware time ``hw_s``; non-decreasing in ``hw_s``.

        Before the first correction clk == hw. A query earlier than the last correction's
        hardware time returns the clock at that correction (the clock never goes back).
        """
        if self._hw_a is None:
            return hw_s
        dt = hw_s - self._hw_a
        if dt <= 0.0:
            return self._clk_a
        base = 1.0 + self._freq
        if self._pending == 0.0:
            return self._clk_a + base * dt
        rate = base + math.copysign(self._slew_rate, self._pending)
        t_slew = abs(self._pending) / self._slew_rate
        # clk at the end of the slew, written so the applied offset is exactly `pending`.
        c_end = self._clk_a + base * t_slew + self._pending
        if dt < t_slew:
            # min() keeps the two pieces monotonic across the seam in floating point.
            return min(self._clk_a + rate * dt, c_end)
        return c_end + base * (dt - t_slew)

    def slew_remaining(self, hw_s: float) -> float:
        """Part of the pending slew not yet absorbed at ``hw_s`` (s, signed)."""
        if self._hw_a is None or self._pending == 0.0:
            return 0.0
        dt = max(0.0, hw_s - self._hw_a)
        absorbed = min(abs(self._pending), self._slew_rate * dt)
        return math.copysign(abs(self._pending) - absorbed, self._pending)

    @property
    def freq_ppm(self) -> float:
        return self._freq * 1e6

    def state(self, hw_s: float) -> dict[str, float]:
        """The ``clock`` object of ``tempoctl status --json`` (architecture.md)."""
        clk = self.corrected(hw_s)
        return {
            "hw_s": hw_s,
            "clk_s": clk,
            "adjust_s": clk - hw_s,
            "freq_ppm": self.freq_ppm,
            "slew_remaining_s": self.slew_remaining(hw_s),
        }

    # -- listeners -------------------------------------------------------------------
    def add_listener(self, fn: Listener) -> None:
        """Call ``fn(ClockChange)`` after every adjust/set_time (after the change)."""
        self._listeners.append(fn)

    def remove_listener(self, fn: Listener) -> None:
        self._listeners.remove(fn)

    # -- corrections -----------------------------------------------------------------
    def adjust(self, delta_s: float, hw_s: float, bound_s: float = 0.0) -> str:
        """Apply a relative correction (ADDED to the clock). Returns "slew", "step" or "hold".

        ``bound_s`` (>= 0): the correction's error bound, which weights what the
        frequency loop learns from it (module docstring).
        """
        _check_finite("delta_s", delta_s)
        _check_finite("hw_s", hw_s)
        _check_bound(bound_s)
        return self._correct(delta_s, hw_s, always_step_forward=False, learn=True, bound_s=bound_s)

    def set_time(self, target_clk_s: float, hw_s: float, bound_s: float = 0.0) -> str:
        """Make the clock read ``target_clk_s`` at ``hw_s``: forward = step, backward = hold."""
        _check_finite("target_clk_s", target_clk_s)
        _check_finite("hw_s", hw_s)
        _check_bound(bound_s)
        delta = target_clk_s - self.corrected(hw_s)
        return self._correct(delta, hw_s, always_step_forward=True, learn=False, bound_s=bound_s)

    def _correct(self, delta: float, hw_s: float, *, always_step_forward: bool, learn: bool,
                 bound_s: float) -> str:
        if self._hw_a is not None and hw_s < self._hw_a:
            hw_s = self._hw_a  # a late call is applied at the last anchor: never back in time
        clk_now = self.corrected(hw_s)
        remaining = self.slew_remaining(hw_s)
        old_freq = self._freq
        # A backward correction that arrives while a hold is still absorbing the last one
        # (e.g. the next round's ADJTIME after a 1 s SETTIME back) is the same error, seen
        # again: it keeps the hold rate. At the 500 ppm slew rate the rest (tens of ms)
        # would otherwise take a minute and more to absorb.
        holding = remaining < 0.0 and self._slew_rate == self.backward_slew
        if learn and self._fll_armed and self._last_correction_hw is not None:
            interval = hw_s - self._last_correction_hw
            if interval >= self.fll_min_interval_s and interval > 0.0:
                # Error accumulated by the frequency over the interval, per hw second
                # (positive: the clock ran slow and must run faster).
                ferr = (delta - remaining) / interval
                # Its uncertainty: both ends' measurement errors over the interval.
                noise = (self._last_bound_s + bound_s) / interval
                w = 1.0 if noise == 0.0 else ferr * ferr / (ferr * ferr + noise * noise)
                f = self._freq + self.fll_gain * w * ferr
                self._freq = max(-self.freq_max, min(self.freq_max, f))
        # Every correction (set_time included) starts a new FLL interval; one that starts
        # at a set_time is not learned from (its starting error is unknown).
        self._last_correction_hw = hw_s
        self._last_bound_s = bound_s
        self._fll_armed = learn
        # Re-anchor at the current reading; the unapplied rest of the old slew is dropped.
        self._hw_a = hw_s
        self._clk_a = clk_now
        step = 0.0
        if delta > 0.0 and (always_step_forward or delta > self.step_threshold_s):
            kind = STEP
            step = delta
            self._clk_a = clk_now + delta
            self._pending = 0.0
            self._slew_rate = self.slew_max
        elif (delta < -self.step_threshold_s or (always_step_forward and delta < 0.0)
              or (holding and delta < 0.0)):
            kind = HOLD
            self._pending = delta
            self._slew_rate = self.backward_slew
        else:
            kind = SLEW
            self._pending = delta
            self._slew_rate = self.slew_max
        change = ClockChange(
            hw_s=hw_s,
            kind=kind,
            step_s=step,
            slew_s=0.0 if kind == STEP else delta,
            discarded_s=remaining,
            dfreq_ppm=(self._freq - old_freq) * 1e6,
            freq_ppm=self._freq * 1e6,
        )
        for fn in list(self._listeners):
            fn(change)
        return kind


def _check_bound(bound_s: float) -> None:
    _check_finite("bound_s", bound_s)
    if bound_s < 0.0:
        raise ValueError(f"bound_s: must be >= 0, got {bound_s!r}")


def _check_finite(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name}: must be a finite number, got {value!r}")


def clock_status(clock, hw_s: float) -> dict[str, float]:
    """The ``clock`` object of ``tempoctl status --json`` for any Discipline (software or
    kernel; both cores report it the same way)."""
    cs = clock.state(hw_s)
    return {"hw_s": hw_s, "clk_s": clock.corrected(hw_s),
            "adjust_s": cs.get("adjust_s", 0.0), "freq_ppm": cs.get("freq_ppm", 0.0),
            "slew_remaining_s": cs.get("slew_remaining_s", 0.0)}
