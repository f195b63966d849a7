"""``Queue`` on PostgreSQL: ``FOR UPDATE SKIP LOCKED`` leases, LISTEN/NOTIFY wakes workers.

Same row model as the SQLite queue (state pending/done/dead, a lease is a hidden row with a
token). Concurrent ``put`` calls are grouped into one multi-row ``INSERT ... SELECT FROM
unnest(...) ON CONFLICT DO NOTHING`` per transaction, so a burst of requests costs one commit.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Sequence
from typing import Any

from .._clock import SYSTEM_CLOCK, Clock
from ..errors import ConfigError
from ._postgres import create_pool, quote_ident, split_schema
from ._signal import WorkSignal
from .queue import (
    DeadLetter,
    DeadLetterFilter,
    Failure,
    Lease,
    Message,
    QueueStats,
    dead_letter_row,
    failures_from_json,
)

__all__ = ["PostgresQueue"]

PENDING, DONE, DEAD = 0, 1, 2
_COLUMNS = "seq, source, id, type, body, headers, received_at, ordering_key, attempts, errors"


def _message(row: Any) -> Message:
    return Message(
        source=row["source"],
        id=row["id"],
        type=row["type"],
        body=bytes(row["body"]),
        headers=json.loads(row["headers"]),
        received_at=row["received_at"],
        ordering_key=row["ordering_key"],
    )


def _failures(raw: Any) -> tuple[Failure, ...]:
    return failures_from_json(raw if isinstance(raw, str | bytes) else json.dumps(raw))


def _where(where: DeadLetterFilter, first: int = 1) -> tuple[str, list[Any]]:
    clauses, params = [f"state = {DEAD}"], []

    def arg(value: Any) -> str:
        params.append(value)
        return f"${first + len(params) - 1}"

    if where.source is not None:
        clauses.append(f"source = {arg(where.source)}")
    if where.type is not None:
        clauses.append(f"type = {arg(where.type)}")
    if where.ids:
        clauses.append(f"id = ANY({arg(list(where.ids))}::text[])")
    if where.since is not None:
        clauses.append(f"finished_at >= {arg(where.since)}")
    if where.until is not None:
        clauses.append(f"finished_at < {arg(where.until)}")
    if where.error_contains:
        clauses.append(f"strpos(errors::text, {arg(where.error_contains)}) > 0")
    return " AND ".join(clauses), params


class PostgresQueue:
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
        if poll_interval <= 0:
            raise ConfigError("PostgresQueue", "poll_interval", f"must be > 0 seconds, got {poll_interval!r}")
        self.dsn, dsn_schema = split_schema(dsn)
        self.schema = schema or dsn_schema
        self.table = table
        self.poll_interval = poll_interval
        self.max_batch = max_batch
        self._clock = clock or SYSTEM_CLOCK
        """Wall-clock readings for received, visible, leased and dead-lettered times."""
        self.pool_size = pool_size
        self._qualified = (
            f"{quote_ident(self.schema)}.{quote_ident(table)}" if self.schema else quote_ident(table)
        )
        # NOTIFY channels are database-wide; the schema keeps two inboxes from waking each other.
        self.channel = f"{self.schema or 'public'}.{table}"[:63]
        self._pool = pool
        self._own_pool = pool is None
        self._listener: Any = None
        self._signal = WorkSignal(poll_interval)
        self._pending_puts: list[tuple[tuple[Any, ...], asyncio.Future[bool]]] = []
        self._flusher: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    async def open(self) -> None:
        if self._pool is not None and self._listener is not None:
            return
        if self._pool is None:
            self._pool = await create_pool(self.dsn, min_size=1, max_size=self.pool_size)
        t, name = self._qualified, self.table
        async with self._pool.acquire() as conn, conn.transaction():
            # Serialise schema creation between processes starting at the same moment.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", self.channel)
            await conn.execute(
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
                """
            )
        self._listener = await self._pool.acquire()
        await self._listener.add_listener(self.channel, self._on_notify)

    def _on_notify(self, *args: Any) -> None:
        self._signal.wake()

    async def aclose(self) -> None:
        if self._flusher is not None:
            await asyncio.shield(self._flusher)
        if self._listener is not None:
            try:
                await self._listener.remove_listener(self.channel, self._on_notify)
            finally:
                await self._pool.release(self._listener)
                self._listener = None
        if self._pool is not None and self._own_pool:
            await self._pool.close()
            self._pool = None

    async def __aenter__(self) -> PostgresQueue:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def pool(self) -> Any:
        if self._pool is None:
            raise RuntimeError("PostgresQueue is not open: call `await queue.open()` first")
        return self._pool

    async def _notify(self, conn: Any) -> None:
        await conn.execute("SELECT pg_notify($1, '')", self.channel)

    # -- inbox (group commit) --------------------------------------------------------------------

    async def put(self, message: Message) -> bool:
        self.pool  # noqa: B018 - raise early when not open
        row = (
            message.source,
            message.id,
            message.type,
            message.body,
            json.dumps(dict(message.headers), separators=(",", ":")),
            message.received_at or self._clock.time(),
            message.ordering_key,
        )
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending_puts.append((row, fut))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_puts())
        return await fut

    async def _flush_puts(self) -> None:
        try:
            while self._pending_puts:
                batch = self._pending_puts[: self.max_batch]
                del self._pending_puts[: self.max_batch]
                try:
                    inserted = await self._insert(batch)
                except Exception as exc:
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                seen: set[tuple[str, str]] = set()
                for row, fut in batch:
                    key = (row[0], row[1])
                    fresh = key in inserted and key not in seen
                    seen.add(key)
                    if not fut.done():
                        fut.set_result(fresh)
        finally:
            self._flusher = None

    async def _insert(
        self, batch: list[tuple[tuple[Any, ...], asyncio.Future[bool]]]
    ) -> set[tuple[str, str]]:
        columns = list(zip(*(row for row, _ in batch), strict=True))
        # One statement, one round trip, its own transaction: insert what is new and notify
        # the workers (PostgreSQL folds identical notifications of a transaction into one).
        rows = await self.pool.fetch(
            f"WITH ins AS (INSERT INTO {self._qualified}"
            " (source, id, type, body, headers, received_at, ordering_key)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::text[],"
            " $6::float8[], $7::text[]) ON CONFLICT (source, id) DO NOTHING RETURNING source, id)"
            " SELECT source, id, pg_notify($8, '') FROM ins",
            *(list(c) for c in columns),
            self.channel,
        )
        return {(r["source"], r["id"]) for r in rows}

    # -- work queue ------------------------------------------------------------------------------

    async def lease(self, max_messages: int, visibility: float) -> list[Lease]:
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
            Lease(_message(r), r["attempts"], r["lease_token"], expires, _failures(r["errors"])) for r in rows
        ]

    @staticmethod
    def _seq(lease: Lease) -> int:
        return int(lease.token.partition(":")[0])

    async def extend(self, lease: Lease, visibility: float) -> bool:
        status = await self.pool.execute(
            f"UPDATE {self._qualified} SET visible_at = $1 WHERE seq = $2 AND lease_token = $3 AND state = 0",
            self._clock.time() + visibility,
            self._seq(lease),
            lease.token,
        )
        return bool(status == "UPDATE 1")

    async def ack(self, lease: Lease) -> bool:
        sql = (
            f"UPDATE {self._qualified} SET state = {DONE}, finished_at = $1, lease_token = NULL"
            " WHERE seq = $2 AND lease_token = $3 AND state = 0"
        )
        if lease.message.ordering_key is None:
            status = await self.pool.execute(sql, self._clock.time(), self._seq(lease), lease.token)
            return bool(status == "UPDATE 1")
        async with self.pool.acquire() as conn, conn.transaction():
            status = await conn.execute(sql, self._clock.time(), self._seq(lease), lease.token)
            if status == "UPDATE 1":
                await self._notify(conn)  # the next message with this key is leasable now
        return bool(status == "UPDATE 1")

    async def nack(self, lease: Lease, *, delay: float, error: str) -> bool:
        now = self._clock.time()
        failure = json.dumps([Failure(lease.attempt, now, error).to_json()])
        status = await self.pool.execute(
            f"UPDATE {self._qualified} SET visible_at = $1, lease_token = NULL,"
            " errors = errors || $2::jsonb WHERE seq = $3 AND lease_token = $4 AND state = 0",
            now + max(0.0, delay),
            failure,
            self._seq(lease),
            lease.token,
        )
        return bool(status == "UPDATE 1")

    async def dead_letter(self, lease: Lease, *, error: str) -> bool:
        now = self._clock.time()
        failure = json.dumps([Failure(lease.attempt, now, error).to_json()])
        async with self.pool.acquire() as conn, conn.transaction():
            status = await conn.execute(
                f"UPDATE {self._qualified} SET state = {DEAD}, finished_at = $1, lease_token = NULL,"
                " errors = errors || $2::jsonb WHERE seq = $3 AND lease_token = $4 AND state = 0",
                now,
                failure,
                self._seq(lease),
                lease.token,
            )
            if status == "UPDATE 1" and lease.message.ordering_key is not None:
                await self._notify(conn)
        return bool(status == "UPDATE 1")

    async def put_dead(self, message: Message, *, failures: Sequence[Failure]) -> None:
        await self.pool.execute(
            f"INSERT INTO {self._qualified} (source, id, type, body, headers, received_at, ordering_key, errors, finished_at, attempts, state, visible_at)"
            f" VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10, {DEAD}, 0)"
            f" ON CONFLICT (source, id) DO UPDATE SET state = {DEAD}, type = excluded.type, body = excluded.body,"
            " headers = excluded.headers, errors = excluded.errors, finished_at = excluded.finished_at,"
            " attempts = excluded.attempts, lease_token = NULL",
            *dead_letter_row(message, failures, self._clock.time()),
        )

    async def wait(self, timeout: float) -> None:
        await self._signal.wait(timeout)

    # -- dead letters ----------------------------------------------------------------------------

    async def dead_letters(
        self, where: DeadLetterFilter = DeadLetterFilter(), *, limit: int = 100, offset: int = 0
    ) -> list[DeadLetter]:
        clause, params = _where(where)
        n = len(params)
        rows = await self.pool.fetch(
            f"SELECT {_COLUMNS}, finished_at FROM {self._qualified} WHERE {clause}"
            f" ORDER BY finished_at, seq LIMIT ${n + 1} OFFSET ${n + 2}",
            *params,
            limit,
            offset,
        )
        return [
            DeadLetter(_message(r), r["attempts"], _failures(r["errors"]), r["finished_at"]) for r in rows
        ]

    async def count_dead(self, where: DeadLetterFilter = DeadLetterFilter()) -> int:
        clause, params = _where(where)
        return int(
            await self.pool.fetchval(f"SELECT count(*) FROM {self._qualified} WHERE {clause}", *params)
        )

    async def replay(self, where: DeadLetterFilter) -> int:
        clause, params = _where(where, first=2)
        async with self.pool.acquire() as conn, conn.transaction():
            status = await conn.execute(
                f"UPDATE {self._qualified} SET state = {PENDING}, attempts = 0, visible_at = $1,"
                f" finished_at = NULL WHERE {clause}",
                self._clock.time(),
                *params,
            )
            count = int(status.split()[-1])
            if count:
                await self._notify(conn)
        return count

    async def purge(self, where: DeadLetterFilter) -> int:
        clause, params = _where(where)
        status = await self.pool.execute(f"DELETE FROM {self._qualified} WHERE {clause}", *params)
        return int(status.split()[-1])

    # -- housekeeping ----------------------------------------------------------------------------

    async def stats(self) -> QueueStats:
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
        status = await self.pool.execute(
            f"DELETE FROM {self._qualified} WHERE state = {DONE} AND finished_at < $1", done_before
        )
        return int(status.split()[-1])

    def __repr__(self) -> str:
        state = "open" if self._pool is not None else "closed"
        return f"PostgresQueue(table={self._qualified}, {state})"
