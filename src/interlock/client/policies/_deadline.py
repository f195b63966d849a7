"""Store operations of the cache and the rate limit, bounded by the call's deadline: a frozen
shared store (Redis that stopped answering) costs a call at most what it has left, never more.
The Redis clients' own socket timeouts (``stores._redis``) bound them when a call has none."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from ..._clock import Clock

__all__ = ["within_deadline"]

T = TypeVar("T")


async def within_deadline(deadline: float | None, clock: Clock, operation: Awaitable[T]) -> T:
    """Await ``operation`` until ``deadline`` (the clock's monotonic seconds; None: as long as it
    takes); ``TimeoutError`` when it is not done by then."""
    if deadline is None:
        return await operation
    async with asyncio.timeout(max(0.0, deadline - clock.monotonic())):
        return await operation
