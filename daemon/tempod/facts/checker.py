"""The checks and measures over a run's history: the one definition of each fact.

This module owns what the runner's live summary and per-trial facts, the analysis'
tables and headline numbers and the simulator's figures mean by "one master per
connected group", "healthy", "fault -> new master", "fault -> first round", a sweep's
skew, a round's post-sync skew and its bound, and "within bound".  Like Jepsen's
checker, a check answers :class:`Result` with ``valid`` True, False or ``"unknown"``
and its reason: missing data gives "unknown", never True.  Pure and standard library
only (the simulator imports it); it reads :mod:`tempod.facts.history` records and
never files.

Definitions (docs/core.md "Failover facts", docs/analysis.md "Headline numbers"):

* **master**: a node in LEADER or CONFLICT (a CONFLICT node is a master resolving
  another one).  **One master per connected group**: in every sweep from ``since``,
  no connected group (the whole cluster, or each side of a partition) shows two or
  more masters.
* **healthy** (one reading of every node): every node answered, exactly one is
  LEADER, every other one is a FOLLOWER of it.
* **detected**: the first ``state`` change after the fault by another node that leaves
  FOLLOWER (the observer's view, a cross-check: its first answer from another node
  that is not a FOLLOWER of the old master).
* **stepped down**: a master that was away answers the observer in a state other than
  LEADER (``stepped_down``).
* **new master**: the first node other than the faulted master that *becomes* master
  strictly after the fault -- a ``state`` transition into LEADER from any state other
  than LEADER or CONFLICT; ``to_new_master_s = new_master_t - fault_t``.  **first
  round**: that new master's first completed ``round`` after ``new_master_t``;
  ``to_first_round_s = first_round_t - fault_t``.  ``until`` bounds the search (a
  paused master's SIGCONT, the trial's end): beyond it is "no new master" (None).
* **sweep skew**: max - min offset over a sweep's in-sync samples (answered, LEADER /
  FOLLOWER or no state), None with fewer than two.
* **round bound** (per round, observer's view): ``2 max_i(daemon bound_i + observer
  bound_i) + 2 rho max_i(t_post_i - t_apply) + (the two largest slew_remaining_i)``;
  a round over it gets an exception class with a stated cause (:data:`EXCEPTION_CAUSES`).
* **between rounds**: a sweep after a master's round, within
  :data:`BETWEEN_ROUND_SLACK` round intervals of it, that master still the single leader.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, Mapping, Sequence

from ..nodeconfig import default as _nd
from .history import MASTER_STATES, History, RoundDone, Sample, StateChange

Validity = bool | Literal["unknown"]


@dataclass(frozen=True, slots=True)
class Result:
    """A check's answer: ``valid`` True / False / "unknown", why, and what it saw."""
    valid: Validity
    reason: str
    details: Mapping[str, Any] = field(default_factory=dict)


# --- sweeps, health, one master ----------------------------------------------------------

def sweeps(samples: Iterable[Sample]) -> list[tuple[float, list[Sample]]]:
    """Samples grouped by observer sweep (the recorded ``(trial, sweep)``; a sample without
    one is its own sweep), as (time of the sweep's first sample, samples), in time order."""
    groups: dict[Any, list[Sample]] = {}
    for s in samples:
        key = (s.trial, s.sweep) if s.sweep is not None else ("t", s.t)
        groups.setdefault(key, []).append(s)
    out = [(min(x.t for x in g), g) for g in groups.values()]
    out.sort(key=lambda p: p[0])
    return out


def masters(group: Iterable[Sample]) -> list[str]:
    return sorted(s.node for s in group if s.state in MASTER_STATES)


