"""wire.encode / wire.decode: round trips, golden bytes, and the error contract."""

from __future__ import annotations

import json
import struct

import pytest
from hypothesis import given, settings, strategies as st

from tempod import wire
from tempod.wire import (HEADER_LEN, LocalProtocolError, Message, MsgType, RemoteProtocolError,
                         decode, encode)

I64 = st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1)
NAMES = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=63)
JSON_SCALARS = st.none() | st.booleans() | st.integers(-(1 << 53), 1 << 53) | st.text(max_size=20) | \
    st.floats(allow_nan=False, allow_infinity=False)
JSON_OBJ = st.dictionaries(st.text(max_size=10), st.recursive(
    JSON_SCALARS, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=5), c, max_size=4),
    max_leaves=20), max_size=6)


@st.composite
def messages(draw, mtype=None) -> Message:
    t = draw(st.sampled_from(list(MsgType))) if mtype is None else mtype
    req = wire.REQUIRED.get(t, frozenset())

    def opt(attr, strat):
        return draw(strat) if attr in req else draw(st.none() | strat)

    return Message(
        type=t, seq=draw(st.integers(0, 0xFFFF)), name=draw(NAMES),
        time_ns=opt("time_ns", I64),
        hops=draw(st.integers(0, 255)) if t is MsgType.LOOP else 0,
        t1_ns=opt("t1_ns", I64), t2_ns=opt("t2_ns", I64), t3_ns=opt("t3_ns", I64),
        target=draw(st.none() | NAMES), data=opt("data", JSON_OBJ),
    )


@pytest.mark.parametrize("mtype", list(MsgType))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_round_trip_every_type(mtype, data):
    msg = data.draw(messages(mtype))
    raw = encode(msg)
    back = decode(raw)
    assert back == msg
    assert back.data == msg.data  # `data` is compare=False on the dataclass
    assert encode(back) == raw     # the encoding is canonical


def _header(t, seq, sec_bytes, name):
    return bytes([t, 1]) + struct.pack(">H", seq) + sec_bytes + name.ljust(64, b"\0")


def test_golden_adjtime_negative_delta():
    # -1.500000123 s -> floor to us = -1500001 us -> sec=-2, usec=499999 (timed's mstotvround)
    raw = encode(Message(MsgType.ADJTIME, 7, "n1", time_ns=-1_500_000_123))
    want = (bytes.fromhex("01 01 0007 fffffffe 0007a11f") + b"n1".ljust(64, b"\0")
            + bytes.fromhex("01 0008 ffffffffa697d085"))
    assert raw == want
    assert struct.unpack(">q", bytes.fromhex("ffffffffa697d085"))[0] == -1_500_000_123


def test_golden_loop_and_plain_ack():
    assert encode(Message(MsgType.LOOP, 0xFFFF, "host", hops=9)) == \
        _header(24, 0xFFFF, bytes.fromhex("09 00000000000000"), b"host")
    assert encode(Message(MsgType.ACK, 258, "a")) == bytes.fromhex("02 01 0102") + bytes(8) + b"a" + bytes(63)


def test_golden_probe_reply():
    raw = encode(Message(MsgType.PROBE_REPLY, 1, "n2", t1_ns=1, t2_ns=-2, t3_ns=3, target="n1"))
    assert raw[:4] == bytes.fromhex("1a 01 0001") and raw[4:12] == bytes(8)
    assert raw[HEADER_LEN:] == bytes.fromhex(
        "02 0008 0000000000000001  03 0008 fffffffffffffffe  04 0008 0000000000000003  05 0002 6e31")


def test_golden_settime_absolute():
    t = 1_795_000_000_123_456_789
    raw = encode(Message(MsgType.SETTIME, 3, "m", time_ns=t))
    assert raw[4:12] == struct.pack(">iI", 1_795_000_000, 123_456)


def test_settime_after_2038_wraps_header_only():
    t = (1 << 32) * 10**9 + 5_000_000_000  # year 2106 + 5 s
    msg = Message(MsgType.SETTIME, 3, "m", time_ns=t)
    raw = encode(msg)
    assert raw[4:12] == struct.pack(">iI", 5, 0)
    assert decode(raw) == msg


def test_plain_bsd_packet_reads_time_from_header():
    raw = _header(1, 9, struct.pack(">iI", -2, 500_000), b"vax")
    assert decode(raw).time_ns == -1_500_000_000


