"""``Idempotency-Key`` stores on SQLite and PostgreSQL, beside the memory and Redis ones in
``idempotency``. Private to ``interlock.server``; ``interlock.server`` re-exports them.

One row per key: the request's fingerprint, the token of the request that holds it (empty once
its response is stored), when the row stops counting (the lease's or the stored response's
expiry, wall clock) and the stored response. Claiming a key is one atomic step: SQLite inside
``BEGIN IMMEDIATE`` (one writer at a time, across processes), PostgreSQL one
``INSERT ... ON CONFLICT DO UPDATE ... WHERE expired`` statement. Expired rows are overwritten
by the next claim of their key and deleted in bulk every ``prune_every`` claims, so the table
stays bounded by the keys of the last ``ttl`` seconds.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import uuid
from typing import Any

from .._clock import SYSTEM_CLOCK, Clock
from .._validate import check_count
from ..errors import ConfigError
from ..stores import connect_sqlite, sqlite_path_from_url
from .idempotency import Begun, StoredResponse

__all__ = ["PostgresIdempotencyStore", "SQLiteIdempotencyStore"]


def _check_name(owner: str, field: str, name: str) -> None:
    if not name.replace("_", "").isalnum() or not name[:1].isalpha():
        raise ConfigError(owner, field, f"must be a letter then letters, digits and _, got {name!r}")


def _found(fingerprint: str, row_fp: str, response: str | None) -> Begun:
    if row_fp != fingerprint:
        return Begun("mismatch")
    if response is not None:
        return Begun("done", response=StoredResponse.from_json(response))
    return Begun("running")


class SQLiteIdempotencyStore:
    """Keys in a SQLite file (WAL mode; processes on one host share it). ``url`` is
    ``sqlite:///relative.db``, ``sqlite:////abs.db`` or a path. Opens itself on first use."""

    def __init__(
        self,
        url: str = "sqlite:///interlock.db",
        *,
        table: str = "interlock_idempotency",
        prune_every: int = 1000,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        _check_name("SQLiteIdempotencyStore", "table", table)
        check_count("SQLiteIdempotencyStore", "prune_every", prune_every)
        self.path = sqlite_path_from_url(url)
        self.table = table
        self.prune_every = prune_every
        self._clock = clock
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._claims = 0

    def _connection(self) -> sqlite3.Connection:
        # Called in the worker thread, under the lock.
        if self._conn is None:
            conn = connect_sqlite(self.path)
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self.table} (key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL,"
                " token TEXT NOT NULL, expires_at REAL NOT NULL, response TEXT)"
            )
            self._conn = conn
        return self._conn

    async def _do(self, op: Any) -> Any:
        def run() -> Any:
            with self._lock:
                conn = self._connection()
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = op(conn)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
                return result

        return await asyncio.to_thread(run)

    async def begin(self, key: str, fingerprint: str, lock_ttl: float) -> Begun:
        """Claim ``key`` for ``lock_ttl`` s, or report who holds it; one transaction."""
        t, now, token = self.table, self._clock.time(), uuid.uuid4().hex
        self._claims += 1
        prune = self._claims % self.prune_every == 0

        def op(conn: sqlite3.Connection) -> Begun:
            if prune:
                conn.execute(f"DELETE FROM {t} WHERE expires_at <= ?", (now,))
            row = conn.execute(
                f"SELECT fingerprint, response FROM {t} WHERE key = ? AND expires_at > ?", (key, now)
            ).fetchone()
            if row is not None:
                return _found(fingerprint, row[0], row[1])
            conn.execute(
                f"INSERT OR REPLACE INTO {t} (key, fingerprint, token, expires_at, response)"
                " VALUES (?, ?, ?, ?, NULL)",
                (key, fingerprint, token, now + lock_ttl),
            )
            return Begun("started", token)

        result: Begun = await self._do(op)
        return result

    async def complete(
        self, key: str, token: str, fingerprint: str, response: StoredResponse, ttl: float
    ) -> None:
        """Store the response for ``ttl`` s, if ``token`` still holds the key."""
        t, expires, value = self.table, self._clock.time() + ttl, response.to_json()
        await self._do(
            lambda conn: conn.execute(
                f"UPDATE {t} SET token = '', response = ?, expires_at = ? WHERE key = ? AND token = ?",
                (value, expires, key, token),
            ).close()  # in the worker thread: a cursor must not be dropped in the loop's (see _jobstore)
        )

    async def release(self, key: str, token: str) -> None:
        """Free the key if ``token`` still holds it."""
        t = self.table
        await self._do(
            lambda conn: conn.execute(f"DELETE FROM {t} WHERE key = ? AND token = ?", (key, token)).close()
        )

    async def prune(self) -> int:
        """Delete every expired key now; how many."""
        t, now = self.table, self._clock.time()
        return int(
            await self._do(
                lambda conn: conn.execute(f"DELETE FROM {t} WHERE expires_at <= ?", (now,)).rowcount
            )
        )

    async def aclose(self) -> None:
        """Close the connection."""

        def close() -> None:
            with self._lock:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None

        await asyncio.to_thread(close)

    def __repr__(self) -> str:
        return f"<SQLiteIdempotencyStore path={self.path!r} table={self.table!r}>"


