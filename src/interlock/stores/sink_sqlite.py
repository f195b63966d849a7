"""Batched upserts into a SQLite table (``executemany`` in one transaction)."""

from __future__ import annotations

from collections.abc import Sequence

from ._sql import check_columns, upsert_sql
from ._sqlite import GroupCommitter, Synchronous, sqlite_path_from_url
from .sink import Row

__all__ = ["SQLiteSink"]


class SQLiteSink:
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
        self.path = sqlite_path_from_url(url)
        self.table = table
        self.synchronous: Synchronous = synchronous
        self._sql = upsert_sql(f'"{table}"', self.columns, self.key, '"', ["?"] * len(self.columns))
        self._writer: GroupCommitter | None = None

    async def open(self) -> None:
        """Start the writer thread on the file (idempotent)."""
        if self._writer is None:
            import asyncio

            self._writer = await asyncio.to_thread(GroupCommitter, self.path, synchronous=self.synchronous)

    async def aclose(self) -> None:
        """Commit what was submitted, then stop the writer thread."""
        writer, self._writer = self._writer, None
        if writer is not None:
            import asyncio

            await asyncio.to_thread(writer.close)

    async def write_rows(self, rows: Sequence[Row]) -> None:
        """Upsert ``rows`` with one ``executemany`` in one (shared) transaction."""
        if self._writer is None:
            await self.open()
        assert self._writer is not None
        sql = self._sql
        await self._writer.run(lambda conn: conn.executemany(sql, rows))

    def __repr__(self) -> str:
        return f"SQLiteSink(path={self.path!r}, table={self.table!r})"
