"""What differs between the protocols a suite can run (berkeley, cristian, ntp).

Owns the per-protocol facts the driver needs and nothing else: which daemon a trial's
faults act on (tempod, or stock chronyd for ntp), what a master fault means for a
protocol without an election (no failover: the time server is a single point of failure,
its clients hold over until it comes back), and the shell command that dumps chronyd's
own view (``chronyc tracking`` / ``sources`` / ``sourcestats``) into the run folder.
Pure: commands are strings, facts come from observer samples (as in :mod:`facts`).
"""

from __future__ import annotations

from typing import Any

from ..nodelayout import LAYOUT
from . import facts
from .suite import PROTOCOLS

Sample = dict[str, Any]

CHRONYC = LAYOUT.chronyc
CHRONY_SOCKET = LAYOUT.chrony_socket
CHRONY_LOG_DIR = LAYOUT.chrony_log_dir
CHRONY_LOGS = ("tracking.log", "measurements.log", "statistics.log")

# what a master fault kills or stops, per protocol (docs/baselines.md)
MASTER_MEANING = {
    "berkeley": "the Berkeley master (a new one is elected)",
    "cristian": "the Cristian time server (no election: clients free-run)",
    "ntp": "the NTP server (chronyd; clients hold over on their learned frequency)",
}


def check(protocol: str) -> str:
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r} (one of {', '.join(PROTOCOLS)})")
    return protocol


def daemon_of(protocol: str) -> str:
    """The process faults act on: ``chronyd`` for ntp, else ``tempod``."""
    return "chronyd" if check(protocol) == "ntp" else "tempod"


def has_election(protocol: str) -> bool:
    return check(protocol) == "berkeley"


def chronyc_view_cmd() -> str:
    """chronyd's own view of its sources and its clock, as plain text."""
    parts = [f"echo '== chronyc {c}'; {CHRONYC} -n -h {CHRONY_SOCKET} {c} 2>&1"
             for c in ("tracking", "sources -v", "sourcestats", "serverstats")]
    return "; ".join(parts) + "; true"


def server_loss(samples: list[Sample], kill_t: float, killed: str, nodes: list[str],
                restart_t: float | None, until: float | None = None,
                down_until: float | None = None) -> dict[str, Any]:
    """Facts of a kill (or pause) of the time server of a protocol without an election.

    Nothing is elected, so there is no failover to time: the trial is ``ok`` when no
    survivor claims to be a primary in the server's place (``LEADER`` other than the
    server), and ``recovered_t`` is when every node follows the server again after it
    came back (``restart_t``; None while it stays down). ``holdover_max_skew_s`` is the
    largest skew among the survivors while the server was gone: Cristian's clients drift
    apart at their relative rates, NTP's hold over on their learned frequency.
    ``down_until``: when the restart was sent (the server may answer before the
    restart's own time stamp, ``restart_t``); default ``restart_t``, else ``until``.
    """
    others = [n for n in nodes if n != killed]
    if down_until is None:
        down_until = restart_t if restart_t is not None else until
    during = [s for s in samples if s["t_ref"] > kill_t
              and (down_until is None or s["t_ref"] <= down_until)]
    usurpers = sorted({s["node"] for s in during if s["node"] in others
                       and s.get("state") == "LEADER"})
    hold = facts.skew_stats(during, exclude=[killed])
    out: dict[str, Any] = {"kill_t": kill_t, "killed": killed, "new_master": None,
                           "new_master_t": None, "new_master_s": None,
                           "holdover_max_skew_s": hold["max_skew_s"],
                           "holdover_median_skew_s": hold["median_skew_s"]}
    if restart_t is not None:
        after = [s for s in samples if s["t_ref"] > restart_t
                 and (until is None or s["t_ref"] <= until)]
        rt, m = facts.settled_t(after, restart_t, nodes)
        out["recovered_t"] = rt
        out["recovered_s"] = None if rt is None else rt - restart_t
        out["master_after"] = m
    if usurpers:
        out.update(outcome="failed", reason=f"a client claimed the server's place: {usurpers}")
    elif restart_t is not None and out.get("recovered_t") is None:
        out.update(outcome="failed", reason="the clients did not follow the server again after it came back")
    else:
        out.update(outcome="ok", reason=None)
    return out
