"""TSP wire format: bytes <-> :class:`Message`, and nothing else.

The header is 4.3BSD TSP version 1 so that stock dissectors (``tshark -d
udp.port==PORT,tsp``) decode our traffic: type u8, version u8 (= 1), sequence u16
big-endian, then 8 bytes that hold either a timeval (seconds i32, microseconds i32,
big-endian) or, for LOOP, a hop count u8, then the sender name NUL-padded to
``NAME_FIELD_LEN`` bytes.  What TSP lacks travels in a type-specific extension
body after the name (nanosecond timestamps, JSON status), see ``encode``.

Sign and unit conventions: every ``*_ns`` field is integer nanoseconds;
``time_ns`` of ADJTIME is the signed correction to *add* to the receiver's clock;
``time_ns`` of SETTIME / DATE is an absolute corrected-clock time (Unix epoch).

This module knows nothing about sockets, keys (see ``auth``) or the election.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

TSP_VERSION = 1
NAME_FIELD_LEN = 64  # 4.3BSD MAXHOSTNAMELEN; names are at most 63 bytes + NUL
HEADER_LEN = 4 + 8 + NAME_FIELD_LEN


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


class ProtocolError(Exception):
    """Base of this project's protocol errors."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something we cannot accept (malformed, truncated, unknown type)."""


class LocalProtocolError(ProtocolError):
    """We tried to build something the format cannot carry (name too long, value out of range)."""


@dataclass(frozen=True, slots=True)
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


def encode(msg: Message) -> bytes:
    """Return the wire bytes of ``msg`` (without the authentication trailer).

    Raises LocalProtocolError if ``msg`` cannot be represented.
    """
    raise NotImplementedError


def decode(data: bytes) -> Message:
    """Parse wire bytes (authentication trailer already removed).

    Returns a Message or raises RemoteProtocolError; never anything else.
    """
    raise NotImplementedError
