"""``CheckpointStore`` on PostgreSQL (asyncpg). Ledger writes of a batch go in one transaction
through a prepared ``executemany``; lookups are one ``= ANY($2)`` query per batch."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from .._lifecycle import opens_once
from ._ledger_sql import ENTRY, entry_of, entry_row, save_checkpoint_sql, upsert_ledger_sql
from ._postgres import PostgresStore, quote_ident
from .checkpoint import Checkpoint, LedgerEntry

__all__ = ["PostgresCheckpointStore"]


class PostgresCheckpointStore(PostgresStore):
    """Tables ``{prefix}_checkpoints`` and ``{prefix}_ledger``. ``dsn`` may carry
    ``?schema=name``; pass ``pool`` to share an asyncpg pool (then not closed by ``aclose``)."""

    def __init__(
        self,
        dsn: str,
        *,
        prefix: str = "interlock_sync",
        schema: str | None = None,
        pool: Any = None,
        pool_size: int = 4,
    ) -> None:
        super().__init__(dsn, schema=schema, pool=pool, pool_size=pool_size)
        self._cp = self.qualify(f"{prefix}_checkpoints")
        self._ledger = self.qualify(f"{prefix}_ledger")
        self._index = quote_ident(f"{prefix}_ledger_outcome")
        self._lock_name = f"{self.schema or 'public'}.{prefix}"
        self._upsert = upsert_ledger_sql(self._ledger, [f"${i + 1}" for i in range(9)])
        self._opened = False

    @opens_once
    async def open(self) -> None:
        """Open the pool and create the tables if missing (idempotent)."""
        await self._open_pool()
        await self._create_tables(
            self._lock_name,
            f"""
            CREATE TABLE IF NOT EXISTS {self._cp} (
                job TEXT PRIMARY KEY,
                updated_at BIGINT NOT NULL,
                record_id TEXT NOT NULL,
                saved_at DOUBLE PRECISION NOT NULL
            );
            CREATE TABLE IF NOT EXISTS {self._ledger} (
                job TEXT NOT NULL,
                record_id TEXT NOT NULL,
                version BIGINT NOT NULL,
                outcome TEXT NOT NULL,
                attempts INTEGER NOT NULL,
                tracking_id TEXT,
                error TEXT,
                at DOUBLE PRECISION NOT NULL,
                applied_version BIGINT,
                PRIMARY KEY (job, record_id)
            );
            CREATE INDEX IF NOT EXISTS {self._index} ON {self._ledger} (job, outcome, at);
            """,
        )
        self._opened = True

    async def aclose(self) -> None:
        """Close the pool if the store opened it."""
        self._opened = False
        await self._close_pool()

    @property
    def pool(self) -> Any:
        """The asyncpg pool; raises when the store is not open."""
        if self._pool is None or not self._opened:
            raise RuntimeError("PostgresCheckpointStore is not open: call `await store.open()` first")
        return self._pool

    async def load_checkpoint(self, job: str) -> Checkpoint | None:
        """The job's checkpoint row, if any."""
        row = await self.pool.fetchrow(
            f"SELECT updated_at, record_id, saved_at FROM {self._cp} WHERE job = $1", job
        )
        return None if row is None else Checkpoint(int(row[0]), row[1], float(row[2]))

    async def save_checkpoint(self, job: str, checkpoint: Checkpoint) -> None:
        """Upsert the job's checkpoint row."""
        await self.pool.execute(
            save_checkpoint_sql(self._cp, ["$1", "$2", "$3", "$4"]),
            job,
            checkpoint.updated_at,
            checkpoint.record_id,
            checkpoint.saved_at or time.time(),
        )

    async def lookup(self, job: str, record_ids: Sequence[str]) -> dict[str, LedgerEntry]:
        """Read the records' ledger rows in one ``= ANY($2)`` query."""
        if not record_ids:
            return {}
        rows = await self.pool.fetch(
            f"SELECT {ENTRY} FROM {self._ledger} WHERE job = $1 AND record_id = ANY($2::text[])",
            job,
            list(dict.fromkeys(record_ids)),
        )
        return {row[0]: entry_of(row) for row in rows}

    async def record(self, job: str, entries: Sequence[LedgerEntry]) -> None:
        """Upsert the entries (monotonic per record) in one transaction."""
        if not entries:
            return
        rows = [entry_row(job, e) for e in entries]
        async with self.pool.acquire() as conn, conn.transaction():
            # executemany, not one multi-row INSERT: a batch may hold two outcomes for one
            # record, and ON CONFLICT cannot touch a row twice in one statement.
            await conn.executemany(self._upsert, rows)

    async def entries(
        self, job: str, *, outcome: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[LedgerEntry]:
        """The job's ledger rows by ``at`` descending (then record id)."""
        if outcome:
            rows = await self.pool.fetch(
                f"SELECT {ENTRY} FROM {self._ledger} WHERE job = $1 AND outcome = $2"
                " ORDER BY at DESC, record_id LIMIT $3 OFFSET $4",
                job,
                outcome,
                limit,
                offset,
            )
        else:
            rows = await self.pool.fetch(
                f"SELECT {ENTRY} FROM {self._ledger} WHERE job = $1 ORDER BY at DESC, record_id LIMIT $2 OFFSET $3",
                job,
                limit,
                offset,
            )
        return [entry_of(r) for r in rows]

    async def counts(self, job: str) -> dict[str, int]:
        """One ``GROUP BY outcome`` over the job's ledger rows."""
        rows = await self.pool.fetch(
            f"SELECT outcome, count(*) FROM {self._ledger} WHERE job = $1 GROUP BY outcome", job
        )
        return {str(r[0]): int(r[1]) for r in rows}

    async def reset(self, job: str) -> None:
        """Delete the job's checkpoint and ledger rows in one transaction."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(f"DELETE FROM {self._cp} WHERE job = $1", job)
            await conn.execute(f"DELETE FROM {self._ledger} WHERE job = $1", job)

    def __repr__(self) -> str:
        state = "open" if self._opened else "closed"
        return f"PostgresCheckpointStore(ledger={self._ledger}, {state})"
