"""TSP wire format: bytes <-> :class:`Message`, and nothing else.

The header is 4.3BSD TSP version 1 so that stock dissectors (``tshark -d
udp.port==PORT,tsp``) decode our traffic: type u8, version u8 (= 1), sequence u16
big-endian, then 8 bytes that hold either a timeval (seconds i32, microseconds i32,
big-endian) or, for LOOP, a hop count u8 + 7 zero bytes, then the sender name
NUL-padded to ``NAME_FIELD_LEN`` bytes.  What TSP lacks travels in an extension body
after the name: a short list of TLV items (tag u8, length u16 BE, value), see
``docs/wire.md`` for the byte tables.

Sign and unit conventions: every ``*_ns`` field is integer nanoseconds;
``time_ns`` of ADJTIME is the signed correction to *add* to the receiver's clock;
``time_ns`` of SETTIME / DATE is an absolute corrected-clock time (Unix epoch).

Header timeval (what tshark shows): ``floor(time_ns / 1000)`` microseconds split the
way 4.3BSD timed's ``mstotvround`` does it: ``usec`` is always in ``[0, 1e6)`` and
``sec`` carries the sign, so -1.5 s is ``sec = -2, usec = 500000``.  Seconds are
written modulo 2**32 (two's complement), so absolute times after 2038-01-19 wrap in
the header only; the extension item ``time_ns`` (i64) is authoritative and ``decode``
checks that the header agrees with it.  A packet with no ``time_ns`` item but a
non-zero header timeval (a plain 4.3BSD packet) decodes to ``time_ns = timeval`` in
whole microseconds.

Errors: ``decode`` returns a Message or raises :class:`RemoteProtocolError`, never
anything else (fuzz-tested); ``encode`` raises :class:`LocalProtocolError` for a
Message the format cannot carry.

This module knows nothing about sockets, keys (see ``auth``) or the election.
"""

from __future__ import annotations

import enum
import json
import struct
from dataclasses import dataclass, field
from typing import Any

TSP_VERSION = 1
NAME_FIELD_LEN = 64  # 4.3BSD MAXHOSTNAMELEN; names are at most 63 bytes + NUL
HEADER_LEN = 4 + 8 + NAME_FIELD_LEN
MAX_NAME_LEN = NAME_FIELD_LEN - 1

# JSON bodies (STATUS) are capped so a reply stays one datagram; 16 KiB holds a status
# object for ~100 peers.  Larger datagrams may fragment over IP, which is fine on the
# control path (loopback or inside a lab namespace).
MAX_DATA_LEN = 16 * 1024
# Everything decode accepts: header + every fixed item + target + a capped JSON body.
MAX_MESSAGE_LEN = HEADER_LEN + 4 * (3 + 8) + (3 + MAX_NAME_LEN) + (3 + MAX_DATA_LEN)

_I64_MIN = -(1 << 63)
_I64_MAX = (1 << 63) - 1


class MsgType(enum.IntEnum):
    # 4.3BSD TSP types keep their numbers and meaning.
    ANY = 0
    ADJTIME = 1
    ACK = 2
    MASTERREQ = 3
    MASTERACK = 4
    SETTIME = 5
    MASTERUP = 6
    SLAVEUP = 7
    ELECTION = 8
    ACCEPT = 9
    REFUSE = 10
    CONFLICT = 11
    RESOLVE = 12
    QUIT = 13
    DATE = 14
    DATEREQ = 15
    DATEACK = 16
    TRACEON = 17
    TRACEOFF = 18
    MSITE = 19
    MSITEREQ = 20
    TEST = 21
    SETDATE = 22
    SETDATEREQ = 23
    LOOP = 24
    # Tempo extensions (TSP has nothing for these).
    PROBE = 25        # master -> follower: t1_ns (master corrected clock at send)
    PROBE_REPLY = 26  # follower -> master: t1_ns echoed, t2_ns receive, t3_ns send (follower corrected clock)
    STATUS_REQ = 27   # tempoctl -> daemon
    STATUS = 28       # daemon -> tempoctl: data (JSON object)
    HEARTBEAT = 29    # master -> follower every heartbeat_interval_s: header only ("I am alive")


class ProtocolError(Exception):
    """Base of this project's protocol errors."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something we cannot accept (malformed, truncated, unknown type)."""