@pytest.mark.parametrize("msg, match", [
    (Message(MsgType.ACK, 70000, "a"), "seq"),
    (Message(MsgType.ACK, 1, ""), "empty"),
    (Message(MsgType.ACK, 1, "x" * 64), "at most 63"),
    (Message(MsgType.ACK, 1, "nö"), "ASCII"),
    (Message(MsgType.ACK, 1, "a\0b"), "ASCII"),
    (Message(MsgType.ADJTIME, 1, "a"), "needs time_ns"),
    (Message(MsgType.PROBE_REPLY, 1, "a", t1_ns=1, t2_ns=2), "needs t3_ns"),
    (Message(MsgType.ACK, 1, "a", hops=2), "LOOP"),
    (Message(MsgType.LOOP, 1, "a", hops=256), "hops"),
    (Message(MsgType.ACK, 1, "a", time_ns=1 << 63), "time_ns"),
    (Message(MsgType.ACK, 1, "a", t1_ns=1.5), "int"),
    (Message(MsgType.STATUS, 1, "a", data={"x": float("nan")}), "JSON"),
    (Message(MsgType.STATUS, 1, "a", data={"x": object()}), "JSON"),
    (Message(MsgType.STATUS, 1, "a", data={"x": "y" * 20000}), "at most"),
    (Message(MsgType.STATUS, 1, "a", data=[1]), "dict"),
    (Message(99, 1, "a"), "unknown message type"),
])
def test_encode_rejects_unrepresentable(msg, match):
    with pytest.raises(LocalProtocolError, match=match):
        encode(msg)


GOOD = encode(Message(MsgType.STATUS, 5, "n1", time_ns=10**9, target="n2", data={"k": 1}))


@pytest.mark.parametrize("raw, match", [
    (b"", "truncated"),
    (GOOD[:HEADER_LEN - 1], "truncated"),
    (bytes([99]) + GOOD[1:], "unknown message type 99"),
    (GOOD[:1] + bytes([2]) + GOOD[2:], "version 2"),
    (GOOD[:12] + b"\xc3\xa9" + GOOD[14:], "ASCII"),
    (GOOD[:12] + b"x" * 64 + GOOD[HEADER_LEN:], "NUL-terminated"),
    (GOOD[:12] + bytes(64) + GOOD[HEADER_LEN:], "empty"),
    (GOOD[:15] + b"z" + GOOD[16:], "padding"),
    (GOOD[:-1], "truncated extension"),
    (GOOD + b"\x01", "truncated extension item header"),
    (GOOD + bytes.fromhex("07 0000"), "unknown extension tag 7"),
    (GOOD + bytes.fromhex("01 0008") + bytes(8), "out of order"),
    (GOOD[:8] + struct.pack(">I", 1_000_000) + GOOD[12:], "usec"),
    (GOOD[:4] + struct.pack(">iI", 2, 0) + GOOD[12:], "disagrees"),
    (GOOD + bytes(wire.MAX_MESSAGE_LEN), "oversize"),
])
def test_decode_rejects_with_clear_message(raw, match):
    with pytest.raises(RemoteProtocolError, match=match):
        decode(raw)


def _with_data(blob: bytes) -> bytes:
    return encode(Message(MsgType.STATUS_REQ, 1, "c")) + bytes([6]) + struct.pack(">H", len(blob)) + blob


@pytest.mark.parametrize("blob, match", [
    (b"\xff", "UTF-8"), (b"{", "invalid"), (b"[1]", "object"), (b'{"a": NaN}', "invalid"),
    (b'{"a": 1e999}', "invalid"), (b'{"a":' + b"[" * 8000 + b"]" * 8000 + b"}", "recursion"),
    (b'{"a": ' + b"9" * 5000 + b"}", "invalid"),
])
def test_decode_rejects_bad_json(blob, match):
    with pytest.raises(RemoteProtocolError, match=match):
        decode(_with_data(blob))


def test_required_fields_checked_on_decode():
    raw = encode(Message(MsgType.STATUS_REQ, 1, "c"))
    with pytest.raises(RemoteProtocolError, match="STATUS without data"):
        decode(bytes([MsgType.STATUS]) + raw[1:])


def test_loop_trailing_bytes_must_be_zero():
    raw = bytearray(encode(Message(MsgType.LOOP, 1, "a", hops=1)))
    raw[7] = 1
    with pytest.raises(RemoteProtocolError, match="LOOP"):
        decode(bytes(raw))


def test_status_json_round_trip_unicode():
    msg = Message(MsgType.STATUS, 1, "n1", data={"note": "héllo ☃", "peers": [{"x": 1.25}]})
    assert decode(encode(msg)).data == msg.data
    assert json.loads(encode(msg)[HEADER_LEN + 3:]) == msg.data
