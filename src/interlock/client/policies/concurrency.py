"""Bounds requests in flight to one upstream, with a tighter bound for writes."""

from __future__ import annotations

import asyncio
from collections import deque

from ..._models import Request, Response
from .._config import Concurrency


class Slots:
    """A FIFO counting semaphore whose uncontended path is a plain call (no coroutine)."""

    __slots__ = ("_waiters", "limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    def try_take(self) -> bool:
        """Take a slot now if one is free and nobody waits; False otherwise."""
        if self.used < self.limit and not self._waiters:
            self.used += 1
            return True
        return False

    async def take(self) -> None:
        """Take a slot, waiting in line for one."""
        if self.try_take():
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the slot was handed over just as we were cancelled: pass it on
            else:
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        """Give a slot back, handing it straight to the first waiter."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # hand the slot over: ``used`` stays the same
                return
        self.used -= 1

    def __repr__(self) -> str:
        return f"<Slots {self.used}/{self.limit} waiting={len(self._waiters)}>"


class ConcurrencyLimiter:
    """A gate (see ``_pipeline.Gate``): all attempts share ``limit`` slots, writes also ``writes``."""

    def __init__(self, config: Concurrency) -> None:
        self.config = config
        self._all = Slots(config.limit) if config.limit else None
        self._writes = Slots(config.writes) if config.writes else None
        self.in_flight = 0

    def try_enter(self, request: Request) -> bool:
        """Take the attempt's slots now (a write takes one of each), or False to wait."""
        writes = None if request.is_safe else self._writes
        if writes is not None and not writes.try_take():
            return False
        if self._all is not None and not self._all.try_take():
            if writes is not None:
                writes.release()  # take both again, in order, on the slow path
            return False
        self.in_flight += 1
        return True

    async def enter(self, request: Request) -> None:
        """Wait for the attempt's slots, in order: the write slot first."""
        writes = None if request.is_safe else self._writes
        if writes is not None:
            await writes.take()
        if self._all is not None:
            try:
                await self._all.take()
            except BaseException:
                if writes is not None:
                    writes.release()
                raise
        self.in_flight += 1

    def exit(self, request: Request, response: Response | None, error: BaseException | None) -> None:
        """Give the attempt's slots back."""
        self.in_flight -= 1
        if self._all is not None:
            self._all.release()
        if not request.is_safe and self._writes is not None:
            self._writes.release()

    def __repr__(self) -> str:
        return f"<ConcurrencyLimiter in_flight={self.in_flight} {self.config}>"
