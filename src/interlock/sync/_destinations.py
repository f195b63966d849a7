"""Where a sync job writes: another upstream (``WriteBack``), a table through the batch writer
(``ToTable``) or a Python function (``ToHandler``; any async callable is wrapped in one)."""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable
from urllib.parse import quote

from ..errors import ConfigError
from ..stores import BatchWriter
from ._source import SyncRecord

if TYPE_CHECKING:
    from ..client import Client

__all__ = ["Applied", "Destination", "ToHandler", "ToTable", "WriteBack", "as_destination"]

Applied = tuple[str | None, int]
"""What a destination reports for an applied record: the upstream tracking id (or None) and
how many calls it took."""


@runtime_checkable
class Destination(Protocol):
    """Where a sync job writes: anything with these two defaults and three methods. ``Sync``
    opens it once, calls ``apply`` for each record (concurrently, up to the job's
    ``concurrency``) and closes it with the job."""

    default_concurrency: int
    """How many records are applied at once unless the job says otherwise."""
    default_attempts: int
    """Tries per record at the job level before the record is dead-lettered."""

    async def open(self) -> None:
        """Acquire what ``apply`` needs; called once, when the job opens."""
        ...

    async def aclose(self) -> None:
        """Release it, after the last record; called when the job closes."""
        ...

    async def apply(self, record: SyncRecord) -> Applied:
        """Apply one record; raise when it failed (the job retries, then dead-letters)."""
        ...


