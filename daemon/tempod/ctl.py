"""``tempoctl``: the control tool for a running tempod, modelled on 4.3BSD ``timedc``.

Talks to a daemon over its authenticated TSP port (key and port from the daemon's config
file): ``status`` (STATUS_REQ -> STATUS), ``msite`` (MSITEREQ -> MSITE), ``election
HOST`` (TEST: the host starts an election), ``trace on|off`` (TRACEON/TRACEOFF) and
``clockdiff HOST`` (a few PROBE exchanges measured with this host's clock).

Owns the command line, the request/answer exchange and the output format.  The offset
maths (:func:`probe_offset`) and the status rendering (:func:`format_status`) are pure.
It knows nothing about the daemon's internals: only the messages in docs/architecture.md.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import sys
import time
from dataclasses import dataclass
from typing import Any, Sequence

from . import __version__, auth
from .channel import Channel
from .config import DEFAULT_PATH, ConfigError, load
from .wire import Message, MsgType, RemoteProtocolError

EXIT_OK = 0
EXIT_NO_ANSWER = 1
EXIT_USAGE = 2
NS = 1_000_000_000


class NoAnswer(Exception):
    """The daemon did not answer (down, wrong address/port, or it rejected our key)."""


@dataclass(frozen=True)
class ProbeResult:
    offset_s: float  # remote - local (positive: the remote clock is ahead)
    bound_s: float   # |true offset - offset_s| <= bound_s (half the round trip net of hold time)
    rtt_s: float


def probe_offset(t1: float, t2: float, t3: float, t4: float) -> ProbeResult:
    """NTP/Cristian offset of the remote clock from one exchange.

    t1 local send, t2 remote receive, t3 remote send, t4 local receive (seconds, each in
    its own clock). offset = ((t2 - t1) + (t3 - t4)) / 2; whatever the path asymmetry,
    the true offset is within (t4 - t1 - (t3 - t2)) / 2 of it.
    """
    rtt = (t4 - t1) - (t3 - t2)
    return ProbeResult(((t2 - t1) + (t3 - t4)) / 2.0, max(rtt, 0.0) / 2.0, rtt)


def best_probe(results: Sequence[ProbeResult]) -> ProbeResult:
    """The exchange with the smallest round trip (smallest bound), as timed does."""
    if not results:
        raise ValueError("no probe results")
    return min(results, key=lambda r: r.rtt_s)


class Client:
    """One UDP socket and a Channel; request() sends and waits for the matching answer."""

    def __init__(self, channel: Channel, addr: tuple[str, int], name: str) -> None:
        self.channel = channel
        self.name = name
        # Resolve once: answers are matched on the source address, which is numeric.
        try:
            family, _, _, _, sockaddr = socket.getaddrinfo(addr[0], addr[1], type=socket.SOCK_DGRAM)[0]
        except socket.gaierror as exc:
            raise ValueError(f"cannot resolve host {addr[0]!r}: {exc.strerror}") from None
        self.addr = (str(sockaddr[0]), int(sockaddr[1]))
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.seq = int.from_bytes(os.urandom(2), "big")

    def close(self) -> None:
        self.sock.close()

    def next_seq(self) -> int:
        self.seq = (self.seq + 1) & 0xFFFF
        return self.seq

    def request(self, msg: Message, answers: frozenset[MsgType], timeout_s: float,
                tries: int = 3) -> tuple[Message, float, float]:
        """Send ``msg`` (resent up to ``tries`` times) and return (answer, t_send, t_recv).

        The answer must come from ``addr``, authenticate, decode, carry one of
        ``answers`` and echo ``msg.seq`` (for PROBE: the t1_ns).  Anything else is ignored.
        t_send / t_recv are time.time() taken right around the socket calls.
        """
        deadline = time.monotonic() + timeout_s
        per_try = timeout_s / tries
        for _ in range(tries):
            data = self.channel.seal(msg)
            t_send = time.time()
            self.sock.sendto(data, self.addr)
            try_end = min(deadline, time.monotonic() + per_try)
            while (left := try_end - time.monotonic()) > 0:
                ready, _, _ = select.select([self.sock], [], [], left)
                if not ready:
                    break
                try:
                    raw, src = self.sock.recvfrom(65535)
                except (BlockingIOError, ConnectionRefusedError):
                    continue  # ICMP port unreachable shows up here on Linux: keep waiting
                t_recv = time.time()
                if src[:2] != self.addr:
                    continue
                try:
                    ans = self.channel.open(raw, src)
                except RemoteProtocolError:
                    continue  # not for us, or forged: the deadline still bounds the wait
                if ans.type not in answers:
                    continue
                if msg.type == MsgType.PROBE:
                    if ans.t1_ns != msg.t1_ns:
                        continue
                elif ans.seq != msg.seq:
                    continue
                return ans, t_send, t_recv
            if time.monotonic() >= deadline:
                break
            msg = Message(msg.type, self.next_seq(), msg.name, t1_ns=msg.t1_ns, target=msg.target)
        raise NoAnswer(f"no answer from {self.addr[0]} port {self.addr[1]} within {timeout_s:g} s "
                       f"(daemon not running, wrong address/port, or it rejected our key)")

    def simple(self, mtype: MsgType, answers: frozenset[MsgType], timeout_s: float,
               target: str | None = None) -> Message:
        ans, _, _ = self.request(Message(mtype, self.next_seq(), self.name, target=target), answers, timeout_s)
        return ans

    def clockdiff(self, count: int, timeout_s: float) -> ProbeResult:
        results = []
        for _ in range(count):
            t1 = time.time()
            probe = Message(MsgType.PROBE, self.next_seq(), self.name, t1_ns=int(t1 * NS))
            ans, t_send, t4 = self.request(probe, frozenset({MsgType.PROBE_REPLY}), timeout_s)
            assert ans.t2_ns is not None and ans.t3_ns is not None  # REQUIRED by wire.decode
            results.append(probe_offset(t_send, ans.t2_ns / NS, ans.t3_ns / NS, t4))
        return best_probe(results)


# --- output ------------------------------------------------------------------------

def _fmt_s(v: Any, signed: bool = True) -> str:
    if v is None:
        return "-"
    v = float(v)
    sign = "+" if signed else ""
    if abs(v) < 1e-3:
        return f"{v * 1e6:{sign}.1f}us"
    if abs(v) < 1.0:
        return f"{v * 1e3:{sign}.3f}ms"
    return f"{v:{sign}.6f}s"


def format_status(st: dict[str, Any]) -> str:
    """Human-readable status (the --json form is the contract; this is for people)."""
    clock = st.get("clock", {})
    lines = [
        f"{st.get('name')}: {st.get('state')}  master={st.get('master') or '-'}  round={st.get('round')}  "
        f"synchronized={'yes' if st.get('synchronized') else 'no'}  uptime={float(st.get('uptime_s', 0)):.1f}s  "
        f"version={st.get('version')}",
        f"  clock: clk-hw={_fmt_s(clock.get('adjust_s'))}  freq={float(clock.get('freq_ppm', 0.0)):+.3f}ppm  "
        f"slew_remaining={_fmt_s(clock.get('slew_remaining_s'))}  error_bound={_fmt_s(st.get('error_bound_s'), False)}",
    ]
    peers = st.get("peers") or []
    if peers:
        lines.append(f"  {'peer':<16} {'address':<16} {'offset':>12} {'bound':>12} {'missed':>6}  group")
        for p in peers:
            lines.append(f"  {p.get('name', ''):<16} {p.get('address', ''):<16} {_fmt_s(p.get('offset_s')):>12} "
                         f"{_fmt_s(p.get('bound_s'), False):>12} {str(p.get('missed') if p.get('missed') is not None else '-'):>6}  "
                         f"{'yes' if p.get('in_group') else 'no'}")
    cpu = st.get("cpu")
    if isinstance(cpu, dict) and isinstance(cpu.get("cpu_ns"), int):
        # the daemon's own CLOCK_PROCESS_CPUTIME_ID (ns), not clock ticks
        lines.append(f"  cpu: {cpu['cpu_ns'] / 1e6:.3f} ms since start")
    counters = st.get("counters") or {}
    if counters:
        lines.append("  counters: " + " ".join(f"{k}={v}" for k, v in counters.items()))
    return "\n".join(lines)


# --- command line ------------------------------------------------------------------

EPILOG = """\
examples:
  tempoctl status                        state, master, peers and counters of the local daemon
  tempoctl --host 10.77.0.12 status --json
  tempoctl msite                         which node is master, as the local daemon sees it
  tempoctl clockdiff 10.77.0.12          offset of that node's clock from this host's clock
  tempoctl election 10.77.0.12           make that node start an election now (timedc's TEST)
  tempoctl trace on                      log every message in and out (`trace` events)

exit status: 0 ok, 1 no answer (timeout: daemon down, wrong port/address, or wrong key), 2 usage/config error
"""


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="tempoctl", description="Control and query a running tempod (like timedc).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=DEFAULT_PATH, help=f"daemon config to take key and port from (default {DEFAULT_PATH})")
    ap.add_argument("--host", help="daemon address (default: node.address from the config)")
    ap.add_argument("--port", type=int, help="TSP port (default: node.tsp_port from the config)")
    ap.add_argument("--timeout", type=float, default=2.0, metavar="S", help="seconds to wait for an answer (default 2)")
    ap.add_argument("--version", action="version", version=f"tempoctl {__version__}")
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    def add(name: str, help_: str, example: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_, description=help_, epilog=f"example:\n  {example}",
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    p = add("status", "show a daemon's state, master, round, clock, peers and counters",
            "tempoctl --host 10.77.0.11 status --json")
    p.add_argument("--json", action="store_true", help="print the status object as JSON (docs/architecture.md)")
    add("msite", "print the name of the master as seen by the daemon", "tempoctl --host 10.77.0.13 msite")
    p = add("clockdiff", "measure HOST's corrected clock against this host's clock (offset = HOST - here)",
            "tempoctl clockdiff 10.77.0.12 --count 8")
    p.add_argument("target", metavar="HOST")
    p.add_argument("--count", type=int, default=4, help="probe exchanges; the smallest round trip wins (default 4)")
    p = add("election", "make HOST start an election (it stands as candidate now)", "tempoctl election 10.77.0.12")
    p.add_argument("target", metavar="HOST")
    p = add("trace", "turn message tracing in the daemon's event log on or off", "tempoctl trace on")
    p.add_argument("onoff", choices=("on", "off"))
    return ap


def run(args: argparse.Namespace, out: Any = sys.stdout) -> int:
    cfg = load(args.config)
    # Our TSP name: unique per invocation so concurrent tempoctl runs keep separate replay
    # windows in the daemon's verifier.  The daemon binds its answers' MACs to it.
    name = f"tempoctl-{os.getpid()}"
    channel, _warnings = Channel.from_key_file(cfg.runtime.key_file, cfg.runtime.key_id,
                                               required=cfg.runtime.auth_required, local_name=name)
    host = getattr(args, "target", None) or args.host or cfg.node.address
    port = args.port or cfg.node.tsp_port
    client = Client(channel, (host, port), name)
    try:
        if args.cmd == "status":
            ans = client.simple(MsgType.STATUS_REQ, frozenset({MsgType.STATUS}), args.timeout)
            data = ans.data or {}
            print(json.dumps(data, sort_keys=False) if args.json else format_status(data), file=out)
        elif args.cmd == "msite":
            ans = client.simple(MsgType.MSITEREQ, frozenset({MsgType.MSITE}), args.timeout)
            print(ans.target if ans.target else "no master", file=out)
        elif args.cmd == "election":
            ans = client.simple(MsgType.TEST, frozenset({MsgType.ACK}), args.timeout)
            print(f"{ans.name}: election started", file=out)
        elif args.cmd == "trace":
            mtype = MsgType.TRACEON if args.onoff == "on" else MsgType.TRACEOFF
            ans = client.simple(mtype, frozenset({MsgType.ACK}), args.timeout)
            print(f"{ans.name}: trace {args.onoff}", file=out)
        elif args.cmd == "clockdiff":
            if args.count < 1:
                raise ValueError("--count must be >= 1")
            r = client.clockdiff(args.count, args.timeout)
            rel = "ahead of" if r.offset_s >= 0 else "behind"
            print(f"{host}: {_fmt_s(r.offset_s)} (+-{_fmt_s(r.bound_s, False)}) {rel} this host "
                  f"[best of {args.count}, rtt {_fmt_s(r.rtt_s, False)}]", file=out)
    finally:
        client.close()
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except ConfigError as exc:
        print(f"tempoctl: config {args.config}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except auth.KeyFileError as exc:
        print(f"tempoctl: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except NoAnswer as exc:
        print(f"tempoctl: {exc}", file=sys.stderr)
        return EXIT_NO_ANSWER
    except (ValueError, OSError) as exc:
        print(f"tempoctl: {exc}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, ValueError) else EXIT_NO_ANSWER


if __name__ == "__main__":
    sys.exit(main())
