"""Batched upserts into PostgreSQL: ``executemany`` of one prepared upsert, or ``COPY`` into a
temporary table followed by one ``INSERT ... SELECT ... ON CONFLICT`` (fastest for big batches).
Either way a batch is one transaction and re-writing it is harmless."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from ..errors import ConfigError
from ._postgres import create_pool, quote_ident, split_schema
from ._sql import check_columns, upsert_sql
from .sink import Row

__all__ = ["PostgresSink"]


class PostgresSink:
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
        self.dsn: str | None = None
        dsn_schema: str | None = None
        if dsn:
            self.dsn, dsn_schema = split_schema(dsn)
        self.schema = schema or dsn_schema
        self.table = table
        self.method = method
        self._pool = pool
        self._own_pool = pool is None
        qualified = f"{quote_ident(self.schema)}.{quote_ident(table)}" if self.schema else quote_ident(table)
        self._qualified = qualified
        n = len(self.columns)
        self._upsert = upsert_sql(qualified, self.columns, self.key, '"', [f"${i + 1}" for i in range(n)])
        cols = ", ".join(quote_ident(c) for c in self.columns)
        select = upsert_sql(qualified, self.columns, self.key, '"', ["?"])
        # Same conflict action, fed from the COPY staging table instead of VALUES.
        action = select.split(" ON CONFLICT ", 1)[1]
        self._from_stage = f"INSERT INTO {qualified} ({cols}) SELECT {cols} FROM _interlock_stage ON CONFLICT {action}"

    async def open(self) -> None:
        if self._pool is None:
            self._pool = await create_pool(str(self.dsn), min_size=1, max_size=4)

    async def aclose(self) -> None:
        if self._pool is not None and self._own_pool:
            await self._pool.close()
            self._pool = None

    async def write_rows(self, rows: Sequence[Row]) -> None:
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
