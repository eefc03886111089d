"""ntp: server reply, client parse, era handling, state encoding."""

from __future__ import annotations

import struct
import calendar

import ntplib
import pytest
from hypothesis import given, strategies as st

from tempod import ntp
from tempod.ntp import NtpError
from tempod.wire import LocalProtocolError

ERA0_END_UNIX = 2**32 - ntp.NTP_UNIX_DELTA_S  # 2036-02-07 06:28:16 UTC


def reply(req: bytes, recv: float, xmit: float, **kw) -> bytes:
    args = dict(stratum=1, leap=0, refid=b"LEAD", root_dispersion_s=0.001)
    args.update(kw)
    return ntp.server_reply(req, recv, xmit, **args)


def test_era_boundary_constant():
    assert ERA0_END_UNIX == calendar.timegm((2036, 2, 7, 6, 28, 16))


def test_reply_fields_and_origin_verbatim():
    req = bytearray(ntp.client_request(1_795_000_000.25))
    req[40:48] = bytes.fromhex("0123456789abcdef")  # a client that randomizes its transmit ts
    rep = reply(bytes(req) + b"\x00" * 20, 1_795_000_000.5, 1_795_000_000.75, stratum=2, leap=0,
                refid=bytes([10, 77, 0, 11]), root_dispersion_s=0.5)
    assert len(rep) == 48
    assert rep[0] == (0 << 6) | (4 << 3) | 4
    assert rep[1] == 2 and struct.unpack(">b", rep[3:4])[0] == -20
    assert rep[8:12] == struct.pack(">I", 0x8000)   # 0.5 s in NTP short format
    assert rep[12:16] == bytes([10, 77, 0, 11])
    assert rep[24:32] == bytes.fromhex("0123456789abcdef")
    stats = ntplib.NTPStats()
    stats.from_data(rep)                              # a stock client library agrees
    assert stats.mode == 4 and stats.stratum == 2
    assert stats.recv_time == pytest.approx(1_795_000_000.5, abs=1e-6)
    assert stats.tx_time == pytest.approx(1_795_000_000.75, abs=1e-6)


def test_reply_keeps_request_version():
    req = bytearray(ntp.client_request(1.0e9))
    req[0] = (3 << 3) | 3
    assert (reply(bytes(req), 1e9, 1e9)[0] >> 3) & 7 == 3


@pytest.mark.parametrize("mutate, match", [
    (lambda r: r[:47], "47 bytes"),
    (lambda r: bytes([(4 << 3) | 4]) + r[1:], "mode 4"),
    (lambda r: bytes([(0 << 3) | 3]) + r[1:], "version 0"),
    (lambda r: bytes([(5 << 3) | 3]) + r[1:], "version 5"),
])
def test_server_rejects(mutate, match):
    with pytest.raises(NtpError, match=match):
        reply(mutate(ntp.client_request(1e9)), 1e9, 1e9)


@pytest.mark.parametrize("kw, match", [
    (dict(stratum=17), "stratum"), (dict(leap=4), "leap"), (dict(refid=b"abc"), "refid"),
    (dict(root_dispersion_s=-1.0), "root_dispersion"), (dict(precision=200), "precision"),
])
def test_server_rejects_bad_local_parameters(kw, match):
    with pytest.raises(LocalProtocolError, match=match):
        reply(ntp.client_request(1e9), 1e9, 1e9, **kw)


def test_root_dispersion_rounds_up_and_saturates():
    rep = reply(ntp.client_request(1e9), 1e9, 1e9, root_dispersion_s=1e-9)
    assert rep[8:12] == struct.pack(">I", 1)
    rep = reply(ntp.client_request(1e9), 1e9, 1e9, root_dispersion_s=float("inf"))
    assert rep[8:12] == b"\xff" * 4


def exchange_ns(t1_ns: int, offset_ns: int, d_out_ns: int, hold_ns: int, d_back_ns: int) -> ntp.NtpSample:
    """Simulated exchange: the server clock is client clock + offset (ns)."""
    req = ntp.client_request_ns(t1_ns)
    t2 = t1_ns + d_out_ns + offset_ns
    t3 = t2 + hold_ns
    t4 = t1_ns + d_out_ns + hold_ns + d_back_ns
    rep = ntp.server_reply_ns(req, t2, t3, stratum=2, leap=0, refid=bytes(4), root_dispersion_s=0.0)
    return ntp.parse_reply_ns(rep, t1_ns, t4)


@given(t1=st.integers(0, 4_000_000_000 * 10**9),
       offset=st.integers(-10**12, 10**12), d=st.integers(0, 10**9), hold=st.integers(0, 10**8))
def test_symmetric_exchange_recovers_offset_to_the_ns(t1, offset, d, hold):
    s = exchange_ns(t1, offset, d, hold, d)
    # Each timestamp is rounded to 2**-32 s (0.23 ns): the offset is within ~0.5 ns.
    assert abs(s.offset_s * 1e9 - offset) <= 1
    assert abs(s.delay_s * 1e9 - 2 * d) <= 1
    assert s.bound_s == pytest.approx(max(s.delay_s, 0) / 2)


