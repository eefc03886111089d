"""Reliability helpers for the node core, as in 4.3BSD timed: sequence numbers, ACK
tracking with retransmission and exponential backoff, duplicate suppression.

Everything here is pure: time is always the caller's ``now`` in the node's *hardware*
seconds, and deadlines come back in the same time base.  This module knows nothing
about sockets, the wire format's bytes, authentication or the election; it only looks
at ``Message.seq`` and ``Message.type``.

Retransmission schedule (``initial`` = ``retransmit_initial_s``, ``k`` = attempts so
far, the first transmission being attempt 1, sent by the caller when it calls
``track``): attempt ``k + 1`` goes out ``initial * 2**(k - 1)`` seconds after attempt
``k``; after attempt ``max_tries`` the entry waits one more such interval and then
expires.  With the defaults (0.05 s, 4 tries) the sends are at +0, +0.05, +0.15, +0.35 s
and the entry expires at +0.75 s.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from dataclasses import dataclass, field

from .wire import Message

SEQ_MOD = 1 << 16


def seq_newer(a: int, b: int) -> bool:
    """True if u16 sequence number ``a`` is after ``b`` (RFC 1982 serial arithmetic)."""
    diff = (a - b) % SEQ_MOD
    return 0 < diff < SEQ_MOD // 2


class SeqCounter:
    """u16 sequence numbers that wrap 65535 -> 0.

    Start from a random value (``rng.randrange(65536)``) so a restarted sender does not
    reuse the numbers its peers' duplicate filters still remember.
    """

    __slots__ = ("_next",)

    def __init__(self, start: int = 0) -> None:
        if not isinstance(start, int) or not 0 <= start < SEQ_MOD:
            raise ValueError(f"sequence start {start!r} must be an int in [0, {SEQ_MOD})")
        self._next = start

    def next(self) -> int:
        """Return the next sequence number and advance (wrapping)."""
        value = self._next
        self._next = (value + 1) % SEQ_MOD
        return value

    def peek(self) -> int:
        """The number ``next()`` will return, without advancing."""
        return self._next


@dataclass(slots=True)
class _Pending:
    to: str
    msg: Message
    attempt: int        # transmissions made so far (1 = only the original send)
    due_s: float        # hardware s: next retransmission, or expiry once attempt == max_tries
    first_s: float      # hardware s of the original send


@dataclass(frozen=True, slots=True)
class Expired:
    """A tracked message that was sent ``attempts`` times and never acknowledged."""
    to: str
    msg: Message
    attempts: int
    first_sent_s: float


class Outbox:
    """Messages that wait for an acknowledgement, keyed by (peer name, seq)."""

    def __init__(self, retransmit_initial_s: float, max_tries: int) -> None:
        if not retransmit_initial_s > 0:
            raise ValueError(f"retransmit_initial_s must be > 0, got {retransmit_initial_s!r}")
        if not isinstance(max_tries, int) or max_tries < 1:
            raise ValueError(f"max_tries must be an int >= 1, got {max_tries!r}")
        self.retransmit_initial_s = float(retransmit_initial_s)
        self.max_tries = max_tries
        self._pending: dict[tuple[str, int], _Pending] = {}
        self._expired: list[Expired] = []
        # Lazy-deletion heap of (due_s, to, seq); stale rows are skipped when popped.
        self._heap: list[tuple[float, str, int]] = []

    def _interval(self, attempt: int) -> float:
        # Wait after transmission number `attempt` (1-based): initial, 2x, 4x, ...
        return self.retransmit_initial_s * (2 ** (attempt - 1))

    def track(self, to: str, msg: Message, now: float) -> None:
        """Remember ``msg`` that the caller has just sent to ``to`` (attempt 1) at ``now``."""
        key = (to, msg.seq)
        if key in self._pending:
            raise ValueError(f"already waiting for an ACK from {to!r} for seq {msg.seq}")
        entry = _Pending(to, msg, 1, now + self._interval(1), now)
        self._pending[key] = entry
        heapq.heappush(self._heap, (entry.due_s, to, msg.seq))

    def ack(self, from_name: str, seq: int) -> bool:
        """Settle the message with ``seq`` sent to ``from_name``; False if none was pending."""
        return self._pending.pop((from_name, seq), None) is not None

    def cancel_peer(self, name: str) -> int:
        """Forget everything pending for ``name`` (e.g. purged); returns how many."""
        keys = [k for k in self._pending if k[0] == name]
        for k in keys:
            del self._pending[k]
        return len(keys)

    def due(self, now: float) -> list[tuple[str, Message, int]]:
        """Retransmissions to send now: ``(to, msg, attempt)`` with attempt in 2..max_tries.

        Entries whose last wait has run out move to ``expired()``.
        """
        out: list[tuple[str, Message, int]] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            due_s, to, seq = heapq.heappop(heap)
            entry = self._pending.get((to, seq))
            if entry is None or entry.due_s != due_s:
                continue  # acked, cancelled or rescheduled since this row was pushed
            if entry.attempt >= self.max_tries:
                del self._pending[(to, seq)]
                self._expired.append(Expired(to, entry.msg, entry.attempt, entry.first_s))
                continue
            entry.attempt += 1
            # The next wait starts at this resend; a late timer (now > due_s) shifts the
            # rest of the schedule rather than firing a burst of catch-up resends.
            entry.due_s = max(due_s, now) + self._interval(entry.attempt)
            heapq.heappush(heap, (entry.due_s, to, seq))
            out.append((to, entry.msg, entry.attempt))
        return out

    def expired(self) -> list[Expired]:
        """Drain the messages that exhausted their tries (counted as missed replies)."""
        out, self._expired = self._expired, []
        return out

    def next_deadline(self) -> float | None:
        """Hardware seconds of the earliest retransmission or expiry, None if idle."""
        heap = self._heap
        while heap:
            due_s, to, seq = heap[0]
            entry = self._pending.get((to, seq))
            if entry is not None and entry.due_s == due_s:
                return due_s
            heapq.heappop(heap)  # stale row
        return None

    def pending(self, to: str | None = None) -> int:
        """How many messages wait for an ACK (from ``to`` only, if given)."""
        if to is None:
            return len(self._pending)
        return sum(1 for k in self._pending if k[0] == to)

    def __len__(self) -> int:
        return len(self._pending)


@dataclass(slots=True)
class _Seen:
    entries: OrderedDict[tuple[int, int], float] = field(default_factory=OrderedDict)


class DuplicateFilter:
    """Remembers recently seen (type, seq) per sender; bounded memory.

    A retransmission (same sender, type and seq) within ``ttl_s`` is a duplicate.  Memory
    is at most ``max_senders * per_sender`` entries: the oldest entry of a sender and the
    least recently heard sender are forgotten first.  ``ttl_s`` (hardware seconds) must
    exceed the longest retransmission schedule (0.75 s with the defaults) and be far
    shorter than the time a sender needs to wrap its u16 sequence numbers.
    """

    def __init__(self, per_sender: int = 64, max_senders: int = 256, ttl_s: float = 30.0) -> None:
        if per_sender < 1 or max_senders < 1 or not ttl_s > 0:
            raise ValueError("per_sender and max_senders must be >= 1 and ttl_s > 0")
        self.per_sender = per_sender
        self.max_senders = max_senders
        self.ttl_s = float(ttl_s)
        self._senders: OrderedDict[str, _Seen] = OrderedDict()

    def check(self, sender: str, msg_type: int, seq: int, now: float) -> bool:
        """Record (type, seq) from ``sender`` at ``now``; True if it was seen within ttl."""
        seen = self._senders.get(sender)
        if seen is None:
            seen = self._senders[sender] = _Seen()
            while len(self._senders) > self.max_senders:
                self._senders.popitem(last=False)
        else:
            self._senders.move_to_end(sender)
        entries = seen.entries
        # Entries are in insertion (= time) order: drop the ones older than ttl.
        while entries:
            first_key = next(iter(entries))
            if now - entries[first_key] <= self.ttl_s:
                break
            del entries[first_key]
        key = (int(msg_type), seq)
        if key in entries:
            return True
        entries[key] = now
        while len(entries) > self.per_sender:
            entries.popitem(last=False)
        return False

    def is_duplicate(self, msg: Message, now: float) -> bool:
        """``check`` for a decoded message, keyed by its sender name."""
        return self.check(msg.name, msg.type, msg.seq, now)

    def forget(self, sender: str) -> None:
        """Drop what is remembered for ``sender`` (e.g. it restarted with a new epoch)."""
        self._senders.pop(sender, None)

    def __len__(self) -> int:
        return sum(len(s.entries) for s in self._senders.values())
