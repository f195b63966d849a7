"""Batched upserts into PostgreSQL, one method per batch size:

- small batches (below ``copy_over`` rows): one ``INSERT ... SELECT FROM unnest($1, $2, ...)
  ON CONFLICT`` statement, one round trip, every column sent as one array;
- large ones: ``COPY`` into a temporary stage table, then one ``INSERT ... SELECT ... ON
  CONFLICT`` from it, in one transaction: the fastest path for thousands of rows.

Either way a batch is one transaction and writing it twice is harmless. The sink holds a few
connections of its pool while it is open (``connections``), each with its stage created once,
so a batch pays neither the pool's acquire and reset nor a ``CREATE TEMP TABLE``, and several
batches can be written at once."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import Any, Literal

from ..errors import ConfigError
from ._postgres import PostgresStore, quote_ident
from ._sql import check_columns, upsert_sql
from .sink import Row

__all__ = ["PostgresSink"]

Method = Literal["auto", "copy", "unnest", "executemany"]
_METHODS = ("auto", "copy", "unnest", "executemany")


class PostgresSink(PostgresStore):
    """Upsert rows into ``table`` (which must exist, with a unique index on ``key``).

    ``dsn`` or an existing asyncpg ``pool``. ``method``: ``"auto"`` (default) writes a batch of
    fewer than ``copy_over`` rows with one ``unnest`` statement and a larger one with ``COPY``
    and one upsert; ``"copy"``, ``"unnest"`` or ``"executemany"`` force one method.
    ``connections``: how many connections of the pool the sink holds while open (at most half
    of a borrowed pool, so its owner keeps some), which is also how many batches it writes at
    once; ``aclose()`` gives them back.
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
        method: Method = "auto",
        copy_over: int = 1000,
        connections: int = 4,
    ) -> None:
        self.columns, self.key = check_columns("PostgresSink", columns, key)
        if (dsn is None) == (pool is None):
            raise ConfigError("PostgresSink", "dsn", "give exactly one of dsn= or pool=")
        if method not in _METHODS:
            raise ConfigError(
                "PostgresSink", "method", f"must be one of {', '.join(_METHODS)}, got {method!r}"
            )
        if not isinstance(copy_over, int) or copy_over < 1:
            raise ConfigError("PostgresSink", "copy_over", f"must be an integer >= 1, got {copy_over!r}")
        if not isinstance(connections, int) or connections < 1:
            raise ConfigError("PostgresSink", "connections", f"must be an integer >= 1, got {connections!r}")
        super().__init__(dsn, schema=schema, pool=pool, pool_size=connections)
        self.table = table
        self.method = method
        self.copy_over = copy_over
        self.connections = connections
        qualified = self._qualified = self.qualify(table)
        n = len(self.columns)
        self._upsert = upsert_sql(qualified, self.columns, self.key, '"', [f"${i + 1}" for i in range(n)])
        cols = ", ".join(quote_ident(c) for c in self.columns)
        # Same conflict action, fed from the stage or from unnest() instead of VALUES.
        self._action = self._upsert.split(" ON CONFLICT ", 1)[1]
        # One stage per target table: a connection may have served another sink before.
        self._stage = "_interlock_stage_" + hashlib.sha256(qualified.encode()).hexdigest()[:12]
        self._from_stage = (
            f"INSERT INTO {qualified} ({cols}) SELECT {cols} FROM {self._stage} ON CONFLICT {self._action}"
        )
        self._from_arrays: str | None = None  # needs the column types: built on first use
        self._cols = cols
        self._idle: list[Any] = []  # held connections not writing now
        self._held = 0
        self._staged: set[int] = set()  # ids of held connections whose stage exists
        self._free = asyncio.Event()

    async def open(self) -> None:
        """Open the pool (when given a DSN); the table must already exist."""
        await self._open_pool()

    async def aclose(self) -> None:
        """Give the held connections back (their stages dropped), then close the pool if the
        sink opened it."""
        idle, self._idle = self._idle, []
        self._held -= len(idle)
        for conn in idle:
            try:
                if id(conn) in self._staged:
                    await conn.execute(f"DROP TABLE IF EXISTS {self._stage}")
            finally:
                self._staged.discard(id(conn))
                await self._pool.release(conn)
        await self._close_pool()

    # -- held connections ---------------------------------------------------------------------
    def _limit(self) -> int:
        if self._own_pool:
            return self.connections
        get_max = getattr(self._pool, "get_max_size", None)
        size = get_max() if callable(get_max) else self.connections
        return max(1, min(self.connections, size // 2))

    async def _take(self) -> Any:
        """A held connection: an idle one, a new one while fewer than the limit are held, or
        the next one given back."""
        while True:
            if self._idle:
                return self._idle.pop()
            if self._held < self._limit():
                self._held += 1
                try:
                    return await self._pool.acquire()
                except BaseException:
                    self._held -= 1
                    raise
            self._free.clear()
            await self._free.wait()

    def _give_back(self, conn: Any) -> None:
        self._idle.append(conn)
        self._free.set()

    async def _drop(self, conn: Any) -> None:
        """A batch failed on ``conn``: return it to the pool (which resets or closes it) rather
        than keep a connection in an unknown state."""
        self._held -= 1
        self._staged.discard(id(conn))
        self._free.set()
        await self._pool.release(conn)

    # -- writing ------------------------------------------------------------------------------
    async def write_rows(self, rows: Sequence[Row]) -> None:
        """Upsert ``rows`` in one transaction, by the method their number calls for."""
        if not rows:
            return
        if self._pool is None:
            await self.open()
        method = self.method
        if method == "auto":
            method = "copy" if len(rows) >= self.copy_over else "unnest"
        conn = await self._take()
        try:
            if method == "executemany":
                async with conn.transaction():
                    await conn.executemany(self._upsert, rows)
            elif method == "unnest":
                sql = self._from_arrays if self._from_arrays is not None else await self._arrays_sql(conn)
                if sql:
                    # One statement: atomic on its own, one round trip.
                    await conn.execute(sql, *(list(column) for column in zip(*rows, strict=True)))
                else:  # a column unnest() cannot carry (an array): one prepared statement per row
                    async with conn.transaction():
                        await conn.executemany(self._upsert, rows)
            else:
                if id(conn) not in self._staged:
                    await conn.execute(
                        f"CREATE TEMP TABLE IF NOT EXISTS {self._stage} "
                        f"(LIKE {self._qualified} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
                    )
                    self._staged.add(id(conn))
                async with conn.transaction():
                    await conn.copy_records_to_table(self._stage, records=rows, columns=list(self.columns))
                    await conn.execute(self._from_stage)
        except BaseException:
            await self._drop(conn)
            raise
        self._give_back(conn)

    async def _arrays_sql(self, conn: Any) -> str:
        """``INSERT ... SELECT FROM unnest($1::type[], ...) ON CONFLICT ...`` with the table's
        column types, or "" when a column is itself an array (unnest would flatten it)."""
        found = await conn.fetch(
            "SELECT attname, format_type(atttypid, atttypmod) AS type, attndims > 0 "
            "OR t.typcategory = 'A' AS is_array FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
            "WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped",
            self._qualified,
        )
        types = {r["attname"]: (r["type"], r["is_array"]) for r in found}
        missing = [c for c in self.columns if c not in types]
        if missing:
            raise ConfigError("PostgresSink", "columns", f"{missing} are not columns of {self._qualified}")
        if any(types[c][1] for c in self.columns):
            self._from_arrays = ""
            return ""
        arrays = ", ".join(f"${i + 1}::{types[c][0]}[]" for i, c in enumerate(self.columns))
        self._from_arrays = (
            f"INSERT INTO {self._qualified} ({self._cols}) SELECT * FROM unnest({arrays}) "
            f"ON CONFLICT {self._action}"
        )
        return self._from_arrays

    def __repr__(self) -> str:
        return f"PostgresSink(table={self._qualified}, method={self.method!r}, held={self._held})"
