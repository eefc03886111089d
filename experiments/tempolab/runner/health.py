"""Health checks while a trial waits: is there one master that all others follow, and
has it stayed the same one long enough to count.

Owns the waiting (poll the observer's latest answers every 0.2 s, until a deadline) and
the live display while the driver sleeps between fault steps (master, health, skew).
What "healthy" means is :func:`facts.health`'s.
"""

from __future__ import annotations

import time
from typing import Callable

from . import facts
from .observer import Sample
from .progress import Progress

Latest = Callable[[], dict[str, Sample]]


def wait_healthy(latest: Latest, names: list[str], progress: Progress, timeout_s: float,
                 stable_s: float) -> tuple[bool, str | None, str]:
    """Wait until one master leads all others, the same master for ``stable_s``
    (the trial uses one round interval). Right after a restart two candidates can
    both win for a moment before RESOLVE/QUIT settles it; a single healthy sweep then
    names a master that is not the one the trial's fault will find."""
    deadline = time.monotonic() + timeout_s
    reason = "no samples yet"
    since: tuple[str | None, float] | None = None
    while time.monotonic() < deadline:
        ok, m, reason = facts.health(latest(), names)
        progress.set(master=m, health=reason)
        now = time.monotonic()
        if not ok:
            since = None
        elif since is None or since[0] != m:
            since = (m, now)
        elif now - since[1] >= stable_s:
            return True, m, reason
        time.sleep(0.2)
    return False, None, reason


def watch_until(t_wall: float, latest: Latest, names: list[str], progress: Progress) -> None:
    """Sleep until controller time ``t_wall``, refreshing the progress display."""
    while True:
        left = t_wall - time.time()
        if left <= 0:
            return
        now = latest()
        _ok, m, why = facts.health(now, names)
        st = facts.skew_stats(now.values())
        progress.set(master=m, health=why, skew_s=st["max_skew_s"])
        time.sleep(min(left, 0.25))
