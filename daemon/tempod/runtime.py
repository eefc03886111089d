"""The daemon's runtime: the only module with sockets, clocks, signals and sleeping.

Owns the event loop that drives the I/O-free core (``node.Node``):

* two non-blocking UDP sockets bound to ``node.address`` -- TSP (peers and tempoctl)
  and NTP (mode 3 requests, answered here from the corrected clock);
* one ``selectors`` loop, single-threaded (libfaketime and Python threads do not mix,
  DESIGN.md), whose timeout is ``min(node.next_deadline(), next report) - hw now``.
  Deadlines are hardware time; under libfaketime the select timeout is scaled by the
  same rate, so a fast node's timers fire early in real time, like a fast oscillator;
* inbound TSP: ``auth`` verify -> ``wire.decode`` -> ``node.handle_message(msg, src,
  hw)`` with ``hw`` read right after ``recvfrom``.  Every ``RemoteProtocolError`` is
  counted (``malformed`` / ``bad_auth`` / ``replayed`` in ``node.counters``) and
  dropped; nothing a peer sends can raise out of the loop;
* outbound: ``wire.encode`` -> sign (bound to the peer's TSP name) -> ``sendto``.  An
  ``OSError`` (EPERM from an nftables output drop, ENETUNREACH, ...) is counted, logged
  (rate-limited) and reported to ``node.handle_send_error``; never fatal;
* PROBE from a sender that is not a configured peer (``tempoctl clockdiff``) is answered
  here, with t2 taken at receipt and t3 just before ``sendto`` (the core only answers
  probes from its master);
* every ``cpu_report_interval_s``: ``cpu`` (``os.times()``) and ``counters`` events;
* SIGTERM/SIGINT -> ``stop`` event and a clean return (exit 0); SIGHUP -> reopen the
  event log (logrotate).  Signals wake the loop through ``signal.set_wakeup_fd``.

It knows nothing about the election or round maths (``node``), the byte formats
(``wire``, ``ntp``, ``auth`` via ``channel``) or the config file format (``config``).
"""

from __future__ import annotations

import errno
import ipaddress
import os
import random
import selectors
import signal
import socket
from dataclasses import dataclass, field
from typing import Any, Callable

from . import __version__, ntp
from .actions import Action, Broadcast, Log, Reply, Send
from .channel import Channel, classify
from .config import DaemonConfig, summary
from .eventlog import EventLog
from .node import Node
from .wire import LocalProtocolError, Message, MsgType, RemoteProtocolError

NS = 1_000_000_000
MAX_DATAGRAM = 65535
BATCH = 64                  # datagrams read per wake-up per socket (keeps timers served under a flood)
STUCK_POLL_S = 0.001        # select timeout when the core's deadline does not advance (see _step)
NOTICE_BURST = 20           # rate-limited notices (reject/send_error) per report interval, per kind


class BindError(OSError):
    """A socket could not be bound; the message names the address and port."""

    def __init__(self, what: str, addr: str, port: int, exc: OSError) -> None:
        super().__init__(exc.errno, f"cannot bind {what} socket to {addr} port {port}: {exc.strerror or exc}")
        self.addr = addr
        self.port = port


@dataclass
class Sockets:
    tsp: socket.socket
    ntp: socket.socket | None

    def close(self) -> None:
        self.tsp.close()
        if self.ntp is not None:
            self.ntp.close()


