"""The observer: reads every node's corrected clock through its NTP responder.

Owns the sampling loop on the controller: one non-blocking UDP socket, a ``selectors``
loop, one request per node per sweep sent back to back (pipelined: replies are matched
by the echoed transmit timestamp, so a slow node never delays the others), timeouts
recorded as missing samples (state ``unreachable``). It runs in its own thread so SSH
calls in the trial driver cannot block it, and it uses the controller's real clock
(``time.time``, never under libfaketime), which in the lab is true time.

Clock filter (as ntpd's and chrony's): a reply whose error bound (half its round trip)
is well above that node's recent typical bound was almost always delayed by a
preemption -- the node's responder between its transmit timestamp and ``sendto``, or
this thread -- and its offset is off by about that bound. Such a node is re-queried at
once, up to ``retries`` times while the sweep period lasts. Every sample is recorded;
each carries ``retry`` (0 = the sweep's regular request) and ``superseded`` (true for
all but the smallest-bound answered sample of that node in that sweep), so the analysis
uses exactly one sample per node per sweep and the raw data stays in the run folder.

It does not know about faults, trials' meaning or the run folder: samples go to a
``sink`` callable and into a bounded in-memory history the driver queries.
"""

from __future__ import annotations

import collections
import itertools
import math
import os
import random
import selectors
import socket
import struct
import sys
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from . import ntpwire
from ..providers.netns import socket_in
from .faults import NodeRef

Sample = dict[str, Any]

# Kernel receive timestamps (Linux SO_TIMESTAMPNS = 35, struct timespec of two longs):
# t4 is then when the reply reached the socket, not when this thread got to read it,
# which removes the Python scheduling delay from the round trip (and from bound_s).
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35 if sys.platform.startswith("linux") else None)
_TIMESPEC = struct.Struct("@qq")


def _kernel_rx_time(ancdata: list) -> float | None:
    for level, ctype, data in ancdata:
        if level == socket.SOL_SOCKET and ctype == SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            sec, nsec = _TIMESPEC.unpack_from(data)
            return sec + nsec * 1e-9
    return None


@dataclass
class _Pending:
    node: str
    t1: float
    sweep: int
    deadline: float  # monotonic seconds
    retry: int = 0
    address: str = ""


@dataclass
class _Group:
    """The samples of one node in one sweep while a retry may still improve on them."""
    samples: list[Sample] = field(default_factory=list)
    retry_key: bytes | None = None   # pending key of the retry in flight


# Defaults of the clock filter. The floor keeps the filter quiet where every bound is
# small anyway (median 39 us in the lab); 3 x the median is well clear of the normal
# spread (p99 ~2.5 x the median) and well below a preempted reply (1-3 ms).
RETRY_BOUND_FLOOR_S = 100e-6
RETRY_FACTOR = 3.0
RETRIES = 2
BOUND_HISTORY = 64        # per node: the running median is over this many chosen bounds
RETRY_WINDOW = 0.75       # a retry is sent only in the first 75 % of the sweep period


