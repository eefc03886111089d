"""Hardware clock drivers and the Discipline interface the node core calls.

This module owns *where hardware time comes from*: the process's own clock (drifted by
libfaketime, plus profile rate changes applied in software), a simulated clock for the
simulator, and the Linux kernel clock read through ``adjtimex``. It also defines the
``Discipline`` protocol (implemented by :class:`tempod.discipline.SoftwareClock` and by
:class:`KernelDiscipline` here). It must not know about the protocol, the election or
the event log. Standard library only (ctypes for the kernel).

Every driver has ``read_s() -> float``: hardware seconds (Unix epoch scale). Sign
convention shared with discipline.py: a correction is ADDED to the clock.

SAFETY: the kernel clock lives in kernelclock.py; a writable one can only be built on a
machine that passes kernelguard.py (a tempo VM guest), never on the shared host.
"""

from __future__ import annotations

import bisect
import math
import os
import random
import time
from typing import Callable, Mapping, Protocol, runtime_checkable

from . import profile as _profile


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
# Kernel clock: kernelclock.py (adjtimex, tick + freq, the hold); re-exported here
# --------------------------------------------------------------------------------------
from .kernelclock import (  # noqa: E402,F401  (the public names of this module)
    KernelBackend,
    KernelClock,
    KernelDiscipline,
    KernelError,
    KernelTimex,
    decode_timex,
)


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
    KernelDiscipline (VM guests with CAP_SYS_TIME; building it runs the guard of
    kernelguard.py, which raises KernelGuardError -- a ValueError -- anywhere else).
    """
    from .discipline import SoftwareClock

    if backend == "process":
        return ProcessClock.from_environ(environ), SoftwareClock(slew_max_ppm, step_threshold_s, freq_max_ppm)
    if backend == "kernel":
        kc = KernelClock(allow_write=True)  # runs the guard first
        return kc, KernelDiscipline(kc, step_threshold_s, freq_max_ppm)
    raise ValueError(f"clock.backend: must be 'process' or 'kernel', got {backend!r}")