class LocalProtocolError(ProtocolError):
    """We tried to build something the format cannot carry (name too long, value out of range)."""


@dataclass(frozen=True, slots=True, init=False)
class Message:
    type: MsgType
    seq: int                      # 0..65535
    name: str                     # sender's TSP name (ASCII, <= 63 bytes)
    time_ns: int | None = None    # ADJTIME delta / SETTIME absolute / DATE; header carries it as a timeval
    hops: int = 0                 # LOOP only
    t1_ns: int | None = None      # PROBE, PROBE_REPLY
    t2_ns: int | None = None      # PROBE_REPLY
    t3_ns: int | None = None      # PROBE_REPLY
    target: str | None = None     # name a message is about (QUIT/RESOLVE/CONFLICT/TEST/MSITE answers)
    data: dict[str, Any] | None = field(default=None, compare=False)  # STATUS / STATUS_REQ JSON body

    def __init__(self, type: MsgType, seq: int, name: str, time_ns: int | None = None, hops: int = 0,
                 t1_ns: int | None = None, t2_ns: int | None = None, t3_ns: int | None = None,
                 target: str | None = None, data: dict[str, Any] | None = None) -> None:
        # The generated frozen __init__ goes through object.__setattr__ per field; writing
        # the slots through their descriptors is the same thing at half the cost (10
        # Messages per follower per round: the simulator's largest single cost at 1,000 nodes).
        _set_type(self, type)
        _set_seq(self, seq)
        _set_name(self, name)
        _set_time_ns(self, time_ns)
        _set_hops(self, hops)
        _set_t1_ns(self, t1_ns)
        _set_t2_ns(self, t2_ns)
        _set_t3_ns(self, t3_ns)
        _set_target(self, target)
        _set_data(self, data)


(_set_type, _set_seq, _set_name, _set_time_ns, _set_hops, _set_t1_ns, _set_t2_ns, _set_t3_ns,
 _set_target, _set_data) = (getattr(Message, f).__set__ for f in (
     "type", "seq", "name", "time_ns", "hops", "t1_ns", "t2_ns", "t3_ns", "target", "data"))


# --- schema (data, not code) -------------------------------------------------------

class Tag(enum.IntEnum):
    """Extension item tags.  Items appear at most once, in increasing tag order."""
    TIME_NS = 1
    T1_NS = 2
    T2_NS = 3
    T3_NS = 4
    TARGET = 5
    DATA = 6


_INT_TAGS: tuple[tuple[Tag, str], ...] = (
    (Tag.TIME_NS, "time_ns"), (Tag.T1_NS, "t1_ns"), (Tag.T2_NS, "t2_ns"), (Tag.T3_NS, "t3_ns"),
)

# Fields a type cannot do without.  Any other optional field may ride on any type: the
# core decides what it means; the codec only guarantees it arrives intact.
REQUIRED: dict[MsgType, frozenset[str]] = {
    MsgType.ADJTIME: frozenset({"time_ns"}),
    MsgType.SETTIME: frozenset({"time_ns"}),
    MsgType.DATE: frozenset({"time_ns"}),
    MsgType.SETDATE: frozenset({"time_ns"}),
    MsgType.SETDATEREQ: frozenset({"time_ns"}),
    MsgType.PROBE: frozenset({"t1_ns"}),
    MsgType.PROBE_REPLY: frozenset({"t1_ns", "t2_ns", "t3_ns"}),
    MsgType.STATUS: frozenset({"data"}),
}

_HDR = struct.Struct(">BBH")      # type, version, seq
_TIMEVAL = struct.Struct(">iI")   # sec (two's complement, see module doc), usec
_ITEM = struct.Struct(">BH")      # tag, length
_I64 = struct.Struct(">q")


# --- helpers -----------------------------------------------------------------------

