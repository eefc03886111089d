"""Secure TSP channel: ``Message`` <-> authenticated datagram bytes, and error classes.

Shared by the daemon's runtime and by ``tempoctl``: ``seal`` = ``wire.encode`` then
``auth.Signer.sign``; ``open`` = ``auth.Verifier.verify`` then ``wire.decode``.  A
datagram that fails either step raises ``wire.RemoteProtocolError``;
:func:`classify` maps it to the counter it belongs in (``malformed``, ``bad_auth``,
``replayed``), so every reject is counted under exactly one name.

Pure: no sockets, no clocks.  Knows which key to use, not where packets go.
"""

from __future__ import annotations

from pathlib import Path
from typing import Hashable

from . import auth, wire
from .wire import Message, RemoteProtocolError


def classify(exc: RemoteProtocolError) -> str:
    """The counter a rejected datagram is counted under."""
    if isinstance(exc, auth.Replayed):
        return "replayed"
    if isinstance(exc, auth.AuthError):
        return "bad_auth"
    return "malformed"


class Channel:
    """Signs what we send and verifies what we receive, for one process run.

    ``keyring`` None means no key at all (only allowed with ``required=False``):
    packets then go out without a trailer.
    """

    def __init__(self, keyring: auth.KeyRing | None, key_id: int, *, required: bool,
                 local_name: str | None, epoch: int | None = None) -> None:
        if keyring is None and required:
            raise ValueError("authentication is required but no key ring was given")
        self.required = required
        self.signer = None if keyring is None else auth.Signer(keyring, key_id, epoch or auth.new_epoch())
        # local_name lets the verifier accept packets bound to us (peers bind their sends).
        self.verifier = auth.Verifier(keyring or auth.KeyRing(), required=required, local_name=local_name)

    @classmethod
    def from_key_file(cls, key_file: Path, key_id: int, *, required: bool,
                      local_name: str | None) -> tuple["Channel", list[str]]:
        """Channel plus key-file warnings (for the log). Raises auth.KeyFileError.

        With ``required=False`` a missing key file is allowed: packets go out unsigned.
        """
        if not required and not key_file.exists():
            return cls(None, key_id, required=False, local_name=local_name), []
        ring = auth.KeyRing.load(key_file, key_id)
        return cls(ring, key_id, required=required, local_name=local_name), list(ring.warnings)

    def seal(self, msg: Message, recipient: str | None = None) -> bytes:
        """Wire bytes of ``msg`` with the trailer (bound to ``recipient``'s TSP name if given).

        Raises wire.LocalProtocolError if the message cannot be encoded (our bug).
        """
        payload = wire.encode(msg)
        if self.signer is None:
            return payload
        return self.signer.sign(payload, recipient=recipient)

    def open(self, data: bytes, sender_hint: Hashable = None) -> Message:
        """The authenticated, decoded message; raises RemoteProtocolError (see classify)."""
        return wire.decode(self.verifier.verify(data, sender_hint))
