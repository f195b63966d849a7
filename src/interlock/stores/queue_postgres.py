"""``Queue`` on PostgreSQL: ``FOR UPDATE SKIP LOCKED`` leases, LISTEN/NOTIFY wakes workers.

The row model is ``_queue_rows``'s, shared with the SQLite queue. Concurrent ``put`` calls are
grouped (``GroupCall``) into one multi-row ``INSERT ... SELECT FROM unnest(...) ON CONFLICT DO
NOTHING`` per transaction, so a burst of requests costs one commit.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from .._clock import Clock
from .._group import GroupCall
from . import _queue_rows as model
from ._postgres import PostgresStore, quote_ident
from .queue import DeadLetter, DeadLetterFilter, Failure, Lease, Message, QueueStats

__all__ = ["PostgresQueue"]


class PostgresQueue(model.SQLQueue, PostgresStore):
    """``Queue`` on PostgreSQL. ``dsn`` may carry ``?schema=name`` to keep the table there.
    Pass ``pool`` to share an existing asyncpg pool (it is then not closed by ``aclose``)."""

    def __init__(
        self,
        dsn: str,
        *,
        table: str = "interlock_events",
        schema: str | None = None,
        pool: Any = None,
        pool_size: int = 10,
        poll_interval: float = 1.0,
        max_batch: int = 4096,
        clock: Clock | None = None,
    ) -> None:
        model.SQLQueue.__init__(
            self, "PostgresQueue", table=table, poll_interval=poll_interval, max_batch=max_batch, clock=clock
        )
        PostgresStore.__init__(self, dsn, schema=schema, pool=pool, pool_size=pool_size)
        self._qualified = self.qualify(table)
        # NOTIFY channels are database-wide; the schema keeps two inboxes from waking each other.
        self.channel = f"{self.schema or 'public'}.{table}"[:63]
        self._listener: Any = None
        self._puts: GroupCall[tuple[Any, ...], bool] = GroupCall(self._insert, max_batch=max_batch)
        self._sql_put_dead = model.put_dead_sql(self._qualified, model.POSTGRES)

    # -- lifecycle -------------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the pool, create the table if missing and start listening for new work."""
        if self._pool is not None and self._listener is not None:
            return
        pool = await self._open_pool()
        t, name = self._qualified, self.table
        await self._create_tables(
            self.channel,
            f"""
            CREATE TABLE IF NOT EXISTS {t} (
                seq BIGSERIAL PRIMARY KEY,
                source TEXT NOT NULL,
                id TEXT NOT NULL,
                type TEXT NOT NULL,
                body BYTEA NOT NULL,
                headers TEXT NOT NULL,
                received_at DOUBLE PRECISION NOT NULL,
                ordering_key TEXT,
                state SMALLINT NOT NULL DEFAULT 0,
                attempts INTEGER NOT NULL DEFAULT 0,
                visible_at DOUBLE PRECISION NOT NULL DEFAULT 0,
                lease_token TEXT,
                errors JSONB NOT NULL DEFAULT '[]',
                finished_at DOUBLE PRECISION,
                UNIQUE (source, id)
            );
            CREATE INDEX IF NOT EXISTS {quote_ident(name + "_pending")} ON {t} (seq)
                WHERE state = 0;
            CREATE INDEX IF NOT EXISTS {quote_ident(name + "_order")} ON {t} (ordering_key, seq)
                WHERE state = 0 AND ordering_key IS NOT NULL;
            CREATE INDEX IF NOT EXISTS {quote_ident(name + "_dead")} ON {t} (finished_at)
                WHERE state = 2;
            CREATE INDEX IF NOT EXISTS {quote_ident(name + "_done")} ON {t} (finished_at)
                WHERE state = 1;
            """,
        )
        self._listener = await pool.acquire()
        await self._listener.add_listener(self.channel, self._on_notify)

    def _on_notify(self, *args: Any) -> None:
        self._signal.wake()

    async def aclose(self) -> None:
        """Finish the puts in flight, stop listening and close the pool if the queue opened it."""
        await self._puts.drain()
        if self._listener is not None:
            try:
                await self._listener.remove_listener(self.channel, self._on_notify)
            finally:
                await self._pool.release(self._listener)
                self._listener = None
        await self._close_pool()

    @property
    def pool(self) -> Any:
        """The asyncpg pool; raises when the queue is not open."""
        if self._pool is None:
            raise RuntimeError("PostgresQueue is not open: call `await queue.open()` first")
        return self._pool

    async def _notify(self, conn: Any) -> None:
        await conn.execute("SELECT pg_notify($1, '')", self.channel)

    # -- inbox (group commit) --------------------------------------------------------------------

    async def put(self, message: Message) -> bool:
        """Insert unless (source, id) is known, in one statement with the puts made meanwhile."""
        self.pool  # noqa: B018 - raise early when not open
        return await self._puts(model.put_row(message, self._clock.time()))

    async def _insert(self, rows: list[tuple[Any, ...]]) -> list[bool]:
        columns = list(zip(*rows, strict=True))
        # One statement, one round trip, its own transaction: insert what is new and notify
        # the workers (PostgreSQL folds identical notifications of a transaction into one).
        inserted = await self.pool.fetch(
            f"WITH ins AS (INSERT INTO {self._qualified}"
            " (source, id, type, body, headers, received_at, ordering_key)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::text[],"
            " $6::float8[], $7::text[]) ON CONFLICT (source, id) DO NOTHING RETURNING source, id)"
            " SELECT source, id, pg_notify($8, '') FROM ins",
            *(list(c) for c in columns),
            self.channel,
        )
        new = {(r["source"], r["id"]) for r in inserted}
        # The same (source, id) twice in one batch: only the first put stored it.
        results = []
        for row in rows:
            key = (row[0], row[1])
            results.append(key in new)
            new.discard(key)
        return results

    # -- work queue ------------------------------------------------------------------------------

    async def lease(self, max_messages: int, visibility: float) -> list[Lease]:
        """Take up to ``max_messages`` leasable rows (``SKIP LOCKED``), hidden ``visibility`` s."""
        t = self._qualified
        now = self._clock.time()
        expires = now + visibility
        rows = await self.pool.fetch(
            f"""
            WITH c AS (
                SELECT seq FROM {t} AS e
                WHERE state = 0 AND visible_at <= $1
                  AND (ordering_key IS NULL OR NOT EXISTS (
                        SELECT 1 FROM {t} AS p
                        WHERE p.state = 0 AND p.ordering_key = e.ordering_key AND p.seq < e.seq))
                ORDER BY seq LIMIT $2
                FOR UPDATE SKIP LOCKED
            )
            UPDATE {t} AS u SET visible_at = $3, attempts = u.attempts + 1,
                lease_token = u.seq::text || ':' || $4
            FROM c WHERE u.seq = c.seq
            RETURNING u.seq, u.source, u.id, u.type, u.body, u.headers, u.received_at,
                u.ordering_key, u.attempts, u.errors, u.lease_token
            """,
            now,
            max_messages,
            expires,
            os.urandom(8).hex(),
        )
        rows = sorted(rows, key=lambda r: r["seq"])
        return [
            Lease(model.message_of(r), r["attempts"], r["lease_token"], expires, model.failures_of(r["errors"])) for r in rows
        ]

    async def extend(self, lease: Lease, visibility: float) -> bool:
        """Push the lease's row out of sight for ``visibility`` s more, if the lease still holds."""
        status = await self.pool.execute(
            f"UPDATE {self._qualified} SET visible_at = $1 WHERE seq = $2 AND lease_token = $3 AND state = 0",
            self._clock.time() + visibility,
            model.lease_seq(lease),
            lease.token,
        )
        return bool(status == "UPDATE 1")

    async def ack(self, lease: Lease) -> bool:
        """Mark the row done (kept until ``prune`` for dedupe), if the lease still holds."""
        sql = (
            f"UPDATE {self._qualified} SET state = {model.DONE}, finished_at = $1, lease_token = NULL"
            " WHERE seq = $2 AND lease_token = $3 AND state = 0"
        )
        if lease.message.ordering_key is None:
            status = await self.pool.execute(sql, self._clock.time(), model.lease_seq(lease), lease.token)
            return bool(status == "UPDATE 1")
        async with self.pool.acquire() as conn, conn.transaction():
            status = await conn.execute(sql, self._clock.time(), model.lease_seq(lease), lease.token)
            if status == "UPDATE 1":
                await self._notify(conn)  # the next message with this key is leasable now
        return bool(status == "UPDATE 1")

    async def nack(self, lease: Lease, *, delay: float, error: str) -> bool:
        """Append the failure to the row's history and hide it for ``delay`` s."""
        now = self._clock.time()
        status = await self.pool.execute(
            f"UPDATE {self._qualified} SET visible_at = $1, lease_token = NULL,"
            " errors = errors || $2::jsonb WHERE seq = $3 AND lease_token = $4 AND state = 0",
            now + max(0.0, delay),
            model.failure_json(lease.attempt, now, error),
            model.lease_seq(lease),
            lease.token,
        )
        return bool(status == "UPDATE 1")

    async def dead_letter(self, lease: Lease, *, error: str) -> bool:
        """Append the failure to the row's history and mark it dead."""
        now = self._clock.time()
        async with self.pool.acquire() as conn, conn.transaction():
            status = await conn.execute(
                f"UPDATE {self._qualified} SET state = {model.DEAD}, finished_at = $1, lease_token = NULL,"
                " errors = errors || $2::jsonb WHERE seq = $3 AND lease_token = $4 AND state = 0",
                now,
                model.failure_json(lease.attempt, now, error),
                model.lease_seq(lease),
                lease.token,
            )
            if status == "UPDATE 1" and lease.message.ordering_key is not None:
                await self._notify(conn)
        return bool(status == "UPDATE 1")

    async def put_dead(self, message: Message, *, failures: Sequence[Failure]) -> None:
        """Insert (or overwrite) the message as a dead row carrying ``failures``."""
        await self.pool.execute(self._sql_put_dead, *model.dead_letter_row(message, failures, self._clock.time()))

    # -- dead letters ----------------------------------------------------------------------------

    async def dead_letters(
        self, where: DeadLetterFilter = DeadLetterFilter(), *, limit: int = 100, offset: int = 0
    ) -> list[DeadLetter]:
        """Matching dead rows, oldest dead first."""
        clause, params = model.dead_letter_where(where, model.POSTGRES)
        n = len(params)
        rows = await self.pool.fetch(
            f"SELECT {model.DEAD_COLUMNS} FROM {self._qualified} WHERE {clause}"
            f" ORDER BY finished_at, seq LIMIT ${n + 1} OFFSET ${n + 2}",
            *params,
            limit,
            offset,
        )
        return [model.dead_letter_of(r) for r in rows]

    async def count_dead(self, where: DeadLetterFilter = DeadLetterFilter()) -> int:
        """How many dead rows match."""
        clause, params = model.dead_letter_where(where, model.POSTGRES)
        return int(
            await self.pool.fetchval(f"SELECT count(*) FROM {self._qualified} WHERE {clause}", *params)
        )

    async def replay(self, where: DeadLetterFilter) -> int:
        """Make matching dead rows pending and visible now (attempts reset) and wake workers."""
        clause, params = model.dead_letter_where(where, model.POSTGRES, first=2)
        async with self.pool.acquire() as conn, conn.transaction():
            status = await conn.execute(
                f"UPDATE {self._qualified} SET state = {model.PENDING}, attempts = 0, visible_at = $1,"
                f" finished_at = NULL WHERE {clause}",
                self._clock.time(),
                *params,
            )
            count = int(status.split()[-1])
            if count:
                await self._notify(conn)
        return count

    async def purge(self, where: DeadLetterFilter) -> int:
        """Delete matching dead rows."""
        clause, params = model.dead_letter_where(where, model.POSTGRES)
        status = await self.pool.execute(f"DELETE FROM {self._qualified} WHERE {clause}", *params)
        return int(status.split()[-1])

    # -- housekeeping ----------------------------------------------------------------------------

    async def stats(self) -> QueueStats:
        """Counts of pending, in-flight and dead rows, and the oldest pending row's age."""
        t = self._qualified
        row = await self.pool.fetchrow(
            f"""
            SELECT
              (SELECT count(*) FROM {t} WHERE state = 0) AS pending,
              (SELECT count(*) FROM {t} WHERE state = 0 AND lease_token IS NOT NULL
                 AND visible_at > $1) AS in_flight,
              (SELECT count(*) FROM {t} WHERE state = 2) AS dead,
              (SELECT received_at FROM {t} WHERE state = 0 ORDER BY seq LIMIT 1) AS oldest
            """,
            self._clock.time(),
        )
        return QueueStats(int(row["pending"]), int(row["in_flight"]), int(row["dead"]), row["oldest"])

    async def prune(self, done_before: float) -> int:
        """Delete done rows finished before ``done_before``."""
        status = await self.pool.execute(
            f"DELETE FROM {self._qualified} WHERE state = {model.DONE} AND finished_at < $1", done_before
        )
        return int(status.split()[-1])

    def __repr__(self) -> str:
        state = "open" if self._pool is not None else "closed"
        return f"PostgresQueue(table={self._qualified}, {state})"
