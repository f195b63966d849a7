"""``GroupCall``: turn concurrent single calls into one batch call (group commit).

Callers each hand in one item (a record to look up, a row to write, a message to insert) and
wait for its own result; a store answers a batch of N about as fast as a batch of one. Calls
made while a batch is in flight form the next batch, so batches grow with load and nobody waits
for a timer. Used by the sync ledger, the PostgreSQL queue's ``put`` and the ``BatchWriter``.
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
    every caller of that batch gets the exception, and the next batch still runs. ``batches``
    and ``calls`` count what was done.
    """

    def __init__(self, fn: Callable[[list[I]], Awaitable[Sequence[R]]], *, max_batch: int = 1000) -> None:
        self._fn = fn
        self.max_batch = max_batch
        self._pending: list[tuple[I, asyncio.Future[R] | None]] = []
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.calls = 0

    def __call__(self, item: I) -> asyncio.Future[R]:
        """Queue ``item`` and start a batch unless one is in flight; resolves to its result."""
        fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, fut))
        self.start()
        return fut

    def add(self, item: I) -> None:
        """Queue ``item`` without waiting for its result and without starting a batch: it goes
        with the next batch that a call, ``start()`` or ``drain()`` begins (or the one running).
        Its result and any error are dropped, so ``fn`` must report failures itself."""
        self._pending.append((item, None))

    @property
    def pending(self) -> int:
        """Items queued and not yet handed to ``fn``."""
        return len(self._pending)

    def start(self) -> None:
        """Start a batch of what is queued, unless one is in flight (it takes the queue next)."""
        if self._task is None and self._pending:
            # Started now, run on the next loop iteration: calls made in this one join it.
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                self.batches += 1
                self.calls += len(batch)
                try:
                    results = await self._fn([item for item, _ in batch])
                    if len(results) != len(batch):
                        raise RuntimeError(f"{self._fn!r} answered {len(results)} of {len(batch)} items")
                except Exception as exc:
                    for _, fut in batch:
                        if fut is not None and not fut.done():
                            fut.set_exception(exc)
                    continue
                for (_, fut), result in zip(batch, results, strict=True):
                    if fut is not None and not fut.done():
                        fut.set_result(result)
        finally:
            self._task = None

    async def drain(self) -> None:
        """Hand everything queued so far to ``fn`` and wait until it is answered."""
        self.start()
        while self._task is not None:
            await asyncio.shield(self._task)
            self.start()  # items added after the last batch was taken

    def __repr__(self) -> str:
        return f"GroupCall(pending={len(self._pending)}, batches={self.batches}, calls={self.calls})"
