"""The run's history: typed records of what happened, and the one fault vocabulary.

This module owns the record types every checker reads -- faults (kind, targets,
start/end, the partition's groups), state transitions, completed rounds and observer
samples -- and the builders that make a :class:`History` from a run folder's records
(``from_records``: faults.jsonl, the daemons' event logs mapped to reference time,
observer.jsonl) and from the simulator's trace (``from_sim``).  It knows nothing
about what is valid (``checker`` does) nor about files, pandas or sockets: inputs are
plain records, so the stdlib-only simulator and the pandas analysis share it.

Fault vocabulary (one, for suites, faults.jsonl, the simulator and the analysis):
``kill`` (SIGKILL, ends with the restart), ``stop`` (SIGSTOP, ends with SIGCONT),
``restart`` (a service restart), ``partition`` (ends with the heal), ``loss``,
``delay``, ``jitter``, ``asym_delay``, ``netem_loss``; each fault has a ``start`` and an
``end`` record.  Old names are accepted on input and mapped by :func:`fault_kind`: the
simulator's ``kill-master`` / ``pause-master`` and the analysis' ``pause``.  Closing
records without a phase, as older runners wrote them (``restart``, ``cont``, ``heal``),
close the fault of :data:`CLOSES`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

FAULT_KINDS = ("kill", "stop", "restart", "partition", "loss", "delay", "jitter", "asym_delay", "netem_loss")
ALIASES = {"kill-master": "kill", "pause-master": "stop", "pause": "stop"}
# closing records without a phase (older folders, the simulator before this vocabulary): which fault they end
CLOSES = {"restart": "kill", "cont": "stop", "resume": "stop", "heal": "partition", "loss-end": "loss"}
MASTER_FAULTS = frozenset({"kill", "stop"})   # faults that take a node (the master) away: a failover follows
MASTER_STATES = frozenset({"LEADER", "CONFLICT"})   # a CONFLICT node is a master resolving another one
IN_SYNC_STATES = frozenset({"LEADER", "FOLLOWER"})


def fault_kind(name: str) -> str:
    """The canonical kind of a fault name (old names accepted); unknown names unchanged,
    so a folder with a fault kind this version does not know still loads."""
    return ALIASES.get(name, name)


def _num(v: Any) -> float | None:
    """A finite float, or None (JSON null, NaN, bool, text)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or v in (float("inf"), float("-inf")):
        return None
    return float(v)


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault from ``start`` to ``end`` (None: still on at the end of the data).
    ``groups``: a partition's connected groups (node names), empty for other kinds."""
    kind: str
    targets: tuple[str, ...]
    start: float
    end: float | None = None
    groups: tuple[frozenset[str], ...] = ()
    trial: Any = None


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
class Sample:
    """One observer reading of ``node`` at reference time ``t``: its offset (node - reference,
    None when it did not answer), the reading's error bound and the node's election state."""
    t: float
    node: str
    offset_s: float | None
    bound_s: float | None = None
    state: str | None = None
    master: str | None = None
    sweep: Any = None
    trial: Any = None

    @property
    def responded(self) -> bool:
        return self.offset_s is not None

    @property
    def in_sync(self) -> bool:
        """Answered and LEADER/FOLLOWER (or no state reported): it has a claim to the group's
        time.  UNSYNCED, candidates and unreachable nodes have none."""
        return self.offset_s is not None and (self.state is None or self.state in IN_SYNC_STATES)


@dataclass(frozen=True, slots=True)
class History:
    """Everything a checker may read, each list in time order."""
    faults: tuple[Fault, ...] = ()
    changes: tuple[StateChange, ...] = ()
    rounds: tuple[RoundDone, ...] = ()
    samples: tuple[Sample, ...] = ()
    nodes: tuple[str, ...] = field(default=())


# --- builders --------------------------------------------------------------------------

def events_history(events: Mapping[str, Iterable[Mapping[str, Any]]],
                   time_key: str = "t_ref") -> tuple[list[StateChange], list[RoundDone]]:
    """State changes and rounds from per-node event-log records (``{node: [record]}``,
    records as tempod writes them: ``ev`` = "state" with ``from`` / ``to``, or "round"
    with ``master``), timed by ``time_key``.  Records without a numeric time are skipped."""
    changes: list[StateChange] = []
    rounds: list[RoundDone] = []
    for node, recs in events.items():
        _add_events(recs, str(node), time_key, changes, rounds)
    changes.sort(key=lambda c: c.t)
    rounds.sort(key=lambda r: r.t)
    return changes, rounds


def events_from_rows(rows: Iterable[Mapping[str, Any]],
                     time_key: str = "t_ref") -> tuple[list[StateChange], list[RoundDone]]:
    """The same from records that each carry their ``node`` (the analysis' events table)."""
    changes: list[StateChange] = []
    rounds: list[RoundDone] = []
    for r in rows:
        _add_events((r,), str(r.get("node")), time_key, changes, rounds)
    changes.sort(key=lambda c: c.t)
    rounds.sort(key=lambda r: r.t)
    return changes, rounds


def _add_events(recs: Iterable[Mapping[str, Any]], node: str, time_key: str,
                changes: list[StateChange], rounds: list[RoundDone]) -> None:
    for e in recs:
        t = _num(e.get(time_key))
        if t is None:
            continue
        ev = e.get("ev")
        if ev == "state" and isinstance(e.get("to"), str):
            frm = e.get("from")
            changes.append(StateChange(t, node, frm if isinstance(frm, str) else None, e["to"]))
        elif ev == "round":
            m = e.get("master")
            rounds.append(RoundDone(t, m if isinstance(m, str) else node))


