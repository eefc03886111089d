"""Fuzz: every decoder returns a value or raises its declared error type, nothing else."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings, strategies as st

from tempod import auth, ntp, wire
from tempod.wire import Message, MsgType

from test_wire_codec import messages

RING = auth.KeyRing({1: bytes(range(32))})
SETTINGS = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def mutated(draw, base: st.SearchStrategy[bytes]) -> bytes:
    """A valid packet with a few byte flips, insertions, deletions or a truncation."""
    data = bytearray(draw(base))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "append"]))
        i = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[i] = draw(st.integers(0, 255))
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and data:
            del data[i:i + draw(st.integers(1, 8))]
        elif op == "truncate":
            del data[i:]
        else:
            data += draw(st.binary(min_size=1, max_size=40))
    return bytes(data)


ENCODED = messages().map(wire.encode)
# Header-shaped prefixes reach deeper code than uniformly random bytes.
HEADERISH = st.builds(lambda t, rest: bytes([t, 1]) + rest, st.integers(0, 40), st.binary(max_size=200))


@SETTINGS
@given(st.binary(max_size=300) | HEADERISH | mutated(ENCODED))
def test_decode_raises_only_remote_protocol_error(data):
    try:
        msg = wire.decode(data)
    except wire.RemoteProtocolError:
        return
    assert isinstance(msg, Message)
    wire.encode(msg)  # whatever decodes must be representable again


def _signed(msg_bytes: bytes) -> bytes:
    return auth.Signer(RING, 1, 77).sign(msg_bytes)


@SETTINGS
@given(st.binary(max_size=300) | mutated(ENCODED.map(_signed)), st.booleans())
def test_verify_raises_only_auth_errors(data, required):
    v = auth.Verifier(RING, required=required, local_name="me")
    try:
        v.verify(data, ("10.0.0.1", 525))
    except auth.AuthError:
        pass


@SETTINGS
@given(st.binary(max_size=120) | mutated(st.just(ntp.client_request(1_795_000_000.5))))
def test_server_reply_raises_only_ntp_error(data):
    try:
        rep = ntp.server_reply(data, 1.8e9, 1.8e9, stratum=1, leap=0, refid=b"LEAD", root_dispersion_s=0.0)
    except ntp.NtpError:
        return
    assert len(rep) == 48


GOOD_REPLY = ntp.server_reply(ntp.client_request(1.8e9), 1.8e9, 1.8e9 + 1e-4, stratum=2, leap=0,
                              refid=b"\x0a\x00\x00\x01", root_dispersion_s=0.01)


@SETTINGS
@given(st.binary(max_size=120) | mutated(st.just(GOOD_REPLY)))
def test_parse_reply_raises_only_ntp_error(data):
    try:
        s = ntp.parse_reply(data, 1.8e9, 1.8e9 + 2e-4)
    except ntp.NtpError:
        return
    assert isinstance(s, ntp.NtpSample)


def test_minimal_message_of_every_type_decodes():
    # The success path the fuzzers must also reach: the smallest valid message per type.
    ok = 0
    for t in MsgType:
        raw = wire.encode(Message(t, 1, "n", **{a: 1 for a in wire.REQUIRED.get(t, ()) if a != "data"},
                                  **({"data": {}} if "data" in wire.REQUIRED.get(t, ()) else {})))
        ok += isinstance(wire.decode(raw), Message)
    assert ok == len(MsgType)