def healthy(latest: Mapping[str, Sample], nodes: Iterable[str]) -> Result:
    """One reading of every node (``{node: sample}``): healthy = every node answered, exactly
    one LEADER, every other one a FOLLOWER of it.  ``details["master"]``: the single LEADER
    (also when others do not follow it yet)."""
    nodes = list(nodes)
    missing = [n for n in nodes if n not in latest or latest[n].state in (None, "unreachable")]
    if missing:
        return Result(False, "no answer from " + ",".join(missing), {"master": None})
    lead = [n for n in nodes if latest[n].state == "LEADER"]
    if len(lead) != 1:
        return Result(False, f"{len(lead)} masters ({','.join(lead)})", {"master": None})
    m = lead[0]
    stray = [n for n in nodes if n != m and not (latest[n].state == "FOLLOWER" and latest[n].master == m)]
    if stray:
        return Result(False, "not following " + m + ": " + ",".join(f"{n}={latest[n].state}" for n in stray),
                      {"master": m})
    return Result(True, "one master, all following", {"master": m})


def settled(samples: Iterable[Sample], since: float, nodes: Iterable[str]) -> tuple[float | None, str | None]:
    """(time, master) of the first sweep from ``since`` in which all ``nodes`` are healthy;
    the time is the sweep's last sample (only then had every node been seen healthy)."""
    nodes = list(nodes)
    for t, g in sweeps(samples):
        if t < since:
            continue
        r = healthy({s.node: s for s in g}, nodes)
        if r.valid is True:
            return max(s.t for s in g), r.details["master"]
    return None, None


def one_master(samples: Iterable[Sample], since: float,
               groups: Sequence[Iterable[str]] | None = None) -> Result:
    """One master per connected group in every sweep from ``since`` (``groups``: a
    partition's sides; None = the whole cluster is one group).  ``details["bad"]``: the
    sweeps with two or more masters in one group, as ``{"t_ref", "masters"}``.
    "unknown" when no sweep falls in the window."""
    gs = [set(g) for g in groups] if groups else [None]
    bad, seen = [], 0
    for t, g in sweeps(samples):
        if t < since:
            continue
        seen += 1
        for grp in gs:
            lead = [n for n in masters(g) if grp is None or n in grp]
            if len(lead) >= 2:
                bad.append({"t_ref": t, "masters": lead})
    if not seen:
        return Result("unknown", "no observer sweep in the window", {"bad": [], "sweeps": 0})
    if bad:
        return Result(False, f"two masters in one connected group ({bad[0]['masters']})",
                      {"bad": bad, "sweeps": seen})
    return Result(True, f"at most one master per connected group in {seen} sweeps", {"bad": [], "sweeps": seen})


# --- failover --------------------------------------------------------------------------

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

    def result(self) -> Result:
        if self.new_master is None:
            return Result("unknown" if self.old_master is None else False,
                          "no master before the fault" if self.old_master is None else "no new master",
                          {"fault_t": self.fault_t})
        return Result(True, f"{self.new_master} master {self.to_new_master_s:.3f} s after the fault",
                      {"new_master": self.new_master, "to_new_master_s": self.to_new_master_s,
                       "to_first_round_s": self.to_first_round_s})


def detected(changes: Iterable[StateChange], fault_t: float, old: str | None,
             until: float | None = None) -> float | None:
    """Detection in the logs: the first ``state`` change after the fault by a node other
    than ``old`` that leaves FOLLOWER (master lost: to CANDIDATE, or START)."""
    ts = [c.t for c in changes if c.frm == "FOLLOWER" and c.node != old and c.t > fault_t
          and (until is None or c.t <= until)]
    return min(ts) if ts else None


def detected_by_observer(samples: Iterable[Sample], fault_t: float, old: str | None,
                         until: float | None = None) -> float | None:
    """Detection seen by the observer: the first answer after the fault from a node other
    than ``old`` that is not a FOLLOWER of ``old`` (lags the logs by up to one sweep)."""
    ts = [s.t for s in samples if s.node != old and s.t > fault_t and (until is None or s.t <= until)
          and s.state not in (None, "unreachable") and not (s.state == "FOLLOWER" and s.master == old)]
    return min(ts) if ts else None


def stepped_down(samples: Iterable[Sample], node: str, since: float,
                 until: float | None = None) -> float | None:
    """When a master that was away (a SIGSTOP, a partition's minority) stepped down: the
    first answer of ``node`` after ``since`` in a state other than LEADER (every answer
    counts, superseded retries too: a state is a state, whatever its bound)."""
    ts = [s.t for s in samples if s.node == node and s.t > since and (until is None or s.t <= until)
          and s.state not in (None, "unreachable", "LEADER")]
    return min(ts) if ts else None


