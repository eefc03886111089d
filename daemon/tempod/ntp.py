"""NTPv4 packet codec (RFC 5905 header only), the responder's reply, the client helper,
and the election-state encoding that lets an NTP observer learn a node's state.

Timestamps are 64-bit NTP fixed point (u32 seconds since 1900 + u32 fraction).  The
seconds field wraps every 2**32 s (era 0 ends 2036-02-07 06:28:16 UTC); this module
never needs the era for the client maths: offset and delay come from *differences* of
timestamps taken modulo 2**64 and read as signed, which is era-independent as long as
the two clocks are within 68 years (RFC 5905 section 6).  Converting one timestamp to
Unix time (``ntp_to_unix_ns``) picks the era nearest to a pivot time.

Sign convention: ``NtpSample.offset_s`` = server - client.  For the observer (client,
true time) asking a node (server) that is node - reference, as everywhere in Tempo.

Inputs in float seconds are converted exactly (a float times 2**32 is exact), so the
only rounding is to the 2**-32 s (0.23 ns) grid; ``*_ns`` variants take integer
nanoseconds for callers that keep full precision.

This module knows nothing about sockets, clocks or the election module; the state
table below is the contract in ``docs/architecture.md``.
"""

from __future__ import annotations

import ipaddress
import math
import struct
from dataclasses import dataclass

from .wire import LocalProtocolError, RemoteProtocolError

NTP_HEADER_LEN = 48
NTP_UNIX_DELTA_S = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01
_ERA_S = 1 << 32
_FRAC = 1 << 32
_HDR = struct.Struct(">BBbbII4sQQQQ")
MODE_CLIENT = 3
MODE_SERVER = 4
NTP_VERSION = 4


class NtpError(RemoteProtocolError):
    """An NTP packet we cannot use (short, wrong mode or version, bogus reply)."""


@dataclass(frozen=True, slots=True)
class NtpPacket:
    leap: int
    version: int
    mode: int
    stratum: int
    poll: int
    precision: int
    root_delay: int         # NTP short format (16.16 fixed point seconds), raw
    root_dispersion: int    # NTP short format, raw
    refid: bytes            # 4 bytes
    reference_ts: int       # 64-bit NTP timestamps, raw
    origin_ts: int
    receive_ts: int
    transmit_ts: int

    def pack(self) -> bytes:
        return _HDR.pack((self.leap << 6) | (self.version << 3) | self.mode, self.stratum, self.poll,
                         self.precision, self.root_delay, self.root_dispersion, self.refid,
                         self.reference_ts, self.origin_ts, self.receive_ts, self.transmit_ts)

    @classmethod
    def unpack(cls, data: bytes) -> "NtpPacket":
        """Parse the 48-byte header; extension fields and MAC after it are ignored."""
        if len(data) < NTP_HEADER_LEN:
            raise NtpError(f"NTP packet is {len(data)} bytes, the header alone is {NTP_HEADER_LEN}")
        (li_vn_mode, stratum, poll, precision, root_delay, root_disp, refid,
         ref_ts, org_ts, rec_ts, xmt_ts) = _HDR.unpack_from(data, 0)
        return cls(li_vn_mode >> 6, (li_vn_mode >> 3) & 7, li_vn_mode & 7, stratum, poll, precision,
                   root_delay, root_disp, refid, ref_ts, org_ts, rec_ts, xmt_ts)


@dataclass(frozen=True, slots=True)
class NtpSample:
    offset_s: float            # server - client (node - reference)
    delay_s: float             # round trip minus the server's hold time
    bound_s: float             # |error| of offset_s is at most this: max(delay, 0) / 2
    stratum: int
    leap: int
    refid: bytes
    root_dispersion_s: float


# --- timestamps --------------------------------------------------------------------

def unix_ns_to_ntp(unix_ns: int) -> int:
    """64-bit NTP timestamp of a Unix time in ns, rounded to 2**-32 s, wrapped to its era."""
    fixed = ((unix_ns + NTP_UNIX_DELTA_S * 10**9) * _FRAC * 2 + 10**9) // (2 * 10**9)
    return fixed % (1 << 64)


def unix_s_to_ntp(unix_s: float) -> int:
    """As ``unix_ns_to_ntp`` for float seconds, converted exactly (no ns rounding first)."""
    try:
        num, den = float(unix_s).as_integer_ratio()  # exact; den is a power of two
    except (OverflowError, ValueError):
        raise LocalProtocolError(f"time {unix_s!r} is not a finite number of seconds") from None
    scaled = (num + NTP_UNIX_DELTA_S * den) * _FRAC
    fixed = (2 * scaled + den) // (2 * den)  # round half up to the 2**-32 s grid
    return fixed % (1 << 64)


