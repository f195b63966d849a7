"""``BatchWriter``: handlers hand it rows; it upserts them N at a time or every T seconds.

``await writer.write(row)`` returns once the batch holding the row is committed, so a handler
that awaits it and then returns (acking its event) never acks an event whose rows were lost.
An awaited write starts a batch at once when a flush is free; rows arriving while every flush
is busy form the next batch (group commit), so batches grow with concurrency without a timer
adding latency (``GroupCall``). ``writer.add(row)`` queues without waiting and is flushed
at ``max_rows`` or after ``max_delay``; ``flush()`` and ``aclose()`` (also on shutdown) write
what is left. A batch holds at most ``max_rows`` rows; when one fails, the writers waiting on it
get the error and the next batch is still tried. Rows with the same key inside one batch are
collapsed to the last one: PostgreSQL refuses to upsert one row twice in a statement, and the
last write wins anyway.

Up to ``flushes`` batches are written at once (by default as many as the sink holds
connections): rows that arrive while batches are being written go in the next free flush at
once, and a backlog (``add()``, ``write_many()``) drains in batches of ``max_rows`` in parallel.
On PostgreSQL a commit waits for its WAL flush (about 8 ms on this project's test machine), and
commits in flight together share flushes, so awaited writes from many handlers gain most from
this. With ``flushes=1`` rows that arrive while a batch is written form the next one. A row
whose key is in a batch being written waits for a later batch, so two writes of one key
always commit in the order they were made.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import Any

from .._group import GroupCall
from ..errors import ConfigError
from .sink import Row, Sink

__all__ = ["BatchWriter"]

log = logging.getLogger("interlock.sink")


class BatchWriter:
    """Group rows into batched, idempotent upserts: ``max_rows`` per batch, ``max_delay``
    seconds at most for rows queued with ``add()``; ``await write(row)`` returns once durable.

    ::

        sink = interlock.stores.PostgresSink("payments", ["id", "customer", "amount"], key=["id"], dsn=DSN)
        async with interlock.BatchWriter(sink, max_rows=1000, max_delay=0.05) as writer:
            await writer.write({"id": "pay_1", "customer": "cus_9", "amount": 1200})
    """

    def __init__(
        self, sink: Sink, *, max_rows: int = 1000, max_delay: float = 0.05, flushes: int | None = None
    ) -> None:
        if max_rows < 1:
            raise ConfigError("BatchWriter", "max_rows", f"must be >= 1, got {max_rows!r}")
        if max_delay < 0:
            raise ConfigError("BatchWriter", "max_delay", f"must be >= 0 seconds, got {max_delay!r}")
        if flushes is None:
            flushes = getattr(sink, "connections", 1)
        if not isinstance(flushes, int) or flushes < 1:
            raise ConfigError("BatchWriter", "flushes", f"must be an integer >= 1, got {flushes!r}")
        self.sink = sink
        self.max_rows = max_rows
        self.max_delay = max_delay
        self.flushes = flushes
        key_index = [sink.columns.index(k) for k in sink.key]
        self._key: Callable[[Row], Any] = (
            itemgetter(key_index[0]) if len(key_index) == 1 else itemgetter(*key_index)
        )
        # A mapping's values in column order, in one C-level call (rows come by the hundred
        # thousand in a bulk load); a single column still gives a tuple.
        columns = list(sink.columns)
        self._width = len(columns)
        self._values: Callable[[Mapping[str, Any]], Any] = (
            itemgetter(*columns) if len(columns) > 1 else (lambda row: (row[columns[0]],))
        )
        self._group: GroupCall[Row, None] = GroupCall(
            self._write_batch, max_batch=max_rows, max_in_flight=flushes, key=self._key
        )
        self._timer: asyncio.TimerHandle | None = None
        self.rows_written = 0
        self.batches = 0
        self._closed = False

    def _as_row(self, row: Mapping[str, Any] | Sequence[Any]) -> Row:
        if self._closed:
            raise RuntimeError("BatchWriter is closed")
        if type(row) is tuple and len(row) == self._width:
            return row  # already a row: the bulk path's common case
        if isinstance(row, Mapping):
            try:
                return self._values(row)  # type: ignore[no-any-return]
            except KeyError as exc:
                raise ConfigError("BatchWriter", "row", f"is missing column {exc.args[0]!r}") from None
        values = tuple(row)
        if len(values) != len(self.sink.columns):
            raise ConfigError(
                "BatchWriter", "row", f"has {len(values)} values for {len(self.sink.columns)} columns"
            )
        return values

    def add(self, row: Mapping[str, Any] | Sequence[Any]) -> None:
        """Queue a row without waiting for it to be written: it goes with the next batch, at
        ``max_rows`` queued rows or ``max_delay`` seconds from now, whichever comes first."""
        self._group.add(self._as_row(row))
        if self._group.pending >= self.max_rows:
            self._start()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.max_delay, self._start)

    async def write(self, row: Mapping[str, Any] | Sequence[Any]) -> None:
        """Queue a row and wait until its batch is committed (raises if the batch failed).

        With the sink idle the batch starts at once rather than at the timer; rows arriving
        while it is written form the next batch, so batches grow with the number of
        concurrent writers and nobody waits for a timer.
        """
        await self._group(self._as_row(row))

    async def write_many(self, rows: Sequence[Mapping[str, Any] | Sequence[Any]]) -> None:
        """Queue rows and wait until all are committed (raises if a batch holding one failed):
        batches of ``max_rows``, up to ``flushes`` written at once."""
        await self._group.call_many([self._as_row(row) for row in rows])

    @property
    def pending(self) -> int:
        """Rows queued and not yet handed to the sink."""
        return self._group.pending

    def _start(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._group.start()

    async def _write_batch(self, rows: list[Row]) -> list[None]:
        try:
            await self.sink.write_rows(self._collapse(rows))
        except Exception as exc:
            # Rows queued with add() have nobody waiting for them: the log is their only report.
            log.error("batch of %d rows into %r failed: %r", len(rows), self.sink, exc)
            raise
        self.batches += 1
        self.rows_written += len(rows)
        return [None] * len(rows)

    def _collapse(self, rows: list[Row]) -> list[Row]:
        latest = dict(zip(map(self._key, rows), rows, strict=True))  # the last row of each key
        return list(latest.values()) if len(latest) != len(rows) else rows

    async def flush(self) -> None:
        """Write everything queued so far, and wait for it."""
        self._start()
        await self._group.drain()

    async def aclose(self) -> None:
        """Flush, refuse further rows and close the sink."""
        await self.flush()
        self._closed = True
        await self.sink.aclose()

    async def __aenter__(self) -> BatchWriter:
        await self.sink.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return (
            f"BatchWriter({self.sink!r}, max_rows={self.max_rows}, max_delay={self.max_delay}, "
            f"flushes={self.flushes}, queued={self.pending}, written={self.rows_written}, batches={self.batches})"
        )
