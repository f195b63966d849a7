"""The dead-letter queue, as seen from Python: ``inbox.dlq.list()``, ``.inspect(id)``,
``.replay(id)``, ``.replay_where(...)``, ``.purge(...)``. The CLI (``interlock dlq``) drives
the same object."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence

from ..stores.queue import DeadLetter, DeadLetterFilter, Queue

__all__ = ["DeadLetter", "DeadLetterFilter", "DeadLetters"]


class DeadLetters:
    def __init__(self, queue: Callable[[], Queue], ensure_open: Callable[[], object] | None = None) -> None:
        self._queue = queue
        self._ensure_open = ensure_open

    async def _q(self) -> Queue:
        if self._ensure_open is not None:
            result = self._ensure_open()
            if hasattr(result, "__await__"):
                await result
        return self._queue()

    @staticmethod
    def where(
        *,
        source: str | None = None,
        type: str | None = None,
        ids: Sequence[str] = (),
        since: float | None = None,
        until: float | None = None,
        error: str | None = None,
    ) -> DeadLetterFilter:
        return DeadLetterFilter(source=source, type=type, ids=ids, since=since, until=until, error_contains=error)

    async def list(
        self,
        *,
        source: str | None = None,
        type: str | None = None,
        since: float | None = None,
        until: float | None = None,
        error: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> builtins.list[DeadLetter]:
        """Oldest first. ``error`` matches a substring of the error history."""
        where = self.where(source=source, type=type, since=since, until=until, error=error)
        return await (await self._q()).dead_letters(where, limit=limit, offset=offset)

    async def count(
        self,
        *,
        source: str | None = None,
        type: str | None = None,
        since: float | None = None,
        until: float | None = None,
        error: str | None = None,
    ) -> int:
        where = self.where(source=source, type=type, since=since, until=until, error=error)
        return await (await self._q()).count_dead(where)

    async def inspect(self, id: str, *, source: str | None = None) -> DeadLetter | None:
        found = await (await self._q()).dead_letters(DeadLetterFilter(source=source, ids=[id]), limit=1)
        return found[0] if found else None

    async def replay(self, id: str, *, source: str | None = None) -> int:
        """Send one dead letter back to the workers; returns how many were moved (0 or 1)."""
        return await (await self._q()).replay(DeadLetterFilter(source=source, ids=[id]))

    async def replay_where(
        self,
        *,
        source: str | None = None,
        type: str | None = None,
        ids: Sequence[str] = (),
        since: float | None = None,
        until: float | None = None,
        error: str | None = None,
    ) -> int:
        where = self.where(source=source, type=type, ids=ids, since=since, until=until, error=error)
        return await (await self._q()).replay(where)

    async def purge(
        self,
        *,
        source: str | None = None,
        type: str | None = None,
        ids: Sequence[str] = (),
        since: float | None = None,
        until: float | None = None,
        error: str | None = None,
    ) -> int:
        """Delete matching dead letters for good. With no argument, empties the DLQ."""
        where = self.where(source=source, type=type, ids=ids, since=since, until=until, error=error)
        return await (await self._q()).purge(where)

    def __repr__(self) -> str:
        return "DeadLetters()"
