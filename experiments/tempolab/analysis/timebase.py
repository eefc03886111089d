"""Drift profiles and the mapping between a node's hardware time and reference time.

Owns the maths of docs/architecture.md "Drift profile":
``hw(t) = t + offset_s + integral of rate from epoch to t`` with the rate piecewise
constant (``rate_ppm`` from the epoch, then each ``[[changes]]`` entry from ``at_s``
seconds after the epoch).  Rates are in ppm: a rate of +100 ppm means the hardware
clock gains 100 us per reference second.  It must not know about run folders or
pandas; the daemon has its own copy of the forward direction (``tempod.profile``) and
this module deliberately does not import the daemon.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping


class ProfileError(ValueError):
    """A drift profile is malformed; the message names the key."""


@dataclass(frozen=True)
class DriftProfile:
    epoch_unix_s: float
    offset_s: float
    rate_ppm: float
    # (at_s after the epoch, new rate in ppm), sorted by at_s
    changes: tuple[tuple[float, float], ...] = field(default_factory=tuple)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str = "profile") -> "DriftProfile":
        def num(key: str, default: float | None = None) -> float:
            if key not in data:
                if default is None:
                    raise ProfileError(f"{source}: missing key {key!r}")
                return default
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ProfileError(f"{source}: {key!r} must be a number, got {value!r}")
            return float(value)

        changes: list[tuple[float, float]] = []
        raw_changes = data.get("changes", [])
        if not isinstance(raw_changes, list):
            raise ProfileError(f"{source}: 'changes' must be a list of tables")
        for i, ch in enumerate(raw_changes):
            if not isinstance(ch, Mapping) or "at_s" not in ch or "rate_ppm" not in ch:
                raise ProfileError(f"{source}: changes[{i}] needs at_s and rate_ppm")
            changes.append((float(ch["at_s"]), float(ch["rate_ppm"])))
        changes.sort()
        if any(at < 0 for at, _ in changes):
            raise ProfileError(f"{source}: changes[].at_s must be >= 0")
        return cls(num("epoch_unix_s"), num("offset_s", 0.0), num("rate_ppm", 0.0), tuple(changes))

    @classmethod
    def from_toml(cls, path: Path) -> "DriftProfile":
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ProfileError(f"{path}: {exc}") from exc
        return cls.from_mapping(data, source=str(path))

    def _segments(self) -> list[tuple[float, float, float]]:
        """(start t_ref, hw at start, rate ppm) for each constant-rate piece from the epoch."""
        segs: list[tuple[float, float, float]] = []
        t, hw, rate = self.epoch_unix_s, self.epoch_unix_s + self.offset_s, self.rate_ppm
        for at_s, new_rate in self.changes:
            t_next = self.epoch_unix_s + at_s
            segs.append((t, hw, rate))
            hw += (t_next - t) * (1.0 + rate * 1e-6)
            t, rate = t_next, new_rate
        segs.append((t, hw, rate))
        return segs

    def hw_at(self, t_ref: float) -> float:
        """Hardware time at reference time ``t_ref`` (before the epoch: the first rate)."""
        segs = self._segments()
        t0, hw0, rate = segs[0]
        for seg in segs:
            if t_ref >= seg[0]:
                t0, hw0, rate = seg
        return hw0 + (t_ref - t0) * (1.0 + rate * 1e-6)

    def t_ref_at(self, hw: float) -> float:
        """Inverse of :meth:`hw_at`; hw(t) is strictly increasing while every rate > -1e6 ppm."""
        if not math.isfinite(hw):
            return math.nan
        segs = self._segments()
        t0, hw0, rate = segs[0]
        for seg in segs:
            if hw >= seg[1]:
                t0, hw0, rate = seg
        return t0 + (hw - hw0) / (1.0 + rate * 1e-6)

    def offset_at(self, t_ref: float) -> float:
        """Hardware offset (hw - reference) in seconds at ``t_ref``."""
        return self.hw_at(t_ref) - t_ref

    def rate_ppm_at(self, t_ref: float) -> float:
        """The hardware rate in force at ``t_ref`` (ppm)."""
        rate = self.rate_ppm
        for at_s, new_rate in self.changes:
            if t_ref >= self.epoch_unix_s + at_s:
                rate = new_rate
        return rate

    def max_abs_rate_ppm(self) -> float:
        return max([abs(self.rate_ppm)] + [abs(r) for _, r in self.changes])
