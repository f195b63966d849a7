"""The ``Queue`` seam: the inbox, the work queue and the dead-letter queue behind one Protocol.

The Protocol is broker-shaped (put, lease with a visibility timeout, extend, ack, nack with a
delay, dead-letter, replay) rather than SQL-shaped, so Redis Streams, RabbitMQ or NATS
JetStream can implement it later. Every backend passes ``tests/contract/test_queue_contract.py``.

Guarantees a backend must give:

- ``put`` returns only once the message is durable; it returns ``False`` (and stores nothing)
  when a message with the same ``(source, id)`` was put before: that is the inbox's dedupe.
- ``lease`` hands a message to one consumer at a time; a lease that is neither extended nor
  settled before it expires makes the message leasable again, with ``attempt`` one higher.
- Messages with the same ``ordering_key`` are leased one at a time, in put order: the next one
  becomes leasable only once the one before it is acked or dead-lettered.
- Settling (``ack``/``nack``/``dead_letter``/``extend``) with a lease that has expired and been
  handed to someone else does nothing and returns ``False``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "DeadLetter",
    "DeadLetterFilter",
    "Failure",
    "Lease",
    "Message",
    "Queue",
    "QueueStats",
]

_INTERACTION_ID = re.compile(r"\binteraction_id=([0-9a-f]{8,64})\b")
"""How a call error names its interaction (``CallError``): ``interaction_id=...``."""


@dataclass(frozen=True, slots=True)
class Message:
    """One inbound event as the queue stores it."""

    source: str
    id: str
    """The delivery id; unique per source (the dedupe key)."""
    type: str
    body: bytes = field(repr=False)
    """Left out of the repr, as the headers are: either may carry what logs must not."""
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    received_at: float = 0.0
    """Wall-clock seconds since the epoch."""
    ordering_key: str | None = None
    """Messages sharing a key are handled one at a time, in put order."""


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed attempt, kept in the message's error history."""

    attempt: int
    at: float
    error: str

    def to_json(self) -> dict[str, Any]:
        """The failure as a JSON object: ``{"attempt": 2, "at": 1700000000.0, "error": "..."}``."""
        return {"attempt": self.attempt, "at": self.at, "error": self.error}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Failure:
        """The failure of a ``to_json`` object."""
        return cls(int(data["attempt"]), float(data["at"]), str(data["error"]))


@dataclass(frozen=True, slots=True)
class Lease:
    """A message handed to one consumer until ``expires_at`` (wall clock)."""

    message: Message
    attempt: int
    """1 for the first delivery; grows with every lease, including after an expired one."""
    token: str
    expires_at: float
    failures: tuple[Failure, ...] = ()


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message that failed for good, waiting in the dead-letter queue for replay or purge."""

    message: Message
    attempts: int
    """Attempts made before it was dead-lettered."""
    failures: tuple[Failure, ...]
    """Its error history, oldest first."""
    dead_at: float
    """Wall-clock seconds since the epoch."""

    @property
    def last_error(self) -> str:
        """The error of the last failed attempt ("" when there is no history)."""
        return self.failures[-1].error if self.failures else ""

    @property
    def interaction_ids(self) -> tuple[str, ...]:
        """The interaction-log ids named in its error history, oldest first: the outbound calls
        whose failure failed the handler (``interlock interactions --id ...`` shows them)."""
        found = (m.group(1) for f in self.failures for m in _INTERACTION_ID.finditer(f.error))
        return tuple(dict.fromkeys(found))


@dataclass(frozen=True, slots=True)
class DeadLetterFilter:
    """Which dead letters an operation applies to; empty fields match everything."""

    source: str | None = None
    type: str | None = None
    ids: Sequence[str] = ()
    since: float | None = None
    """Dead-lettered at or after this wall-clock time."""
    until: float | None = None
    error_contains: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "ids", tuple(self.ids))


@dataclass(frozen=True, slots=True)
class QueueStats:
    """A queue's depth, for metrics and ``interlock dlq``."""

    pending: int
    """Waiting or in flight (not yet acked or dead-lettered)."""
    in_flight: int
    """Pending messages leased right now (lease not yet expired)."""
    dead: int
    """Messages in the dead-letter queue."""
    oldest_pending_at: float | None
    """``received_at`` of the oldest pending message, for the 'age of the oldest event' metric."""


