"""The dead-letter queue, as seen from Python: ``inbox.dlq.list()``, ``.inspect(id)``,
``.replay(id)``, ``.replay_where(...)``, ``.purge(...)``. The CLI (``interlock dlq``) drives
the same queue operations.

Every method that selects dead letters takes the same keywords, declared once in
``DeadLetterMatch`` (PEP 692 typed ``**kwargs``: editors and mypy know each of them).
"""

from __future__ import annotations

import builtins
from collections.abc import Awaitable, Callable, Sequence
from typing import TypedDict, Unpack

from ..stores.queue import DeadLetter, DeadLetterFilter, Queue

__all__ = ["DeadLetterMatch", "DeadLetters"]


class DeadLetterMatch(TypedDict, total=False):
    """Which dead letters a ``DeadLetters`` method applies to; left out, a field matches all."""

    source: str | None
    type: str | None
    """The event type (``invoice.paid``)."""
    ids: Sequence[str]
    """Delivery ids; empty matches every id."""
    since: float | None
    """Dead-lettered at or after this wall-clock time (seconds since the epoch)."""
    until: float | None
    """Dead-lettered before this wall-clock time."""
    error: str | None
    """A substring of the error history."""


class DeadLetters:
    """Inspect, replay and purge the dead letters of one queue (``inbox.dlq``).

    ``ready`` is awaited before each operation (the Inbox passes its ``open``, so the DLQ can
    be used before anything else has opened the queue).
    """

    def __init__(self, queue: Queue, ready: Callable[[], Awaitable[object]] | None = None) -> None:
        self._queue = queue
        self._ready = ready

    async def _q(self) -> Queue:
        if self._ready is not None:
            await self._ready()
        return self._queue

    @staticmethod
    def where(**match: Unpack[DeadLetterMatch]) -> DeadLetterFilter:
        """The queue's ``DeadLetterFilter`` for these keywords."""
        return DeadLetterFilter(
            source=match.get("source"),
            type=match.get("type"),
            ids=match.get("ids", ()),
            since=match.get("since"),
            until=match.get("until"),
            error_contains=match.get("error"),
        )

    async def list(self, *, limit: int = 100, offset: int = 0, **match: Unpack[DeadLetterMatch]) -> builtins.list[DeadLetter]:
        """Matching dead letters, oldest first, ``limit`` at a time from ``offset``."""
        return await (await self._q()).dead_letters(self.where(**match), limit=limit, offset=offset)

    async def count(self, **match: Unpack[DeadLetterMatch]) -> int:
        """How many dead letters match."""
        return await (await self._q()).count_dead(self.where(**match))

    async def inspect(self, id: str, *, source: str | None = None) -> DeadLetter | None:
        """The dead letter with delivery id ``id`` (of ``source``, if given), or ``None``."""
        found = await (await self._q()).dead_letters(self.where(source=source, ids=[id]), limit=1)
        return found[0] if found else None

    async def replay(self, id: str, *, source: str | None = None) -> int:
        """Send one dead letter back to the workers; returns how many were moved (0 or 1)."""
        return await (await self._q()).replay(self.where(source=source, ids=[id]))

    async def replay_where(self, **match: Unpack[DeadLetterMatch]) -> int:
        """Send every matching dead letter back to the workers (attempts start again from 1,
        the error history is kept); returns how many were moved."""
        return await (await self._q()).replay(self.where(**match))

    async def purge(self, **match: Unpack[DeadLetterMatch]) -> int:
        """Delete matching dead letters for good. With no argument, empties the DLQ."""
        return await (await self._q()).purge(self.where(**match))

    def __repr__(self) -> str:
        return f"DeadLetters({self._queue!r})"
