"""The daemon's runtime: the only module with sockets, clocks, signals and sleeping.

Owns the event loop that drives the I/O-free core (``node.Node``):

* two non-blocking UDP sockets bound to ``node.address`` -- TSP (peers and tempoctl)
  and NTP (mode 3 requests, answered here from the corrected clock);
* one ``selectors`` loop, single-threaded (libfaketime and Python threads do not mix,
  DESIGN.md), whose timeout is ``min(node.next_deadline(), next report) - hw now``.
  Deadlines are hardware time; under libfaketime the select timeout is scaled by the
  same rate, so a fast node's timers fire early in real time, like a fast oscillator;
* inbound TSP: ``auth`` verify -> ``wire.decode`` -> ``node.handle_message(msg, src,
  hw, rx_hw)`` with ``hw`` read right after ``recvmsg`` and ``rx_hw`` the datagram's
  arrival in hardware time (below).  Every ``RemoteProtocolError`` is
  counted (``malformed`` / ``bad_auth`` / ``replayed`` in ``node.counters``) and
  dropped; nothing a peer sends can raise out of the loop;
* outbound: ``wire.encode`` -> sign (bound to the peer's TSP name) -> ``sendto``.  An
  ``OSError`` (EPERM from an nftables output drop, ENETUNREACH, ...) is counted, logged
  (rate-limited) and reported to ``node.handle_send_error``; never fatal;
* PROBE from a sender that is not a configured peer (``tempoctl clockdiff``) is answered
  here, with t2 taken at receipt and t3 just before ``sendto`` (the core only answers
  probes from its master);
* timestamps at the right place (issue #6: the time a datagram waits for this process
  to be scheduled, 0.1-15 ms on a loaded host, counted as network delay one way only
  and so as offset error): both sockets ask for kernel receive timestamps
  (SO_TIMESTAMPNS); ``KernelStamps`` turns one into hardware time as ``hw_now - (real_now
  - kernel_ts) x (hw per real second)``.  libfaketime does not fake the kernel's
  timestamps, and it fakes every ``clock_gettime`` clock id, so ``real_now`` comes from
  the raw ``clock_gettime`` system call (ctypes; ~6 us).  Only a *duration* (the wait)
  crosses from the real to the hardware time base, never an absolute time: on a real
  machine the kernel timestamp is simply in the node's own clock.  The NTP responder's
  receive timestamp and the probes' t2 / t4 use the arrival time; outgoing PROBE t1 and
  PROBE_REPLY t3 are re-stamped right before ``sendto`` (``Node.restamp_probe``);
* every ``cpu_report_interval_s``: ``cpu`` and ``counters`` events.  ``cpu`` carries
  ``os.times()`` (clock ticks, 10 ms) and ``cpu_ns``, the process's CPU time in ns from
  ``CLOCK_PROCESS_CPUTIME_ID`` read through the raw system call: libfaketime fakes that
  clock id too (at a drift rate r it returns r x the CPU time, checked on this machine),
  so ``time.clock_gettime_ns`` would report drifted CPU.  ``tempoctl status --json``
  carries the same reading under ``cpu`` (added to the core's STATUS body here);
* SIGTERM/SIGINT -> ``stop`` event and a clean return (exit 0); SIGHUP -> reopen the
  event log (logrotate).  Signals wake the loop through ``signal.set_wakeup_fd``.

It knows nothing about the election or round maths (``node``), the byte formats
(``wire``, ``ntp``, ``auth`` via ``channel``) or the config file format (``config``).
"""

from __future__ import annotations

import ctypes
import errno
import ipaddress
import os
import platform
import random
import selectors
import signal
import socket
import struct
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from . import __version__, ntp
from .actions import Action, Broadcast, Log, Reply, Send
from .channel import Channel, classify
from .config import DaemonConfig, summary
from .eventlog import EventLog
from .cristian import make_core
from .wire import LocalProtocolError, Message, MsgType, RemoteProtocolError

NS = 1_000_000_000
MAX_DATAGRAM = 65535
BATCH = 64                  # datagrams read per wake-up per socket (keeps timers served under a flood)
STUCK_POLL_S = 0.001        # select timeout when the core's deadline does not advance (see _step)
NOTICE_BURST = 20           # rate-limited notices (reject/send_error) per report interval, per kind
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)   # Linux; Python does not export the name
ANC_SIZE = socket.CMSG_SPACE(16)   # one struct timespec (two 64-bit longs)
_TIMESPEC = struct.Struct("@qq")
PAIR_SLACK_S = 20e-6        # hw-real-hw reads further apart than this were preempted: retry
MAX_RX_WAIT_S = 1.0         # a longer wait between arrival and read means a bad stamp: ignore it
RATE_BASELINE_S = 10.0      # real seconds before the hw-per-real rate estimate is trusted
_SYS_CLOCK_GETTIME = {"x86_64": 228, "aarch64": 113}   # raw syscall numbers (bypass libfaketime)


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


