"""Bounds requests in flight to one upstream, with a tighter bound for writes."""

from __future__ import annotations

import asyncio
from collections import deque

from ..._models import SAFE_METHODS, Request, Response
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
        every = self._all
        if request.method in SAFE_METHODS:
            # A read takes one slot: ``Slots.try_take`` inlined, this runs for every attempt.
            if every is not None:
                if every.used >= every.limit or every._waiters:
                    return False
                every.used += 1
            self.in_flight += 1
            return True
        writes = self._writes
        if writes is not None and not writes.try_take():
            return False
        if every is not None and not every.try_take():
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
        every = self._all
        if every is not None:
            if every._waiters:
                every.release()
            else:
                every.used -= 1  # ``Slots.release`` with nobody waiting, inlined
        if self._writes is not None and request.method not in SAFE_METHODS:
            self._writes.release()

    def __repr__(self) -> str:
        return f"<ConcurrencyLimiter in_flight={self.in_flight} {self.config}>"