def _bind(what: str, addr: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ipaddress.ip_address(addr).version == 6 else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    try:
        s.bind((addr, port))
    except OSError as exc:
        s.close()
        raise BindError(what, addr, port, exc) from None
    s.setblocking(False)
    return s


def open_sockets(cfg: DaemonConfig) -> Sockets:
    """Bind the TSP socket and (unless ntp_port = 0) the NTP socket; raises BindError."""
    n = cfg.node
    tsp = _bind("TSP", n.address, n.tsp_port)
    try:
        ntp_sock = _bind("NTP", n.address, n.ntp_port) if n.ntp_port else None
    except BindError:
        tsp.close()
        raise
    return Sockets(tsp, ntp_sock)


@dataclass
class _Notices:
    """Per-kind budget of log lines between reports, so a flood cannot fill the disk."""
    used: dict[str, int] = field(default_factory=dict)
    suppressed: dict[str, int] = field(default_factory=dict)

    def allow(self, kind: str) -> bool:
        n = self.used.get(kind, 0)
        if n >= NOTICE_BURST:
            self.suppressed[kind] = self.suppressed.get(kind, 0) + 1
            return False
        self.used[kind] = n + 1
        return True

    def reset(self) -> dict[str, int]:
        out, self.suppressed, self.used = self.suppressed, {}, {}
        return out


class Runtime:
    """Drives one Node from real sockets until a stop signal (see the module doc)."""

    def __init__(self, cfg: DaemonConfig, sockets: Sockets, read_hw: Callable[[], float],
                 clock: Any, channel: Channel, log: EventLog, *, backend: str,
                 rng: random.Random | None = None) -> None:
        self.cfg = cfg
        self.sockets = sockets
        self.read_hw = read_hw
        self.clock = clock
        self.channel = channel
        self.log = log
        self.backend = backend
        self.node = Node(cfg.node, clock, rng or random.Random(), read_hw())
        self.node.trace = cfg.runtime.trace
        self._peer_addr = {p.name: (p.address, cfg.node.tsp_port) for p in cfg.node.peers}
        self._peer_names = tuple(p.name for p in cfg.node.peers)
        self._peer_set = frozenset(self._peer_names)
        self.ntp_counters = {"ntp_rx": 0, "ntp_tx": 0, "ntp_bad": 0}
        self._notices = _Notices()
        self._stop_reason: str | None = None
        self._hup = False
        self._seq = random.Random().randrange(1 << 16)  # for probe answers sent by the runtime
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._next_report = read_hw() + cfg.runtime.cpu_report_interval_s
        self._fired_deadline: float | None = None
        self._stuck_logged = False

    # --- clocks -------------------------------------------------------------------

    def clk(self) -> float:
        return self.clock.corrected(self.read_hw())

    # --- lifecycle ----------------------------------------------------------------

    def request_stop(self, reason: str) -> None:
        if self._stop_reason is None:
            self._stop_reason = reason

    def _on_signal(self, signum: int, _frame: object) -> None:
        # Runs between bytecodes of the main thread; the wakeup fd makes select return.
        if signum == signal.SIGHUP:
            self._hup = True
        else:
            self.request_stop(signal.Signals(signum).name)

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT (or request_stop); returns the exit status (0)."""
        for s in (self._wake_r, self._wake_w):
            s.setblocking(False)
        old_fd = signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        self._sel.register(self._wake_r, selectors.EVENT_READ, self._drain_wakeup)
        self._sel.register(self.sockets.tsp, selectors.EVENT_READ, self._on_tsp)
        if self.sockets.ntp is not None:
            self._sel.register(self.sockets.ntp, selectors.EVENT_READ, self._on_ntp)
        self.log.write("start", version=__version__, pid=os.getpid(), config=summary(self.cfg),
                       backend=self.backend)
        try:
            while self._stop_reason is None:
                self._step()
        finally:
            self.log.write("counters", **self._counters())
            self.log.write("stop", reason=self._stop_reason or "error")
            for s, h in old.items():
                signal.signal(s, h)
            signal.set_wakeup_fd(old_fd)
            self._sel.close()
            self._wake_r.close()
            self._wake_w.close()
            self.sockets.close()
        return 0

    def _step(self) -> None:
        now = self.read_hw()
        wake = self._next_report
        deadline = self.node.next_deadline()
        if deadline is not None and deadline < wake:
            wake = deadline
        timeout = max(0.0, wake - now)
        if deadline is not None and deadline == self._fired_deadline and timeout == 0.0:
            # The core kept a past deadline after handle_timer: a core bug. Poll at 1 kHz
            # instead of spinning a whole core, and say so once.
            timeout = STUCK_POLL_S
            if not self._stuck_logged:
                self._stuck_logged = True
                self.log.write("error", detail=f"core deadline {deadline!r} did not advance after handle_timer")
        for key, _ in self._sel.select(timeout):
            key.data()
        if self._hup:
            self._hup = False
            self._reopen_log()
        if self._stop_reason is not None:
            return
        now = self.read_hw()
        deadline = self.node.next_deadline()
        if deadline is not None and now >= deadline:
            self._fired_deadline = deadline
            self._execute(self.node.handle_timer(now))
        if now >= self._next_report:
            self._report(now)

    def _drain_wakeup(self) -> None:
        try:
            while self._wake_r.recv(512):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def _reopen_log(self) -> None:
        try:
            self.log.reopen()
        except OSError as exc:
            # Keep writing to the old file rather than dying: losing the daemon is worse.
            self.log.write("error", detail=f"cannot reopen event log: {exc}")
            return
        self.log.write("reopen", path=str(self.log.path))

    def _report(self, now: float) -> None:
        t = os.times()
        self.log.write("cpu", utime_s=t.user, stime_s=t.system)
        self.log.write("counters", **self._counters())
        suppressed = self._notices.reset()
        if suppressed:
            self.log.write("suppressed", counts=suppressed)
        interval = self.cfg.runtime.cpu_report_interval_s
        self._next_report += interval
        if self._next_report <= now:  # after a pause (SIGSTOP) do not replay missed reports
            self._next_report = now + interval

    def _counters(self) -> dict[str, int]:
        return {**self.node.counters, **self.ntp_counters, "log_errors": self.log.write_errors}

    # --- TSP in -------------------------------------------------------------------

    def _on_tsp(self) -> None:
        for _ in range(BATCH):
            try:
                data, src = self.sockets.tsp.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                # ECONNREFUSED etc.: an ICMP error for an earlier sendto surfaced here.
                continue
            self.handle_datagram(data, src, self.read_hw())

    def handle_datagram(self, data: bytes, src: tuple[str, int], hw: float) -> None:
        """Authenticate, decode and hand one TSP datagram to the core (hw = receive time)."""
        try:
            msg = self.channel.open(data, src)
        except RemoteProtocolError as exc:
            kind = classify(exc)
            self.node.counters[kind] += 1
            if self._notices.allow("reject"):
                self.log.write("reject", kind=kind, src=f"{src[0]}:{src[1]}", detail=str(exc)[:200])
            return
        if self.node.trace:
            self.log.write("trace", dir="in", type=msg.type.name, peer=msg.name, seq=msg.seq,
                           src=f"{src[0]}:{src[1]}")
        if msg.type == MsgType.PROBE and msg.name not in self._peer_set:
            self._answer_probe(msg, src, hw)
            return
        self._execute(self.node.handle_message(msg, src, hw))

    def _answer_probe(self, msg: Message, src: tuple[str, int], hw: float) -> None:
        self.node.counters["rx"] += 1
        t2 = round(self.clock.corrected(hw) * NS)
        self._seq = (self._seq + 1) & 0xFFFF
        t3 = round(self.clk() * NS)
        reply = Message(MsgType.PROBE_REPLY, self._seq, self.node.name, t1_ns=msg.t1_ns, t2_ns=t2, t3_ns=t3)
        self._send(src, reply, recipient=None, peer=None)

    # --- actions out --------------------------------------------------------------

    def _execute(self, actions: list[Action]) -> None:
        for a in actions:
            t = type(a)
            if t is Send:
                addr = self._peer_addr.get(a.to)
                if addr is None:
                    self.log.write("error", detail=f"core asked to send {a.msg.type.name} to unknown peer {a.to!r}")
                    continue
                self._send(addr, a.msg, recipient=a.to, peer=a.to)
            elif t is Broadcast:
                for name in self._peer_names:
                    self._send(self._peer_addr[name], a.msg, recipient=name, peer=name)
            elif t is Reply:
                # Control answers go to tempoctl, whose name we do not keep: unbound MAC.
                self._send(a.addr, a.msg, recipient=None, peer=None)
            elif t is Log:
                self.log.write_fields(a.event, a.fields)
            else:
                self.log.write("error", detail=f"unknown action {a!r}")

    def _send(self, addr: tuple[str, int], msg: Message, *, recipient: str | None, peer: str | None) -> None:
        try:
            data = self.channel.seal(msg, recipient)
        except (LocalProtocolError, ValueError) as exc:
            # The core built something the format cannot carry: a bug, but not a crash.
            self.log.write("error", detail=f"cannot encode {msg.type.name}: {exc}")
            return
        if self.node.trace:
            self.log.write("trace", dir="out", type=msg.type.name, peer=peer, seq=msg.seq,
                           dst=f"{addr[0]}:{addr[1]}")
        try:
            self.sockets.tsp.sendto(data, addr)
        except OSError as exc:  # EPERM (nftables output drop), ENETUNREACH, EAGAIN, ...
            if peer is not None:
                self.node.handle_send_error(peer, self.read_hw())
            else:
                self.node.counters["send_errors"] += 1
            if self._notices.allow("send_error"):
                self.log.write("send_error", to=peer, address=f"{addr[0]}:{addr[1]}", type=msg.type.name,
                               errno=errno.errorcode.get(exc.errno or 0, str(exc.errno)), detail=str(exc))

    # --- NTP ----------------------------------------------------------------------

    def _on_ntp(self) -> None:
        sock = self.sockets.ntp
        assert sock is not None
        for _ in range(BATCH):
            try:
                data, src = sock.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue
            recv_clk = self.clock.corrected(self.read_hw())  # as soon as the datagram is read
            self.ntp_counters["ntp_rx"] += 1
            self._answer_ntp(sock, data, src, recv_clk)

    def _answer_ntp(self, sock: socket.socket, data: bytes, src: tuple[str, int], recv_clk: float) -> None:
        master = self.node.master
        master_addr = self.cfg.node.address if master == self.node.name else self.node.addresses.get(master or "")
        if master_addr is not None and ipaddress.ip_address(master_addr).version != 4:
            master_addr = None  # the refid holds an IPv4 address only (NTP's own rule)
        stratum, leap, refid = ntp.encode_state(self.node.state.value, master_addr)
        try:
            reply = ntp.server_reply(data, recv_clk, self.clk(), stratum=stratum, leap=leap, refid=refid,
                                     root_dispersion_s=min(self.node.last_bound_s, 60.0))
        except RemoteProtocolError:
            self.ntp_counters["ntp_bad"] += 1
            return
        try:
            sock.sendto(reply, src)
        except OSError as exc:
            self.node.counters["send_errors"] += 1
            if self._notices.allow("send_error"):
                self.log.write("send_error", to=None, address=f"{src[0]}:{src[1]}", type="NTP",
                               errno=errno.errorcode.get(exc.errno or 0, str(exc.errno)), detail=str(exc))
            return
        self.ntp_counters["ntp_tx"] += 1