def ntp_to_unix_ns(ts: int, pivot_unix_ns: int) -> int:
    """Unix ns of NTP timestamp ``ts``, choosing the era that puts it nearest ``pivot``."""
    pivot_fixed = ((pivot_unix_ns + NTP_UNIX_DELTA_S * 10**9) * _FRAC) // 10**9
    fixed = pivot_fixed + _signed64(ts - pivot_fixed)
    return (fixed * 10**9 + _FRAC // 2) // _FRAC - NTP_UNIX_DELTA_S * 10**9


def _signed64(x: int) -> int:
    x %= 1 << 64
    return x - (1 << 64) if x >= 1 << 63 else x


def _short_to_s(v: int) -> float:
    return v / 65536.0


def _s_to_short(seconds: float, what: str) -> int:
    if not seconds >= 0:  # also rejects NaN
        raise LocalProtocolError(f"{what}={seconds!r} must be >= 0")
    # Round *up*: it is an error bound.  Saturate at 65535.99998 s.
    if seconds >= 65536:
        return 0xFFFFFFFF
    return min(math.ceil(seconds * 65536), 0xFFFFFFFF)


# --- server side -------------------------------------------------------------------

def server_reply(request: bytes, recv_ts_s: float, xmit_ts_s: float, *, stratum: int, leap: int,
                 refid: bytes, root_dispersion_s: float, precision: int = -20,
                 reference_ts_s: float | None = None) -> bytes:
    """Mode 4 reply to a mode 3 ``request`` received at ``recv_ts_s`` and sent at ``xmit_ts_s``.

    Times are the node's corrected clock in Unix seconds.  Raises NtpError for a request
    we must not answer, LocalProtocolError for bad local parameters.
    """
    return _reply(request, unix_s_to_ntp(recv_ts_s), unix_s_to_ntp(xmit_ts_s),
                  unix_s_to_ntp(recv_ts_s if reference_ts_s is None else reference_ts_s),
                  stratum=stratum, leap=leap, refid=refid,
                  root_dispersion_s=root_dispersion_s, precision=precision)


def server_reply_ns(request: bytes, recv_ns: int, xmit_ns: int, *, stratum: int, leap: int,
                    refid: bytes, root_dispersion_s: float, precision: int = -20,
                    reference_ns: int | None = None) -> bytes:
    """``server_reply`` with integer-nanosecond times."""
    return _reply(request, unix_ns_to_ntp(recv_ns), unix_ns_to_ntp(xmit_ns),
                  unix_ns_to_ntp(recv_ns if reference_ns is None else reference_ns),
                  stratum=stratum, leap=leap, refid=refid,
                  root_dispersion_s=root_dispersion_s, precision=precision)


def _reply(request: bytes, rec: int, xmt: int, ref: int, *, stratum: int, leap: int, refid: bytes,
           root_dispersion_s: float, precision: int) -> bytes:
    if not 0 <= stratum <= 16:
        raise LocalProtocolError(f"stratum {stratum} not in [0, 16]")
    if not 0 <= leap <= 3:
        raise LocalProtocolError(f"leap indicator {leap} not in [0, 3]")
    if not isinstance(refid, (bytes, bytearray)) or len(refid) != 4:
        raise LocalProtocolError(f"refid must be 4 bytes, got {refid!r}")
    if not -128 <= precision <= 127:
        raise LocalProtocolError(f"precision {precision} not in [-128, 127]")
    disp = _s_to_short(root_dispersion_s, "root_dispersion_s")
    req = NtpPacket.unpack(request)
    if not 1 <= req.version <= 4:
        raise NtpError(f"NTP version {req.version} not in 1..4")
    if req.mode != MODE_CLIENT:
        raise NtpError(f"NTP mode {req.mode}, only client requests (mode 3) are answered")
    reply = NtpPacket(leap=leap, version=req.version, mode=MODE_SERVER, stratum=stratum,
                      poll=req.poll, precision=precision, root_delay=0, root_dispersion=disp,
                      refid=bytes(refid), reference_ts=ref,
                      origin_ts=req.transmit_ts,  # verbatim: the client matches on it
                      receive_ts=rec, transmit_ts=xmt)
    return reply.pack()


# --- client side -------------------------------------------------------------------

def client_request(xmit_ts_s: float) -> bytes:
    """A 48-byte NTPv4 mode 3 request whose transmit timestamp is ``xmit_ts_s``."""
    return _request(unix_s_to_ntp(xmit_ts_s))


def client_request_ns(xmit_ns: int) -> bytes:
    return _request(unix_ns_to_ntp(xmit_ns))


def _request(xmt: int) -> bytes:
    return NtpPacket(leap=0, version=NTP_VERSION, mode=MODE_CLIENT, stratum=0, poll=0, precision=0,
                     root_delay=0, root_dispersion=0, refid=bytes(4), reference_ts=0,
                     origin_ts=0, receive_ts=0, transmit_ts=xmt).pack()


def parse_reply(data: bytes, t1_s: float, t4_s: float) -> NtpSample:
    """Sample from a reply to our request sent at ``t1_s`` and received at ``t4_s``.

    ``t1_s`` must be the value given to ``client_request``: the reply's origin timestamp
    must equal it exactly, which rejects stale and forged-without-sniffing replies.
    """
    return _sample(data, unix_s_to_ntp(t1_s), unix_s_to_ntp(t4_s))


def parse_reply_ns(data: bytes, t1_ns: int, t4_ns: int) -> NtpSample:
    return _sample(data, unix_ns_to_ntp(t1_ns), unix_ns_to_ntp(t4_ns))


def _sample(data: bytes, t1: int, t4: int) -> NtpSample:
    pkt = NtpPacket.unpack(data)
    if not 1 <= pkt.version <= 4:
        raise NtpError(f"NTP version {pkt.version} not in 1..4")
    if pkt.mode != MODE_SERVER:
        raise NtpError(f"NTP mode {pkt.mode}, expected a server reply (mode 4)")
    if pkt.stratum == 0:
        code = pkt.refid.decode("ascii", "replace")
        raise NtpError(f"kiss-o'-death from server: {code!r}")
    if pkt.origin_ts != t1:
        raise NtpError("reply's origin timestamp does not match our request (stale or bogus reply)")
    if pkt.transmit_ts == 0 or pkt.receive_ts == 0:
        raise NtpError("reply has a zero receive or transmit timestamp")
    t2, t3 = pkt.receive_ts, pkt.transmit_ts
    # Fixed-point differences mod 2**64, read signed: era-independent (RFC 5905).
    offset_fixed2 = _signed64(t2 - t1) + _signed64(t3 - t4)      # 2 * offset
    delay_fixed = _signed64(t4 - t1) - _signed64(t3 - t2)
    offset_s = offset_fixed2 / (2 * _FRAC)
    delay_s = delay_fixed / _FRAC
    return NtpSample(offset_s=offset_s, delay_s=delay_s, bound_s=max(delay_s, 0.0) / 2,
                     stratum=pkt.stratum, leap=pkt.leap, refid=pkt.refid,
                     root_dispersion_s=_short_to_s(pkt.root_dispersion))


# --- election state in stratum / leap / refid ----------------------------------------

_STATE_CODES = {
    "START": b"STRT", "CONSISTENCY": b"CONS", "NOLEADER": b"NOLD",
    "ACCEPT": b"ACPT", "CANDIDATE": b"CAND", "CONFLICT": b"CONF",
    # Not an election state: a FOLLOWER whose clock has not yet been corrected since the
    # daemon started (after a restart its raw hardware clock may be far off).
    "UNSYNCED": b"UNSY",
}
_CODE_STATES = {v: k for k, v in _STATE_CODES.items()}
STATES = ("LEADER", "FOLLOWER", *_STATE_CODES)
STRATUM_LEADER, STRATUM_FOLLOWER, STRATUM_UNSYNC = 1, 2, 16
LEAP_NONE, LEAP_UNSYNC = 0, 3


def encode_state(state_name: str, master_ipv4: str | None, synchronized: bool = True) -> tuple[int, int, bytes]:
    """(stratum, leap, refid) that tell an observer the node's election state.

    ``state_name`` is an election state name (an enum with a ``.value`` name works too).
    A FOLLOWER whose master address is unknown sends refid 0.0.0.0. A FOLLOWER with
    ``synchronized=False`` (no correction applied since the daemon started) is encoded
    as ``UNSYNCED``: stratum 16, leap 3, refid ``UNSY``.
    """
    name = getattr(state_name, "value", state_name)
    if name == "FOLLOWER" and not synchronized:
        name = "UNSYNCED"
    if name == "LEADER":
        return STRATUM_LEADER, LEAP_NONE, b"LEAD"
    if name == "FOLLOWER":
        if master_ipv4 is None:
            return STRATUM_FOLLOWER, LEAP_NONE, bytes(4)
        try:
            return STRATUM_FOLLOWER, LEAP_NONE, ipaddress.IPv4Address(master_ipv4).packed
        except ValueError:
            raise LocalProtocolError(f"master address {master_ipv4!r} is not an IPv4 address") from None
    code = _STATE_CODES.get(name)
    if code is None:
        raise LocalProtocolError(f"unknown election state {state_name!r}; known: {', '.join(STATES)}")
    return STRATUM_UNSYNC, LEAP_UNSYNC, code


def decode_state(stratum: int, refid: bytes) -> tuple[str, str | None]:
    """(state name, master IPv4 or None) from a reply; NtpError if it is not our encoding."""
    if stratum == STRATUM_LEADER and refid == b"LEAD":
        return "LEADER", None
    if stratum == STRATUM_FOLLOWER and len(refid) == 4:
        return "FOLLOWER", None if refid == bytes(4) else str(ipaddress.IPv4Address(refid))
    if stratum == STRATUM_UNSYNC and refid in _CODE_STATES:
        return _CODE_STATES[refid], None
    raise NtpError(f"stratum {stratum} refid {refid!r} is not a Tempo state encoding")
