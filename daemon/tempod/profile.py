"""Drift profiles: a node's *hardware* clock as a function of true time.

This module owns the drift profile file format (``/etc/tempo/drift.toml``, see
docs/architecture.md), its validation, the piecewise-linear mapping between true time
and hardware time, the libfaketime environment that makes a freshly started process
see that hardware clock, and reproducible generation of profiles from a seed.

It must not know about the daemon, sockets, the discipline or the lab: it is pure
(the only I/O is :func:`load_profile` reading one file). Standard library only.

Model (all times in seconds, rates in ppm, positive rate = hardware runs fast)::

    hw(t) = t + offset_s + integral_{epoch}^{t} rate(u) du * 1e-6

``rate(u)`` is ``rate_ppm`` from the epoch until the first change, then each change's
``rate_ppm`` from ``epoch + at_s`` on. Before the epoch the initial rate is extrapolated,
so ``hw`` is defined, continuous and strictly increasing for every real ``t``.
"""

from __future__ import annotations

import bisect
import math
import random
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

# Rates are bounded so the hardware clock always runs forward (1 + rate > 0) with a wide
# margin; 50% is far beyond any real oscillator and beyond the 10% the suites use.
MAX_ABS_RATE_PPM = 500_000.0

# Environment variables the launcher hands to the child; ProcessClock reads them back.
ENV_PROFILE = "TEMPO_DRIFT_PROFILE"  # path of the drift profile file
ENV_LAUNCH_TRUE_S = "TEMPO_LAUNCH_TRUE_S"  # true time (s) at which FAKETIME was computed
ENV_CLOCK_MODE = "TEMPO_CLOCK_MODE"  # "faketime" | "software"


class ProfileError(ValueError):
    """A drift profile is malformed; the message names the offending field."""


@dataclass(frozen=True)
class RateChange:
    """From ``epoch + at_s`` on, the hardware clock runs at ``rate_ppm``."""

    at_s: float
    rate_ppm: float


@dataclass(frozen=True)
class DriftProfile:
    """One node's hardware clock. Immutable; build with :func:`parse_profile`."""

    epoch_unix_s: float
    offset_s: float
    rate_ppm: float
    changes: tuple[RateChange, ...] = ()
    # Precomputed segment table: true start time, hw at that start, rate (fraction).
    _starts: tuple[float, ...] = field(init=False, repr=False, compare=False)
    _hw_starts: tuple[float, ...] = field(init=False, repr=False, compare=False)
    _rates: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_number("epoch_unix_s", self.epoch_unix_s)
        _check_number("offset_s", self.offset_s)
        _check_rate("rate_ppm", self.rate_ppm)
        previous = 0.0
        for i, ch in enumerate(self.changes):
            _check_number(f"changes[{i}].at_s", ch.at_s)
            _check_rate(f"changes[{i}].rate_ppm", ch.rate_ppm)
            if ch.at_s <= 0.0 and i == 0:
                raise ProfileError(f"changes[{i}].at_s: must be > 0 (seconds after the epoch), got {ch.at_s}")
            if i > 0 and ch.at_s <= previous:
                raise ProfileError(
                    f"changes[{i}].at_s: must be strictly increasing, got {ch.at_s} after {previous}"
                )
            previous = ch.at_s
        starts = [self.epoch_unix_s]
        hws = [self.epoch_unix_s + self.offset_s]
        rates = [self.rate_ppm * 1e-6]
        for ch in self.changes:
            t = self.epoch_unix_s + ch.at_s
            # Same expression as hw_at() evaluated at t, so the clock is exactly
            # continuous at the boundary in floating point.
            hws.append(hws[-1] + (1.0 + rates[-1]) * (t - starts[-1]))
            starts.append(t)
            rates.append(ch.rate_ppm * 1e-6)
        object.__setattr__(self, "_starts", tuple(starts))
        object.__setattr__(self, "_hw_starts", tuple(hws))
        object.__setattr__(self, "_rates", tuple(rates))

    # -- the mapping -------------------------------------------------------------
    def rate_at(self, true_s: float) -> float:
        """Hardware rate error (ppm) in force at true time ``true_s``."""
        i = self._segment(true_s)
        return self.rate_ppm if i == 0 else self.changes[i - 1].rate_ppm

    def hw_at(self, true_s: float) -> float:
        """Hardware clock reading (s) at true time ``true_s``."""
        i = self._segment(true_s)
        return self._hw_starts[i] + (1.0 + self._rates[i]) * (true_s - self._starts[i])

    def true_at(self, hw_s: float) -> float:
        """Exact inverse of :meth:`hw_at`."""
        i = max(0, bisect.bisect_right(self._hw_starts, hw_s) - 1)
        return self._starts[i] + (hw_s - self._hw_starts[i]) / (1.0 + self._rates[i])

    def offset_at(self, true_s: float) -> float:
        """Hardware offset (hw - true) in seconds at true time ``true_s``."""
        return self.hw_at(true_s) - true_s

    def max_abs_rate_ppm(self) -> float:
        """The largest |rate| the profile ever runs at (ppm)."""
        return max([abs(self.rate_ppm)] + [abs(ch.rate_ppm) for ch in self.changes])

    def _segment(self, true_s: float) -> int:
        # Before the epoch the first segment is extrapolated (index 0).
        return max(0, bisect.bisect_right(self._starts, true_s) - 1)


