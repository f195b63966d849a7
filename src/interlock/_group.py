"""``GroupCall``: turn concurrent single calls into one batch call (group commit).

Records run as separate tasks, each asking the ledger about one record and storing one outcome;
a store answers a batch of N as fast as a batch of one. Calls made while a batch is in flight
form the next batch, so batches grow with load and nobody waits for a timer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["GroupCall"]

I = TypeVar("I")  # noqa: E741
R = TypeVar("R")


class GroupCall(Generic[I, R]):
    """Calls ``fn`` with every item asked for while the previous call was in flight.

    ``await group(item)`` answers with ``fn``'s result at the item's position; ``fn`` takes a list
    of at most ``max_batch`` items and returns one result per item, in order. When ``fn`` raises,
    every caller of that batch gets the exception. ``batches`` and ``calls`` count what was done.
    """

    def __init__(self, fn: Callable[[list[I]], Awaitable[Sequence[R]]], *, max_batch: int = 1000) -> None:
        self._fn = fn
        self.max_batch = max_batch
        self._pending: list[tuple[I, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.calls = 0

    def __call__(self, item: I) -> asyncio.Future[R]:
        fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, fut))
        if self._task is None:
            # Started now, run on the next loop iteration: calls made in this one join it.
            self._task = asyncio.get_running_loop().create_task(self._loop())
        return fut

    async def _loop(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                self.batches += 1
                self.calls += len(batch)
                try:
                    results = await self._fn([item for item, _ in batch])
                except Exception as exc:
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                for (_, fut), result in zip(batch, results, strict=True):
                    if not fut.done():
                        fut.set_result(result)
        finally:
            self._task = None

    async def drain(self) -> None:
        """Wait until every call made so far is answered."""
        while self._task is not None:
            await asyncio.shield(self._task)

    def __repr__(self) -> str:
        return f"GroupCall(pending={len(self._pending)}, batches={self.batches}, calls={self.calls})"