CLOCK_REALTIME_ID = 0
CLOCK_PROCESS_CPUTIME_ID = 2   # Linux clock ids (time.h)


def raw_clock_ns_reader(clock_id: int) -> Callable[[], int] | None:
    """A reader of a kernel clock in integer ns through the raw system call, or None.

    libfaketime intercepts the libc clock functions (and maps CLOCK_TAI, _RAW, ... and
    even CLOCK_PROCESS_CPUTIME_ID to its fake time), not the system call itself.
    """
    nr = _SYS_CLOCK_GETTIME.get(platform.machine())
    if nr is None:
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        syscall = libc.syscall
    except (OSError, AttributeError):
        return None
    ts = _Timespec()
    ref = ctypes.byref(ts)

    def read() -> int:
        if syscall(nr, clock_id, ref) != 0:
            raise OSError(ctypes.get_errno(), "clock_gettime")
        return ts.tv_sec * NS + ts.tv_nsec

    try:
        read()
    except OSError:
        return None
    return read


def process_cpu_ns_reader() -> Callable[[], int]:
    """This process's CPU time (user + system, all threads) in ns, past libfaketime.

    Falls back to ``time.clock_gettime_ns`` where the raw call is unknown (not x86_64 /
    aarch64): correct without libfaketime, scaled by the fake rate under it."""
    raw = raw_clock_ns_reader(CLOCK_PROCESS_CPUTIME_ID)
    if raw is not None:
        return raw
    import time

    return lambda: time.clock_gettime_ns(time.CLOCK_PROCESS_CPUTIME_ID)


def raw_realtime_reader() -> Callable[[], float] | None:
    """A reader of the kernel's CLOCK_REALTIME (float seconds) past libfaketime, or None."""
    read_ns = raw_clock_ns_reader(0)  # 0 = CLOCK_REALTIME
    if read_ns is None:
        return None
    return lambda: read_ns() / NS