def _check_number(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProfileError(f"{name}: expected a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise ProfileError(f"{name}: must be finite, got {value!r}")


def _check_rate(name: str, value: object) -> None:
    _check_number(name, value)
    assert isinstance(value, (int, float))
    if abs(value) >= MAX_ABS_RATE_PPM:
        raise ProfileError(f"{name}: |rate| must be < {MAX_ABS_RATE_PPM:.0f} ppm, got {value}")


_TOP_KEYS = {"epoch_unix_s", "offset_s", "rate_ppm", "changes"}
_CHANGE_KEYS = {"at_s", "rate_ppm"}


def parse_profile(data: Mapping[str, object], source: str = "<profile>") -> DriftProfile:
    """Validate a decoded TOML table; errors are ``ProfileError("<source>: <field>: ...")``."""
    try:
        unknown = set(data) - _TOP_KEYS
        if unknown:
            raise ProfileError(f"{sorted(unknown)[0]}: unknown key (allowed: {', '.join(sorted(_TOP_KEYS))})")
        for key in ("epoch_unix_s", "offset_s", "rate_ppm"):
            if key not in data:
                raise ProfileError(f"{key}: missing")
            _check_number(key, data[key])
        raw_changes = data.get("changes", [])
        if not isinstance(raw_changes, list):
            raise ProfileError("changes: expected an array of tables ([[changes]])")
        changes = []
        for i, ch in enumerate(raw_changes):
            if not isinstance(ch, dict):
                raise ProfileError(f"changes[{i}]: expected a table")
            bad = set(ch) - _CHANGE_KEYS
            if bad:
                raise ProfileError(f"changes[{i}].{sorted(bad)[0]}: unknown key (allowed: at_s, rate_ppm)")
            for key in ("at_s", "rate_ppm"):
                if key not in ch:
                    raise ProfileError(f"changes[{i}].{key}: missing")
                _check_number(f"changes[{i}].{key}", ch[key])
            changes.append(RateChange(float(ch["at_s"]), float(ch["rate_ppm"])))
        return DriftProfile(
            epoch_unix_s=float(data["epoch_unix_s"]),  # type: ignore[arg-type]
            offset_s=float(data["offset_s"]),  # type: ignore[arg-type]
            rate_ppm=float(data["rate_ppm"]),  # type: ignore[arg-type]
            changes=tuple(changes),
        )
    except ProfileError as exc:
        raise ProfileError(f"{source}: {exc}") from None


def loads_profile(text: str, source: str = "<string>") -> DriftProfile:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{source}: not valid TOML: {exc}") from None
    return parse_profile(data, source)


def load_profile(path: str | Path) -> DriftProfile:
    """Read and validate a drift profile file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(f"{p}: cannot read drift profile: {exc.strerror or exc}") from None
    return loads_profile(text, str(p))


def dump_profile(profile: DriftProfile) -> str:
    """TOML text that :func:`loads_profile` reads back to an equal profile (repr floats are exact)."""
    lines = [
        f"epoch_unix_s = {profile.epoch_unix_s!r}",
        f"offset_s = {profile.offset_s!r}",
        f"rate_ppm = {profile.rate_ppm!r}",
    ]
    for ch in profile.changes:
        lines += ["", "[[changes]]", f"at_s = {ch.at_s!r}", f"rate_ppm = {ch.rate_ppm!r}"]
    return "\n".join(lines) + "\n"


# -- libfaketime ------------------------------------------------------------------
def faketime_spec(profile: DriftProfile, now_true_s: float) -> str:
    """``FAKETIME`` value so a process whose libfaketime starts at ``now_true_s`` sees hw.

    Checked on this machine (libfaketime 0.9.10): with ``FAKETIME="+X xM"`` the process
    clock is ``t + X + (M - 1) * (t - t_init)`` where ``t_init`` is the real time at which
    the library initialised in that process: the offset is added unscaled and the rate is
    anchored at process start. So X = hw(t0) - t0 and M = 1 + rate(t0). Launch latency
    L = t_init - t0 gives a constant error of -rate(t0) * L (s).
    """
    x = profile.hw_at(now_true_s) - now_true_s
    m = 1.0 + profile.rate_at(now_true_s) * 1e-6
    # 9 decimals of offset (ns) and 12 of rate (1e-6 ppm) are parsed by libfaketime (checked).
    return f"{x:+.9f} x{m:.12f}"


def faketime_env(
    profile: DriftProfile,
    now_true_s: float,
    libfaketime_path: str,
    base_env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Environment for a child that must see ``profile``'s hardware clock from its start.

    Returns ``base_env`` (empty if None) plus LD_PRELOAD, FAKETIME, FAKETIME_DISABLE_SHM=1
    (shared-memory segments left by SIGKILLed processes break later starts) and
    ``TEMPO_LAUNCH_TRUE_S`` / ``TEMPO_CLOCK_MODE=faketime`` for :class:`tempod.clocks.ProcessClock`.
    Call it at the last moment before exec: its error is rate x (exec latency).
    """
    env = dict(base_env or {})
    preload = env.get("LD_PRELOAD", "")
    kept = [p for p in preload.replace(" ", ":").split(":") if p and "faketime" not in p]
    env["LD_PRELOAD"] = ":".join([libfaketime_path, *kept])
    env["FAKETIME"] = faketime_spec(profile, now_true_s)
    env["FAKETIME_DISABLE_SHM"] = "1"
    env[ENV_LAUNCH_TRUE_S] = repr(float(now_true_s))
    env[ENV_CLOCK_MODE] = "faketime"
    return env


# -- generation -------------------------------------------------------------------
def generate_profiles(
    names: Iterable[str],
    seed: int | str,
    distribution: str = "uniform",
    *,
    epoch_unix_s: float,
    offset_s: tuple[float, float] = (-1.0, 1.0),
    rate_ppm: tuple[float, float] = (-100.0, 100.0),
) -> dict[str, DriftProfile]:
    """Draw one profile per name, reproducibly from ``seed``.

    Each node gets its own RNG seeded with ``f"{seed}:{name}"`` (string seeds are hashed
    with SHA-512 by :mod:`random`, stable across runs and Python builds), so adding a node
    does not change the others' profiles.

    ``distribution``: ``"uniform"`` draws uniformly in the closed bounds; ``"normal"``
    draws N(mid, (hi - lo) / 4) clipped to the bounds (about 95% fall inside unclipped).
    """
    if distribution not in ("uniform", "normal"):
        raise ProfileError(f"distribution: must be 'uniform' or 'normal', got {distribution!r}")
    for label, (lo, hi) in (("offset_s", offset_s), ("rate_ppm", rate_ppm)):
        _check_number(f"{label} lower bound", lo)
        _check_number(f"{label} upper bound", hi)
        if lo > hi:
            raise ProfileError(f"{label}: lower bound {lo} > upper bound {hi}")
    _check_rate("rate_ppm lower bound", rate_ppm[0])
    _check_rate("rate_ppm upper bound", rate_ppm[1])
    _check_number("epoch_unix_s", epoch_unix_s)

    def draw(rng: random.Random, lo: float, hi: float) -> float:
        if distribution == "uniform" or lo == hi:
            return rng.uniform(lo, hi)
        mid, sd = (lo + hi) / 2.0, (hi - lo) / 4.0
        return min(hi, max(lo, rng.gauss(mid, sd)))

    out: dict[str, DriftProfile] = {}
    for name in names:
        if name in out:
            raise ProfileError(f"names: duplicate node name {name!r}")
        rng = random.Random(f"{seed}:{name}")
        off = draw(rng, *offset_s)
        rate = draw(rng, *rate_ppm)
        out[name] = DriftProfile(epoch_unix_s=float(epoch_unix_s), offset_s=off, rate_ppm=rate)
    return out