class WriteBack:
    """Write each record to another upstream with one singular upsert (``PUT path`` by default,
    ``path`` formatted with ``{id}``). Every call goes through ``client``'s policies; the
    ``Idempotency-Key`` is the record version's, so a replay after a crash is applied once.

    Seed 002: singular upserts are atomic, fail with a clear error for one record, and retry
    safely; five in parallel is the limit most APIs accept (``concurrency``, default 5).
    ``body(record)`` shapes what is sent (default: the item as listed).
    Retries are the Client's: each write is a call of the ``"background"`` profile (see
    ``interlock.Profile``: it waits out an open breaker and the rate limit within a 5 minute
    deadline) unless the Client was given ``retry=`` / ``timeout=`` explicitly; the job itself
    tries once and dead-letters what the Client gave up on.
    """

    default_concurrency = 5
    default_attempts = 1

    def __init__(
        self,
        client: Client,
        path: str,
        *,
        method: Literal["PUT", "POST", "PATCH"] = "PUT",
        body: Callable[[SyncRecord], Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if method not in ("PUT", "POST", "PATCH"):
            raise ConfigError("WriteBack", "method", f"must be PUT, POST or PATCH, got {method!r}")
        if "{id}" not in path and method != "POST":
            raise ConfigError("WriteBack", "path", f"must contain {{id}} for a {method} upsert, got {path!r}")
        self.client = client
        self.path = path
        self.method = method
        self.body = body
        self.headers = dict(headers) if headers else {}
        self._headers = {"Content-Type": "application/json", **self.headers}
        self.route = path  # the template doubles as the metrics route

    async def open(self) -> None:
        """Nothing to open: the Client is the caller's."""

    async def aclose(self) -> None:
        """Nothing to close: the Client is the caller's."""

    async def apply(self, record: SyncRecord) -> Applied:
        """Send the record (or ``body(record)``) as JSON; raises what the Client raises, or
        ``raise_for_status``'s error for an error answer."""
        payload = record.data if self.body is None else self.body(record)
        content = json.dumps(payload, separators=(",", ":")).encode()
        # The key names the record version *and* the exact body: a replay after a crash sends
        # the same bytes and is deduplicated upstream, while a body that changed (a transform
        # fixed before a DLQ replay) is a new request; reusing a key for a different body is
        # refused (draft-ietf-httpapi-idempotency-key-header, section 2.7).
        digest = hashlib.blake2b(content, digest_size=6).hexdigest()
        response = await self.client.request(
            self.method,
            self.path.replace("{id}", quote(record.key, safe="")),
            content=content,
            headers=self._headers,
            idempotency_key=f"{record.idempotency_key}:{digest}",
            route=self.route,
            profile="background",
        )
        response.raise_for_status()
        return response.tracking_id, response.attempts

    def __repr__(self) -> str:
        return f"WriteBack({self.method} {self.client.name}{self.path})"


class ToTable:
    """Upsert each record as a row through an ``interlock.BatchWriter`` (SQLite or PostgreSQL):
    records applied concurrently share a batch, and a record counts as applied once its batch
    is committed. ``row`` maps a record to a row (a mapping by column, or a sequence in column
    order); by default the record's fields of the same names."""

    default_concurrency = 1000
    default_attempts = 3

    def __init__(
        self,
        writer: BatchWriter,
        *,
        row: Callable[[SyncRecord], Mapping[str, Any] | Sequence[Any]] | None = None,
        owned: bool = False,
    ) -> None:
        if not isinstance(writer, BatchWriter):
            raise ConfigError("ToTable", "writer", f"must be an interlock.BatchWriter, got {writer!r}")
        self.writer = writer
        self.row = row
        self._owned = owned
        self._columns = writer.sink.columns

    @classmethod
    def sqlite(
        cls,
        url: str,
        table: str,
        columns: Sequence[str],
        key: Sequence[str],
        *,
        row: Callable[[SyncRecord], Mapping[str, Any] | Sequence[Any]] | None = None,
        max_rows: int = 1000,
    ) -> ToTable:
        """A ``ToTable`` writing to ``table`` in the SQLite database at ``url``, upserting on the
        ``key`` columns; the job owns (and closes) the writer."""
        from ..stores import SQLiteSink

        return cls(BatchWriter(SQLiteSink(url, table, columns, key), max_rows=max_rows), row=row, owned=True)

    @classmethod
    def postgres(
        cls,
        dsn: str,
        table: str,
        columns: Sequence[str],
        key: Sequence[str],
        *,
        schema: str | None = None,
        row: Callable[[SyncRecord], Mapping[str, Any] | Sequence[Any]] | None = None,
        max_rows: int = 1000,
        method: Literal["copy", "executemany"] = "copy",
    ) -> ToTable:
        """A ``ToTable`` writing to ``table`` in the PostgreSQL database at ``dsn``, upserting on
        the ``key`` columns (``COPY`` into a staging table by default); the job owns (and
        closes) the writer. Needs asyncpg."""
        from ..stores.sink_postgres import PostgresSink

        sink = PostgresSink(table, columns, key, dsn=dsn, schema=schema, method=method)
        return cls(BatchWriter(sink, max_rows=max_rows), row=row, owned=True)

    async def open(self) -> None:
        """Open the writer's sink."""
        await self.writer.sink.open()

    async def aclose(self) -> None:
        """Close the writer when the job owns it, else only flush what is pending."""
        if self._owned:
            await self.writer.aclose()
        else:
            await self.writer.flush()

    async def apply(self, record: SyncRecord) -> Applied:
        """Write the record's row; returns once the batch holding it is committed."""
        if self.row is not None:
            row = self.row(record)
        else:
            data = record.data if isinstance(record.data, Mapping) else {}
            row = tuple(data.get(c) for c in self._columns)
        await self.writer.write(row)
        return None, 1

    def __repr__(self) -> str:
        return f"ToTable({self.writer.sink!r})"


class ToHandler:
    """Call ``fn(record)`` for each record (an async function, or a plain one run in a thread);
    it may return the upstream tracking id of what it did, for the ledger."""

    default_concurrency = 5
    default_attempts = 3

    def __init__(self, fn: Callable[[SyncRecord], Awaitable[str | None] | str | None]) -> None:
        if not callable(fn):
            raise ConfigError("ToHandler", "fn", f"must be callable, got {fn!r}")
        self.fn = fn
        self._is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
            getattr(fn, "__call__", None)  # noqa: B004 - a callable object's async __call__
        )

    async def open(self) -> None:
        """Nothing to open."""

    async def aclose(self) -> None:
        """Nothing to close."""

    async def apply(self, record: SyncRecord) -> Applied:
        """Call the function with the record; what it raises fails the record."""
        if self._is_async:
            result = await self.fn(record)  # type: ignore[misc]
        else:
            import asyncio

            result = await asyncio.to_thread(self.fn, record)
            if inspect.isawaitable(result):
                result = await result
        return (result if isinstance(result, str) else None), 1

    def __repr__(self) -> str:
        return f"ToHandler({getattr(self.fn, '__qualname__', self.fn)!r})"


def as_destination(value: object) -> Destination:
    """The ``Destination`` for what ``Sync(destination=...)`` was given: a destination as is, a
    ``BatchWriter`` as a ``ToTable``, any other callable as a ``ToHandler``."""
    if isinstance(value, WriteBack | ToTable | ToHandler):
        return value
    if isinstance(value, BatchWriter):
        return ToTable(value)
    if isinstance(value, Destination):
        return value
    if callable(value):
        return ToHandler(value)
    raise ConfigError(
        "Sync", "destination", f"must be a WriteBack, a ToTable, a BatchWriter or a callable, got {value!r}"
    )
