"""The testbed's change feed: every write and touch, in order, numbered from 1.

What an upstream's event stream replays: ``GET /events`` (server-sent events) and ``GET /ws``
(WebSocket) send each change as it happens, and after a ``Last-Event-ID`` (or a resume
message) the changes that followed it. Bounded: the last ``max_changes`` are kept; a consumer
resuming from an id older than that gets everything kept (as a real upstream's retention
window does).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Any

__all__ = ["Change", "ChangeFeed"]


@dataclass(frozen=True, slots=True)
class Change:
    """One change of one record."""

    seq: int
    """The change's position in the feed, from 1: the event id the streams send."""
    kind: str
    op: str
    """``created``, ``updated`` or ``deleted``."""
    record: dict[str, Any]
    """A copy of the record after the change (only ``id`` for a deletion)."""
    at: float
    """Wall-clock seconds when it happened."""

    @property
    def type(self) -> str:
        """The event type: ``{kind}.{op}`` (``customers.updated``)."""
        return f"{self.kind}.{self.op}"

    def to_dict(self) -> dict[str, Any]:
        """The event's JSON: id, type, the record, and when (epoch seconds)."""
        return {"id": self.seq, "type": self.type, "at": self.at, "data": self.record}


class ChangeFeed:
    """The last ``max_changes`` changes; ``wait(after)`` returns once there are newer ones."""

    def __init__(self, max_changes: int = 100_000) -> None:
        self._changes: deque[Change] = deque(maxlen=max_changes)
        self.last_seq = 0
        self._waiters: set[asyncio.Future[None]] = set()

    def append(self, kind: str, op: str, record: dict[str, Any], at: float) -> Change:
        """Record one change and wake the streams waiting for it."""
        self.last_seq += 1
        change = Change(self.last_seq, kind, op, record, at)
        self._changes.append(change)
        waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        return change

    def after(self, seq: int, limit: int = 1000) -> list[Change]:
        """Up to ``limit`` changes newer than ``seq``, oldest first."""
        changes = self._changes
        if not changes or seq >= self.last_seq:
            return []
        first = changes[0].seq
        start = max(0, seq - first + 1)
        return [changes[i] for i in range(start, min(len(changes), start + limit))]

    async def wait(self, seq: int, timeout: float) -> bool:
        """Wait up to ``timeout`` s for a change newer than ``seq``; whether there is one."""
        if self.last_seq > seq:
            return True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except TimeoutError:
            self._waiters.discard(waiter)
        return self.last_seq > seq

    def __len__(self) -> int:
        return len(self._changes)

    def __repr__(self) -> str:
        return f"ChangeFeed(kept={len(self._changes)}, last_seq={self.last_seq})"