def becomes_master(c: StateChange) -> bool:
    """True for a transition that makes ``c.node`` a (new) master."""
    return c.to == "LEADER" and c.frm not in MASTER_STATES


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


def failover(changes: Iterable[StateChange], rounds: Iterable[RoundDone], fault_t: float,
             old: str | None, until: float | None = None) -> Failover:
    """The failover facts of one fault (module docstring: new master, first round)."""
    changes = list(changes)
    nm = new_master(changes, fault_t, old, until)
    if nm is None:
        return Failover(fault_t, old, None, None, None)
    node, t = nm
    return Failover(fault_t, old, node, t, first_round(rounds, node, t))


def failovers(h: History, kinds: Iterable[str] | None = None) -> list[tuple[Any, Failover]]:
    """(fault, facts) of every fault of ``kinds`` (default: all but loss/delay/jitter, which
    take no node away), the fault's first target taken as the old master."""
    ks = set(kinds) if kinds is not None else None
    out = []
    for f in h.faults:
        if (f.kind not in ks) if ks is not None else (f.kind in ("loss", "delay", "jitter")):
            continue
        out.append((f, failover(h.changes, h.rounds, f.start, f.targets[0] if f.targets else None)))
    return out


# --- skew ------------------------------------------------------------------------------

def sweep_skew(group: Iterable[Sample], exclude: Iterable[str] = ()) -> float | None:
    """max - min offset over the sweep's in-sync samples (not ``exclude``), None with < 2."""
    ex = set(exclude)
    offs = [s.offset_s for s in group if s.in_sync and s.node not in ex]
    return max(offs) - min(offs) if len(offs) >= 2 else None  # type: ignore[type-var, operator]


def skew_stats(samples: Iterable[Sample], since: float | None = None,
               exclude: Iterable[str] = ()) -> dict[str, float | None]:
    """Sweep skews from ``since``: their max, median and count."""
    vals = []
    for t, g in sweeps(samples):
        if since is not None and t < since:
            continue
        v = sweep_skew(g, exclude)
        if v is not None:
            vals.append(v)
    if not vals:
        return {"max_skew_s": None, "median_skew_s": None, "n_sweeps": 0}
    return {"max_skew_s": max(vals), "median_skew_s": statistics.median(vals), "n_sweeps": len(vals)}


BETWEEN_ROUND_SLACK = 1.5   # a sweep counts as "between two regular rounds" up to 1.5 intervals after one


def between_rounds(since_round_s: float | None, interval_s: float, leader: str | None,
                   round_master: str | None) -> bool:
    """Is a sweep ``since_round_s`` after ``round_master``'s last round, led by ``leader``
    (a single LEADER's name), one taken while a master keeps its regular rounds?"""
    if since_round_s is None or since_round_s != since_round_s or leader is None or round_master is None:
        return False
    return 0 <= since_round_s <= BETWEEN_ROUND_SLACK * interval_s and leader == round_master


# --- rounds: post-sync skew, bound, within bound ------------------------------------------

SLEW_MAX_PPM = float(_nd("slew_max_ppm"))          # the daemon's defaults; a run's manifest may override
STEP_THRESHOLD_S = float(_nd("step_threshold_s"))
HOLD_RATE = 0.5     # a backward SETTIME holds the clock at half speed (discipline's backward_slew_ppm 500000)

EXCEPTION_CAUSES = {
    "rejoin": "a node stepped by its first SETTIME after a restart (raw clock back in the group): its step and "
              "the group's slew of the same round's average land at different speeds",
    "observer": "the observer's post sample of a node has an error bound over 3x the run's median "
                "(the probe was delayed: the sample, not the clocks, is off)",
    "late_sample": "the observer's post sample came more than a quarter round after the corrections: the "
                   "drift term of the bound assumes the drift rate, a frequency step in between is not in it",
    "unexplained": "no stated cause: investigate",
}


