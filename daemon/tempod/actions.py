"""Actions the I/O-free core asks its runtime (daemon or simulator) to perform.

The core (``node``, ``election``) never touches sockets or clocks: it returns these
small frozen records and the runtime carries them out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .wire import Message


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``msg`` to the configured peer called ``to``."""
    to: str
    msg: Message


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Send ``msg`` to every configured peer (TSP broadcast, done as unicast fan-out)."""
    msg: Message


@dataclass(frozen=True, slots=True)
class Reply:
    """Send ``msg`` to a raw address (a control client, or a sender not in the peer list)."""
    addr: tuple[str, int]
    msg: Message


@dataclass(frozen=True, slots=True)
class Log:
    """Append one structured event to the node's JSON-lines log."""
    event: str
    fields: dict[str, Any] = field(default_factory=dict)


Action = Send | Broadcast | Reply | Log
