"""The relay: moves committed outbox rows from the application's database into the queue.

A round reads the oldest rows (``seq`` order), puts each one's messages into the queue, then
deletes the rows. Rows sharing a key are put one after another in ``seq`` order (so the
queue's ordering key keeps their order); the others are put concurrently. The queue returns
from ``put`` only once the message is durable, and dedupes on the event id, so:

- a relay that dies after some puts and before its delete leaves the rows, and the next round
  (in this process or another) puts them again: the queue drops the copies;
- a rolled-back transaction left no row, so nothing is put for it;
- several relays may run (one per worker process): on PostgreSQL a transaction-scoped advisory
  lock lets one round run at a time, the others find the lock taken and wait for the next
  round; on SQLite they may overlap, which the dedupe makes harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import zlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ..stores import connect_sqlite
from ._table import OutboxRow, Statements

__all__ = ["PostgresRelayStore", "RelayStore", "SQLiteRelayStore", "relay_rows"]

log = logging.getLogger("interlock.outbox")

Put = Callable[[OutboxRow], Awaitable[None]]


async def relay_rows(rows: Sequence[OutboxRow], put: Put) -> None:
    """Put every row, keeping ``seq`` order among rows of one key; others run concurrently."""
    chains: dict[str | None, list[OutboxRow]] = {}
    singles: list[OutboxRow] = []
    for row in rows:
        if row.key is None:
            singles.append(row)
        else:
            chains.setdefault(row.key, []).append(row)

    async def chain(of: list[OutboxRow]) -> None:
        for row in of:
            await put(row)

    await asyncio.gather(*(chain(c) for c in chains.values()), *(put(row) for row in singles))


class RelayStore:
    """Where the relay reads and deletes rows: the application's database."""

    async def open(self) -> None:
        """Connect and create the outbox table if missing."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Disconnect."""
        raise NotImplementedError

    async def round(self, limit: int, put: Put) -> int:
        """Relay up to ``limit`` rows with ``put``, then delete them; how many were relayed."""
        raise NotImplementedError

    async def count(self) -> int:
        """Rows waiting in the outbox."""
        raise NotImplementedError

    async def wait(self, timeout: float) -> None:
        """Return when rows may have been committed (a NOTIFY), or after ``timeout`` s."""
        await asyncio.sleep(timeout)


class SQLiteRelayStore(RelayStore):
    """The outbox table in a SQLite file, read by a connection of the relay's own (in a thread)."""

    def __init__(self, path: str, sql: Statements) -> None:
        self.path = path
        self.sql = sql
        self._conn: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        """Open the file (WAL, so the application's writers never wait on the relay's reads)."""
        if self._conn is not None:
            return

        def connect() -> sqlite3.Connection:
            conn = connect_sqlite(self.path)
            conn.execute(self.sql.create)
            return conn

        self._conn = await asyncio.to_thread(connect)

    async def aclose(self) -> None:
        """Close the relay's connection."""
        conn, self._conn = self._conn, None
        if conn is not None:
            await asyncio.to_thread(conn.close)

    def _need(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("the outbox relay is not open: call `await outbox.open()` first")
        return self._conn

    async def round(self, limit: int, put: Put) -> int:
        """Read, put, delete; the read takes no lock, so the application never waits on it."""
        conn = self._need()
        async with self._lock:
            raw = await asyncio.to_thread(lambda: conn.execute(self.sql.select, (limit,)).fetchall())
            rows = [OutboxRow(r[0], r[1], r[2], r[3], bytes(r[4]), r[5]) for r in raw]
            if not rows:
                return 0
            await relay_rows(rows, put)
            seqs = [row.seq for row in rows]

            def delete() -> None:
                for i in range(0, len(seqs), 500):
                    chunk = seqs[i : i + 500]
                    conn.execute(self.sql.delete + "(" + ",".join("?" * len(chunk)) + ")", chunk)

            await asyncio.to_thread(delete)
            return len(rows)

    async def count(self) -> int:
        """Rows waiting."""
        conn = self._need()
        return int(await asyncio.to_thread(lambda: conn.execute(self.sql.count).fetchone()[0]))


class PostgresRelayStore(RelayStore):
    """The outbox table in PostgreSQL, read by connections of the relay's own (asyncpg).

    ``channel`` is the NOTIFY channel ``Outbox.add`` signals in the application's transaction:
    PostgreSQL delivers it only when that transaction commits, so the relay wakes for
    committed rows only.
    """

    def __init__(self, dsn: str, sql: Statements, *, channel: str, schema: str | None) -> None:
        self.dsn = dsn
        self.sql = sql
        self.channel = channel
        self.schema = schema
        self.lock_id = zlib.crc32(f"interlock-outbox:{sql.select}".encode())
        self._conn: Any = None
        self._listener: Any = None
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        """Connect twice (rounds, LISTEN) and create the table (and schema) if missing."""
        if self._conn is not None:
            return
        import asyncpg

        self._conn = await asyncpg.connect(self.dsn)
        if self.schema:
            with contextlib.suppress(asyncpg.UniqueViolationError, asyncpg.DuplicateSchemaError):
                await self._conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
        # Two relays creating the table at once may race on the catalog: the loser's table exists.
        with contextlib.suppress(asyncpg.UniqueViolationError, asyncpg.DuplicateTableError):
            await self._conn.execute(self.sql.create)
        self._listener = await asyncpg.connect(self.dsn)
        await self._listener.add_listener(self.channel, lambda *_: self._wake.set())

    async def aclose(self) -> None:
        """Close both connections."""
        conn, listener, self._conn, self._listener = self._conn, self._listener, None, None
        for c in (listener, conn):
            if c is not None:
                with contextlib.suppress(Exception):
                    await c.close()

    async def round(self, limit: int, put: Put) -> int:
        """In one transaction of the relay's: take the advisory lock (or return 0), read, put, delete."""
        if self._conn is None:
            raise RuntimeError("the outbox relay is not open: call `await outbox.open()` first")
        conn = self._conn
        async with self._lock, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", self.lock_id):
                return 0  # another relay is in a round
            raw = await conn.fetch(self.sql.select, limit)
            rows = [OutboxRow(r[0], r[1], r[2], r[3], bytes(r[4]), r[5]) for r in raw]
            if not rows:
                return 0
            await relay_rows(rows, put)
            await conn.execute(self.sql.delete, [row.seq for row in rows])
            return len(rows)

    async def count(self) -> int:
        """Rows waiting."""
        if self._conn is None:
            raise RuntimeError("the outbox relay is not open: call `await outbox.open()` first")
        async with self._lock:
            return int(await self._conn.fetchval(self.sql.count))

    async def wait(self, timeout: float) -> None:
        """Until a NOTIFY from a committed ``add``, or ``timeout`` s."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()
