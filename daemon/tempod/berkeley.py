"""Berkeley round maths: probe samples, fault-tolerant average, corrections.

Pure functions on floats (seconds).  This module knows nothing about messages, peers'
addresses, timers or clocks; ``node.py`` collects the timestamps and applies results.

Sign convention (docs/architecture.md): offset = local - reference, here
offset = follower clock - master clock; a correction is what must be *added*.

Probe exchange (NTP's on-wire calculation, which timed's ``measure.c`` approximates
with ICMP timestamps): t1 master send, t2 follower receive, t3 follower send, t4
master receive; t1/t4 read on the master's corrected clock, t2/t3 on the follower's::

    offset = ((t2 - t1) + (t3 - t4)) / 2      follower - master
    rtt    = (t4 - t1) - (t3 - t2)            network round trip, follower hold removed
    bound  = rtt / 2                          |offset error| <= bound if delays >= 0

Fault-tolerant average (timed's approach): the master counts itself with offset 0;
take the largest set of clocks whose offsets all lie within ``agreement_s`` of each
other (a window of that width over the sorted offsets); average over it.  Clocks
outside the group are still corrected to the average but do not pull it.  Ties between
equally large groups: the group containing the master, then the group whose mean is
closest to the master (|mean| smallest), then the lowest window start -- so the
result depends only on the set of (name, offset) pairs, never on their order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping

ADJTIME = "adjtime"
SETTIME = "settime"


@dataclass(frozen=True, slots=True)
class Sample:
    offset_s: float   # follower - master
    rtt_s: float
    bound_s: float    # rtt / 2: the offset's error bound


def probe_sample(t1: float, t2: float, t3: float, t4: float) -> Sample:
    """The Sample of one probe exchange (timestamps in seconds, see module doc)."""
    rtt = (t4 - t1) - (t3 - t2)
    # A negative rtt means a clock stepped mid-exchange (or t3 < t2): clamp, the
    # sample is still the best evidence we have and best_sample prefers others.
    rtt = max(rtt, 0.0)
    return Sample(((t2 - t1) + (t3 - t4)) / 2.0, rtt, rtt / 2.0)


def best_sample(samples: Iterable[Sample]) -> Sample:
    """The sample with the smallest round trip (ties: the first); ValueError if empty."""
    best: Sample | None = None
    for s in samples:
        if best is None or s.rtt_s < best.rtt_s:
            best = s
    if best is None:
        raise ValueError("best_sample: no samples")
    return best


def fault_tolerant_average(offsets: Mapping[str, tuple[float, float]], agreement_s: float,
                           master: str | None = None) -> tuple[float, set[str]]:
    """(average_s, in_group) of ``{name: (offset_s, bound_s)}`` plus the master at 0.

    ``master`` is added with offset 0 (bound 0) unless already present.  Raises
    ValueError for a non-positive ``agreement_s`` or a non-finite offset.
    """
    if not agreement_s > 0:
        raise ValueError(f"agreement_s must be > 0, got {agreement_s!r}")
    items: list[tuple[float, str]] = []
    for name, (off, _bound) in offsets.items():
        if not math.isfinite(off):
            raise ValueError(f"offset of {name!r} is not finite: {off!r}")
        items.append((off, name))
    if master is not None and master not in offsets:
        items.append((0.0, master))
    if not items:
        raise ValueError("fault_tolerant_average: no clocks")
    items.sort()
    vals = [v for v, _ in items]
    n = len(vals)
    master_idx = -1
    if master is not None:
        master_idx = next(i for i, (_, nm) in enumerate(items) if nm == master)
    # prefix sums for O(1) window means
    pre = [0.0]
    for v in vals:
        pre.append(pre[-1] + v)
    best_key: tuple | None = None
    best_lo = best_hi = 0
    hi = 0
    for lo in range(n):
        if hi < lo:
            hi = lo
        while hi + 1 < n and vals[hi + 1] - vals[lo] <= agreement_s:
            hi += 1
        size = hi - lo + 1
        mean = (pre[hi + 1] - pre[lo]) / size
        has_master = lo <= master_idx <= hi
        key = (-size, not has_master, abs(mean), vals[lo])
        if best_key is None or key < best_key:
            best_key, best_lo, best_hi = key, lo, hi
    group = {items[i][1] for i in range(best_lo, best_hi + 1)}
    average = (pre[best_hi + 1] - pre[best_lo]) / (best_hi - best_lo + 1)
    return average, group


@dataclass(frozen=True, slots=True)
class Correction:
    correction_s: float   # add this to the node's clock
    kind: str             # ADJTIME (relative, slewed) or SETTIME (absolute)


def corrections(offsets: Mapping[str, float], average_s: float, settime_threshold_s: float,
                joined: Iterable[str] = ()) -> tuple[dict[str, Correction], float]:
    """Per-follower corrections and the master's own.

    ``offsets``: follower name -> offset_s (follower - master).  A follower's correction
    is ``average - offset``; the master's is ``average`` (the master is at offset 0).
    Kind SETTIME when |correction| > settime_threshold_s or the follower just joined
    (``joined``), else ADJTIME.
    """
    just = set(joined)
    out: dict[str, Correction] = {}
    for name, off in offsets.items():
        c = average_s - off
        kind = SETTIME if (abs(c) > settime_threshold_s or name in just) else ADJTIME
        out[name] = Correction(c, kind)
    return out, average_s
