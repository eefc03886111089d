"""Simulation scenario: the parameters of one run and its fault timeline (pure data).

This module owns ``SimConfig`` (what the user asks for), the stated settle bound and
the fault schedule derived from them.  It knows nothing about the event loop, nodes or
the network; ``engine`` executes what is described here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..facts.history import fault_kind
from ..nodeconfig import PROFILES, NodeConfig, Peer
from ..nodeconfig import default as _nd

# the simulator's faults in the one vocabulary (tempod.facts.history): kill and stop hit
# the master; the old names kill-master / pause-master are accepted and mapped
FAULT_KINDS = ("kill", "stop", "partition", "loss")


@dataclass(frozen=True)
class SimConfig:
    nodes: int = 5
    duration_s: float = 300.0
    seed: int = 1
    drift_ppm: float = 100.0          # hardware rates uniform in [-drift_ppm, +drift_ppm]
    offset_max_s: float = 0.5         # initial hw - true uniform in [-offset_max_s, +offset_max_s]
    wander_ppm_per_sqrt_s: float = 0.0
    loss: float = 0.0                 # background loss probability per datagram
    delay_ms: float = 0.1             # one-way base delay
    jitter_ms: float = 0.05           # + uniform [0, jitter] per datagram
    # node timers: NodeConfig's defaults (the one place they live) unless given here
    round_interval_s: float = _nd("round_interval_s")
    probes_per_round: int = _nd("probes_per_round")
    probe_timeout_s: float | None = None           # None: the profile's, else NodeConfig's
    election_timeout_min_s: float | None = None
    election_timeout_max_s: float | None = None
    profile: str = "default"          # a nodeconfig.PROFILES name; `extra` overrides it
    faults: tuple[str, ...] = ()
    ineligible: tuple[str, ...] = ()  # node names with master_eligible = false
    wire: bool = False                # round-trip every message through wire.encode/decode
    fault_loss: float = 0.3           # loss probability during a "loss" fault
    sample_skew: bool = True          # measure skew (costs one clock read per node per sample)
    converged_after_rounds: int = 4   # rounds of a master's term before skew is judged
    converged_corr_s: float = 0.001   # ... and no correction above this in the last two rounds
    residual_ppm: float = 50.0        # stated allowance for residual relative frequency error
    freq_max_ppm: float | None = None  # None: max(150000, 2.5 x drift_ppm), at most 400000 (see below)
    extra: dict = field(default_factory=dict)   # NodeConfig overrides (any [timers]/[sync]/[clock] key)
    # berkeley: node.Node; cristian: cristian.CristianNode, the first node the time server
    protocol: str = "berkeley"

    def __post_init__(self) -> None:
        if self.nodes < 1:
            raise ValueError(f"nodes must be >= 1, got {self.nodes}")
        if not self.duration_s > 0:
            raise ValueError(f"duration_s must be > 0, got {self.duration_s}")
        if not 0.0 <= self.loss < 1.0 or not 0.0 <= self.fault_loss < 1.0:
            raise ValueError("loss probabilities must be in [0, 1)")
        if self.delay_ms < 0 or self.jitter_ms < 0:
            raise ValueError("delay_ms and jitter_ms must be >= 0")
        if not 0 <= self.drift_ppm < 500_000:
            raise ValueError(f"drift_ppm must be in [0, 500000), got {self.drift_ppm}")
        if self.protocol not in ("berkeley", "cristian"):
            raise ValueError(f"unknown protocol {self.protocol!r}; choose berkeley or cristian")
        if self.profile not in PROFILES:
            raise ValueError(f"unknown profile {self.profile!r}; choose from {', '.join(PROFILES)}")
        for f in self.faults:
            if fault_kind(f) not in FAULT_KINDS:
                raise ValueError(f"unknown fault {f!r}; choose from {', '.join(FAULT_KINDS)}")
        # frozen: the canonical names are stored once, so the engine and the summary see one vocabulary
        object.__setattr__(self, "faults", tuple(fault_kind(f) for f in self.faults))

    # --- derived --------------------------------------------------------------------

    def names(self) -> list[str]:
        return [f"n{i + 1}" for i in range(self.nodes)]

    def freq_max(self) -> float:
        """Bound of the software clocks' frequency correction (ppm).

        A Berkeley group runs at its master's rate (the master counts itself in the
        average, so the group's common rate drifts only slowly toward the mean), so a
        follower may need a correction of up to twice the drift spread: rates of
        +-10% need ~22%.  The config default (150000 ppm) is enough for +-6%.
        """
        if self.freq_max_ppm is not None:
            return self.freq_max_ppm
        return max(150_000.0, min(400_000.0, 2.5 * self.drift_ppm))

    def node_configs(self) -> list[NodeConfig]:
        names = self.names()
        timers = {"round_interval_s": self.round_interval_s, "probes_per_round": self.probes_per_round,
                  **PROFILES[self.profile]}
        for k in ("probe_timeout_s", "election_timeout_min_s", "election_timeout_max_s"):
            if getattr(self, k) is not None:
                timers[k] = getattr(self, k)
        extra = {"freq_max_ppm": self.freq_max(), **timers, **self.extra}
        peers = [Peer(n, f"10.77.{(i + 11) // 250}.{(i + 11) % 250}") for i, n in enumerate(names)]
        out = []
        for i, n in enumerate(names):
            out.append(NodeConfig(
                name=n, address=peers[i].address, master_eligible=n not in self.ineligible,
                peers=tuple(peers[:i] + peers[i + 1:]), **extra))
        return out

    def reply_wait_s(self, cfg: NodeConfig) -> float:
        return cfg.answer_delay_max_s + 2.0 * cfg.probe_timeout_s

    def settle_s(self, cfg: NodeConfig) -> float:
        """Stated bound: after the last fault change, one master per component by then.

        Detection of a lost master takes at most master_timeout_max (a heartbeat or a
        round message refreshes it; bounded here by the older round_interval + emax); two colliding
        candidacies cost another emax + reply_wait each (we allow two); masters that
        meet after a heal/resume find each other within one round
        (round_interval + (probes+1) * probe_timeout) and resolve in reply_wait, their
        followers move within 5 * reply_wait (CONSISTENCY then START).
        """
        rw = self.reply_wait_s(cfg)
        return (2.0 * cfg.round_interval_s + 3.0 * cfg.election_timeout_max_s
                + (cfg.probes_per_round + 1) * cfg.probe_timeout_s + 10.0 * rw)

    def fault_plan(self, cfg: NodeConfig) -> list[tuple[float, float, str]]:
        """[(start_true_s, length_s, kind)]: faults one after another, each followed by
        room to settle.  Raises ValueError if ``duration_s`` is too short for them."""
        ri, emax = cfg.round_interval_s, cfg.election_timeout_max_s
        warmup = 3.0 * ri + 2.0 * emax + 1.0
        lengths = {"kill": 2.0 * ri + emax,     # down long enough for a new master
                   "stop": 2.0 * ri + emax,     # resumed old master must step down
                   "partition": 3.0 * ri + 2.0 * emax,
                   "loss": 3.0 * ri}
        settle = self.settle_s(cfg)
        plan, t = [], warmup
        for kind in self.faults:
            plan.append((t, lengths[kind], kind))
            t += lengths[kind] + settle + 2.0 * ri
        if plan and t > self.duration_s:
            raise ValueError(f"duration_s={self.duration_s:g} is too short for faults "
                             f"{','.join(self.faults)}: need >= {t:.0f} s")
        return plan
