"""``SQLiteTokenStore``: tokens shared by the processes of one machine through a SQLite file.

The lock is a lease row: ``INSERT ... ON CONFLICT DO UPDATE ... WHERE the lease ran out``
inside the writer's ``BEGIN IMMEDIATE`` transaction, so two processes can never both take it;
``RETURNING`` says whether this call took it. Leases are timed by the machine's wall clock,
which every process of the file shares.
"""

from __future__ import annotations

import sqlite3
import time

from ..core.token import Token
from ..errors import ConfigError
from ._sqlite import SQLiteStore, Synchronous

__all__ = ["SQLiteTokenStore"]


class SQLiteTokenStore(SQLiteStore):
    """Tables ``{prefix}_tokens`` and ``{prefix}_token_locks`` in a SQLite file (usually the
    same file as the inbox's queue)."""

    def __init__(
        self,
        url: str = "sqlite:///interlock.db",
        *,
        prefix: str = "interlock",
        synchronous: Synchronous = "FULL",
    ) -> None:
        if not prefix.replace("_", "").isalnum():
            raise ConfigError("SQLiteTokenStore", "prefix", f"must be letters, digits and _, got {prefix!r}")
        super().__init__(url, synchronous=synchronous)
        self._tokens = f"{prefix}_tokens"
        self._locks = f"{prefix}_token_locks"

    async def open(self) -> None:
        """Create the file and the tables if missing and start the writer thread (idempotent)."""
        await self._open_writer(f"""
        CREATE TABLE IF NOT EXISTS {self._tokens} (
            key TEXT PRIMARY KEY,
            token TEXT NOT NULL,
            saved_at REAL NOT NULL
        );
        CREATE TABLE IF NOT EXISTS {self._locks} (
            key TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            expires_at REAL NOT NULL
        );
        """)

    async def load(self, key: str) -> Token | None:
        """The token row, if any (an unreadable one reads as none)."""
        sql = f"SELECT token FROM {self._tokens} WHERE key = ?"
        row = await self._run(lambda conn: conn.execute(sql, (key,)).fetchone())
        return Token.read_stored(row[0] if row is not None else None)

    async def save(self, key: str, token: Token) -> None:
        """Upsert the token row; durable when it returns."""
        sql = (
            f"INSERT INTO {self._tokens} (key, token, saved_at) VALUES (?, ?, ?)"
            " ON CONFLICT(key) DO UPDATE SET token = excluded.token, saved_at = excluded.saved_at"
        )
        row = (key, token.to_json(), time.time())
        await self._run(lambda conn: conn.execute(sql, row))

    async def lock(self, key: str, owner: str, ttl: float) -> bool:
        """Take the lease row unless an unexpired one is there."""
        sql = (
            f"INSERT INTO {self._locks} (key, owner, expires_at) VALUES (?, ?, ?)"
            f" ON CONFLICT(key) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at"
            f" WHERE {self._locks}.expires_at <= ? RETURNING owner"
        )

        def op(conn: sqlite3.Connection) -> bool:
            now = time.time()
            return conn.execute(sql, (key, owner, now + ttl, now)).fetchone() is not None

        return await self._run(op)

    async def unlock(self, key: str, owner: str) -> None:
        """Delete the lease row if it is still ``owner``'s."""
        sql = f"DELETE FROM {self._locks} WHERE key = ? AND owner = ?"
        await self._run(lambda conn: conn.execute(sql, (key, owner)))

    def __repr__(self) -> str:
        state = "open" if self._writer is not None else "closed"
        return f"SQLiteTokenStore(path={self.path!r}, {state})"