def timeval_of_ns(time_ns: int) -> tuple[int, int]:
    """(sec, usec) of ``floor(time_ns / 1000)`` µs with usec in [0, 1e6) (timed's convention).

    ``sec`` is the mathematical value; the header stores it modulo 2**32.
    """
    sec, usec = divmod(time_ns // 1000, 1_000_000)
    return sec, usec


def _wrap_i32(sec: int) -> int:
    return ((sec + (1 << 31)) % (1 << 32)) - (1 << 31)


def check_name(name: object, what: str = "name") -> bytes:
    """ASCII bytes of a TSP name or LocalProtocolError: 1..63 printable ASCII characters."""
    if not isinstance(name, str):
        raise LocalProtocolError(f"{what} must be a str, got {type(name).__name__}")
    if not name:
        raise LocalProtocolError(f"{what} must not be empty")
    if not name.isascii() or not name.isprintable():
        raise LocalProtocolError(f"{what} {name!r} must be printable ASCII")
    if len(name) > MAX_NAME_LEN:
        raise LocalProtocolError(f"{what} {name!r} is {len(name)} bytes, at most {MAX_NAME_LEN} fit")
    return name.encode("ascii")


def _remote_name(raw: bytes, what: str) -> str:
    if not raw:
        raise RemoteProtocolError(f"{what} is empty")
    if any(b < 0x20 or b > 0x7E for b in raw):
        raise RemoteProtocolError(f"{what} {raw!r} is not printable ASCII")
    return raw.decode("ascii")


def _check_int(value: object, attr: str, lo: int, hi: int) -> int:
    # bool is an int subclass; True as a timestamp is always a bug.
    if not isinstance(value, int) or isinstance(value, bool):
        raise LocalProtocolError(f"{attr} must be an int, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise LocalProtocolError(f"{attr}={value} out of range [{lo}, {hi}]")
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"JSON constant {name} is not allowed")


def _finite_float(text: str) -> float:
    # "1e999" parses to inf, which encode (allow_nan=False) could never send back.
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"JSON number {text[:20]} overflows a float")
    return value


# --- encode ------------------------------------------------------------------------

def encode(msg: Message) -> bytes:
    """Return the wire bytes of ``msg`` (without the authentication trailer).

    Raises LocalProtocolError if ``msg`` cannot be represented.
    """
    try:
        mtype = MsgType(msg.type)
    except ValueError:
        raise LocalProtocolError(f"unknown message type {msg.type!r}") from None
    seq = _check_int(msg.seq, "seq", 0, 0xFFFF)
    name = check_name(msg.name)
    for attr in REQUIRED.get(mtype, ()):
        if getattr(msg, attr) is None:
            raise LocalProtocolError(f"{mtype.name} needs {attr}")

    out = bytearray(_HDR.pack(mtype, TSP_VERSION, seq))
    if mtype is MsgType.LOOP:
        hops = _check_int(msg.hops, "hops", 0, 0xFF)
        out += bytes((hops,)) + bytes(7)
    else:
        if msg.hops != 0:
            raise LocalProtocolError(f"hops={msg.hops!r} only travels on LOOP, not {mtype.name}")
        if msg.time_ns is None:
            out += bytes(8)
        else:
            sec, usec = timeval_of_ns(_check_int(msg.time_ns, "time_ns", _I64_MIN, _I64_MAX))
            out += _TIMEVAL.pack(_wrap_i32(sec), usec)
    out += name.ljust(NAME_FIELD_LEN, b"\0")

    for tag, attr in _INT_TAGS:
        value = getattr(msg, attr)
        if value is not None:
            out += _ITEM.pack(tag, 8) + _I64.pack(_check_int(value, attr, _I64_MIN, _I64_MAX))
    if msg.target is not None:
        target = check_name(msg.target, "target")
        out += _ITEM.pack(Tag.TARGET, len(target)) + target
    if msg.data is not None:
        if not isinstance(msg.data, dict):
            raise LocalProtocolError(f"data must be a dict (JSON object), got {type(msg.data).__name__}")
        try:
            text = json.dumps(msg.data, separators=(",", ":"), allow_nan=False, ensure_ascii=True)
        except (TypeError, ValueError, RecursionError) as exc:
            raise LocalProtocolError(f"data is not JSON-serializable: {exc}") from None
        blob = text.encode("ascii")
        if len(blob) > MAX_DATA_LEN:
            raise LocalProtocolError(f"data is {len(blob)} bytes of JSON, at most {MAX_DATA_LEN}")
        out += _ITEM.pack(Tag.DATA, len(blob)) + blob
    return bytes(out)


# --- decode ------------------------------------------------------------------------

