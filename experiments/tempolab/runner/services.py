"""The run's background services -- the NTP observer and the CPU sampler -- behind one
small interface: start, stop, pause / resume, the current trial, the node set, and
their records (each writes its own stream of the run folder through a sink).

Owns how the suite configures them (observer rate, timeouts, retries, real-time
priority, the provider's network namespace; the sampler's interval and the role each
sample is tagged with, taken from the observer's latest answer) and that they pause
together: while ansible (re)starts the daemons there is nothing to observe, and
samples then would only be noise with trial = null.
"""

from __future__ import annotations

from typing import Callable

from .cpu import CpuSampler
from .faults import NodeRef
from .observer import Observer, Sample
from .suite import Suite


class Services:
    def __init__(self, observer: Observer, cpu: CpuSampler):
        self.observer = observer
        self.cpu = cpu

    @classmethod
    def for_suite(cls, suite: Suite, nodes: list[NodeRef], run_cmd: Callable[[str, str], str],
                  sink: Callable[[str], Callable[[dict], None]], netns: str | None = None) -> "Services":
        """``run_cmd(node, cmd) -> stdout`` runs the sampler's command on a node;
        ``sink(stream)`` is the run folder's appender for ``observer`` / ``cpu``."""
        observer = Observer(nodes, port=int(suite.daemon.get("ntp_port", 123)),
                            hz=suite.observer_hz, timeout_s=suite.observer_timeout_s,
                            retries=suite.observer_retries,
                            retry_bound_floor_s=suite.observer_retry_bound_s,
                            retry_factor=suite.observer_retry_factor,
                            realtime_priority=suite.observer_realtime_priority,
                            netns=netns, sink=sink("observer"))

        def role(node: str) -> str | None:
            return observer.latest().get(node, {}).get("state")

        cpu = CpuSampler([n.name for n in nodes], run_cmd, sink("cpu"), role, suite.cpu_interval_s)
        return cls(observer, cpu)

    def start(self) -> str | None:
        """Start both; the observer's real-time priority warning, if any."""
        self.observer.start()
        self.cpu.start()
        return self.observer.realtime_warning

    def stop(self) -> None:
        self.cpu.stop()
        self.observer.stop()

    def pause(self, on: bool) -> None:
        if on:
            self.observer.pause()
            self.cpu.paused.set()
        else:
            self.observer.resume()
            self.cpu.paused.clear()

    def set_trial(self, k: int | None) -> None:
        self.observer.set_trial(k)
        self.cpu.trial = k

    def set_nodes(self, nodes: list[NodeRef]) -> None:
        """The node set changed (a provider resized the cluster)."""
        self.observer.set_nodes(nodes)
        self.cpu.nodes = [n.name for n in nodes]

    def latest(self) -> dict[str, Sample]:
        return self.observer.latest()

    def samples(self, since: float | None = None, until: float | None = None) -> list[Sample]:
        return self.observer.samples(since=since, until=until)
