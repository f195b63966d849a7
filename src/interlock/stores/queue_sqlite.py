"""The default ``Queue``: one SQLite file in WAL mode, commits shared between concurrent calls.

The row model (states, leases as hidden rows, the error history) is ``_queue_rows``'s, shared
with the PostgreSQL queue.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from typing import TypeVar

from .._clock import Clock
from ..errors import ConfigError
from . import _queue_rows as model
from ._sqlite import WAL_SIZE_LIMIT, WAL_TRUNCATE_IDLE, SQLiteStore, Synchronous
from .queue import DeadLetter, DeadLetterFilter, Failure, Lease, Message, QueueStats

__all__ = ["SQLiteQueue"]

T = TypeVar("T")


def _schema(table: str) -> str:
    return f"""
CREATE TABLE IF NOT EXISTS {table} (
    seq INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    id TEXT NOT NULL,
    type TEXT NOT NULL,
    body BLOB NOT NULL,
    headers TEXT NOT NULL,
    received_at REAL NOT NULL,
    ordering_key TEXT,
    state INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    visible_at REAL NOT NULL,
    lease_token TEXT,
    errors TEXT,
    finished_at REAL,
    UNIQUE (source, id)
);
CREATE INDEX IF NOT EXISTS {table}_pending ON {table} (seq) WHERE state = 0;
CREATE INDEX IF NOT EXISTS {table}_order ON {table} (ordering_key, seq)
    WHERE state = 0 AND ordering_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS {table}_dead ON {table} (finished_at) WHERE state = 2;
