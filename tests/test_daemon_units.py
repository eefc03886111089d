"""Pure parts of the daemon side: channel seal/open/classify, tempoctl maths and output."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tempod import auth
from tempod.channel import Channel, classify
from tempod.ctl import best_probe, build_parser, format_status, probe_offset
from tempod.wire import Message, MsgType, RemoteProtocolError

KEY = auth.KeyRing({1: bytes(range(32))})


def test_seal_open_round_trip_and_bound_recipient() -> None:
    a = Channel(KEY, 1, required=True, local_name="n1")
    b = Channel(KEY, 1, required=True, local_name="n2")
    msg = Message(MsgType.ADJTIME, 7, "n1", time_ns=-1500)
    assert b.open(a.seal(msg, recipient="n2")) == msg
    # bound to n2: n3 must not accept it
    c = Channel(KEY, 1, required=True, local_name="n3")
    with pytest.raises(auth.BadMac):
        c.open(a.seal(msg, recipient="n2"))


@pytest.mark.parametrize("make, kind", [
    (lambda a: b"\x01\x01", "bad_auth"),                                   # no trailer
    (lambda a: Channel(auth.KeyRing({1: os.urandom(32)}), 1, required=True,
                       local_name=None).seal(Message(MsgType.ACK, 1, "n1")), "bad_auth"),  # other secret
    (lambda a: a.signer.sign(b"\x09\x01garbage"), "malformed"),            # authentic, undecodable
])
def test_classify_each_reject(make, kind: str) -> None:
    a = Channel(KEY, 1, required=True, local_name=None)
    b = Channel(KEY, 1, required=True, local_name=None)
    with pytest.raises(RemoteProtocolError) as ei:
        b.open(make(a))
    assert classify(ei.value) == kind


def test_classify_replay() -> None:
    a = Channel(KEY, 1, required=True, local_name=None)
    b = Channel(KEY, 1, required=True, local_name=None)
    pkt = a.seal(Message(MsgType.STATUS_REQ, 1, "ctl"))
    b.open(pkt)
    with pytest.raises(RemoteProtocolError) as ei:
        b.open(pkt)
    assert classify(ei.value) == "replayed"


def test_unauthenticated_mode_without_key() -> None:
    a = Channel(None, 1, required=False, local_name=None)
    msg = Message(MsgType.MASTERREQ, 3, "n1")
    assert Channel(None, 1, required=False, local_name=None).open(a.seal(msg)) == msg
    with pytest.raises(ValueError):
        Channel(None, 1, required=True, local_name=None)


@given(off=st.floats(-100, 100), d_out=st.floats(0, 0.1), d_back=st.floats(0, 0.1),
       hold=st.floats(0, 0.01), t1=st.floats(1e9, 2e9))
def test_probe_offset_bound_holds_for_any_asymmetry(off: float, d_out: float, d_back: float,
                                                    hold: float, t1: float) -> None:
    # remote clock = local + off; one-way delays d_out, d_back; remote holds for `hold`
    t2 = t1 + d_out + off
    t3 = t2 + hold
    t4 = t3 - off + d_back
    r = probe_offset(t1, t2, t3, t4)
    assert abs(r.offset_s - off) <= r.bound_s + 1e-6
    assert r.rtt_s == pytest.approx(d_out + d_back, abs=1e-6)
    if d_out == d_back:
        assert r.offset_s == pytest.approx(off, abs=1e-6)


def test_probe_sign_remote_ahead_is_positive_and_best_is_min_rtt() -> None:
    a = probe_offset(0.0, 2.001, 2.001, 0.002)   # remote 2 s ahead, 1 ms each way
    b = probe_offset(0.0, 2.004, 2.004, 0.008)
    assert a.offset_s == pytest.approx(2.0) and a.bound_s == pytest.approx(0.001)
    assert best_probe([b, a]) is a


def test_format_status_shows_the_essentials() -> None:
    text = format_status({"name": "n1", "state": "LEADER", "master": "n1", "round": 3, "synchronized": True,
                          "uptime_s": 5.0, "version": "0.1.0",
                          "clock": {"adjust_s": -0.0001, "freq_ppm": 10.0, "slew_remaining_s": 0.0},
                          "peers": [{"name": "n2", "address": "127.0.0.12", "offset_s": 2e-5, "bound_s": 1e-5,
                                     "missed": 0, "in_group": True}],
                          "counters": {"rx": 1, "bad_auth": 2}})
    assert "n1: LEADER" in text and "n2" in text and "+20.0us" in text and "bad_auth=2" in text


def test_every_subcommand_help_has_an_example() -> None:
    ap = build_parser()
    sub = next(a for a in ap._actions if a.dest == "cmd")
    for name, p in sub.choices.items():
        assert "tempoctl" in (p.epilog or ""), name
    assert "examples:" in ap.epilog


def test_daemon_side_imports_only_the_standard_library(repo) -> None:
    # Nodes install the wheel with --no-deps and run the system python: nothing else exists there.
    import subprocess
    import sys
    code = (
        f"import sys; sys.path.insert(0, {str(repo / 'daemon')!r})\n"
        "import tempod.main, tempod.ctl, tempod.runtime, tempod.config, tempod.eventlog, tempod.channel\n"
        "import tempod.clocks, tempod.discipline\n"
        "bad = sorted({m.split('.')[0] for m in sys.modules} - set(sys.stdlib_module_names) - {'tempod', '__main__'})\n"
        "print(','.join(bad))\n"
    )
    r = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60,
                       cwd="/")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ""
