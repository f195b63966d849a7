"""``InteractionStore`` on a SQLite file (WAL, group commit). Usually the inbox's own file."""

from __future__ import annotations

import sqlite3
import time

from ..errors import ConfigError
from ._sqlite import SQLiteStore, Synchronous
from .interactions import COLUMNS, MAX_LIMIT, Interaction, InteractionFilter, InteractionRetention

__all__ = ["SQLiteInteractionStore"]


class SQLiteInteractionStore(SQLiteStore):
    """Table ``table`` (default ``interlock_interactions``) in a SQLite file, bounded by
    ``retention``. ``synchronous="NORMAL"`` by default: a troubleshooting log may lose its last
    rows to a power cut, and its writes then cost no fsync on the call's path."""

    def __init__(
        self,
        url: str = "sqlite:///interlock.db",
        *,
        table: str = "interlock_interactions",
        retention: InteractionRetention | None = None,
        synchronous: Synchronous = "NORMAL",
    ) -> None:
        if not table.replace("_", "").isalnum():
            raise ConfigError(
                "SQLiteInteractionStore", "table", f"must be letters, digits and _, got {table!r}"
            )
        super().__init__(url, synchronous=synchronous)
        self.table = table
        self.retention = retention or InteractionRetention()
        self._writes = 0
        self._insert = (
            f"INSERT OR REPLACE INTO {table} ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
        )

    async def open(self) -> None:
        """Create the file and the table if missing and start the writer thread (idempotent)."""
        t = self.table
        await self._open_writer(f"""
        CREATE TABLE IF NOT EXISTS {t} (
            id TEXT PRIMARY KEY, at REAL NOT NULL, upstream TEXT NOT NULL, method TEXT NOT NULL,
            url TEXT NOT NULL, route TEXT NOT NULL, status INTEGER, failed INTEGER NOT NULL,
            error TEXT, tracking_id TEXT, correlation_id TEXT, trace_id TEXT, duration REAL NOT NULL,
            attempts TEXT NOT NULL, request_headers TEXT NOT NULL, request_body BLOB,
            request_truncated INTEGER NOT NULL, response_headers TEXT NOT NULL, response_body BLOB,
            response_truncated INTEGER NOT NULL
        );
        CREATE INDEX IF NOT EXISTS {t}_at ON {t} (at);
        CREATE INDEX IF NOT EXISTS {t}_tracking ON {t} (tracking_id);
        CREATE INDEX IF NOT EXISTS {t}_correlation ON {t} (correlation_id);
        CREATE INDEX IF NOT EXISTS {t}_trace ON {t} (trace_id);
        """)

    async def record(self, interaction: Interaction) -> None:
        """Store one interaction; every ``retention.every`` writes, apply the retention."""
        row, sql = interaction.row(), self._insert
        await self._run(lambda conn: conn.execute(sql, row))
        self._writes += 1
        if self._writes % self.retention.every == 0:
            await self.prune()

    async def find(
        self, where: InteractionFilter = InteractionFilter(), *, limit: int = 100
    ) -> list[Interaction]:
        """Matching interactions, newest first, at most ``limit`` (<= ``MAX_LIMIT``)."""
        conds, params = where.clauses(lambda n: "?")
        sql = f"SELECT {', '.join(COLUMNS)} FROM {self.table}"
        if conds:
            sql += " WHERE " + " AND ".join(conds)
        sql += " ORDER BY at DESC, id LIMIT ?"
        bound = max(0, min(limit, MAX_LIMIT))
        rows = await self._run(lambda conn: conn.execute(sql, (*params, bound)).fetchall())
        return [Interaction.from_row(r) for r in rows]

    async def count(self, where: InteractionFilter = InteractionFilter()) -> int:
        """How many interactions match ``where``."""
        conds, params = where.clauses(lambda n: "?")
        sql = f"SELECT count(*) FROM {self.table}" + (" WHERE " + " AND ".join(conds) if conds else "")
        row = await self._run(lambda conn: conn.execute(sql, params).fetchone())
        return int(row[0])

    async def prune(self, now: float | None = None) -> int:
        """Delete the rows past ``max_age`` and the oldest past ``max_rows``; how many."""
        t, keep = self.table, self.retention
        cutoff = None if keep.max_age is None else (time.time() if now is None else now) - keep.max_age

        def op(conn: sqlite3.Connection) -> int:
            deleted = 0
            if cutoff is not None:
                deleted += conn.execute(f"DELETE FROM {t} WHERE at < ?", (cutoff,)).rowcount
            deleted += conn.execute(
                f"DELETE FROM {t} WHERE id IN (SELECT id FROM {t} ORDER BY at DESC, id LIMIT -1 OFFSET ?)",
                (keep.max_rows,),
            ).rowcount
            return deleted

        return await self._run(op)

    def __repr__(self) -> str:
        state = "open" if self._writer is not None else "closed"
        return f"SQLiteInteractionStore(path={self.path!r}, table={self.table!r}, {state})"
