"""Packet authentication: an HMAC-SHA256 trailer, the key ring, and the replay guard.

Owns the bytes *after* an encoded TSP message (see ``docs/wire.md``)::

    payload | format u8 | key_id u16 | epoch u32 | counter u64 | mac[32]

``format`` is 0xA1 (MAC not bound to a recipient) or 0xA2 (bound: the MAC also covers
the recipient's TSP name, which is not sent).  Both values are unknown extension tags
to ``wire.decode``, so a trailer can never be mistaken for part of a valid message.
The MAC is HMAC-SHA256(secret[key_id], everything before the MAC [+ len u8 + recipient]).

Replay guard: per sender (the TSP name inside the authenticated payload, never the
unauthenticated source address) and per sender epoch (u32, random per daemon start),
a sliding-window bitmap of counters, as IPsec does.  When a sender shows a new epoch
(it restarted), its previous epochs are retired: their packets are rejected unless the
counter is above the highest one ever accepted for that epoch (which only the genuine,
still-running sender can produce; an attacker can only replay what it captured).

What a *restarted receiver* cannot detect: the guard lives in memory, so after the
receiver restarts it has never seen any counter of the sender's current epoch, and a
captured packet of that epoch is new to it.  Bounded mitigation here: the first packet
accepted for an epoch this receiver has never seen also marks every lower counter as
seen, so once one genuine packet from the sender arrives (one round interval, at
most), nothing captured before it can be replayed.  The exposure is the window between
the receiver's start and that first genuine packet: an attacker holding captures can
inject each of them at most once, in increasing counter order.  Closing it completely
needs a challenge-response or persistent state, which this module does not do.

Without recipient binding (format 0xA1) a packet that A sent to B can be replayed to C
if C has not yet seen that counter from A; bind (``Signer.sign(payload, recipient=)``
and ``Verifier(local_name=)``) to rule that out.

This module knows nothing about sockets, files other than the key file, or the
meaning of messages; it reads only the sender name field of the TSP header.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
import struct
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Hashable

from .wire import HEADER_LEN, NAME_FIELD_LEN, RemoteProtocolError

FORMAT_UNBOUND = 0xA1
FORMAT_BOUND = 0xA2
MAC_LEN = 32
_FIELDS = struct.Struct(">BHIQ")  # format, key_id, epoch, counter
TRAILER_LEN = _FIELDS.size + MAC_LEN  # 47
MIN_SECRET_LEN = 32
_U64_MAX = (1 << 64) - 1


class AuthError(RemoteProtocolError):
    """A packet failed authentication; it must change nothing."""


class Truncated(AuthError):
    """Too short to hold an authentication trailer."""


class Missing(Truncated):
    """No authentication trailer, and authentication is required."""


class UnknownKey(AuthError):
    """The trailer names a key id this node does not have."""


class BadMac(AuthError):
    """The MAC does not match (tampered, or a different secret under the same key id)."""


class Replayed(AuthError):
    """Authentic, but this (sender, epoch, counter) was already accepted or is too old."""


class KeyFileError(Exception):
    """The key file cannot be used (missing, unreadable, not hex, too short)."""


def new_epoch() -> int:
    """A random u32 session epoch for one daemon start (never 0, which reads as unset)."""
    return secrets.randbelow(0xFFFFFFFF) + 1


@dataclass
class KeyRing:
    """key id (u16) -> secret bytes (>= 32 bytes)."""

    keys: dict[int, bytes] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # for the caller to log

    def __post_init__(self) -> None:
        for key_id, secret in list(self.keys.items()):
            self.add(key_id, secret)

    def add(self, key_id: int, secret: bytes) -> None:
        if not isinstance(key_id, int) or not 0 <= key_id <= 0xFFFF:
            raise ValueError(f"key id {key_id!r} must be an int in [0, 65535]")
        if not isinstance(secret, (bytes, bytearray)) or len(secret) < MIN_SECRET_LEN:
            raise ValueError(f"key {key_id}: secret must be at least {MIN_SECRET_LEN} bytes")
        self.keys[key_id] = bytes(secret)

    def get(self, key_id: int) -> bytes | None:
        return self.keys.get(key_id)

    def __contains__(self, key_id: object) -> bool:
        return key_id in self.keys

    @classmethod
    def load(cls, path: str | os.PathLike[str], key_id: int) -> "KeyRing":
        """Read one hex secret (whitespace and ``#`` comment lines ignored) as ``key_id``.

        Raises KeyFileError; a file readable by group or others is only a warning
        (in ``.warnings``) because Ansible may deploy it before tightening modes.
        """
        p = Path(path)
        try:
            st = p.stat()
            text = p.read_text(encoding="ascii")
        except FileNotFoundError:
            raise KeyFileError(f"key file {p} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise KeyFileError(f"key file {p} cannot be read: {exc}") from None
        hex_text = "".join(line.split("#", 1)[0].strip() for line in text.splitlines())
        hex_text = "".join(hex_text.split())
        if not hex_text:
            raise KeyFileError(f"key file {p} is empty")
        try:
            secret = bytes.fromhex(hex_text)
        except ValueError:
            raise KeyFileError(f"key file {p} is not hex (expected an even number of 0-9a-f digits)") from None
        if len(secret) < MIN_SECRET_LEN:
            raise KeyFileError(f"key file {p} holds {len(secret)} bytes, at least {MIN_SECRET_LEN} are required")
        ring = cls()
        try:
            ring.add(key_id, secret)
        except ValueError as exc:
            raise KeyFileError(f"key file {p}: {exc}") from None
        if stat.S_IMODE(st.st_mode) & 0o077:
            ring.warnings.append(
                f"key file {p} has mode {stat.S_IMODE(st.st_mode):04o}; it should be 0600 or 0400")
        return ring


def _recipient_bytes(name: str) -> bytes:
    raw = name.encode("ascii")
    if not 0 < len(raw) < NAME_FIELD_LEN:
        raise ValueError(f"recipient name {name!r} must be 1..{NAME_FIELD_LEN - 1} ASCII bytes")
    return bytes((len(raw),)) + raw


class Signer:
    """Appends trailers for one daemon run: fixed key id and epoch, counter += 1 per packet."""

    def __init__(self, keyring: KeyRing, key_id: int, epoch: int, counter_start: int = 1) -> None:
        secret = keyring.get(key_id)
        if secret is None:
            raise ValueError(f"key id {key_id} is not in the key ring")
        if not isinstance(epoch, int) or not 0 <= epoch <= 0xFFFFFFFF:
            raise ValueError(f"epoch {epoch!r} must be a u32")
        self.key_id = key_id
        self.epoch = epoch
        self.counter = counter_start  # the counter the next packet carries
        self._mac = hmac.new(secret, digestmod=hashlib.sha256)

    def sign(self, payload: bytes, recipient: str | None = None) -> bytes:
        """``payload`` + trailer; bind the MAC to ``recipient`` (a TSP name) if given."""
        if self.counter > _U64_MAX:
            raise OverflowError("message counter exhausted; restart with a new epoch")
        fmt = FORMAT_UNBOUND if recipient is None else FORMAT_BOUND
        head = bytes(payload) + _FIELDS.pack(fmt, self.key_id, self.epoch, self.counter)
        self.counter += 1
        mac = self._mac.copy()
        mac.update(head)
        if recipient is not None:
            mac.update(_recipient_bytes(recipient))
        return head + mac.digest()


class _Window:
    """Sliding window over u64 counters: bit i of ``bits`` = counter ``high - i`` seen."""

    __slots__ = ("high", "bits", "retired", "first")

    def __init__(self, counter: int, size: int) -> None:
        self.first = counter
        self.high = counter
        # First contact: treat every lower counter as seen (see module doc).
        self.bits = (1 << size) - 1
        self.retired = False

    def check(self, counter: int, size: int) -> str | None:
        """None if acceptable, else why not.  Does not record."""
        if counter > self.high:
            return None
        if self.retired:
            return f"counter {counter} of a retired epoch, not above its last {self.high}"
        diff = self.high - counter
        if diff >= size:
            return f"counter {counter} is {diff} behind the newest {self.high}, outside the window of {size}"
        if counter < self.first:
            return f"counter {counter} precedes the first one accepted for this epoch ({self.first})"
        if self.bits >> diff & 1:
            return f"counter {counter} already accepted"
        return None

    def record(self, counter: int, size: int) -> None:
        if counter > self.high:
            shift = counter - self.high
            self.bits = ((self.bits << shift) | 1) & ((1 << size) - 1) if shift < size else 1
            self.high = counter
        else:
            self.bits |= 1 << (self.high - counter)


class Verifier:
    """Checks trailers and replays; returns the payload or raises an AuthError subclass.

    ``required=False`` (loopback tests only) also accepts packets without a valid
    trailer and returns them whole; a valid trailer is still checked for replay.
    """

    def __init__(self, keyring: KeyRing, replay_window: int = 1024, *, required: bool = True,
                 local_name: str | None = None, max_senders: int = 1024, epochs_per_sender: int = 8) -> None:
        if replay_window < 1:
            raise ValueError("replay_window must be >= 1")
        self.keyring = keyring
        self.replay_window = replay_window
        self.required = required
        self._recipient = None if local_name is None else _recipient_bytes(local_name)
        self.max_senders = max_senders
        self.epochs_per_sender = epochs_per_sender
        self._macs = {kid: hmac.new(s, digestmod=hashlib.sha256) for kid, s in keyring.keys.items()}
        # sender -> epoch -> window; both levels least-recently-accepted first.
        self._senders: OrderedDict[Hashable, OrderedDict[int, _Window]] = OrderedDict()

    def verify(self, packet: bytes, sender_hint: Hashable = None) -> bytes:
        """Return the authenticated payload of ``packet``.

        The replay key is the sender name inside the payload's TSP header; ``sender_hint``
        (e.g. the source address) stands in only for payloads too short to carry one, and
        appears in error messages.
        """
        n = len(packet)
        if n < TRAILER_LEN:
            if not self.required:
                return bytes(packet)
            raise Truncated(f"{n} bytes from {sender_hint}: too short for a {TRAILER_LEN}-byte trailer")
        packet = bytes(packet)
        split = n - TRAILER_LEN
        fmt, key_id, epoch, counter = _FIELDS.unpack_from(packet, split)
        if fmt not in (FORMAT_UNBOUND, FORMAT_BOUND):
            if not self.required:
                return packet
            raise Missing(f"packet from {sender_hint} has no authentication trailer (format byte {fmt:#04x})")
        mac = self._macs.get(key_id)
        if mac is None and key_id in self.keyring:  # key added to the ring after construction
            mac = self._macs[key_id] = hmac.new(self.keyring.keys[key_id], digestmod=hashlib.sha256)
        if mac is None:
            if not self.required:
                return packet
            raise UnknownKey(f"packet from {sender_hint} uses key id {key_id}, which this node does not have")
        if fmt == FORMAT_BOUND and self._recipient is None:
            if not self.required:
                return packet
            raise BadMac(f"packet from {sender_hint} is bound to a recipient but this verifier has no local name")
        mac = mac.copy()
        mac.update(memoryview(packet)[:split + _FIELDS.size])
        if fmt == FORMAT_BOUND:
            mac.update(self._recipient)
        if not hmac.compare_digest(mac.digest(), packet[split + _FIELDS.size:]):
            if not self.required:
                return packet
            raise BadMac(f"bad MAC on packet from {sender_hint} (key id {key_id})")

        payload = packet[:split]
        sender = self._sender_key(payload, sender_hint)
        self._check_replay(sender, epoch, counter)
        return payload

    @staticmethod
    def _sender_key(payload: bytes, hint: Hashable) -> Hashable:
        if len(payload) >= HEADER_LEN:
            name = payload[12:HEADER_LEN].split(b"\0", 1)[0]
            if name:
                return name
        return ("hint", hint)

    def _check_replay(self, sender: Hashable, epoch: int, counter: int) -> None:
        size = self.replay_window
        epochs = self._senders.get(sender)
        if epochs is None:
            epochs = self._senders[sender] = OrderedDict()
            while len(self._senders) > self.max_senders:
                self._senders.popitem(last=False)
        window = epochs.get(epoch)
        if window is None:
            window = _Window(counter, size)
        else:
            why = window.check(counter, size)
            if why is not None:
                raise Replayed(f"replay from {sender!r} epoch {epoch:#010x}: {why}")
            window.record(counter, size)
        # This epoch is now the sender's current one; every other epoch is retired.
        for other in epochs.values():
            other.retired = True
        window.retired = False
        epochs[epoch] = window
        epochs.move_to_end(epoch)
        self._senders.move_to_end(sender)
        while len(epochs) > self.epochs_per_sender:
            epochs.popitem(last=False)