@runtime_checkable
class Queue(Protocol):
    """Inbox + work queue + dead-letter queue. See the module docstring for the contract."""

    async def open(self) -> None:
        """Connect and create the storage if missing; calling it on an open queue does nothing."""
        ...

    async def aclose(self) -> None:
        """Finish the writes in flight, then release connections and threads the queue opened."""
        ...

    async def put(self, message: Message) -> bool:
        """Store durably, leasable at once; ``False`` when ``(source, id)`` was put before
        (nothing stored). Returns only once the message survives a crash. A message the store
        cannot hold (text with a NUL or a lone surrogate) raises ``ValueError`` and fails only
        its own put, never the others committed with it."""
        ...

    async def lease(self, max_messages: int, visibility: float) -> list[Lease]:
        """Up to ``max_messages`` leasable messages in put order, each hidden from others for
        ``visibility`` s and its ``attempt`` counted; ``[]`` when none is leasable."""
        ...

    async def extend(self, lease: Lease, visibility: float) -> bool:
        """Heartbeat: push the lease's expiry to now + ``visibility``; False if it was lost."""
        ...

    async def ack(self, lease: Lease) -> bool:
        """Settle the message as handled: never leased again, its id still dedupes until
        ``prune``; ``False`` (and nothing changed) if the lease was lost."""
        ...

    async def nack(self, lease: Lease, *, delay: float, error: str) -> bool:
        """Append the failure to the message's history and make it leasable again after
        ``delay`` s; ``False`` if the lease was lost."""
        ...

    async def dead_letter(self, lease: Lease, *, error: str) -> bool:
        """Append the failure to the message's history and move it to the dead-letter queue;
        ``False`` if the lease was lost."""
        ...

    async def put_dead(self, message: Message, *, failures: Sequence[Failure]) -> None:
        """Store a message that failed elsewhere (a sync's poison record) straight in the
        dead-letter queue, replacing a dead letter with the same (source, id)."""
        ...

    async def wait(self, timeout: float) -> None:
        """Return when new messages may be leasable, or after ``timeout`` s at the latest. May
        return early; work put by another process must be noticed within a poll interval."""
        ...

    async def dead_letters(
        self, where: DeadLetterFilter = DeadLetterFilter(), *, limit: int = 100, offset: int = 0
    ) -> list[DeadLetter]:
        """Dead letters matching ``where``, the longest dead first: ``limit`` of them after
        skipping ``offset``."""
        ...

    async def count_dead(self, where: DeadLetterFilter = DeadLetterFilter()) -> int:
        """How many dead letters match ``where``."""
        ...

    async def replay(self, where: DeadLetterFilter) -> int:
        """Move matching dead letters back to the queue, leasable now (attempts reset, error
        history kept); how many moved. Wakes waiting consumers."""
        ...

    async def purge(self, where: DeadLetterFilter) -> int:
        """Delete matching dead letters for good; how many."""
        ...

    async def stats(self, source: str | None = None) -> QueueStats:
        """Pending, in-flight and dead counts and the oldest pending message's arrival, of the
        whole queue or of one ``source``'s messages."""
        ...

    async def prune(self, done_before: float | None, dead_before: float | None = None) -> int:
        """Forget acked messages settled before ``done_before`` (their ids stop deduping) and
        dead letters dead before ``dead_before`` (wall-clock times; ``None`` prunes none of
        that kind); how many in all. Pending messages are never pruned."""
        ...
