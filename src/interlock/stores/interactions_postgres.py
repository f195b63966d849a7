"""``InteractionStore`` on PostgreSQL (asyncpg); every operation bounded by ``timeout``."""

from __future__ import annotations

import time
from typing import Any

from .._lifecycle import opens_once
from ._postgres import PostgresStore, quote_ident
from .interactions import COLUMNS, MAX_LIMIT, Interaction, InteractionFilter, InteractionRetention

__all__ = ["PostgresInteractionStore"]


class PostgresInteractionStore(PostgresStore):
    """Table ``table`` (default ``interlock_interactions``), bounded by ``retention``. ``dsn``
    may carry ``?schema=name``; pass ``pool`` to share an asyncpg pool (then not closed by
    ``aclose``). A write or query not done within ``timeout`` s raises ``TimeoutError``."""

    def __init__(
        self,
        dsn: str,
        *,
        table: str = "interlock_interactions",
        retention: InteractionRetention | None = None,
        schema: str | None = None,
        pool: Any = None,
        pool_size: int = 2,
        timeout: float = 5.0,
    ) -> None:
        super().__init__(dsn, schema=schema, pool=pool, pool_size=pool_size, connect_timeout=timeout)
        self.retention = retention or InteractionRetention()
        self.timeout = timeout
        self._table = self.qualify(table)
        self._name = table
        self._lock_name = f"{self.schema or 'public'}.{table}"
        self._writes = 0
        self._opened = False
        marks = ", ".join(f"${i + 1}" for i in range(len(COLUMNS)))
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS[1:])
        self._insert = (
            f"INSERT INTO {self._table} ({', '.join(COLUMNS)}) VALUES ({marks}) "
            f"ON CONFLICT (id) DO UPDATE SET {updates}"
        )

    @opens_once
    async def open(self) -> None:
        """Open the pool and create the table if missing (idempotent)."""
        await self._open_pool()
        t, n = self._table, self._name
        await self._create_tables(
            self._lock_name,
            f"""
            CREATE TABLE IF NOT EXISTS {t} (
                id TEXT PRIMARY KEY, at DOUBLE PRECISION NOT NULL, upstream TEXT NOT NULL,
                method TEXT NOT NULL, url TEXT NOT NULL, route TEXT NOT NULL, status INTEGER,
                failed BOOLEAN NOT NULL, error TEXT, tracking_id TEXT, correlation_id TEXT,
                trace_id TEXT, duration DOUBLE PRECISION NOT NULL, attempts TEXT NOT NULL,
                request_headers TEXT NOT NULL, request_body BYTEA, request_truncated BOOLEAN NOT NULL,
                response_headers TEXT NOT NULL, response_body BYTEA, response_truncated BOOLEAN NOT NULL
            );
            CREATE INDEX IF NOT EXISTS {quote_ident(n + "_at")} ON {t} (at);
            CREATE INDEX IF NOT EXISTS {quote_ident(n + "_tracking")} ON {t} (tracking_id);
            CREATE INDEX IF NOT EXISTS {quote_ident(n + "_correlation")} ON {t} (correlation_id);
            CREATE INDEX IF NOT EXISTS {quote_ident(n + "_trace")} ON {t} (trace_id);
            """,
        )
        self._opened = True

    async def aclose(self) -> None:
        """Close the pool if the store opened it."""
        self._opened = False
        await self._close_pool()

    def _check_open(self) -> None:
        if not self._opened:
            raise RuntimeError("PostgresInteractionStore is not open: call `await store.open()` first")

    async def record(self, interaction: Interaction) -> None:
        """Store one interaction; every ``retention.every`` writes, apply the retention."""
        self._check_open()
        async with self._bounded(self.timeout, "an interaction write") as conn:
            await conn.execute(self._insert, *interaction.row())
        self._writes += 1
        if self._writes % self.retention.every == 0:
            await self.prune()

    async def find(
        self, where: InteractionFilter = InteractionFilter(), *, limit: int = 100
    ) -> list[Interaction]:
        """Matching interactions, newest first, at most ``limit`` (<= ``MAX_LIMIT``)."""
        self._check_open()
        conds, params = where.clauses(lambda n: f"${n}")
        sql = f"SELECT {', '.join(COLUMNS)} FROM {self._table}"
        if conds:
            sql += " WHERE " + " AND ".join(conds)
        sql += f" ORDER BY at DESC, id LIMIT ${len(params) + 1}"
        async with self._bounded(self.timeout, "an interaction query") as conn:
            rows = await conn.fetch(sql, *params, max(0, min(limit, MAX_LIMIT)))
        return [Interaction.from_row(tuple(r)) for r in rows]

    async def count(self, where: InteractionFilter = InteractionFilter()) -> int:
        """How many interactions match ``where``."""
        self._check_open()
        conds, params = where.clauses(lambda n: f"${n}")
        sql = f"SELECT count(*) FROM {self._table}" + (" WHERE " + " AND ".join(conds) if conds else "")
        async with self._bounded(self.timeout, "an interaction count") as conn:
            return int(await conn.fetchval(sql, *params))

    async def prune(self, now: float | None = None) -> int:
        """Delete the rows past ``max_age`` and the oldest past ``max_rows``; how many."""
        self._check_open()
        t, keep = self._table, self.retention
        deleted = 0
        async with self._bounded(self.timeout, "an interaction prune") as conn:
            if keep.max_age is not None:
                cutoff = (time.time() if now is None else now) - keep.max_age
                status = await conn.execute(f"DELETE FROM {t} WHERE at < $1", cutoff)
                deleted += int(status.split()[-1])
            status = await conn.execute(
                f"DELETE FROM {t} WHERE id IN (SELECT id FROM {t} ORDER BY at DESC, id OFFSET $1)",
                keep.max_rows,
            )
            deleted += int(status.split()[-1])
        return deleted

    def __repr__(self) -> str:
        state = "open" if self._opened else "closed"
        return f"PostgresInteractionStore(table={self._table}, {state})"
