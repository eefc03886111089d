"""The node core's configuration: one frozen dataclass, no parsing.

``NodeConfig`` holds the ``[node]``, ``[peers]``, ``[timers]``, ``[clock]`` and
``[sync]`` sections of ``tempod.toml`` (docs/architecture.md) as flat fields with the
same names and defaults.  ``config.py`` builds it from TOML (and owns key/type
errors); the simulator and the tests build it directly.  ``[auth]`` and ``[log]``
belong to the runtime and are not here.

This module knows nothing about files, sockets or clocks.  ``__post_init__`` only
checks relations between values that would make the core misbehave (it raises
``ValueError`` naming the field), so a bad config fails at start, not mid-round.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from typing import Any

# A follower's master-loss timeout spans at least this many heartbeat intervals: with a
# timeout of k intervals, k - 1 heartbeats in a row must be lost before the timer fires,
# so one lost heartbeat (or two) never starts an election by itself (docs/core.md).
MIN_HEARTBEATS_PER_TIMEOUT = 3.0


@dataclass(frozen=True, slots=True)
class Peer:
    """One entry of ``[peers].hosts``."""
    name: str
    address: str


@dataclass(frozen=True, slots=True)
class NodeConfig:
    # [node]
    name: str
    address: str = "127.0.0.1"
    tsp_port: int = 525
    ntp_port: int = 123
    master_eligible: bool = True
    # [peers]
    peers: tuple[Peer, ...] = ()
    trusted: tuple[str, ...] = ()          # empty = every eligible peer may lead
    # [timers] (seconds of the node's own hardware clock)
    round_interval_s: float = 10.0
    heartbeat_interval_s: float = 0.2      # master -> followers, independent of rounds
    master_timeout_min_s: float = 0.6      # follower: master lost after silence of
    master_timeout_max_s: float = 1.2      #   U(min, max), drawn per term (>= 3 heartbeats)
    probes_per_round: int = 4
    probe_timeout_s: float = 0.2
    election_timeout_min_s: float = 3.0
    election_timeout_max_s: float = 6.0
    answer_delay_max_s: float = 0.05
    refuse_window_s: float = 1.0
    retransmit_initial_s: float = 0.05
    retransmit_max_tries: int = 4
    purge_after_missed: int = 3
    # [clock]
    backend: str = "process"
    slew_max_ppm: float = 500.0
    step_threshold_s: float = 0.128
    freq_max_ppm: float = 150000.0
    # [sync]
    agreement_s: float = 0.020
    settime_threshold_s: float = 1.0

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ValueError:
            return ValueError(f"config: {name}: {why} (got {getattr(self, name)!r})")

        if not self.name or len(self.name.encode("ascii", "replace")) > 63:
            raise bad("name", "must be 1..63 ASCII bytes")
        names = [p.name for p in self.peers]
        if len(set(names)) != len(names) or self.name in names:
            raise bad("peers", "peer names must be unique and differ from [node].name")
        for n in ("round_interval_s", "heartbeat_interval_s", "probe_timeout_s", "election_timeout_min_s",
                  "retransmit_initial_s", "refuse_window_s", "agreement_s", "settime_threshold_s"):
            if not getattr(self, n) > 0:
                raise bad(n, "must be > 0")
        if self.election_timeout_max_s < self.election_timeout_min_s:
            raise bad("election_timeout_max_s", "must be >= election_timeout_min_s")
        if self.master_timeout_min_s < MIN_HEARTBEATS_PER_TIMEOUT * self.heartbeat_interval_s * (1 - 1e-9):
            # a single (or a second) lost heartbeat must never look like a dead master
            raise bad("master_timeout_min_s",
                      f"must be >= {MIN_HEARTBEATS_PER_TIMEOUT:g} x heartbeat_interval_s "
                      f"({MIN_HEARTBEATS_PER_TIMEOUT * self.heartbeat_interval_s:g})")
        if self.master_timeout_max_s < self.master_timeout_min_s:
            raise bad("master_timeout_max_s", "must be >= master_timeout_min_s")
        if self.heartbeat_interval_s > self.round_interval_s:
            raise bad("heartbeat_interval_s", "must be <= round_interval_s")
        if self.answer_delay_max_s < 0:
            raise bad("answer_delay_max_s", "must be >= 0")
        for n in ("probes_per_round", "retransmit_max_tries", "purge_after_missed"):
            if getattr(self, n) < 1:
                raise bad(n, "must be >= 1")
        # A round's probing must end well before the next round starts.
        if self.probes_per_round * self.probe_timeout_s >= self.round_interval_s:
            raise bad("round_interval_s", "must exceed probes_per_round * probe_timeout_s")

    @property
    def peer_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.peers)

    def may_lead(self, name: str) -> bool:
        """True if ``name``'s ELECTION / MASTERUP is accepted (the trusted-host list)."""
        return not self.trusted or name in self.trusted


def default(field_name: str) -> Any:
    """The default of one NodeConfig field: the one place each node default lives
    (config.py's schema, the simulator and the role's tests read it from here)."""
    for f in fields(NodeConfig):
        if f.name == field_name:
            if f.default is MISSING:
                raise KeyError(f"NodeConfig.{field_name} has no default")
            return f.default
    raise KeyError(f"NodeConfig has no field {field_name!r}")


# Named timer profiles (overrides of the defaults above).  "default" is the defaults;
# "fast" trades heartbeat traffic (20 per second per follower) for sub-0.5 s failover.
# The role ships the same values as playbooks/profiles/<name>.yml (a test checks).
PROFILES: dict[str, dict[str, Any]] = {
    "default": {},
    "fast": {
        "heartbeat_interval_s": 0.05,
        "master_timeout_min_s": 0.15,
        "master_timeout_max_s": 0.3,
        "probe_timeout_s": 0.05,
        "answer_delay_max_s": 0.01,
        "election_timeout_min_s": 0.3,
        "election_timeout_max_s": 0.6,
        "refuse_window_s": 0.25,
    },
}

