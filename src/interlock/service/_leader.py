"""Which process runs each sync's schedule when several share a PostgreSQL store.

With ``--workers N`` (and ``interlock worker`` on other machines) every process has the same
syncs; polling each from every process would list the upstream N times per interval. One
process runs a sync's schedule: the one holding its PostgreSQL advisory lock
(``pg_try_advisory_lock``, a session lock held by one connection of its own). The others try
again every ``retry_every`` seconds, so when the holder stops or dies (its connection closes,
the lock is released) another takes over. The holder checks its connection every
``retry_every`` seconds too, and stops its schedule once the connection is gone (the lock with
it). On a SQLite store there is one process, which runs every schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["SyncLeader", "lock_key"]

_log = logging.getLogger("interlock.service")


def lock_key(name: str) -> int:
    """The advisory lock key of sync ``name``: a signed 64-bit integer, stable across processes."""
    digest = hashlib.sha256(f"interlock:sync:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class SyncLeader:
    """Runs ``run()`` (a sync's schedule) only while this process holds the sync's lock on the
    PostgreSQL server at ``dsn`` (see the module docstring)."""

    def __init__(self, dsn: str, name: str, run: Callable[[], Coroutine[Any, Any, Any]], *, retry_every: float = 5.0) -> None:
        self.dsn = dsn
        self.name = name
        self._run = run
        self.retry_every = retry_every
        self.leading = False
        """Whether this process holds the lock (and runs the schedule) now."""

    async def serve(self) -> None:
        """Until cancelled: take the lock when free, run the schedule while it is held."""
        import asyncpg

        key = lock_key(self.name)
        while True:
            conn: Any = None
            try:
                conn = await asyncpg.connect(self.dsn, timeout=self.retry_every)
                locked = False
                while not locked:  # polled: PostgreSQL does not tell a waiter a lock was freed
                    locked = bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", key))
                    if not locked:
                        await asyncio.sleep(self.retry_every)
                self.leading = True
                task: asyncio.Task[Any] = asyncio.create_task(self._run(), name=f"interlock-sync-{self.name}")
                try:
                    while not task.done():
                        await asyncio.wait([task], timeout=self.retry_every)
                        if not task.done():
                            await conn.fetchval("SELECT 1", timeout=self.retry_every)
                finally:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
                    self.leading = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                _log.warning("sync %s: lost the PostgreSQL connection holding its lock: %s", self.name, type(exc).__name__)
                await asyncio.sleep(self.retry_every)
            finally:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close(timeout=self.retry_every)