class PostgresIdempotencyStore:
    """Keys in PostgreSQL (``postgresql://...``; extra ``interlock[postgres]``), shared by every
    process, in ``table`` (in ``schema`` when given). Each step is one statement on a small
    asyncpg pool, opened on first use; ``command_timeout`` bounds each."""

    def __init__(
        self,
        dsn: str,
        *,
        table: str = "interlock_idempotency",
        schema: str | None = None,
        pool_size: int = 4,
        command_timeout: float = 5.0,
        prune_every: int = 1000,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        _check_name("PostgresIdempotencyStore", "table", table)
        if schema is not None:
            _check_name("PostgresIdempotencyStore", "schema", schema)
        check_count("PostgresIdempotencyStore", "prune_every", prune_every)
        self.dsn = dsn
        self.table = table if schema is None else f'"{schema}".{table}'
        self.pool_size = pool_size
        self.command_timeout = command_timeout
        self.prune_every = prune_every
        self._clock = clock
        self._pool: Any = None
        self._opening = asyncio.Lock()
        self._claims = 0

    async def _p(self) -> Any:
        if self._pool is not None:
            return self._pool
        async with self._opening:
            if self._pool is None:
                try:
                    import asyncpg
                except ImportError as exc:  # pragma: no cover - the extra is in the test install
                    raise ImportError(
                        "PostgresIdempotencyStore needs asyncpg: pip install 'interlock[postgres]'"
                    ) from exc
                pool = await asyncpg.create_pool(
                    self.dsn, min_size=1, max_size=self.pool_size, command_timeout=self.command_timeout
                )
                try:
                    await pool.execute(
                        f"CREATE TABLE IF NOT EXISTS {self.table} (key TEXT PRIMARY KEY,"
                        " fingerprint TEXT NOT NULL, token TEXT NOT NULL,"
                        " expires_at DOUBLE PRECISION NOT NULL, response TEXT)"
                    )
                except BaseException:
                    await pool.close()
                    raise
                self._pool = pool
        return self._pool

    async def begin(self, key: str, fingerprint: str, lock_ttl: float) -> Begun:
        """Claim ``key`` (a new row, or one whose time is up) in one statement; otherwise read
        what holds it."""
        pool, t, now, token = await self._p(), self.table, self._clock.time(), uuid.uuid4().hex
        self._claims += 1
        if self._claims % self.prune_every == 0:
            await pool.execute(f"DELETE FROM {t} WHERE expires_at <= $1", now)
        claimed = await pool.fetchval(
            f"INSERT INTO {t} AS i (key, fingerprint, token, expires_at, response) VALUES ($1, $2, $3, $4, NULL)"
            " ON CONFLICT (key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, token = EXCLUDED.token,"
            " expires_at = EXCLUDED.expires_at, response = NULL WHERE i.expires_at <= $5 RETURNING token",
            key, fingerprint, token, now + lock_ttl, now,
        )  # fmt: skip
        if claimed is not None:
            return Begun("started", token)
        row = await pool.fetchrow(f"SELECT fingerprint, response FROM {t} WHERE key = $1", key)
        if row is None:  # freed between the two statements: another request just released it
            return Begun("running")
        return _found(fingerprint, row["fingerprint"], row["response"])

    async def complete(
        self, key: str, token: str, fingerprint: str, response: StoredResponse, ttl: float
    ) -> None:
        """Store the response for ``ttl`` s, if ``token`` still holds the key."""
        pool = await self._p()
        await pool.execute(
            f"UPDATE {self.table} SET token = '', response = $1, expires_at = $2 WHERE key = $3 AND token = $4",
            response.to_json(), self._clock.time() + ttl, key, token,
        )  # fmt: skip

    async def release(self, key: str, token: str) -> None:
        """Free the key if ``token`` still holds it."""
        pool = await self._p()
        await pool.execute(f"DELETE FROM {self.table} WHERE key = $1 AND token = $2", key, token)

    async def prune(self) -> int:
        """Delete every expired key now; how many."""
        pool = await self._p()
        done = await pool.execute(f"DELETE FROM {self.table} WHERE expires_at <= $1", self._clock.time())
        return int(done.rsplit(" ", 1)[-1])

    async def aclose(self) -> None:
        """Close the pool."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    def __repr__(self) -> str:
        return f"<PostgresIdempotencyStore table={self.table!r}>"