def test_asymmetric_path_error_within_bound():
    s = exchange_ns(1_795_000_000 * 10**9, 5_000_000, 100_000, 10_000, 30_000)
    true = 5_000_000e-9
    assert abs(s.offset_s - true) <= s.bound_s + 1e-9
    assert s.offset_s == pytest.approx(true + (100_000 - 30_000) / 2 * 1e-9, abs=1e-9)


def test_float_api_exact_for_representable_times():
    t1, off = 1_795_000_000.25, -0.125
    req = ntp.client_request(t1)
    rep = reply(req, t1 + 0.5 + off, t1 + 0.625 + off)
    s = ntp.parse_reply(rep, t1, t1 + 1.125)     # 0.5 s each way, 0.125 s held
    assert s.offset_s == off and s.delay_s == 1.0


@pytest.mark.parametrize("t1_s", [ERA0_END_UNIX - 0.75, ERA0_END_UNIX - 1e-6, ERA0_END_UNIX + 0.5])
def test_exchange_across_the_2036_era_wrap(t1_s):
    # Client in era 0, server (1.5 s ahead) already in era 1, or both in era 1.
    req = ntp.client_request(t1_s)
    rep = reply(req, t1_s + 1.5 + 0.001, t1_s + 1.5 + 0.002)
    assert struct.unpack(">I", rep[32:36])[0] < 10 or t1_s > ERA0_END_UNIX  # server wrapped
    s = ntp.parse_reply(rep, t1_s, t1_s + 0.003)
    assert s.offset_s == pytest.approx(1.5, abs=1e-6)
    assert s.delay_s == pytest.approx(0.002, abs=1e-6)


def test_timestamp_conversion_picks_nearest_era():
    t_ns = (ERA0_END_UNIX + 10) * 10**9 + 123
    ts = ntp.unix_ns_to_ntp(t_ns)
    assert ts >> 32 == 10                                   # wrapped into era 1
    assert abs(ntp.ntp_to_unix_ns(ts, t_ns - 3600 * 10**9) - t_ns) <= 1
    old = (1_000_000_000) * 10**9
    assert abs(ntp.ntp_to_unix_ns(ntp.unix_ns_to_ntp(old), old) - old) <= 1


@pytest.mark.parametrize("mutate, match", [
    (lambda r: r[:40], "40 bytes"),
    (lambda r: bytes([(4 << 3) | 3]) + r[1:], "mode 3"),
    (lambda r: r[:1] + b"\x00" + r[2:12] + b"RATE" + r[16:], "kiss"),
    (lambda r: r[:24] + bytes(8) + r[32:], "origin"),
    (lambda r: r[:40] + bytes(8), "zero"),
])
def test_client_rejects(mutate, match):
    rep = reply(ntp.client_request(1e9), 1e9, 1e9)
    with pytest.raises(NtpError, match=match):
        ntp.parse_reply(mutate(rep), 1e9, 1e9 + 0.001)


def test_unsynchronized_reply_is_data_not_error():
    st_, li, ref = ntp.encode_state("CANDIDATE", None)
    s = ntp.parse_reply(reply(ntp.client_request(1e9), 1e9, 1e9, stratum=st_, leap=li, refid=ref), 1e9, 1e9)
    assert (s.stratum, s.leap) == (16, 3)
    assert ntp.decode_state(s.stratum, s.refid) == ("CANDIDATE", None)


@pytest.mark.parametrize("state, master, want", [
    ("LEADER", "10.77.0.11", (1, 0, b"LEAD")),
    ("FOLLOWER", "10.77.0.11", (2, 0, bytes([10, 77, 0, 11]))),
    ("FOLLOWER", None, (2, 0, bytes(4))),
    ("START", None, (16, 3, b"STRT")), ("CONSISTENCY", None, (16, 3, b"CONS")),
    ("NOLEADER", None, (16, 3, b"NOLD")), ("ACCEPT", None, (16, 3, b"ACPT")),
    ("CANDIDATE", None, (16, 3, b"CAND")), ("CONFLICT", None, (16, 3, b"CONF")),
])
def test_state_encoding_table(state, master, want):
    assert ntp.encode_state(state, master) == want
    name, addr = ntp.decode_state(want[0], want[2])
    assert name == state
    assert addr == (master if state == "FOLLOWER" else None)


def test_state_encoding_errors():
    with pytest.raises(LocalProtocolError, match="unknown election state"):
        ntp.encode_state("SLAVE", None)
    with pytest.raises(LocalProtocolError, match="IPv4"):
        ntp.encode_state("FOLLOWER", "fe80::1")
    with pytest.raises(NtpError):
        ntp.decode_state(3, b"GPS\0")