class KernelStamps:
    """Kernel receive timestamps -> the node's hardware time (see the module docstring).

    ``arrival_hw(ancdata, hw_now)`` is None when the datagram has no timestamp, no raw
    real-time reader exists, or the wait looks wrong (negative or > MAX_RX_WAIT_S).  The
    hardware clock's rate against real time (up to +-10 % in the lab) is estimated from
    (hw, real) pairs since the start, after RATE_BASELINE_S; before that it is taken as 1,
    an error of rate x wait (<= 0.1 x a few ms).
    """

    def __init__(self, read_hw: Callable[[], float], read_real: Callable[[], float] | None) -> None:
        self.read_hw = read_hw
        self.read_real = read_real
        self._anchor: tuple[float, float] | None = None
        if read_real is not None:
            self._anchor = (read_hw(), read_real())

    @property
    def available(self) -> bool:
        return self.read_real is not None

    def enable(self, sock: socket.socket) -> bool:
        if self.read_real is None:
            return False
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        except OSError:
            return False
        return True

    def now_pair(self) -> tuple[float, float] | None:
        """(hw, real) read together: real between two hw reads, retried if the process was
        preempted in between (the two hw reads more than PAIR_SLACK_S apart), else None."""
        if self.read_real is None:
            return None
        for _ in range(3):
            h1 = self.read_hw()
            r = self.read_real()
            h2 = self.read_hw()
            if h2 - h1 <= PAIR_SLACK_S:
                return (h1 + h2) / 2.0, r
        return None

    def arrival_hw(self, ancdata: list[tuple[int, int, bytes]], hw_now: float | None = None) -> float | None:
        """The datagram's arrival in hardware time, or None (see the class docstring).

        ``hw_now`` is only for tests with fake readers that are not called in order;
        the runtime passes None so that hw and real time are read as a pair (a
        preemption between two separate reads would be counted as waiting: seen as an
        NTP sample 0.44 ms off in the lab).
        """
        if self.read_real is None or self._anchor is None:
            return None
        for level, kind, raw in ancdata:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(raw) >= _TIMESPEC.size:
                sec, nsec = _TIMESPEC.unpack_from(raw)
                if hw_now is None:
                    pair = self.now_pair()
                    if pair is None:
                        return None
                    hw_now, real_now = pair
                else:
                    real_now = self.read_real()
                wait = real_now - (sec + nsec * 1e-9)
                if not 0.0 <= wait <= MAX_RX_WAIT_S:
                    return None
                hw0, real0 = self._anchor
                span = real_now - real0
                rate = (hw_now - hw0) / span if span >= RATE_BASELINE_S else 1.0
                if not 0.5 < rate < 1.5:     # a stepped/jumping hardware clock: do not extrapolate
                    rate = 1.0
                return hw_now - wait * rate
        return None


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
        # the protocol core by [protocol] mode: node.Node or cristian.CristianNode
        self.node = make_core(cfg.node, clock, rng or random.Random(), read_hw(), cfg.mode, cfg.time_server)
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
        self.stamps = KernelStamps(read_hw, raw_realtime_reader())
        self.cpu_ns = process_cpu_ns_reader()
        self.stamps.enable(sockets.tsp)
        if sockets.ntp is not None:
            self.stamps.enable(sockets.ntp)

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
        # the kernel backend's hold ends on the clocksource's time, not on a core deadline
        poll_in = self._clock_poll_in(now)
        if poll_in is not None and poll_in < timeout:
            timeout = poll_in
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
        if self._clock_poll_in(now) == 0.0:
            self.clock.poll(now)
        deadline = self.node.next_deadline()
        if deadline is not None and now >= deadline:
            self._fired_deadline = deadline
            self._execute(self.node.handle_timer(now))
        if now >= self._next_report:
            self._report(now)

    def _clock_poll_in(self, now: float) -> float | None:
        """Seconds until the discipline wants ``poll`` (KernelDiscipline); None: never."""
        fn = getattr(self.clock, "next_poll_s", None)
        return None if fn is None else fn(now)

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
        self.log.write("cpu", **self.cpu_reading())
        self.log.write("counters", **self._counters())
        suppressed = self._notices.reset()
        if suppressed:
            self.log.write("suppressed", counts=suppressed)
        interval = self.cfg.runtime.cpu_report_interval_s
        self._next_report += interval
        if self._next_report <= now:  # after a pause (SIGSTOP) do not replay missed reports
            self._next_report = now + interval

    def cpu_reading(self) -> dict[str, Any]:
        """CPU time so far: ns from CLOCK_PROCESS_CPUTIME_ID, ticks from os.times()."""
        t = os.times()
        return {"cpu_ns": self.cpu_ns(), "utime_s": t.user, "stime_s": t.system}

    def _counters(self) -> dict[str, int]:
        return {**self.node.counters, **self.ntp_counters, "log_errors": self.log.write_errors}

    # --- TSP in -------------------------------------------------------------------

    def _on_tsp(self) -> None:
        for _ in range(BATCH):
            try:
                data, anc, _flags, src = self.sockets.tsp.recvmsg(MAX_DATAGRAM, ANC_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                # ECONNREFUSED etc.: an ICMP error for an earlier sendto surfaced here.
                continue
            rx = self.stamps.arrival_hw(anc)
            self.handle_datagram(data, src, self.read_hw(), rx)

    def handle_datagram(self, data: bytes, src: tuple[str, int], hw: float, rx_hw: float | None = None) -> None:
        """Authenticate, decode and hand one TSP datagram to the core.

        ``hw`` = hardware time now (read after the datagram was read), ``rx_hw`` = its
        arrival in hardware time from the kernel timestamp, when known.
        """
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
            self._answer_probe(msg, src, hw if rx_hw is None else rx_hw)
            return
        self._execute(self.node.handle_message(msg, src, hw, rx_hw))

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
                msg = a.msg
                if msg.type is MsgType.STATUS and isinstance(msg.data, dict):
                    # the process's own CPU time belongs to the runtime, not to the core
                    msg = replace(msg, data={**msg.data, "cpu": self.cpu_reading()})
                # Control answers go to tempoctl, whose name we do not keep: unbound MAC.
                self._send(a.addr, msg, recipient=None, peer=None)
            elif t is Log:
                self.log.write_fields(a.event, a.fields)
            else:
                self.log.write("error", detail=f"unknown action {a!r}")

    def _send(self, addr: tuple[str, int], msg: Message, *, recipient: str | None, peer: str | None) -> None:
        t = msg.type
        if t is MsgType.PROBE and peer is not None and msg.t1_ns is not None:
            # t1 as late as possible: the wait since the core stamped it is not network delay.
            t1 = round(self.clk() * NS)
            if t1 > msg.t1_ns:
                self.node.restamp_probe(peer, msg.t1_ns, t1)
                msg = replace(msg, t1_ns=t1)
        elif t is MsgType.PROBE_REPLY and msg.t2_ns is not None:
            # t3 as late as possible: the master removes t3 - t2 (our hold time) from the RTT.
            msg = replace(msg, t3_ns=max(msg.t2_ns, round(self.clk() * NS)))
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
                data, anc, _flags, src = sock.recvmsg(MAX_DATAGRAM, ANC_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue
            rx = self.stamps.arrival_hw(anc)
            # the arrival time when the kernel stamped it, else as soon as it was read
            recv_clk = self.clock.corrected(self.read_hw() if rx is None else rx)
            self.ntp_counters["ntp_rx"] += 1
            self._answer_ntp(sock, data, src, recv_clk)

    def _answer_ntp(self, sock: socket.socket, data: bytes, src: tuple[str, int], recv_clk: float) -> None:
        master = self.node.master
        master_addr = self.cfg.node.address if master == self.node.name else self.node.addresses.get(master or "")
        if master_addr is not None and ipaddress.ip_address(master_addr).version != 4:
            master_addr = None  # the refid holds an IPv4 address only (NTP's own rule)
        stratum, leap, refid = ntp.encode_state(self.node.state.value, master_addr, self.node.clock_synced)
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
