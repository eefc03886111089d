"""The observer: reads every node's corrected clock through its NTP responder.

Owns the sampling loop on the controller: one non-blocking UDP socket, a ``selectors``
loop, one request per node per sweep sent back to back (pipelined: replies are matched
by the echoed transmit timestamp, so a slow node never delays the others), timeouts
recorded as missing samples (state ``unreachable``). It runs in its own thread so SSH
calls in the trial driver cannot block it, and it uses the controller's real clock
(``time.time``, never under libfaketime), which in the lab is true time.

It does not know about faults, trials' meaning or the run folder: samples go to a
``sink`` callable and into a bounded in-memory history the driver queries.
"""

from __future__ import annotations

import collections
import itertools
import random
import selectors
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from . import ntpwire
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


class Observer:
    """Sample ``nodes`` at ``hz`` sweeps per second; call ``start()`` then ``stop()``."""

    def __init__(self, nodes: Iterable[NodeRef], *, port: int = 123, hz: float = 10.0,
                 timeout_s: float = 0.5, sink: Callable[[Sample], None] | None = None,
                 history: int = 200_000, clock: Callable[[], float] = time.time):
        if hz <= 0:
            raise ValueError(f"observer rate must be > 0 Hz, got {hz}")
        self.port = port
        self.period_s = 1.0 / hz
        self.timeout_s = timeout_s
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

    def samples(self, since: float | None = None, until: float | None = None) -> list[Sample]:
        with self._lock:
            return [s for s in self._history
                    if (since is None or s["t_ref"] >= since)
                    and (until is None or s["t_ref"] <= until)]

    # ---------------------------------------------------------------- loop
    def _emit(self, sample: Sample) -> None:
        with self._lock:
            self._history.append(sample)
            self._latest[sample["node"]] = sample
        if self.sink is not None:
            try:
                self.sink(sample)
            except Exception:  # noqa: BLE001 - a full disk must not kill the sampling
                self.sink_errors += 1

    def _missing(self, p: _Pending, error: str) -> None:
        self._emit({"t_ref": p.t1, "trial": self.trial, "sweep": p.sweep, "node": p.node,
                    "offset_s": None, "bound_s": None, "rtt_s": None,
                    "state": "unreachable", "master": None, "stratum": None,
                    "error": error})

    def _reply(self, data: bytes, addr: tuple[str, int], t4: float,
               pending: dict[bytes, _Pending]) -> None:
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
        self._emit({"t_ref": m.t_ref, "trial": self.trial, "sweep": p.sweep, "node": p.node,
                    "offset_s": m.offset_s, "bound_s": m.bound_s, "rtt_s": m.rtt_s,
                    "state": state, "master": master, "stratum": r.stratum,
                    "root_dispersion_s": r.root_dispersion_s})

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
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
        try:
            while not self._stop.is_set():
                now_m = time.monotonic()
                if now_m >= next_tick and self._paused.is_set():
                    next_tick = now_m + self.period_s
                elif now_m >= next_tick:
                    self._sweep += 1
                    with self._lock:
                        nodes = list(self._nodes)
                    for n in nodes:
                        nonce = next(self._nonces)
                        data, key = ntpwire.build_request(nonce)
                        t1 = self.clock()
                        try:
                            sock.sendto(data, (n.address, self.port))
                        except OSError as exc:
                            self._missing(_Pending(n.name, t1, self._sweep, 0.0),
                                          f"send: {exc.strerror}")
                            continue
                        pending[key] = _Pending(n.name, t1, self._sweep,
                                                time.monotonic() + self.timeout_s)
                    # keep the grid: a late tick does not shift all later ones
                    next_tick += self.period_s
                    if next_tick < now_m:
                        next_tick = now_m + self.period_s
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
                        self._reply(data, addr, t4, pending)
                now_m = time.monotonic()
                for key in [k for k, p in pending.items() if p.deadline <= now_m]:
                    self._missing(pending.pop(key), "timeout")
        finally:
            # requests still in flight at stop say nothing about the nodes: not recorded
            sel.close()
            sock.close()


def bound_stats(samples: Iterable[Sample]) -> dict[str, float | int | None]:
    """Median / p99 / max of the observer's own error bound (s) over answered samples."""
    import statistics

    bounds = sorted(s["bound_s"] for s in samples if s.get("bound_s") is not None)
    if not bounds:
        return {"n": 0, "median_s": None, "p99_s": None, "max_s": None}
    p99 = bounds[min(len(bounds) - 1, int(0.99 * len(bounds)))]
    return {"n": len(bounds), "median_s": statistics.median(bounds), "p99_s": p99,
            "max_s": bounds[-1]}
