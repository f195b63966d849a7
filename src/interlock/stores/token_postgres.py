"""``PostgresTokenStore``: tokens shared by every process using one PostgreSQL database.

The lock is a lease row taken with ``INSERT ... ON CONFLICT DO UPDATE ... WHERE the lease ran
out RETURNING``: one statement, atomic under concurrent callers, and timed by the database
server's ``clock_timestamp()``, so processes whose clocks disagree share one lease.
"""

from __future__ import annotations

from typing import Any

from .._lifecycle import opens_once
from ..core.token import Token
from ._postgres import PostgresStore, quote_ident

__all__ = ["PostgresTokenStore"]


class PostgresTokenStore(PostgresStore):
    """Tables ``{prefix}_tokens`` and ``{prefix}_token_locks``. ``dsn`` may carry ``?schema=name``;
    pass ``pool`` to share an asyncpg pool (then not closed by ``aclose``). Every statement is
    bounded by ``command_timeout`` seconds, waiting for a connection included."""

    def __init__(
        self,
        dsn: str,
        *,
        prefix: str = "interlock",
        schema: str | None = None,
        pool: Any = None,
        pool_size: int = 2,
        command_timeout: float = 5.0,
    ) -> None:
        super().__init__(dsn, schema=schema, pool=pool, pool_size=pool_size, connect_timeout=command_timeout)
        self._tokens = self.qualify(f"{prefix}_tokens")
        self._locks = self.qualify(f"{prefix}_token_locks")
        self._lock_name = f"{self.schema or 'public'}.{prefix}_tokens"
        quote_ident(prefix)
        self.command_timeout = command_timeout
        self._opened = False

    @opens_once
    async def open(self) -> None:
        """Open the pool and create the tables if missing (idempotent)."""
        await self._open_pool()
        await self._create_tables(
            self._lock_name,
            f"""
            CREATE TABLE IF NOT EXISTS {self._tokens} (
                key TEXT PRIMARY KEY,
                token TEXT NOT NULL,
                saved_at TIMESTAMPTZ NOT NULL DEFAULT now()
            );
            CREATE TABLE IF NOT EXISTS {self._locks} (
                key TEXT PRIMARY KEY,
                owner TEXT NOT NULL,
                expires_at TIMESTAMPTZ NOT NULL
            );
            """,
        )
        self._opened = True

    async def aclose(self) -> None:
        """Close the pool if the store opened it."""
        self._opened = False
        await self._close_pool()

    def _check_open(self) -> None:
        if self._pool is None or not self._opened:
            raise RuntimeError("PostgresTokenStore is not open: call `await store.open()` first")

    async def load(self, key: str) -> Token | None:
        """The token row, if any (an unreadable one reads as none)."""
        self._check_open()
        async with self._bounded(self.command_timeout, "a token load") as conn:
            raw = await conn.fetchval(f"SELECT token FROM {self._tokens} WHERE key = $1", key)
        return Token.read_stored(raw)

    async def save(self, key: str, token: Token) -> None:
        """Upsert the token row."""
        self._check_open()
        async with self._bounded(self.command_timeout, "a token save") as conn:
            await conn.execute(
                f"INSERT INTO {self._tokens} (key, token, saved_at) VALUES ($1, $2, now())"
                " ON CONFLICT (key) DO UPDATE SET token = excluded.token, saved_at = excluded.saved_at",
                key,
                token.to_json(),
            )

    async def lock(self, key: str, owner: str, ttl: float) -> bool:
        """Take the lease row unless an unexpired one is there, on the server's clock."""
        self._check_open()
        async with self._bounded(self.command_timeout, "a token lock") as conn:
            got = await conn.fetchval(
                f"INSERT INTO {self._locks} (key, owner, expires_at)"
                " VALUES ($1, $2, clock_timestamp() + make_interval(secs => $3))"
                " ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at"
                f" WHERE {self._locks}.expires_at <= clock_timestamp() RETURNING owner",
                key,
                owner,
                float(ttl),
            )
        return got is not None

    async def unlock(self, key: str, owner: str) -> None:
        """Delete the lease row if it is still ``owner``'s."""
        self._check_open()
        async with self._bounded(self.command_timeout, "a token unlock") as conn:
            await conn.execute(f"DELETE FROM {self._locks} WHERE key = $1 AND owner = $2", key, owner)

    def __repr__(self) -> str:
        state = "open" if self._opened else "closed"
        return f"PostgresTokenStore(tokens={self._tokens}, {state})"