class Observer:
    """Sample ``nodes`` at ``hz`` sweeps per second; call ``start()`` then ``stop()``.

    ``retries`` re-queries per node and sweep when a reply's bound exceeds
    ``max(retry_bound_floor_s, retry_factor x the node's running median bound)``;
    ``retries=0`` turns the clock filter off (one request per node per sweep).
    """

    def __init__(self, nodes: Iterable[NodeRef], *, port: int = 123, hz: float = 10.0,
                 timeout_s: float = 0.5, sink: Callable[[Sample], None] | None = None,
                 history: int = 200_000, clock: Callable[[], float] = time.time,
                 retries: int = RETRIES, retry_bound_floor_s: float = RETRY_BOUND_FLOOR_S,
                 retry_factor: float = RETRY_FACTOR, realtime_priority: int = 0,
                 netns: str | None = None):
        if hz <= 0:
            raise ValueError(f"observer rate must be > 0 Hz, got {hz}")
        if retries < 0:
            raise ValueError(f"observer retries must be >= 0, got {retries}")
        if not (retry_bound_floor_s >= 0 and math.isfinite(retry_bound_floor_s)):
            raise ValueError(f"observer retry bound floor must be a finite number >= 0, got {retry_bound_floor_s}")
        if not (retry_factor >= 1 and math.isfinite(retry_factor)):
            raise ValueError(f"observer retry factor must be >= 1, got {retry_factor}")
        self.port = port
        self.period_s = 1.0 / hz
        self.timeout_s = timeout_s
        self.retries = retries
        self.retry_bound_floor_s = retry_bound_floor_s
        self.retry_factor = retry_factor
        self.retries_sent = 0
        if not 0 <= realtime_priority <= 99:
            raise ValueError(f"observer realtime priority must be 0 (off) or 1-99, got {realtime_priority}")
        self.realtime_priority = realtime_priority
        # VMs: the socket is created inside their namespace (providers.netns); the
        # controller's clock is the same in every namespace, so t1/t4 are unchanged
        self.netns = netns
        self.realtime_warning: str | None = None
        self._running = threading.Event()
        self._bounds: dict[str, collections.deque[float]] = {}
        self._groups: dict[tuple[int, str], _Group] = {}
        self.sink = sink
        self.clock = clock
        self.trial: int | None = None
        self._lock = threading.Lock()
        self._history: collections.deque[Sample] = collections.deque(maxlen=history)
        self._latest: dict[str, Sample] = {}
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._thread: threading.Thread | None = None
        self._sweep = 0
        self.sink_errors = 0
        self.kernel_timestamps = False
        # random start: replies to an earlier observer's requests can never match
        self._nonces = itertools.count(random.getrandbits(63))
        self.set_nodes(nodes)

    # ---------------------------------------------------------------- control
    def set_nodes(self, nodes: Iterable[NodeRef]) -> None:
        nodes = list(nodes)
        with self._lock:
            self._nodes = nodes
            self._by_addr = {n.address: n.name for n in nodes}
            self._latest = {k: v for k, v in self._latest.items()
                            if k in {n.name for n in nodes}}

    def set_trial(self, trial: int | None) -> None:
        self.trial = trial

    def pause(self) -> None:
        """Stop sending (e.g. while the daemons are being (re)deployed: nothing to observe)."""
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()

    def start(self) -> "Observer":
        self._thread = threading.Thread(target=self._run, name="observer", daemon=True)
        self._thread.start()
        # so that realtime_warning is known when start() returns
        self._running.wait(timeout=2.0)
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "Observer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- queries
    def latest(self) -> dict[str, Sample]:
        with self._lock:
            return dict(self._latest)

    def samples(self, since: float | None = None, until: float | None = None,
                superseded: bool = False) -> list[Sample]:
        """History between ``since`` and ``until``; one per node and sweep unless
        ``superseded`` (then the retried-over samples too)."""
        with self._lock:
            return [s for s in self._history
                    if (since is None or s["t_ref"] >= since)
                    and (until is None or s["t_ref"] <= until)
                    and (superseded or not s.get("superseded"))]

    def retry_threshold_s(self, node: str) -> float:
        """The bound above which a reply of ``node`` is re-queried (s)."""
        hist = self._bounds.get(node)
        med = statistics.median(hist) if hist else 0.0
        return max(self.retry_bound_floor_s, self.retry_factor * med)

    # ---------------------------------------------------------------- loop
    def _emit(self, sample: Sample) -> None:
        with self._lock:
            self._history.append(sample)
            if not sample.get("superseded"):
                self._latest[sample["node"]] = sample
        if self.sink is not None:
            try:
                self.sink(sample)
            except Exception:  # noqa: BLE001 - a full disk must not kill the sampling
                self.sink_errors += 1

    def _missing(self, p: _Pending, error: str) -> None:
        sample = {"t_ref": p.t1, "trial": self.trial, "sweep": p.sweep, "node": p.node,
                  "offset_s": None, "bound_s": None, "rtt_s": None,
                  "state": "unreachable", "master": None, "stratum": None,
                  "error": error, "retry": p.retry, "superseded": False}
        group = self._groups.get((p.sweep, p.node))
        if p.retry and group is not None:
            # a lost retry: the node's earlier answer of this sweep stands
            group.retry_key = None
            group.samples.append(sample)
            self._finish(p.sweep, p.node)
        else:
            self._emit(sample)

    def _finish(self, sweep: int, node: str) -> None:
        """Emit a node's samples of one sweep; all but the smallest-bound answer superseded."""
        group = self._groups.pop((sweep, node), None)
        if group is None:
            return
        answered = [s for s in group.samples if s.get("bound_s") is not None]
        best = min(answered, key=lambda s: s["bound_s"]) if answered else group.samples[0]
        for s in group.samples:
            s["superseded"] = s is not best
        if best.get("bound_s") is not None:
            self._bounds.setdefault(node, collections.deque(maxlen=BOUND_HISTORY)).append(best["bound_s"])
        for s in group.samples:
            self._emit(s)

    def _send(self, sock: socket.socket, node: str, address: str, sweep: int, retry: int,
              pending: dict[bytes, _Pending]) -> bytes | None:
        nonce = next(self._nonces)
        data, key = ntpwire.build_request(nonce)
        t1 = self.clock()
        try:
            sock.sendto(data, (address, self.port))
        except OSError as exc:
            self._missing(_Pending(node, t1, sweep, 0.0, retry, address), f"send: {exc.strerror}")
            return None
        pending[key] = _Pending(node, t1, sweep, time.monotonic() + self.timeout_s, retry, address)
        return key

    def _close_sweeps(self, pending: dict[bytes, _Pending]) -> None:
        """At a new sweep: a retry still unanswered is recorded as lost, its group emitted."""
        for (sweep, node), group in list(self._groups.items()):
            p = pending.pop(group.retry_key, None) if group.retry_key is not None else None
            if p is not None:
                self._missing(p, "retry unanswered at the sweep's end")  # records it, emits the group
            else:
                self._finish(sweep, node)

    def _reply(self, data: bytes, addr: tuple[str, int], t4: float,
               pending: dict[bytes, _Pending], sock: socket.socket | None = None,
               retry_until: float = 0.0) -> None:
        try:
            key = ntpwire.reply_key(data)
        except ntpwire.BadReply:
            return
        p = pending.get(key)
        if p is None or self._by_addr.get(addr[0]) != p.node:
            return  # late reply to a request already timed out, or a stranger
        del pending[key]
        try:
            r = ntpwire.parse_reply(data)
        except ntpwire.BadReply as exc:
            self._missing(p, f"bad reply: {exc}")
            return
        m = ntpwire.measure(p.t1, r.t2_s, r.t3_s, t4)
        state, master = ntpwire.decode_state(r.stratum, r.leap, r.refid)
        if master == "self":
            master = p.node
        elif master is not None:
            master = self._by_addr.get(master, master)
        sample = {"t_ref": m.t_ref, "trial": self.trial, "sweep": p.sweep, "node": p.node,
                  "offset_s": m.offset_s, "bound_s": m.bound_s, "rtt_s": m.rtt_s,
                  "state": state, "master": master, "stratum": r.stratum,
                  "root_dispersion_s": r.root_dispersion_s, "retry": p.retry, "superseded": False}
        group = self._groups.setdefault((p.sweep, p.node), _Group())
        group.retry_key = None
        group.samples.append(sample)
        best = min(s["bound_s"] for s in group.samples if s.get("bound_s") is not None)
        # a late answer to an earlier sweep is not retried: that sweep is over
        if (sock is not None and p.retry < self.retries and p.sweep == self._sweep
                and best > self.retry_threshold_s(p.node) and time.monotonic() < retry_until):
            self.retries_sent += 1
            key = self._send(sock, p.node, p.address or addr[0], p.sweep, p.retry + 1, pending)
            if key is not None:
                group.retry_key = key
                return
        self._finish(p.sweep, p.node)

    def _set_realtime(self) -> None:
        """SCHED_FIFO for this thread only (pid 0 = the calling thread on Linux).

        A sweep's requests go out back to back; when the thread is preempted between two
        sendto calls (milliseconds on a loaded host) the nodes are read at different
        times, and at percent-level drift that alone is apparent skew (10 ms x 7.5 %).
        """
        if self.realtime_priority <= 0:
            return
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(self.realtime_priority))
        except (OSError, AttributeError) as exc:
            self.realtime_warning = (f"observer realtime priority {self.realtime_priority}: cannot switch to "
                                     f"SCHED_FIFO ({getattr(exc, 'strerror', None) or exc}); normal priority")

    def _run(self) -> None:
        try:
            self._set_realtime()
        finally:
            self._running.set()
        sel = selectors.DefaultSelector()
        sock = socket_in(self.netns, socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        kernel_ts = False
        if SO_TIMESTAMPNS is not None and self.clock is time.time:
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
                kernel_ts = True
            except OSError:
                kernel_ts = False
        self.kernel_timestamps = kernel_ts
        sel.register(sock, selectors.EVENT_READ)
        pending: dict[bytes, _Pending] = {}
        next_tick = time.monotonic()
        retry_until = next_tick
        try:
            while not self._stop.is_set():
                now_m = time.monotonic()
                if now_m >= next_tick and self._paused.is_set():
                    next_tick = now_m + self.period_s
                elif now_m >= next_tick:
                    self._close_sweeps(pending)
                    self._sweep += 1
                    with self._lock:
                        nodes = list(self._nodes)
                    for n in nodes:
                        self._send(sock, n.name, n.address, self._sweep, 0, pending)
                    # keep the grid: a late tick does not shift all later ones
                    next_tick += self.period_s
                    if next_tick < now_m:
                        next_tick = now_m + self.period_s
                    retry_until = next_tick - (1.0 - RETRY_WINDOW) * self.period_s
                expiry = min((p.deadline for p in pending.values()), default=next_tick)
                wait = max(0.0, min(next_tick, expiry) - time.monotonic())
                for _key, _ev in sel.select(timeout=wait):
                    while True:
                        try:
                            data, anc, _flags, addr = sock.recvmsg(2048, socket.CMSG_SPACE(_TIMESPEC.size))
                        except (BlockingIOError, InterruptedError):
                            break
                        except OSError:
                            break  # ICMP port unreachable surfaces here; the timeout records it
                        t4 = (_kernel_rx_time(anc) if kernel_ts else None) or self.clock()
                        self._reply(data, addr, t4, pending, sock, retry_until)
                now_m = time.monotonic()
                for key in [k for k, p in pending.items() if p.deadline <= now_m]:
                    self._missing(pending.pop(key), "timeout")
        finally:
            # requests still in flight at stop say nothing about the nodes: not recorded;
            # answers already in hand are
            for (sweep, node) in list(self._groups):
                self._finish(sweep, node)
            sel.close()
            sock.close()


def bound_stats(samples: Iterable[Sample]) -> dict[str, float | int | None]:
    """Median / p99 / max of the observer's own error bound (s) over answered samples
    (superseded ones left out: one per node per sweep, as the analysis uses)."""
    bounds = sorted(s["bound_s"] for s in samples
                    if s.get("bound_s") is not None and not s.get("superseded"))
    if not bounds:
        return {"n": 0, "median_s": None, "p99_s": None, "max_s": None}
    p99 = bounds[min(len(bounds) - 1, int(0.99 * len(bounds)))]
    return {"n": len(bounds), "median_s": statistics.median(bounds), "p99_s": p99,
            "max_s": bounds[-1]}
