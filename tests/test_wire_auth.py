"""auth: trailer, key file loading, MAC checks and the replay guard."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings, strategies as st

from tempod import auth
from tempod.auth import (BadMac, KeyFileError, KeyRing, Missing, Replayed, Signer, Truncated,
                         UnknownKey, Verifier)
from tempod.wire import Message, MsgType, RemoteProtocolError, decode, encode

SECRET = bytes(range(32))
OTHER = bytes(range(1, 33))


def ring(key_id=1, secret=SECRET) -> KeyRing:
    return KeyRing({key_id: secret})


def payload(name="n1", seq=1) -> bytes:
    return encode(Message(MsgType.ADJTIME, seq, name, time_ns=-5_000))


def test_sign_verify_round_trip_and_layout():
    s = Signer(ring(), key_id=1, epoch=0xDEADBEEF)
    p = payload()
    pkt = s.sign(p)
    assert len(pkt) == len(p) + auth.TRAILER_LEN == len(p) + 47
    assert pkt[len(p):len(p) + 15] == bytes.fromhex("a1 0001 deadbeef 0000000000000001")
    assert Verifier(ring()).verify(pkt, ("10.0.0.1", 525)) == p
    assert s.sign(p)[len(p) + 7:len(p) + 15] == (2).to_bytes(8, "big")  # counter increases


def test_error_classes_are_remote_protocol_errors():
    for cls in (BadMac, UnknownKey, Replayed, Truncated, Missing):
        assert issubclass(cls, auth.AuthError) and issubclass(cls, RemoteProtocolError)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_flipped_bit_is_rejected(data):
    pkt = Signer(ring(), 1, 7).sign(payload())
    i = data.draw(st.integers(0, len(pkt) - 1))
    bit = data.draw(st.integers(0, 7))
    bad = bytearray(pkt)
    bad[i] ^= 1 << bit
    v = Verifier(ring())
    with pytest.raises(auth.AuthError) as info:
        v.verify(bytes(bad))
    trailer_start = len(pkt) - auth.TRAILER_LEN
    if i == trailer_start:
        assert isinstance(info.value, Missing)          # format byte no longer ours
    elif i in (trailer_start + 1, trailer_start + 2):
        assert isinstance(info.value, UnknownKey)       # key id changed
    else:
        assert isinstance(info.value, BadMac)


def test_wrong_key():
    pkt = Signer(ring(1, OTHER), 1, 7).sign(payload())
    with pytest.raises(BadMac):
        Verifier(ring(1, SECRET)).verify(pkt)
    pkt2 = Signer(ring(2, SECRET), 2, 7).sign(payload())
    with pytest.raises(UnknownKey, match="key id 2"):
        Verifier(ring(1, SECRET)).verify(pkt2)


def test_truncated_and_missing():
    v = Verifier(ring())
    with pytest.raises(Truncated):
        v.verify(b"x" * 46)
    with pytest.raises(Missing):
        v.verify(payload())


def test_replay_rejected_and_reordering_within_window_accepted():
    s = Signer(ring(), 1, 99)
    pkts = [s.sign(payload(seq=i)) for i in range(10)]
    v = Verifier(ring(), replay_window=8)
    v.verify(pkts[0])
    for i in (3, 2, 5, 1, 4):      # out of order, all within the window
        v.verify(pkts[i])
    with pytest.raises(Replayed, match="already accepted"):
        v.verify(pkts[3])
    v.verify(pkts[9])
    with pytest.raises(Replayed, match="window"):
        v.verify(pkts[1])          # 8 behind the newest: outside an 8-wide window
    v.verify(pkts[8])
    v.verify(pkts[7])
    v.verify(pkts[6])              # never seen, 3 behind: accepted


def test_replay_keyed_by_authenticated_name_not_address():
    pkt = Signer(ring(), 1, 5).sign(payload())
    v = Verifier(ring())
    v.verify(pkt, ("10.0.0.2", 525))
    with pytest.raises(Replayed):
        v.verify(pkt, ("10.0.0.66", 4000))  # spoofed source address changes nothing


def test_senders_have_independent_windows():
    v = Verifier(ring())
    a = Signer(ring(), 1, 5).sign(payload("a"))
    b = Signer(ring(), 1, 5).sign(payload("b"))   # same epoch and counter, other sender
    v.verify(a)
    v.verify(b)


def test_old_epoch_rejected_after_restart():
    v = Verifier(ring())
    old = Signer(ring(), 1, 1000)
    captured = [old.sign(payload(seq=i)) for i in range(3)]
    v.verify(captured[0])
    v.verify(captured[1])
    new = Signer(ring(), 1, 2000)                 # the sender restarted
    v.verify(new.sign(payload(seq=50)))
    for pkt in captured[:2]:
        with pytest.raises(Replayed, match="retired"):
            v.verify(pkt)
    v.verify(new.sign(payload(seq=51)))


def test_retired_epoch_revives_only_with_fresh_counters():
    # A restarted receiver tricked into the old epoch cannot lock out the live sender.
    live = Signer(ring(), 1, 2000)
    stale = Signer(ring(), 1, 1000)
    stale_pkt = stale.sign(payload())
    v = Verifier(ring())
    v.verify(live.sign(payload()))
    v.verify(stale_pkt)                          # unknown epoch: accepted once (documented)
    v.verify(live.sign(payload()))               # live sender still accepted
    with pytest.raises(Replayed):
        v.verify(stale_pkt)


def test_first_contact_floor_after_receiver_restart():
    s = Signer(ring(), 1, 3)
    pkts = [s.sign(payload()) for _ in range(5)]
    v = Verifier(ring())                          # receiver restarted: knows nothing
    v.verify(pkts[3])
    with pytest.raises(Replayed, match="precedes the first"):
        v.verify(pkts[1])
    v.verify(pkts[4])


def test_recipient_binding_stops_cross_destination_replay():
    s = Signer(ring(), 1, 3)
    to_b = s.sign(payload(), recipient="b")
    assert Verifier(ring(), local_name="b").verify(to_b) == payload()
    with pytest.raises(BadMac):
        Verifier(ring(), local_name="c").verify(to_b)
    with pytest.raises(BadMac, match="no local name"):
        Verifier(ring()).verify(to_b)


def test_unauthenticated_mode():
    p = payload()
    strict, lax = Verifier(ring()), Verifier(ring(), required=False)
    with pytest.raises(Missing):
        strict.verify(p)
    assert lax.verify(p) == p
    assert lax.verify(b"abc") == b"abc"
    pkt = Signer(ring(), 1, 9).sign(p)
    assert lax.verify(pkt) == p                  # a valid trailer is stripped ...
    with pytest.raises(Replayed):
        lax.verify(pkt)                          # ... and still replay-checked
    tampered = bytearray(Signer(ring(), 1, 9).sign(p))
    tampered[-1] ^= 1
    # A trailer that does not verify is not ours: the whole packet is the payload,
    # which wire.decode then refuses (the format byte is an unknown extension tag).
    with pytest.raises(RemoteProtocolError, match="unknown extension tag"):
        decode(lax.verify(bytes(tampered)))


def test_memory_bounds():
    v = Verifier(ring(), max_senders=4, epochs_per_sender=2)
    for i in range(10):
        v.verify(Signer(ring(), 1, 1).sign(payload(f"s{i}")))
    assert len(v._senders) == 4
    for e in range(5):
        v.verify(Signer(ring(), 1, e + 10).sign(payload("x")))
    assert len(v._senders[b"x"]) == 2


def test_key_file_loading(tmp_path):
    good = tmp_path / "k"
    good.write_text("# deployed by ansible\n" + SECRET.hex()[:32] + "\n  " + SECRET.hex()[32:] + "\n")
    os.chmod(good, 0o600)
    kr = KeyRing.load(good, 3)
    assert kr.get(3) == SECRET and kr.warnings == []
    os.chmod(good, 0o644)
    assert "0644" in KeyRing.load(good, 3).warnings[0]


@pytest.mark.parametrize("content, match", [
    (None, "does not exist"), ("", "empty"), ("zz" * 32, "not hex"), ("abc", "not hex"),
    ("00" * 31, "31 bytes, at least 32"),
])
def test_key_file_errors(tmp_path, content, match):
    p = tmp_path / "k"
    if content is not None:
        p.write_text(content)
    with pytest.raises(KeyFileError, match=match):
        KeyRing.load(p, 1)


def test_keyring_and_signer_validation():
    with pytest.raises(ValueError):
        KeyRing({1: b"short"})
    with pytest.raises(ValueError):
        KeyRing({70000: SECRET})
    with pytest.raises(ValueError, match="not in the key ring"):
        Signer(ring(), 2, 1)
    with pytest.raises(ValueError):
        Signer(ring(), 1, 1 << 32)
    assert 0 < auth.new_epoch() <= 0xFFFFFFFF
