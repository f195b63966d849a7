"""Batched upserts into a SQLite table (``executemany`` in one transaction)."""

from __future__ import annotations

from collections.abc import Sequence

from ._sql import check_columns, upsert_sql
from ._sqlite import SQLiteStore, Synchronous
from .sink import Row

__all__ = ["SQLiteSink"]


class SQLiteSink(SQLiteStore):
    """Upsert rows into ``table`` (which must exist, with a unique index on ``key``)."""

    def __init__(
        self,
        url: str,
        table: str,
        columns: Sequence[str],
        key: Sequence[str],
        *,
        synchronous: Synchronous = "FULL",
    ) -> None:
        self.columns, self.key = check_columns("SQLiteSink", columns, key)
        super().__init__(url, synchronous=synchronous)
        self.table = table
        self._sql = upsert_sql(f'"{table}"', self.columns, self.key, '"', ["?"] * len(self.columns))

    async def open(self) -> None:
        """Start the writer thread on the file (idempotent); the table must already exist."""
        await self._open_writer()

    async def write_rows(self, rows: Sequence[Row]) -> None:
        """Upsert ``rows`` with one ``executemany`` in one (shared) transaction."""
        await self.open()
        sql = self._sql
        await self._run(lambda conn: conn.executemany(sql, rows))

    def __repr__(self) -> str:
        return f"SQLiteSink(path={self.path!r}, table={self.table!r})"
