"""``Queue`` on PostgreSQL: ``FOR UPDATE SKIP LOCKED`` leases, LISTEN/NOTIFY wakes workers.

The row model is ``_queue_rows``'s, shared with the SQLite queue. Concurrent ``put`` calls are
grouped (``GroupCall``) into one multi-row ``INSERT ... SELECT FROM unnest(...) ON CONFLICT DO
NOTHING`` per transaction, so a burst of requests costs one commit; a row the database refuses
fails only its own put (the batch is split until the bad row stands alone).

Every operation is bounded by ``command_timeout``, waiting for a connection included: a frozen
server fails calls with ``TimeoutError`` instead of holding them (and every put grouped behind
them) for ever. The LISTEN connection is re-established when it drops (a restart, a failover),
so workers keep being woken by NOTIFY rather than by polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Sequence
from typing import Any

from .._clock import Clock
from .._group import GroupCall
from .._lifecycle import opens_once
from ..errors import ConfigError
from . import _queue_rows as model
from ._postgres import PostgresStore, import_asyncpg, quote_ident
from .queue import DeadLetter, DeadLetterFilter, Failure, Lease, Message, QueueStats

__all__ = ["COMMAND_TIMEOUT", "PostgresQueue"]

log = logging.getLogger("interlock.stores")

COMMAND_TIMEOUT = 10.0
"""Seconds one queue operation may take on PostgreSQL, waiting for a connection included."""
_RELISTEN_MAX_DELAY = 5.0
"""The longest pause between two attempts to listen again after the LISTEN connection dropped."""

_Put = bool | Exception
"""What one row of a grouped insert came to: stored or not (a duplicate), or its own error."""


class PostgresQueue(model.SQLQueue, PostgresStore):
    """``Queue`` on PostgreSQL. ``dsn`` may carry ``?schema=name`` to keep the table there.
    Pass ``pool`` to share an existing asyncpg pool (it is then not closed by ``aclose``).

    ``command_timeout`` bounds every operation (connecting and waiting for a pooled connection
    included); one that runs out raises ``TimeoutError`` and its connection is closed."""

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
        command_timeout: float = COMMAND_TIMEOUT,
        clock: Clock | None = None,
    ) -> None:
        model.SQLQueue.__init__(
            self, "PostgresQueue", table=table, poll_interval=poll_interval, max_batch=max_batch, clock=clock
        )
        if not command_timeout > 0:
            raise ConfigError("PostgresQueue", "command_timeout", f"must be > 0 seconds, got {command_timeout!r}")
        PostgresStore.__init__(
            self, dsn, schema=schema, pool=pool, pool_size=pool_size, connect_timeout=command_timeout
        )
        self.command_timeout = command_timeout
        self._qualified = self.qualify(table)
        # NOTIFY channels are database-wide; the schema keeps two inboxes from waking each other.
        self.channel = f"{self.schema or 'public'}.{table}"[:63]
        self.listens = 0
        """Times LISTEN was established: 1 after ``open``, one more after each reconnection."""
        self.notifications = 0
        """NOTIFY messages received on the channel (each wakes the waiting consumers)."""
        self._listener: Any = None
        self._relisten: asyncio.Task[None] | None = None
        self._opened = False
        self._puts: GroupCall[tuple[Any, ...], _Put] = GroupCall(self._insert, max_batch=max_batch)
        self._sql_put_dead = model.put_dead_sql(self._qualified, model.POSTGRES)

    # -- lifecycle -------------------------------------------------------------------------------

    @opens_once
    async def open(self) -> None:
        """Open the pool, create the table if missing and start listening for new work."""
        await self._open_pool()
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
        await self._listen()
        self._opened = True

    async def _listen(self) -> None:
        """Take a connection of the pool for LISTEN and keep it; when it drops, listen again."""
        pool = self._pool
        async with asyncio.timeout(self.command_timeout):
            conn = await pool.acquire()
            try:
                await conn.add_listener(self.channel, self._on_notify)
            except BaseException:
                conn.terminate()
                await pool.release(conn)
                raise
        conn.add_termination_listener(self._on_listener_lost)
        self._listener = conn
        self.listens += 1
        if self.listens > 1:
            # Notifications sent while nobody listened are lost: look for work now.
            self._signal.wake()

    def _on_notify(self, *args: Any) -> None:
        self.notifications += 1
        self._signal.wake()

    def _on_listener_lost(self, conn: Any) -> None:
        if conn is not self._listener:
            return
        self._listener = None
        if self._opened and self._relisten is None:
            log.warning("the LISTEN connection of %s dropped; listening again", self.channel)
            self._relisten = asyncio.get_running_loop().create_task(self._listen_again(conn))

    async def _listen_again(self, dead: Any) -> None:
        # Real time, not the clock: on a fake clock a server that stays away would spin here.
        with contextlib.suppress(Exception):
            await self._pool.release(dead, timeout=self.command_timeout)
        delay = 0.05
        try:
            while self._opened:
                try:
                    await self._listen()
                    log.info("listening on %s again", self.channel)
                    return
                except Exception as exc:
                    log.warning("could not listen on %s yet, retrying in %.2f s: %r", self.channel, delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RELISTEN_MAX_DELAY)
        finally:
            self._relisten = None

    async def wait(self, timeout: float) -> None:
        """Return when woken (NOTIFY from any process, a local settle), or after
        ``min(timeout, poll_interval)`` s; a LISTEN connection found closed is replaced."""
        listener = self._listener
        if listener is not None and listener.is_closed():
            self._on_listener_lost(listener)
        await self._signal.wait(timeout)

    async def aclose(self) -> None:
        """Finish the puts in flight, stop listening and close the pool if the queue opened it."""
        await self._puts.drain()
        self._opened = False
        relisten, self._relisten = self._relisten, None
        if relisten is not None:
            relisten.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await relisten
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                if not listener.is_closed():
                    async with asyncio.timeout(self.command_timeout):
                        await listener.remove_listener(self.channel, self._on_notify)
            except (Exception, TimeoutError):
                listener.terminate()
            finally:
                with contextlib.suppress(Exception):
                    await self._pool.release(listener, timeout=self.command_timeout)
        if self._pool is not None and self._own_pool:
            try:
                await asyncio.wait_for(self._pool.close(), self.command_timeout)
            except TimeoutError:
                self._pool.terminate()  # a frozen server: close the sockets without a goodbye
            self._pool = None

    @property
    def pool(self) -> Any:
        """The asyncpg pool; raises when the queue is not open."""
        if self._pool is None:
            raise RuntimeError("PostgresQueue is not open: call `await queue.open()` first")
        return self._pool

    async def _notify(self, conn: Any) -> None:
        await conn.execute("SELECT pg_notify($1, '')", self.channel)

    def _conn(self, what: str) -> contextlib.AbstractAsyncContextManager[Any]:
        """A pooled connection for one operation, bounded by ``command_timeout``."""
        self.pool  # noqa: B018 - raise early when not open
        return self._bounded(self.command_timeout, what)

    @contextlib.asynccontextmanager
    async def _transaction(self, what: str) -> AsyncIterator[Any]:
        """A bounded connection inside a transaction, for the operations that also notify."""
        async with self._conn(what) as conn, conn.transaction():
            yield conn

    async def _fetch(self, what: str, sql: str, *args: Any) -> list[Any]:
        async with self._conn(what) as conn:
            return list(await conn.fetch(sql, *args))

    async def _fetchrow(self, what: str, sql: str, *args: Any) -> Any:
        async with self._conn(what) as conn:
            return await conn.fetchrow(sql, *args)

    async def _fetchval(self, what: str, sql: str, *args: Any) -> Any:
        async with self._conn(what) as conn:
            return await conn.fetchval(sql, *args)

    async def _execute(self, what: str, sql: str, *args: Any) -> str:
        async with self._conn(what) as conn:
            return str(await conn.execute(sql, *args))

    # -- inbox (group commit) --------------------------------------------------------------------

    async def put(self, message: Message) -> bool:
        """Insert unless (source, id) is known, in one statement with the puts made meanwhile."""
        self.pool  # noqa: B018 - raise early when not open
        model.check_storable(message)
        result = await self._puts(model.put_row(message, self._clock.time()))
        if isinstance(result, Exception):
            raise result
        return result

    async def _insert(self, rows: list[tuple[Any, ...]]) -> list[_Put]:
        try:
            return list(await self._insert_rows(rows))
        except Exception as exc:
            if len(rows) == 1 or not _row_error(exc):
                raise
        # The database refused a row of the batch (too long for the index, say): split the
        # batch until each refused row stands alone and fails only its own put.
        half = len(rows) // 2
        return [*await self._insert(rows[:half]), *await self._insert(rows[half:])]

    async def _insert_rows(self, rows: list[tuple[Any, ...]]) -> list[_Put]:
        columns = list(zip(*rows, strict=True))
        # One statement, one round trip, its own transaction: insert what is new and notify
        # the workers (PostgreSQL folds identical notifications of a transaction into one).
        try:
            async with self._conn("a put") as conn:
                inserted = await conn.fetch(
                    f"WITH ins AS (INSERT INTO {self._qualified}"
                    " (source, id, type, body, headers, received_at, ordering_key)"
                    " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::text[],"
                    " $6::float8[], $7::text[]) ON CONFLICT (source, id) DO NOTHING RETURNING source, id)"
                    " SELECT source, id, pg_notify($8, '') FROM ins",
                    *(list(c) for c in columns),
                    self.channel,
                )
        except Exception as exc:
            if len(rows) == 1 and _row_error(exc):
                return [ValueError(f"PostgreSQL refused the message {rows[0][0]}/{rows[0][1][:200]!r}: {_reason(exc)}")]
            raise
        new = {(r["source"], r["id"]) for r in inserted}
        # The same (source, id) twice in one batch: only the first put stored it.
        results: list[_Put] = []
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
        rows = await self._fetch(
            "a lease",
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
        status = await self._execute(
            "a lease extension",
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
            status = await self._execute("an ack", sql, self._clock.time(), model.lease_seq(lease), lease.token)
            return bool(status == "UPDATE 1")
        async with self._transaction("an ack") as conn:
            status = await conn.execute(sql, self._clock.time(), model.lease_seq(lease), lease.token)
            if status == "UPDATE 1":
                await self._notify(conn)  # the next message with this key is leasable now
        return bool(status == "UPDATE 1")

    async def nack(self, lease: Lease, *, delay: float, error: str) -> bool:
        """Append the failure to the row's history and hide it for ``delay`` s."""
        now = self._clock.time()
        status = await self._execute(
            "a nack",
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
        async with self._transaction("a dead-lettering") as conn:
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
        await self._execute(
            "a put of a dead letter", self._sql_put_dead, *model.dead_letter_row(message, failures, self._clock.time())
        )

    # -- dead letters ----------------------------------------------------------------------------

    async def dead_letters(
        self, where: DeadLetterFilter = DeadLetterFilter(), *, limit: int = 100, offset: int = 0
    ) -> list[DeadLetter]:
        """Matching dead rows, oldest dead first."""
        clause, params = model.dead_letter_where(where, model.POSTGRES)
        n = len(params)
        rows = await self._fetch(
            "a read of dead letters",
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
            await self._fetchval(
                "a count of dead letters", f"SELECT count(*) FROM {self._qualified} WHERE {clause}", *params
            )
        )

    async def replay(self, where: DeadLetterFilter) -> int:
        """Make matching dead rows pending and visible now (attempts reset) and wake workers."""
        clause, params = model.dead_letter_where(where, model.POSTGRES, first=2)
        async with self._transaction("a replay") as conn:
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
        status = await self._execute("a purge", f"DELETE FROM {self._qualified} WHERE {clause}", *params)
        return int(status.split()[-1])

    # -- housekeeping ----------------------------------------------------------------------------

    async def stats(self, source: str | None = None) -> QueueStats:
        """Counts of pending, in-flight and dead rows, and the oldest pending row's age, of the
        whole queue or of one ``source``."""
        t = self._qualified
        of_source = "AND ($2::text IS NULL OR source = $2)"
        row = await self._fetchrow(
            "a stats read",
            f"""
            SELECT
              (SELECT count(*) FROM {t} WHERE state = 0 {of_source}) AS pending,
              (SELECT count(*) FROM {t} WHERE state = 0 AND lease_token IS NOT NULL
                 AND visible_at > $1 {of_source}) AS in_flight,
              (SELECT count(*) FROM {t} WHERE state = 2 {of_source}) AS dead,
              (SELECT received_at FROM {t} WHERE state = 0 {of_source} ORDER BY seq LIMIT 1) AS oldest
            """,
            self._clock.time(),
            source,
        )
        return QueueStats(int(row["pending"]), int(row["in_flight"]), int(row["dead"]), row["oldest"])

    async def prune(self, done_before: float | None, dead_before: float | None = None) -> int:
        """Delete done rows finished before ``done_before`` and dead rows dead before
        ``dead_before``, ``PRUNE_CHUNK`` rows per statement."""

        async def delete(sql: str, before: float) -> int:
            return int((await self._execute("a prune", sql, before)).split()[-1])

        return await model.prune_in_chunks(delete, self._qualified, model.POSTGRES, done_before, dead_before)

    def __repr__(self) -> str:
        state = "open" if self._pool is not None else "closed"
        return f"PostgresQueue(table={self._qualified}, {state})"


def _row_error(exc: BaseException) -> bool:
    """Whether the database refused the data of a statement (class 22 data exception, 23
    integrity violation, 54 limit exceeded, or a value asyncpg could not encode), which one bad
    row causes, rather than failed to run it at all (connection lost, timeout)."""
    asyncpg = import_asyncpg()
    return isinstance(
        exc, asyncpg.DataError | asyncpg.IntegrityConstraintViolationError | asyncpg.ProgramLimitExceededError
    )


def _reason(exc: BaseException) -> str:
    """The database's own message for a refused row: asyncpg's client-side messages quote the
    parameters (headers included), so those are named by type only."""
    asyncpg = import_asyncpg()
    if isinstance(exc, asyncpg.PostgresError) and getattr(exc, "sqlstate", None):
        # The message only: its DETAIL may quote the row's values.
        return f"{exc.sqlstate}: {getattr(exc, 'message', '') or type(exc).__name__}"
    return type(exc).__name__