CREATE INDEX IF NOT EXISTS {table}_done ON {table} (finished_at) WHERE state = 1;
"""


class SQLiteQueue(SQLiteStore, model.SQLQueue):
    """``Queue`` on a SQLite file. ``url`` is ``sqlite:///relative.db``, ``sqlite:////abs.db``
    or a plain path. Several processes may share the file (ingress in one, workers in another);
    workers in other processes notice new messages by polling every ``poll_interval`` s.

    The write-ahead log is bounded: a checkpoint thread copies it into the database as commits
    come, empties it (a TRUNCATE checkpoint) once it passes ``wal_size_limit`` bytes or the
    writers have been idle ``wal_truncate_idle`` s, and ``journal_size_limit`` cuts the file
    back whenever SQLite restarts it."""

    def __init__(
        self,
        url: str = "sqlite:///interlock.db",
        *,
        table: str = "interlock_events",
        synchronous: Synchronous = "FULL",
        poll_interval: float = 0.2,
        max_batch: int = 4096,
        wal_size_limit: int = WAL_SIZE_LIMIT,
        wal_truncate_idle: float = WAL_TRUNCATE_IDLE,
        clock: Clock | None = None,
    ) -> None:
        if not table.replace("_", "").isalnum():
            raise ConfigError("SQLiteQueue", "table", f"must be letters, digits and _, got {table!r}")
        model.SQLQueue.__init__(
            self, "SQLiteQueue", table=table, poll_interval=poll_interval, max_batch=max_batch, clock=clock
        )
        SQLiteStore.__init__(
            self, url, synchronous=synchronous, wal_size_limit=wal_size_limit, wal_truncate_idle=wal_truncate_idle
        )
        t = table
        self._sql_put = (
            f"INSERT INTO {t} (source, id, type, body, headers, received_at, ordering_key, visible_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, 0) ON CONFLICT (source, id) DO NOTHING"
        )
        self._sql_lease = (
            f"SELECT {model.COLUMNS} FROM {t} AS e WHERE state = 0 AND visible_at <= ?"
            " AND (ordering_key IS NULL OR NOT EXISTS ("
            f"SELECT 1 FROM {t} AS p WHERE p.state = 0 AND p.ordering_key = e.ordering_key"
            " AND p.seq < e.seq)) ORDER BY seq LIMIT ?"
        )
        self._sql_fail = "errors = json_insert(coalesce(errors, '[]'), '$[#]', json(?))"
        self._sql_put_dead = model.put_dead_sql(t, model.SQLITE)

    # -- lifecycle -------------------------------------------------------------------------------

    async def open(self) -> None:
        """Create the file and the table if missing and start the writer thread (idempotent)."""
        await self._open_writer(_schema(self.table), max_batch=self.max_batch)

    def _wake(self) -> None:
        self._signal.wake()

    # -- inbox -----------------------------------------------------------------------------------

    async def put(self, message: Message) -> bool:
        """Insert the message unless its (source, id) is known; returns after the shared commit."""
        model.check_storable(message)
        row = model.put_row(message, self._clock.time())
        sql = self._sql_put
        inserted = await self._run(lambda conn: conn.execute(sql, row).rowcount == 1)
        if inserted:
            self._wake()
        return inserted

    # -- work queue ------------------------------------------------------------------------------

    async def lease(self, max_messages: int, visibility: float) -> list[Lease]:
        """Hide up to ``max_messages`` leasable rows for ``visibility`` s, oldest first."""
        sql, table = self._sql_lease, self.table

        def op(conn: sqlite3.Connection) -> list[Lease]:
            now = self._clock.time()
            rows = conn.execute(sql, (now, max_messages)).fetchall()
            if not rows:
                return []
            expires = now + visibility
            leases, updates = [], []
            for row in rows:
                token = f"{row[0]}:{os.urandom(8).hex()}"
                updates.append((expires, token, row[0]))
                leases.append(Lease(model.message_of(row), row[8] + 1, token, expires, model.failures_of(row[9])))
            conn.executemany(
                f"UPDATE {table} SET visible_at = ?, lease_token = ?, attempts = attempts + 1 WHERE seq = ?",
                updates,
            )
            return leases

        return await self._run(op)

    async def extend(self, lease: Lease, visibility: float) -> bool:
        """Push the lease's row out of sight for ``visibility`` s more, if the lease still holds."""
        sql = f"UPDATE {self.table} SET visible_at = ? WHERE seq = ? AND lease_token = ? AND state = 0"
        seq = model.lease_seq(lease)
        return await self._run(
            lambda conn: conn.execute(sql, (self._clock.time() + visibility, seq, lease.token)).rowcount == 1
        )

    async def ack(self, lease: Lease) -> bool:
        """Mark the row done (kept until ``prune`` for dedupe), if the lease still holds."""
        sql = (
            f"UPDATE {self.table} SET state = {model.DONE}, finished_at = ?, lease_token = NULL"
            " WHERE seq = ? AND lease_token = ? AND state = 0"
        )
        seq = model.lease_seq(lease)
        done = await self._run(lambda conn: conn.execute(sql, (self._clock.time(), seq, lease.token)).rowcount == 1)
        if done and lease.message.ordering_key is not None:
            self._wake()  # the next message with this key is leasable now
        return done

    async def nack(self, lease: Lease, *, delay: float, error: str) -> bool:
        """Append the failure to the row's history and hide it for ``delay`` s."""
        sql = (
            f"UPDATE {self.table} SET visible_at = ?, lease_token = NULL, {self._sql_fail}"
            " WHERE seq = ? AND lease_token = ? AND state = 0"
        )
        seq = model.lease_seq(lease)

        def op(conn: sqlite3.Connection) -> bool:
            now = self._clock.time()
            failure = model.failure_json(lease.attempt, now, error)
            return conn.execute(sql, (now + max(0.0, delay), failure, seq, lease.token)).rowcount == 1

        return await self._run(op)

    async def dead_letter(self, lease: Lease, *, error: str) -> bool:
        """Append the failure to the row's history and mark it dead."""
        sql = (
            f"UPDATE {self.table} SET state = {model.DEAD}, finished_at = ?, lease_token = NULL,"
            f" {self._sql_fail} WHERE seq = ? AND lease_token = ? AND state = 0"
        )
        seq = model.lease_seq(lease)

        def op(conn: sqlite3.Connection) -> bool:
            now = self._clock.time()
            return conn.execute(sql, (now, model.failure_json(lease.attempt, now, error), seq, lease.token)).rowcount == 1

        dead = await self._run(op)
        if dead and lease.message.ordering_key is not None:
            self._wake()
        return dead

    async def put_dead(self, message: Message, *, failures: Sequence[Failure]) -> None:
        """Insert (or overwrite) the message as a dead row carrying ``failures``."""
        sql = self._sql_put_dead
        row = model.dead_letter_row(message, failures, self._clock.time())
        await self._run(lambda conn: conn.execute(sql, row))

    # -- dead letters ----------------------------------------------------------------------------

    async def dead_letters(
        self, where: DeadLetterFilter = DeadLetterFilter(), *, limit: int = 100, offset: int = 0
    ) -> list[DeadLetter]:
        """Matching dead rows, oldest dead first."""
        clause, params = model.dead_letter_where(where, model.SQLITE)
        sql = (
            f"SELECT {model.DEAD_COLUMNS} FROM {self.table} WHERE {clause}"
            " ORDER BY finished_at, seq LIMIT ? OFFSET ?"
        )

        def op(conn: sqlite3.Connection) -> list[DeadLetter]:
            return [model.dead_letter_of(r) for r in conn.execute(sql, [*params, limit, offset]).fetchall()]

        return await self._run(op)

    async def count_dead(self, where: DeadLetterFilter = DeadLetterFilter()) -> int:
        """How many dead rows match."""
        clause, params = model.dead_letter_where(where, model.SQLITE)
        sql = f"SELECT count(*) FROM {self.table} WHERE {clause}"
        return await self._run(lambda conn: int(conn.execute(sql, params).fetchone()[0]))

    async def replay(self, where: DeadLetterFilter) -> int:
        """Make matching dead rows pending and visible now, attempts reset, history kept."""
        clause, params = model.dead_letter_where(where, model.SQLITE)
        sql = (
            f"UPDATE {self.table} SET state = {model.PENDING}, attempts = 0, visible_at = ?,"
            f" finished_at = NULL WHERE {clause}"
        )
        count = await self._run(lambda conn: conn.execute(sql, [self._clock.time(), *params]).rowcount)
        if count:
            self._wake()
        return count

    async def purge(self, where: DeadLetterFilter) -> int:
        """Delete matching dead rows."""
        clause, params = model.dead_letter_where(where, model.SQLITE)
        sql = f"DELETE FROM {self.table} WHERE {clause}"
        return await self._run(lambda conn: conn.execute(sql, params).rowcount)

    # -- housekeeping ----------------------------------------------------------------------------

    async def stats(self, source: str | None = None) -> QueueStats:
        """Counts of pending, in-flight and dead rows, and the oldest pending row's age, of the
        whole queue or of one ``source``."""
        t = self.table
        of_source, args = ("AND source = ?", (source,)) if source is not None else ("", ())

        def op(conn: sqlite3.Connection) -> QueueStats:
            now = self._clock.time()
            pending, oldest_seq = conn.execute(
                f"SELECT count(*), min(seq) FROM {t} WHERE state = 0 {of_source}", args
            ).fetchone()
            in_flight = conn.execute(
                f"SELECT count(*) FROM {t} WHERE state = 0 AND lease_token IS NOT NULL AND visible_at > ? {of_source}",
                (now, *args),
            ).fetchone()[0]
            dead = conn.execute(f"SELECT count(*) FROM {t} WHERE state = 2 {of_source}", args).fetchone()[0]
            oldest = None
            if oldest_seq is not None:
                oldest = conn.execute(f"SELECT received_at FROM {t} WHERE seq = ?", (oldest_seq,)).fetchone()[
                    0
                ]
            return QueueStats(int(pending), int(in_flight), int(dead), oldest)

        return await self._run(op)

    async def prune(self, done_before: float | None, dead_before: float | None = None) -> int:
        """Delete done rows finished before ``done_before`` and dead rows dead before
        ``dead_before``, ``PRUNE_CHUNK`` rows per transaction."""

        async def delete(sql: str, before: float) -> int:
            return await self._run(lambda conn: int(conn.execute(sql, (before,)).rowcount))

        return await model.prune_in_chunks(delete, self.table, model.SQLITE, done_before, dead_before)

    def __repr__(self) -> str:
        state = "open" if self._writer is not None else "closed"
        return f"SQLiteQueue(path={self.path!r}, table={self.table!r}, {state})"
