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

import json
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


@dataclass(frozen=True, slots=True)
class Message:
    """One inbound event as the queue stores it."""

    source: str
    id: str
    """The delivery id; unique per source (the dedupe key)."""
    type: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
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
        return {"attempt": self.attempt, "at": self.at, "error": self.error}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Failure:
        return cls(int(data["attempt"]), float(data["at"]), str(data["error"]))


def failures_from_json(raw: str | bytes | None) -> tuple[Failure, ...]:
    if not raw:
        return ()
    return tuple(Failure.from_json(item) for item in json.loads(raw))


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
    message: Message
    attempts: int
    failures: tuple[Failure, ...]
    dead_at: float

    @property
    def last_error(self) -> str:
        return self.failures[-1].error if self.failures else ""


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
    pending: int
    """Waiting or in flight (not yet acked or dead-lettered)."""
    in_flight: int
    dead: int
    oldest_pending_at: float | None
    """``received_at`` of the oldest pending message, for the 'age of the oldest event' metric."""


@runtime_checkable
class Queue(Protocol):
    """Inbox + work queue + dead-letter queue. See the module docstring for the contract."""

    async def open(self) -> None: ...

    async def aclose(self) -> None: ...

    async def put(self, message: Message) -> bool:
        """Store durably; ``False`` when ``(source, id)`` was seen before (nothing stored)."""
        ...

    async def lease(self, max_messages: int, visibility: float) -> list[Lease]:
        """Up to ``max_messages`` messages, each hidden from others for ``visibility`` s."""
        ...

    async def extend(self, lease: Lease, visibility: float) -> bool:
        """Heartbeat: push the lease's expiry to now + ``visibility``; False if it was lost."""
        ...

    async def ack(self, lease: Lease) -> bool: ...

    async def nack(self, lease: Lease, *, delay: float, error: str) -> bool:
        """Record the failure and make the message leasable again after ``delay`` s."""
        ...

    async def dead_letter(self, lease: Lease, *, error: str) -> bool:
        """Record the failure and move the message to the dead-letter queue."""
        ...

    async def put_dead(self, message: Message, *, failures: Sequence[Failure]) -> None:
        """Store a message that failed elsewhere (a sync's poison record) straight in the
        dead-letter queue, replacing a dead letter with the same (source, id)."""
        ...

    async def wait(self, timeout: float) -> None:
        """Return when new messages may be leasable, or after ``timeout`` s."""
        ...

    async def dead_letters(
        self, where: DeadLetterFilter = DeadLetterFilter(), *, limit: int = 100, offset: int = 0
    ) -> list[DeadLetter]:
        """Oldest dead letters first."""
        ...

    async def count_dead(self, where: DeadLetterFilter = DeadLetterFilter()) -> int: ...

    async def replay(self, where: DeadLetterFilter) -> int:
        """Move matching dead letters back to the queue (attempts reset, history kept)."""
        ...

    async def purge(self, where: DeadLetterFilter) -> int:
        """Delete matching dead letters for good."""
        ...

    async def stats(self) -> QueueStats: ...

    async def prune(self, done_before: float) -> int:
        """Forget acked messages settled before this time (their ids stop deduping)."""
        ...


def dead_letter_row(message: Message, failures: Sequence[Failure], now: float) -> tuple[Any, ...]:
    """Column values for ``put_dead``, in the order both SQL queues insert them."""
    return (
        message.source,
        message.id,
        message.type,
        message.body,
        json.dumps(dict(message.headers), separators=(",", ":")),
        message.received_at or now,
        message.ordering_key,
        json.dumps([f.to_json() for f in failures], separators=(",", ":")),
        now,
        max((f.attempt for f in failures), default=1),
    )
