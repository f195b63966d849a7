"""Helpers for testing code that uses Interlock.

- ``MockTransport(handler)`` (with ``respond``): a Client whose upstream is a function of the
  request; every policy still runs.
- ``set_testing(True, attempts=...)``: testing mode for every client, no waits between
  attempts and few attempts, so code that retries finishes at once (also a context manager).
- ``FakeClock``: time that moves only when told to, for ``clock=`` arguments.
- ``temporary_schema``: a throwaway PostgreSQL schema.

The simulated third-party API for end-to-end tests is ``interlock.testbed``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from .client.policies.retry import is_testing, set_testing
from .client.transports import MockTransport, Responder, respond

__all__ = [
    "FakeClock",
    "MockTransport",
    "Responder",
    "is_testing",
    "respond",
    "set_testing",
    "temporary_schema",
]


class FakeClock:
    """A clock that only moves when told to. ``sleep`` advances it instantly."""

    def __init__(self, start: float = 1_000.0, wall: float = 1_700_000_000.0) -> None:
        self._now = start
        self._wall_offset = wall - start
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        """The fake monotonic time, in seconds."""
        return self._now

    def time(self) -> float:
        """The fake wall-clock time (epoch seconds), moving with ``monotonic``."""
        return self._now + self._wall_offset

    def advance(self, seconds: float) -> None:
        """Move both clocks forward by ``seconds``."""
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        self._now += seconds

    async def sleep(self, seconds: float) -> None:
        """Record the sleep in ``sleeps``, advance the clock by it and yield once."""
        self.sleeps.append(seconds)
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"FakeClock(monotonic={self._now:.3f})"


@asynccontextmanager
async def temporary_schema(dsn: str, prefix: str = "itest") -> AsyncIterator[str]:
    """A fresh PostgreSQL schema for one test (``prefix_<random>``), dropped with all it holds
    afterwards, so test runs never see each other's tables. Needs ``interlock[postgres]``."""
    import asyncpg

    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
    finally:
        await conn.close()
    try:
        yield schema
    finally:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()
