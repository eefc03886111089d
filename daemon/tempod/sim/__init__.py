"""Deterministic simulator for the node core (what chrony's clknetsim is to chrony).

``run(SimConfig(...)) -> dict`` runs N real ``tempod.node.Node`` cores under simulated
clocks and a simulated network from one seed and returns a JSON-able summary:
invariants (pass/fail + first violation), skew figures, failover times, message counts
and speed.  ``scenario`` holds the parameters and the fault timeline, ``engine`` the
event loop.  Standard library only, like the rest of ``tempod``.
"""

from .engine import Simulation, run
from .scenario import FAULT_KINDS, SimConfig

__all__ = ["FAULT_KINDS", "SimConfig", "Simulation", "run"]
