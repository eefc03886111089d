"""A trial's timeline, worked out from the suite, the trial number and the seed; no I/O.

Owns what the driver then only carries out: which sweep point and protocol trial ``k``
runs, the base trial whose fault draw it shares (every protocol of a comparison sees the
same fault times and targets), how long the cluster must stay healthy before the trial
counts (one round interval, at least 1 s), the warm-up and duration, and -- once the
master is known -- the resolved faults and the ordered apply / revert steps. The fault
draw comes from ``random.Random(f"{seed}:{base}")`` alone, so a seed gives the same
timeline on every run and on resume.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from . import faults, protocols
from .faults import Fault, NodeRef
from .suite import Suite


@dataclass(frozen=True)
class TrialSpec:
    """What trial ``k`` (1-based) runs, known before anything is deployed."""

    trial: int
    point: Suite            # the suite at this trial's sweep point
    protocol: str
    base_trial: int         # 1-based; the trial whose fault draw this one shares
    stable_s: float         # how long one master must lead all for the cluster to be healthy

    @property
    def warm_up_s(self) -> float:
        return self.point.warm_up_s

    @property
    def duration_s(self) -> float:
        return self.point.trial_duration_s


@dataclass(frozen=True)
class Step:
    """One action of the fault timeline, ``at_s`` after the warm-up ended."""

    at_s: float
    action: str             # "apply" | "revert"
    index: int              # into FaultPlan.faults


@dataclass(frozen=True)
class FaultPlan:
    faults: list[Fault]
    steps: list[Step]       # in time order; at equal times an apply before a revert

    def planned_end_s(self, index: int) -> float | None:
        """Seconds after the warm-up at which fault ``index`` is planned to be reverted."""
        f = self.faults[index]
        return None if f.duration_s is None else f.at_s + f.duration_s


def trial_spec(suite: Suite, k: int) -> TrialSpec:
    point = suite.at_point(k - 1)
    return TrialSpec(trial=k, point=point, protocol=suite.protocol_of(k - 1),
                     base_trial=suite.base_trial(k - 1) + 1,
                     stable_s=max(1.0, float(point.daemon["round_interval_s"])))


def fault_rng(seed: int, base_trial: int) -> random.Random:
    return random.Random(f"{seed}:{base_trial}")


def plan_faults(suite: Suite, spec: TrialSpec, nodes: list[NodeRef], master: str | None) -> FaultPlan:
    """Resolve the point's faults against ``nodes`` and ``master`` (times and random
    targets drawn from the seed) and order their apply / revert steps. A later fault
    targeting ``side_a`` / ``side_b`` uses the sides of the latest partition before it."""
    rng = fault_rng(suite.seed, spec.base_trial)
    resolved: list[Fault] = []
    sides = None
    for fs in spec.point.faults:
        f = faults.resolve(fs, nodes, master, rng, sides, daemon=protocols.daemon_of(spec.protocol))
        sides = f.sides or sides
        resolved.append(f)
    timeline: list[tuple[float, int, str, int]] = []
    for i, f in enumerate(resolved):
        timeline.append((f.at_s, 0, "apply", i))
        if f.duration_s is not None:
            timeline.append((f.at_s + f.duration_s, 1, "revert", i))
    timeline.sort()
    return FaultPlan(resolved, [Step(at, action, i) for at, _o, action, i in timeline])
