"""One trial's facts from what the driver recorded: which measure applies (failover
after a kill, pause, partition heal, server loss under a protocol without election,
steady state) and the skew over the trial and after it settled.

Owns the choice of the fault that a trial is measured by (the first applied master
fault, else the first applied partition) and the window each measure gets; the
measures themselves are :mod:`facts`' (pure). A crash of a measure is an ``unknown``
outcome with its reason, not a lost run.
"""

from __future__ import annotations

from typing import Any, Callable

from . import facts, protocols
from .faults import Fault
from .observer import Sample

MASTER_FAULTS = ("kill", "stop")


def trial_facts(samples: list[Sample], names: list[str], resolved: list[Fault],
                applied: dict[int, dict], ended: dict[int, dict], t0: float, t_end: float,
                settle: float, events: Callable[[], dict[str, list[dict]]],
                protocol: str = "berkeley") -> dict[str, Any]:
    """``applied`` / ``ended``: fault index -> its start / end record; ``events()`` fetches
    the node event logs in reference time (only a master fault under election needs them)."""
    out: dict[str, Any] = {}
    first = next((i for i, f in enumerate(resolved) if f.kind in MASTER_FAULTS
                  and i in applied), None)
    part = next((i for i, f in enumerate(resolved) if f.kind == "partition"
                 and i in applied), None)
    try:
        if first is not None:
            f = resolved[first]
            start = applied[first]["t_ref"]
            end = ended.get(first, {}).get("t_ref", t_end)
            node_events = events()
            victim = f.targets[0]
            if not protocols.has_election(protocol):
                # no election: no failover to time, the server is simply gone
                back = ended.get(first, {})
                out.update(protocols.server_loss(samples, start, victim, names,
                                                 back.get("t_ref"), until=t_end,
                                                 down_until=back.get("t_sent")))
            elif f.kind == "kill":
                out.update(facts.failover(samples, start, victim, names, node_events,
                                          until=end))
                out["restart_t"] = ended.get(first, {}).get("t_ref")
            else:
                out.update(facts.pause(samples, start, end, victim, names, settle,
                                       node_events, until=t_end))
        elif part is not None:
            f = resolved[part]
            assert f.sides is not None
            start = applied[part]["t_ref"]
            heal = ended.get(part, {}).get("t_ref", t_end)
            out.update(facts.partition(samples, start, heal, f.sides, settle, until=t_end))
        else:
            out.update(facts.steady(samples, t0, names, settle, until=t_end))
    except Exception as exc:  # noqa: BLE001 - a checker crash is "unknown", not a lost run
        out.update(outcome="unknown", reason=f"checker error: {exc!r}")
    # skew once everything had time to settle after the last fault
    last_fault_end = max([r["t_ref"] for r in ended.values()]
                         + [r["t_ref"] for r in applied.values()] + [t0])
    st = facts.skew_stats(samples, since=t0)
    out["max_skew_s"] = st["max_skew_s"]
    out["median_skew_s"] = st["median_skew_s"]
    st2 = facts.skew_stats(samples, since=last_fault_end + settle)
    out["max_skew_settled_s"] = st2["max_skew_s"]
    return out
