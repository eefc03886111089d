"""NTP client maths for the observer and the decoding of the node's election state.

Owns: building a mode-3 request (``ntplib.NTPPacket`` does the packing), matching a reply
to its request by the echoed transmit timestamp, the four-timestamp offset / round-trip
maths, and reading the node's election state out of a reply (the table itself is
``tempod.ntp``'s, shared with the daemon that encodes it).
Pure: times come in as arguments; no sockets here.

Signs: ``offset_s = node clock - reference`` (positive = node ahead), from
t1 (request sent, reference), t2 (node received, node clock), t3 (node sent, node clock),
t4 (reply received, reference): offset = ((t2 - t1) + (t3 - t4)) / 2,
rtt = (t4 - t1) - (t3 - t2); the offset error is at most rtt / 2.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import ntplib

from tempod import ntp as tempod_ntp

NTP_EPOCH_DELTA_S = 2208988800  # 1900-01-01 -> 1970-01-01, seconds
_TX_SLICE = slice(40, 48)       # transmit timestamp in a request
_ORIG_SLICE = slice(24, 32)     # originate timestamp in a reply (echo of our transmit)


class BadReply(ValueError):
    """A datagram that is not a usable mode-4 reply."""


def ntp_to_unix(ntp_s: float) -> float:
    return ntp_s - NTP_EPOCH_DELTA_S


def build_request(nonce: int) -> tuple[bytes, bytes]:
    """A mode-3 NTPv4 request whose transmit timestamp carries ``nonce``; returns
    (packet, key to match the reply).

    A server echoes the transmit field verbatim as the originate timestamp, so the 8
    bytes are a unique key and pipelined requests to many nodes match without
    ambiguity. Carrying a nonce instead of the send time (as chrony does to hide its
    clock) lets the caller read t1 *after* building the packet, right before sendto,
    so packing time does not widen the measured round trip.
    """
    key = struct.pack("!Q", nonce & 0xFFFFFFFFFFFFFFFF)
    # LI 0, version 4, mode 3 -> 0b00_100_011 = 0x23; 39 zero bytes up to the transmit field
    return b"\x23" + bytes(39) + key, key


def reply_key(data: bytes) -> bytes:
    if len(data) < 48:
        raise BadReply(f"short NTP packet ({len(data)} bytes)")
    return data[_ORIG_SLICE]


@dataclass(frozen=True)
class Reply:
    stratum: int
    leap: int
    refid: bytes
    t2_s: float            # node receive time, node clock, Unix seconds
    t3_s: float            # node transmit time, node clock, Unix seconds
    root_dispersion_s: float


def parse_reply(data: bytes) -> Reply:
    pkt = ntplib.NTPPacket()
    try:
        pkt.from_data(data)
    except ntplib.NTPException as exc:
        raise BadReply(str(exc)) from exc
    if pkt.mode != 4:
        raise BadReply(f"mode {pkt.mode}, expected 4 (server)")
    return Reply(stratum=pkt.stratum, leap=pkt.leap, refid=struct.pack("!I", pkt.ref_id),
                 t2_s=ntp_to_unix(pkt.recv_timestamp), t3_s=ntp_to_unix(pkt.tx_timestamp),
                 root_dispersion_s=pkt.root_dispersion)


def decode_state(stratum: int, leap: int, refid: bytes) -> tuple[str, str | None]:
    """(state, master address or "self") from the responder's encoding.

    The table itself lives with the encoder, in ``tempod.ntp`` (``encode_state`` /
    ``decode_state``); this adapts it to the observer's records: LEADER -> ("LEADER",
    "self"); FOLLOWER -> ("FOLLOWER", "a.b.c.d"), or None when the follower does not
    know its master (refid 0.0.0.0); stratum 16 with a state code -> that state with no
    master; anything that is not Tempo's encoding (another NTP server) -> ("UNKNOWN",
    None) rather than an error, so one odd reply never stops the observer. ``leap`` is
    implied by stratum and refid in this encoding and is not needed to decode it.
    """
    try:
        state, master = tempod_ntp.decode_state(stratum, refid)
    except tempod_ntp.NtpError:
        return _decode_standard(stratum, leap, refid)
    return state, ("self" if state == "LEADER" else master)


# chronyd's refid for its `local` reference (127.127.1.1, the old LOCAL(1) driver)
LOCAL_REFID = bytes((127, 127, 1, 1))


def _decode_standard(stratum: int, leap: int, refid: bytes) -> tuple[str, str | None]:
    """A standard NTP server (stock chronyd, protocol ntp) in the same terms.

    A primary on its own clock (``local stratum N``: refid 127.127.1.1) is the group's
    LEADER, as a Berkeley master or a Cristian time server is; a server synchronized to
    an upstream says which one in its refid, which for the stratum 2 that tempod's
    encoding uses is already a FOLLOWER above.  Leap 3 or stratum 0/16 is unsynchronized.
    """
    if leap == 3 or stratum in (0, 16):
        return "UNSYNCED", None
    if refid == LOCAL_REFID:
        return "LEADER", "self"
    return "UNKNOWN", None


@dataclass(frozen=True)
class Measurement:
    t_ref: float       # reference time at the midpoint of t1 and t4
    offset_s: float    # node clock - reference
    rtt_s: float       # round trip minus the node's processing time
    bound_s: float     # |offset error| <= rtt / 2


def measure(t1: float, t2: float, t3: float, t4: float) -> Measurement:
    rtt = (t4 - t1) - (t3 - t2)
    # a negative rtt means the node's clock moved between t2 and t3 faster than ours
    # (a step); clamp so the bound stays a bound
    rtt = max(rtt, 0.0)
    return Measurement(t_ref=(t1 + t4) / 2, offset_s=((t2 - t1) + (t3 - t4)) / 2,
                       rtt_s=rtt, bound_s=rtt / 2)
