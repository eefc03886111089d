"""The one definition of failover facts: fault -> new master, fault -> first round.

This module owns what "new master" and "first round" mean after a fault that takes
the master away (SIGKILL, SIGSTOP, a partition that leaves it in the minority).  The
simulator (``sim/engine.py``), the runner's per-trial facts and live summary
(``tempolab/runner/facts.py``) and the analysis (``tempolab/analysis/tables.py``) all
call it, so the three agree by construction.  Pure and standard library only (the
daemon package stays stdlib-only and the simulator needs it): inputs are plain
records from the daemons' event logs (``state`` and ``round`` events, already on one
time base), outputs are plain values.

Definitions (docs/core.md, "Failover facts"):

* **new master**: the first node other than the faulted master that *becomes* master
  strictly after the fault -- a ``state`` transition into LEADER from any state other
  than LEADER or CONFLICT (a master resolving a conflict is not a new master).  Its
  time is ``new_master_t``; ``to_new_master_s = new_master_t - fault_t``.
* **first round**: the first completed round (``round`` event) of that new master
  after ``new_master_t``; ``to_first_round_s = first_round_t - fault_t``.
* ``until`` bounds the search (e.g. a paused master's SIGCONT, or the trial's end);
  what falls outside is "no new master" (None), not an error.

The observer's view (the first sample showing the new master as LEADER) is a
cross-check, not the definition: it lags by up to one observer sweep.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

_LEADING = frozenset({"LEADER", "CONFLICT"})


@dataclass(frozen=True, slots=True)
class StateChange:
    """One ``state`` event: ``node`` went from ``frm`` to ``to`` at time ``t``."""
    t: float
    node: str
    frm: str | None
    to: str


@dataclass(frozen=True, slots=True)
class RoundDone:
    """One ``round`` event: ``master`` completed a round at time ``t``."""
    t: float
    master: str


@dataclass(frozen=True, slots=True)
class Failover:
    fault_t: float
    old_master: str | None
    new_master: str | None
    new_master_t: float | None
    first_round_t: float | None

    @property
    def to_new_master_s(self) -> float | None:
        return None if self.new_master_t is None else self.new_master_t - self.fault_t

    @property
    def to_first_round_s(self) -> float | None:
        return None if self.first_round_t is None else self.first_round_t - self.fault_t


def becomes_master(c: StateChange) -> bool:
    """True for a transition that makes ``c.node`` a (new) master."""
    return c.to == "LEADER" and c.frm not in _LEADING


def new_master(changes: Iterable[StateChange], fault_t: float, old: str | None,
               until: float | None = None) -> tuple[str, float] | None:
    """(node, time) of the first node other than ``old`` that becomes master after ``fault_t``."""
    best: StateChange | None = None
    for c in changes:
        if (c.t > fault_t and c.node != old and becomes_master(c)
                and (until is None or c.t <= until) and (best is None or c.t < best.t)):
            best = c
    return None if best is None else (best.node, best.t)


def first_round(rounds: Iterable[RoundDone], master: str, since: float,
                until: float | None = None) -> float | None:
    """Time of ``master``'s first completed round after ``since``."""
    ts = [r.t for r in rounds if r.master == master and r.t > since and (until is None or r.t <= until)]
    return min(ts) if ts else None


def measure(changes: Iterable[StateChange], rounds: Iterable[RoundDone], fault_t: float,
            old: str | None, until: float | None = None) -> Failover:
    """The failover facts of one fault (see the module docstring)."""
    nm = new_master(changes, fault_t, old, until)
    if nm is None:
        return Failover(fault_t, old, None, None, None)
    node, t = nm
    return Failover(fault_t, old, node, t, first_round(rounds, node, t))


def from_events(events: Mapping[str, Iterable[Mapping[str, Any]]],
                time_key: str = "t_ref") -> tuple[list[StateChange], list[RoundDone]]:
    """State changes and rounds from per-node event-log records (``{node: [record]}``,
    records as tempod writes them: ``ev`` = "state" with ``from`` / ``to``, or
    "round" with ``master``), timed by ``time_key``.  Records without a numeric time
    are skipped."""
    changes: list[StateChange] = []
    rounds: list[RoundDone] = []
    for node, recs in events.items():
        for e in recs:
            t = e.get(time_key)
            if not isinstance(t, (int, float)) or isinstance(t, bool):
                continue
            ev = e.get("ev")
            if ev == "state" and isinstance(e.get("to"), str):
                frm = e.get("from")
                changes.append(StateChange(float(t), node, frm if isinstance(frm, str) else None, e["to"]))
            elif ev == "round":
                m = e.get("master")
                rounds.append(RoundDone(float(t), m if isinstance(m, str) else node))
    return changes, rounds