def decode(data: bytes) -> Message:
    """Parse wire bytes (authentication trailer already removed).

    Returns a Message or raises RemoteProtocolError; never anything else for any bytes
    input (``data`` must be bytes-like; that is the caller's side of the contract).
    """
    n = len(data)
    if n < HEADER_LEN:
        raise RemoteProtocolError(f"truncated: {n} bytes, a TSP header is {HEADER_LEN}")
    if n > MAX_MESSAGE_LEN:
        raise RemoteProtocolError(f"oversize: {n} bytes, at most {MAX_MESSAGE_LEN}")
    data = bytes(data)
    type_num, version, seq = _HDR.unpack_from(data, 0)
    if version != TSP_VERSION:
        raise RemoteProtocolError(f"TSP version {version}, expected {TSP_VERSION}")
    try:
        mtype = MsgType(type_num)
    except ValueError:
        raise RemoteProtocolError(f"unknown message type {type_num}") from None

    raw_name, nul, padding = data[12:HEADER_LEN].partition(b"\0")
    if not nul:
        raise RemoteProtocolError("sender name is not NUL-terminated within 64 bytes")
    if padding.strip(b"\0"):
        raise RemoteProtocolError("sender name padding is not all NUL")
    name = _remote_name(raw_name, "sender name")

    fields: dict[str, Any] = {}
    pos = HEADER_LEN
    last_tag = 0
    while pos < n:
        if n - pos < _ITEM.size:
            raise RemoteProtocolError(f"truncated extension item header at byte {pos}")
        tag_num, length = _ITEM.unpack_from(data, pos)
        pos += _ITEM.size
        if n - pos < length:
            raise RemoteProtocolError(f"truncated extension item {tag_num}: {length} bytes announced, {n - pos} left")
        value = data[pos:pos + length]
        pos += length
        try:
            tag = Tag(tag_num)
        except ValueError:
            raise RemoteProtocolError(f"unknown extension tag {tag_num}") from None
        if tag_num <= last_tag:
            raise RemoteProtocolError(f"extension tag {tag.name} repeated or out of order")
        last_tag = tag_num
        if tag <= Tag.T3_NS:
            if length != 8:
                raise RemoteProtocolError(f"extension {tag.name} has {length} bytes, expected 8")
            fields[_INT_TAGS[tag - 1][1]] = _I64.unpack(value)[0]
        elif tag is Tag.TARGET:
            if length > MAX_NAME_LEN:
                raise RemoteProtocolError(f"target name is {length} bytes, at most {MAX_NAME_LEN}")
            fields["target"] = _remote_name(value, "target name")
        else:  # Tag.DATA
            fields["data"] = _decode_json(value)

    if mtype is MsgType.LOOP:
        if data[5:12].strip(b"\0"):
            raise RemoteProtocolError("LOOP hop count must be followed by 7 zero bytes")
        fields["hops"] = data[4]
    else:
        sec, usec = _TIMEVAL.unpack_from(data, 4)
        if usec >= 1_000_000:
            raise RemoteProtocolError(f"timeval usec={usec} not in [0, 1000000)")
        time_ns = fields.get("time_ns")
        if time_ns is None:
            if sec or usec:  # plain 4.3BSD packet: the header is all there is
                fields["time_ns"] = (sec * 1_000_000 + usec) * 1000
        else:
            want_sec, want_usec = timeval_of_ns(time_ns)
            if (_wrap_i32(want_sec), want_usec) != (sec, usec):
                raise RemoteProtocolError(
                    f"header timeval {sec}.{usec:06d} disagrees with time_ns={time_ns}")

    for attr in REQUIRED.get(mtype, ()):
        if fields.get(attr) is None:
            raise RemoteProtocolError(f"{mtype.name} without {attr}")
    return Message(type=mtype, seq=seq, name=name, **fields)


def _decode_json(blob: bytes) -> dict[str, Any]:
    if len(blob) > MAX_DATA_LEN:
        raise RemoteProtocolError(f"JSON body is {len(blob)} bytes, at most {MAX_DATA_LEN}")
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RemoteProtocolError(f"JSON body is not UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        obj = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    # JSONDecodeError is a ValueError; the C scanner raises RecursionError (cleanly) on
    # nesting ~1000 deep, which 16 KiB of brackets can reach.
    except (ValueError, RecursionError) as exc:
        raise RemoteProtocolError(f"JSON body is invalid: {exc}") from None
    if not isinstance(obj, dict):
        raise RemoteProtocolError(f"JSON body must be an object, got {type(obj).__name__}")
    return obj
