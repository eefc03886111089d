"""One in-memory multi-node harness for the daemon's core: N real ``tempod.node.Node``
cores on the simulator's clock model, wired by a tiny deterministic network that a
test steers message by message.

Owns: node n<i> at address 10.0.0.<i> with every other node as a peer; its hardware
clock is the simulator's ``tempod.clocks.SimClock`` (offset, rate; a deadline in
hardware seconds becomes a true time with its exact inverse ``true_at``), its software
clock a ``SoftwareClock``; one event queue in true time (deliveries, then timers, in
order); per-message one-way delay ``delay(src, dst, msg)`` or one fixed delay; a
``drop(src, dst, msg)`` filter; nodes taken ``down`` (neither timers nor deliveries);
every ``Log`` kept as ``(t, node, log)``. Unlike ``tempod.sim.engine`` (random delay,
loss and partitions drawn from a seed, invariants, summaries at scale) it gives a test
exact control over single messages, so each test can assert what every node saw.
Used by tests/test_core_node.py and tests/test_accuracy_daemon.py (it replaces their
two near-copies).
"""

from __future__ import annotations

import heapq
import random
from typing import Callable

from tempod.actions import Broadcast, Log, Send
from tempod.clocks import SimClock
from tempod.discipline import SoftwareClock
from tempod.election import State
from tempod.node import Node
from tempod.nodeconfig import NodeConfig, Peer
from tempod.wire import Message

Delay = Callable[[str, str, Message], float]
# the source address a delivered datagram claims: the core only uses it for replies to
# clients, and routes peer messages by the name inside them
SRC_ADDR = ("10.0.0.9", 525)


class Cluster:
    """Nodes n1..nN; hw_i(t) = offset_i + (1 + rate_i) t (``rates_ppm``, default 0)."""

    def __init__(self, offsets: list[float], rates_ppm: list[float] | None = None,
                 delay: float | Delay = 0.001, seed: int = 1, **cfg) -> None:
        names = [f"n{i + 1}" for i in range(len(offsets))]
        peers = [Peer(n, f"10.0.0.{i + 1}") for i, n in enumerate(names)]
        rates = rates_ppm if rates_ppm is not None else [0.0] * len(names)
        if len(rates) != len(names):
            raise ValueError(f"{len(names)} offsets but {len(rates)} rates")
        self.hwclock = {n: SimClock(offset_s=o, rate_ppm=r) for n, o, r in zip(names, offsets, rates)}
        self.delay = delay
        self.t = 0.0
        self.q: list = []
        self.k = 0
        self.logs: list[tuple[float, str, Log]] = []
        self.drop: Callable[[str, str, Message], bool] = lambda src, dst, msg: False
        self.down: set[str] = set()
        self.nodes: dict[str, Node] = {}
        rng = random.Random(seed)
        for i, n in enumerate(names):
            c = NodeConfig(n, peers=tuple(peers[:i] + peers[i + 1:]), **cfg)
            self.nodes[n] = Node(c, SoftwareClock(), random.Random(rng.random()), self.hw(n))

    # --- clocks -------------------------------------------------------------------------
    def hw(self, n: str) -> float:
        return self.hwclock[n].read(self.t)

    def t_of(self, n: str, hw: float) -> float:
        """True time at which node ``n``'s hardware clock reads ``hw``."""
        return self.hwclock[n].true_at(hw)

    def clk(self, n: str) -> float:
        return self.nodes[n].clock.corrected(self.hw(n))

    def shift_hw(self, n: str, delta_s: float) -> None:
        """Node ``n``'s hardware clock reads ``delta_s`` more from now on (e.g. it drifted
        while the daemon was down); its rate is kept."""
        c = self.hwclock[n]
        self.hwclock[n] = SimClock(offset_s=c.offset_s + delta_s, rate_ppm=c.rate_ppm)

    # --- network ------------------------------------------------------------------------
    def one_way(self, src: str, dst: str, msg: Message) -> float:
        return self.delay(src, dst, msg) if callable(self.delay) else self.delay

    def _emit(self, src: str, acts) -> None:
        for a in acts:
            if isinstance(a, Log):
                self.logs.append((self.t, src, a))
            elif isinstance(a, Send):
                self._push(src, a.to, a.msg)
            elif isinstance(a, Broadcast):
                for p in self.nodes:
                    if p != src:
                        self._push(src, p, a.msg)

    def _push(self, src: str, dst: str, msg: Message) -> None:
        if self.drop(src, dst, msg):
            return
        self.k += 1
        heapq.heappush(self.q, (self.t + self.one_way(src, dst, msg), self.k, dst, msg))

    def run_until(self, t_end: float) -> None:
        while True:
            timers = [(self.t_of(name, d), name) for name, n in self.nodes.items()
                      if (d := n.next_deadline()) is not None and name not in self.down]
            nt = min(timers) if timers else (float("inf"), "")
            nq = self.q[0][0] if self.q else float("inf")
            if min(nt[0], nq) > t_end:
                self.t = t_end
                return
            if nq <= nt[0]:
                self.t, _, dst, msg = heapq.heappop(self.q)
                if dst not in self.down:
                    self._emit(dst, self.nodes[dst].handle_message(msg, SRC_ADDR, self.hw(dst)))
            else:
                self.t = max(self.t, nt[0])
                name = nt[1]
                node = self.nodes[name]
                self._emit(name, node.handle_timer(max(self.hw(name), node.next_deadline())))

    # --- what the nodes did ---------------------------------------------------------------
    def events(self, ev: str, node: str | None = None) -> list[dict]:
        return [lg.fields for _, n, lg in self.logs if lg.event == ev and (node is None or n == node)]

    def master(self) -> str:
        """The one live LEADER (fails the test if there is none or more than one)."""
        leaders = [n for n, x in self.nodes.items() if x.state is State.LEADER and n not in self.down]
        assert len(leaders) == 1, leaders
        return leaders[0]