def slew_remaining_s(correction_s: float, kind: Any, lag_s: float, slew_max_ppm: float = SLEW_MAX_PPM,
                     step_threshold_s: float = STEP_THRESHOLD_S) -> float:
    """How much of a correction the daemon's clock has not absorbed ``lag_s`` after it was
    applied (docs/clock.md): a slew runs at ``slew_max_ppm``; a forward step is
    immediate; a backward SETTIME or a large backward correction holds at half speed."""
    if not (isinstance(correction_s, (int, float)) and math.isfinite(correction_s)) or not math.isfinite(lag_s):
        return 0.0
    c, lag = float(correction_s), max(0.0, float(lag_s))
    if kind == "settime" or abs(c) > step_threshold_s:
        return 0.0 if c >= 0 else max(0.0, -c - HOLD_RATE * lag)
    return max(0.0, abs(c) - slew_max_ppm * 1e-6 * lag)


@dataclass(frozen=True, slots=True)
class RoundMember:
    """One node of a round as the observer saw it: its pre/post samples and what the
    round did to it (NaN or None where unknown).  ``lag_s`` = post sample - t_apply."""
    kind: Any
    correction_s: float
    daemon_bound_s: float
    pre_offset_s: float
    post_offset_s: float
    post_bound_s: float
    lag_s: float


@dataclass(frozen=True, slots=True)
class RoundCheck:
    pre_skew_s: float
    post_skew_s: float
    landed_bound_s: float
    slew_remaining_s: float
    bound_s: float
    within: Result
    exception: str | None


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def round_check(members: Sequence[RoundMember], rho_ppm: float, slew_max_ppm: float = SLEW_MAX_PPM,
                step_threshold_s: float = STEP_THRESHOLD_S, obs_bound_median_s: float | None = None,
                interval_s: float | None = None) -> RoundCheck:
    """A round's observed pre/post skew (max - min offset of its nodes), the bound the post
    skew should respect (module docstring) and whether it does; a round over the bound
    gets an exception class: rejoin, observer, late_sample or unexplained."""
    rho = rho_ppm * 1e-6 if math.isfinite(rho_ppm) else 0.0
    pre = [m.pre_offset_s for m in members if _finite(m.pre_offset_s)]
    post = [m.post_offset_s for m in members if _finite(m.post_offset_s)]
    err = [(m.daemon_bound_s if _finite(m.daemon_bound_s) else 0.0) + m.post_bound_s
           for m in members if _finite(m.post_bound_s)]
    lag = [m.lag_s for m in members if _finite(m.lag_s)]
    post_skew = max(post) - min(post) if len(post) >= 2 else math.nan
    landed = (2 * max(err) if err else math.nan) + 2 * rho * (max(lag) if lag else 0.0)
    rem = sorted((slew_remaining_s(m.correction_s, m.kind, m.lag_s, slew_max_ppm, step_threshold_s)
                  for m in members if _finite(m.post_offset_s)), reverse=True)
    rem_s = float(sum(rem[:2]))
    bound = landed + rem_s
    exception = None
    if not (math.isfinite(post_skew) and math.isfinite(bound)):
        within = Result("unknown", "fewer than two post samples" if not math.isfinite(post_skew)
                        else "no error bound for the post samples")
    elif post_skew <= bound:
        within = Result(True, f"post skew {post_skew:.3e} s <= bound {bound:.3e} s")
    else:
        if any(m.kind == "settime" for m in members):
            exception = "rejoin"
        elif obs_bound_median_s and any(_finite(m.post_bound_s) and m.post_bound_s > 3 * obs_bound_median_s
                                        for m in members):
            exception = "observer"
        elif interval_s and lag and max(lag) > interval_s / 4:
            exception = "late_sample"
        else:
            exception = "unexplained"
        within = Result(False, f"post skew {post_skew:.3e} s > bound {bound:.3e} s ({exception}: "
                        f"{EXCEPTION_CAUSES[exception]})", {"exception": exception})
    return RoundCheck(max(pre) - min(pre) if len(pre) >= 2 else math.nan, post_skew, landed, rem_s, bound,
                      within, exception)
