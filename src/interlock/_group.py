"""``GroupCall``: turn concurrent single calls into one batch call (group commit).

Callers each hand in one item (a record to look up, a row to write, a message to insert) and
wait for its own result; a store answers a batch of N about as fast as a batch of one. Calls
made while a batch is in flight form the next batch, so batches grow with load and nobody waits
for a timer. Used by the sync ledger, the PostgreSQL queue's ``put`` and the ``BatchWriter``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

__all__ = ["GroupCall"]

I = TypeVar("I")  # noqa: E741
R = TypeVar("R")


class _Many:
    """What ``call_many`` waits on: its future, resolved once ``left`` items are answered."""

    __slots__ = ("future", "left")

    def __init__(self, future: asyncio.Future[None], left: int) -> None:
        self.future = future
        self.left = left

    def answered(self) -> None:
        self.left -= 1
        if self.left == 0 and not self.future.done():
            self.future.set_result(None)

    def done(self) -> bool:
        return self.future.done()

    def set_exception(self, exc: BaseException) -> None:
        self.future.set_exception(exc)


class GroupCall(Generic[I, R]):
    """Calls ``fn`` with every item asked for while the previous call was in flight.

    ``await group(item)`` answers with ``fn``'s result at the item's position; ``fn`` takes a list
    of at most ``max_batch`` items and returns one result per item, in order. When ``fn`` raises,
    every caller of that batch gets the exception, and the next batch still runs. ``batches``
    and ``calls`` count what was done.

    ``max_in_flight`` > 1 lets a backlog (a full ``max_batch`` queued while a batch is in
    flight) go out in up to that many batches at once; ``key`` then names what must stay in
    order: an item whose key is in a batch in flight (or behind one held back) waits for a
    later batch, so two items of one key are never in flight together and go in queue order.
    """

    def __init__(
        self,
        fn: Callable[[list[I]], Awaitable[Sequence[R]]],
        *,
        max_batch: int = 1000,
        max_in_flight: int = 1,
        key: Callable[[I], Hashable] | None = None,
    ) -> None:
        if max_in_flight > 1 and key is None:
            raise ValueError("GroupCall: max_in_flight > 1 needs key= to keep items of one key in order")
        self._fn = fn
        self.max_batch = max_batch
        self.max_in_flight = max_in_flight
        self._key = key
        self._pending: list[tuple[I, asyncio.Future[R] | _Many | None]] = []
        self._flights = 0
        self._unstarted = 0  # flights started that have not taken their first batch yet
        self._flying_keys: list[set[Hashable]] = []  # one set per batch in flight (max_in_flight > 1)
        self._tasks: set[asyncio.Task[None]] = set()  # the flights, for drain()
        self.batches = 0
        self.calls = 0

    def __call__(self, item: I) -> asyncio.Future[R]:
        """Queue ``item`` and start a batch unless one is in flight; resolves to its result."""
        fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, fut))
        self.start()
        return fut

    def call_many(self, items: Sequence[I]) -> asyncio.Future[None]:
        """Queue ``items`` and start a batch unless one is in flight; resolves (to None, the
        results dropped) once every item is answered, or with the first error of a batch that
        held one. One future for all of them, however many batches they take."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not items:
            fut.set_result(None)
            return fut
        ticket = _Many(fut, len(items))
        self._pending.extend((item, ticket) for item in items)
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

    @property
    def in_flight(self) -> int:
        """Batches being answered now (flights that have not ended)."""
        return self._flights

    def start(self) -> None:
        """Start a batch of what is queued, unless one is in flight (it takes the queue next);
        with ``max_in_flight`` > 1, one more flight whenever items wait that the flights not
        yet under way will not take (each takes up to ``max_batch``), up to that many flights.

        So items never wait for a batch in flight to end while a flight is free: on a store
        whose commits are slow (a disk flush each), several batches commit at once.
        """
        pending = len(self._pending)
        while pending > self._unstarted * self.max_batch and self._flights < self.max_in_flight:
            self._flights += 1
            self._unstarted += 1
            # Started now, run on the next loop iteration: calls made in this one join it.
            task = asyncio.get_running_loop().create_task(self._flight())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _take(self) -> tuple[list[tuple[I, asyncio.Future[R] | _Many | None]], set[Hashable] | None]:
        """The next batch, and its keys when batches may fly together."""
        key, pending, size = self._key, self._pending, self.max_batch
        if key is None or not self._flying_keys:
            batch = pending[:size]
            del pending[:size]
            return batch, None if key is None else set(map(key, [item for item, _ in batch]))
        busy: set[Hashable] = set().union(*self._flying_keys)
        batch, keys, held, blocked = [], set(), [], set()
        for i, entry in enumerate(pending):
            if len(batch) >= size:
                held.extend(pending[i:])  # the rest keeps its place in the queue
                break
            k = key(entry[0])
            if k in busy or k in blocked:
                blocked.add(k)  # and every later item of this key waits too, to keep their order
                held.append(entry)
                continue
            batch.append(entry)
            keys.add(k)
        self._pending = held
        return batch, keys

    async def _flight(self) -> None:
        self._unstarted -= 1
        stalled = False
        try:
            while self._pending:
                batch, keys = self._take()
                if not batch:
                    stalled = True  # everything queued waits for a key in flight elsewhere
                    return
                if keys is not None:
                    self._flying_keys.append(keys)
                try:
                    await self._answer(batch)
                finally:
                    if keys is not None:
                        self._flying_keys.remove(keys)
                if self._flights > 1 and len(self._pending) < self.max_batch:
                    return  # the backlog is gone: the other flights (or a new one) take the rest
                self.start()  # a backlog that grew meanwhile may use another flight
        finally:
            self._flights -= 1
            if not stalled:
                self.start()  # items queued while the last batch flew, or held back for a key

    async def _answer(self, batch: list[tuple[I, asyncio.Future[R] | _Many | None]]) -> None:
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
            return
        for (_, fut), result in zip(batch, results, strict=True):
            if fut is None:
                continue
            if isinstance(fut, _Many):
                fut.answered()
            elif not fut.done():
                fut.set_result(result)

    async def drain(self) -> None:
        """Hand everything queued so far to ``fn`` and wait until it is answered."""
        self.start()
        while self._tasks:
            # wait(), not the tasks themselves: a drain that is cancelled leaves them running.
            await asyncio.wait(set(self._tasks))
            self.start()  # items added after the last batch was taken

    def __repr__(self) -> str:
        return (
            f"GroupCall(pending={len(self._pending)}, in_flight={self._flights}, "
            f"batches={self.batches}, calls={self.calls})"
        )
