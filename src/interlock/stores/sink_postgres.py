"""Batched upserts into PostgreSQL: ``executemany`` of one prepared upsert, or ``COPY`` into a
temporary table followed by one ``INSERT ... SELECT ... ON CONFLICT`` (fastest for big batches).
Either way a batch is one transaction and re-writing it is harmless."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from ..errors import ConfigError
from ._postgres import PostgresStore, quote_ident
from ._sql import check_columns, upsert_sql
from .sink import Row

__all__ = ["PostgresSink"]


class PostgresSink(PostgresStore):
    """Upsert rows into ``table`` (which must exist, with a unique index on ``key``).

    ``dsn`` or an existing asyncpg ``pool``; ``method="copy"`` (default) or ``"executemany"``.
    """

    def __init__(
        self,
        table: str,
        columns: Sequence[str],
        key: Sequence[str],
        *,
        dsn: str | None = None,
        pool: Any = None,
        schema: str | None = None,
        method: Literal["copy", "executemany"] = "copy",
    ) -> None:
        self.columns, self.key = check_columns("PostgresSink", columns, key)
        if (dsn is None) == (pool is None):
            raise ConfigError("PostgresSink", "dsn", "give exactly one of dsn= or pool=")
        if method not in ("copy", "executemany"):
            raise ConfigError("PostgresSink", "method", f"must be 'copy' or 'executemany', got {method!r}")
        super().__init__(dsn, schema=schema, pool=pool, pool_size=4)
        self.table = table
        self.method = method
        qualified = self._qualified = self.qualify(table)
        n = len(self.columns)
        self._upsert = upsert_sql(qualified, self.columns, self.key, '"', [f"${i + 1}" for i in range(n)])
        cols = ", ".join(quote_ident(c) for c in self.columns)
        select = upsert_sql(qualified, self.columns, self.key, '"', ["?"])
        # Same conflict action, fed from the COPY staging table instead of VALUES.
        action = select.split(" ON CONFLICT ", 1)[1]
        self._from_stage = f"INSERT INTO {qualified} ({cols}) SELECT {cols} FROM _interlock_stage ON CONFLICT {action}"

    async def open(self) -> None:
        """Open the pool (when given a DSN); the table must already exist."""
        await self._open_pool()

    async def aclose(self) -> None:
        """Close the pool if the sink opened it."""
        await self._close_pool()

    async def write_rows(self, rows: Sequence[Row]) -> None:
        """Upsert ``rows`` in one transaction: one prepared ``executemany``, or ``COPY`` into a
        temporary table and one ``INSERT ... SELECT ... ON CONFLICT``."""
        if self._pool is None:
            await self.open()
        async with self._pool.acquire() as conn, conn.transaction():
            if self.method == "executemany":
                await conn.executemany(self._upsert, rows)
                return
            await conn.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS _interlock_stage (LIKE {self._qualified} INCLUDING DEFAULTS)"
                " ON COMMIT DELETE ROWS"
            )
            await conn.copy_records_to_table("_interlock_stage", records=rows, columns=list(self.columns))
            await conn.execute(self._from_stage)

    def __repr__(self) -> str:
        return f"PostgresSink(table={self._qualified}, method={self.method!r})"