def sample(r: Mapping[str, Any], node: str | None = None) -> Sample | None:
    """One observer record (observer.jsonl) as a sample; None without a time or node.
    With ``node`` (a reading keyed by node, e.g. the observer's latest per node) the
    record's own node and time may be missing (time NaN)."""
    t = _num(r.get("t_ref"))
    name = r.get("node") if node is None else node
    if name is None or (t is None and node is None):
        return None
    st, m = r.get("state"), r.get("master")
    return Sample(math.nan if t is None else t, str(name), _num(r.get("offset_s")), _num(r.get("bound_s")),
                  st if isinstance(st, str) else None, m if isinstance(m, str) else None,
                  r.get("sweep"), r.get("trial"))


def observer_samples(records: Iterable[Mapping[str, Any]]) -> list[Sample]:
    """Observer records as samples, in time order.  The observer's re-queries it replaced
    within a sweep (``superseded``) are left out, one sample per node per sweep; records
    without a time or node are skipped."""
    out = [s for s in (sample(r) for r in records if not r.get("superseded")) if s is not None]
    out.sort(key=lambda s: s.t)
    return out


def _groups(rec: Mapping[str, Any], nodes: Iterable[str]) -> tuple[frozenset[str], ...]:
    """A partition's sides: ``sides`` as the runner writes it (``{"a": [...], "b": [...]}``,
    or a list of lists; also under ``detail``), else the simulator's ``minority`` against
    everyone else; none when neither is recorded."""
    for where in (rec, rec.get("detail")):
        sides = where.get("sides") if isinstance(where, Mapping) else None
        if isinstance(sides, Mapping):
            sides = list(sides.values())
        if isinstance(sides, (list, tuple)) and all(isinstance(x, (list, tuple)) for x in sides):
            return tuple(frozenset(map(str, side)) for side in sides)
    minority = rec.get("minority")
    if isinstance(minority, (list, tuple)):
        rest = frozenset(nodes) - set(map(str, minority))
        return (frozenset(map(str, minority)), rest) if minority and rest else ()
    return ()


def faults_from_records(records: Iterable[Mapping[str, Any]], nodes: Iterable[str] = (),
                        t_key: str = "t_ref") -> list[Fault]:
    """Faults from start/end records (faults.jsonl, or the simulator's fault log with
    ``t_key="t"``).  A start is closed by the next end of the same ``fault_id`` when the
    records carry one, else by the next end (or closing record) of the same kind and
    targets; an unclosed fault has ``end`` None."""
    nodes = tuple(nodes)
    recs = sorted((r for r in records if _num(r.get(t_key)) is not None), key=lambda r: float(r[t_key]))
    out: list[Fault] = []
    used: set[int] = set()
    for i, r in enumerate(recs):
        raw = str(r.get("kind"))
        if r.get("phase") == "end" or (raw in CLOSES and r.get("phase") is None):
            continue
        kind = fault_kind(raw)
        tg = r.get("targets", r.get("target"))
        targets = tuple(map(str, tg)) if isinstance(tg, (list, tuple)) else (() if tg is None else (str(tg),))
        fid = r.get("fault_id")
        end = None
        for j in range(i + 1, len(recs)):
            g = recs[j]
            if j in used:
                continue
            if fid is not None and fid == fid:     # (NaN: a table row without one)
                # contract: one start and one end per fault, same kind and fault_id
                hit = g.get("fault_id") == fid and g.get("phase") == "end" and g.get("trial") == r.get("trial")
            else:
                gk = str(g.get("kind"))
                gt = g.get("targets", g.get("target"))
                gts = set(map(str, gt)) if isinstance(gt, (list, tuple)) else (set() if gt is None else {str(gt)})
                closes = ((fault_kind(gk) == kind and g.get("phase") == "end")
                          or (CLOSES.get(gk) == kind and g.get("phase") is None))
                hit = closes and (gts == set(targets) or not gts)
            if hit:
                end = float(g[t_key])
                used.add(j)
                break
        groups = _groups(r, nodes) if kind == "partition" else ()
        out.append(Fault(kind, targets, float(r[t_key]), end, groups, r.get("trial")))
    return out


def from_records(faults: Iterable[Mapping[str, Any]] = (),
                 events: Mapping[str, Iterable[Mapping[str, Any]]] | None = None,
                 observer: Iterable[Mapping[str, Any]] = (), nodes: Iterable[str] = ()) -> History:
    """A run folder's history: faults.jsonl records, the daemons' event logs already in
    reference time (``t_ref``; runner/facts.map_events or the analysis' events table)
    and observer.jsonl records."""
    nodes = tuple(nodes) or tuple(sorted((events or {}).keys()))
    changes, rounds = events_history(events or {})
    return History(tuple(faults_from_records(faults, nodes)), tuple(changes), tuple(rounds),
                   tuple(observer_samples(observer)), nodes)


def from_sim(state_log: Iterable[tuple[float, str, str, str]], rounds: Iterable[Mapping[str, Any]],
             fault_log: Iterable[Mapping[str, Any]], nodes: Iterable[str]) -> History:
    """The simulator's trace as a history: its state log ``(t, node, from, to)``, its
    round records (``t``, ``master``) and its fault log (``t``, ``kind``, ``phase``,
    ``target``, a partition's ``minority``), all in true time (the simulator's
    reference)."""
    nodes = tuple(nodes)
    return History(tuple(faults_from_records(fault_log, nodes, t_key="t")),
                   tuple(StateChange(t, n, f, to) for (t, n, f, to) in state_log),
                   tuple(RoundDone(r["t"], r["master"]) for r in rounds), (), nodes)
