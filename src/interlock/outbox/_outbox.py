"""``Outbox``: events written in the application's own transaction, relayed to the queue, handled
by Inbox-style consumers with retries, ordering and a dead-letter queue."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .._clock import SYSTEM_CLOCK, Clock
from .._ids import new_id
from .._lifecycle import Resource, opens_once
from ..errors import ConfigError
from ..inbox import Handler, Inbox, WorkerPool
from ..stores import sqlite_path_from_url
from ..stores.queue import Queue
from ._relay import PostgresRelayStore, RelayStore, SQLiteRelayStore
from ._table import OutboxRow, statements

__all__ = ["Outbox"]

log = logging.getLogger("interlock.outbox")

H = TypeVar("H", bound=Handler)

MAX_BATCH = 500
"""Rows one relay round moves at most (the bound on what a round holds in memory)."""


class Outbox(Resource):
    """Events written with the business rows, in one transaction, then relayed to consumers.

    ::

        outbox = interlock.Outbox("postgresql://app@db/shop", store="amqp://broker/")

        @outbox.consumer("inventory", "order.created")
        async def reserve(event: interlock.Event) -> None: ...

        async with outbox:                                   # creates the outbox table
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("INSERT INTO orders ...")
                await outbox.add(conn, "order.created", {"id": order_id}, key=order_id)
            outbox.start_relay()                             # and, here or elsewhere:
            outbox.start_workers(concurrency=8)

    ``database`` is the application's database, where the outbox table ``table`` lives:
    ``postgresql://...`` (``?schema=name`` to keep the table in a schema) or
    ``sqlite:///path.db``. ``add`` takes a connection to that same database, in a transaction:
    an asyncpg connection, an aiosqlite connection or a ``sqlite3.Connection``.

    Each event is delivered to every consumer subscribed to its type, each through the queue
    (``store``: any queue URL or ``Queue``, or the queue of ``inbox`` when given) as its own
    message of the Inbox source ``{source}.{consumer}``: consumers retry, dead-letter and are
    replayed independently (``interlock dlq replay --source outbox.payment``). Events sharing
    a ``key`` reach each consumer one at a time, in the order they were added. Every process
    that runs a relay must declare the same consumers (the relay fans out to those it knows);
    an event no consumer wants is put under ``{source}`` itself and acknowledged as unhandled.

    Guarantees: nothing is delivered for a transaction that rolled back (its row never
    existed); nothing committed is lost if the relay dies (rows are deleted only after the
    queue made their messages durable, and the queue dedupes on the event id, so a relay that
    restarts moves nothing twice). Delivery is at least once: make effects idempotent on
    ``event.id``.
    """

    def __init__(
        self,
        database: str,
        *,
        store: str | Queue = "sqlite:///interlock.db",
        inbox: Inbox | None = None,
        source: str = "outbox",
        table: str = "interlock_outbox",
        poll_interval: float = 0.2,
        batch: int = MAX_BATCH,
        clock: Clock | None = None,
    ) -> None:
        if not isinstance(database, str) or not database:
            raise ConfigError(
                "Outbox", "database", f"expected a postgresql:// or sqlite:/// URL, got {database!r}"
            )
        if not poll_interval > 0:
            raise ConfigError("Outbox", "poll_interval", f"must be > 0 seconds, got {poll_interval!r}")
        if not 1 <= batch <= MAX_BATCH:
            raise ConfigError("Outbox", "batch", f"must be 1..{MAX_BATCH}, got {batch!r}")
        if not source or "." in source or not source.isprintable():
            raise ConfigError("Outbox", "source", f"must be a printable name without '.', got {source!r}")
        scheme = database.partition(":")[0].lower()
        self.clock = clock or SYSTEM_CLOCK
        self.inbox = inbox if inbox is not None else Inbox(store=store, clock=self.clock)
        """The Inbox whose queue, workers and DLQ carry the consumers' events."""
        self._own_inbox = inbox is None
        self.source = source
        self.table = table
        self.poll_interval = poll_interval
        self.batch = batch
        self._consumers: dict[str, set[str]] = {}
        self._relay_task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._opened = False
        self.relayed = 0
        """Events moved to the queue by this process's relay (each counted once per consumer)."""
        self.inbox.internal_source(source)
        if scheme in ("postgresql", "postgres"):
            parts = urlsplit(database)
            query = parse_qsl(parts.query, keep_blank_values=True)
            schema = next((v for k, v in query if k == "schema"), None)
            dsn = urlunsplit(parts._replace(query=urlencode([(k, v) for k, v in query if k != "schema"])))
            self.dialect = "postgres"
            self._sql = statements("postgres", table, schema)
            self.channel = f"interlock_outbox.{schema or 'public'}.{table}"[:63]
            """The NOTIFY channel ``add`` signals (PostgreSQL delivers it at commit)."""
            self._store: RelayStore = PostgresRelayStore(dsn, self._sql, channel=self.channel, schema=schema)
        elif scheme == "sqlite":
            self.dialect = "sqlite"
            self._sql = statements("sqlite", table)
            self.channel = ""
            self._store = SQLiteRelayStore(sqlite_path_from_url(database), self._sql)
        else:
            raise ConfigError(
                "Outbox",
                "database",
                f"unsupported URL scheme {scheme!r}: accepted postgresql://... or sqlite:///...",
            )
        self._database = database

    # -- consumers -------------------------------------------------------------------------------

    def consumer(self, name: str, type: str = "*") -> Callable[[H], H]:
        """Decorator: ``name`` consumes events of ``type`` ("*" for any) with the function;
        its events are the Inbox source ``{source}.{name}``."""

        def register(fn: H) -> H:
            self.add_consumer(name, type, fn)
            return fn

        return register

    def add_consumer(self, name: str, type: str, fn: Handler) -> None:
        """The non-decorator form of ``consumer``; one consumer may subscribe to several types."""
        if not name or not name.isprintable() or "." in name:
            raise ConfigError("Outbox", "consumer", f"must be a printable name without '.', got {name!r}")
        if not isinstance(type, str) or not type:
            raise ConfigError(
                "Outbox", "consumer", f"the event type must be a non-empty string, got {type!r}"
            )
        source = self.consumer_source(name)
        self.inbox.internal_source(source)
        self.inbox.add_handler(source, type, fn)
        self._consumers.setdefault(name, set()).add(type)

    def consumer_source(self, name: str) -> str:
        """The Inbox source (and DLQ ``--source``) of consumer ``name``'s events."""
        return f"{self.source}.{name}"

    def consumers_of(self, type: str) -> list[str]:
        """The consumers an event of ``type`` is delivered to, in the order they were declared."""
        return [name for name, types in self._consumers.items() if type in types or "*" in types]

    # -- writing ---------------------------------------------------------------------------------

    async def add(
        self,
        conn: Any,
        type: str,
        payload: Any = None,
        *,
        key: str | None = None,
        id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> str:
        """Write an event in ``conn``'s open transaction; it is relayed once that commits.

        ``payload``: bytes or text as is, anything else as JSON. ``key``: events sharing it are
        handled in the order they were added (per consumer). ``id``: the event id consumers
        see and the queue dedupes on (default: a new random id); adding an id already waiting
        does nothing. Returns the id. ``conn`` must be in a transaction (otherwise the event
        would not share the business rows' fate): an asyncpg connection inside
        ``conn.transaction()``, or a sqlite3 / aiosqlite connection in a transaction (Python's
        default ``isolation_level`` starts one at the first write).
        """
        if not isinstance(type, str) or not type:
            raise ConfigError("Outbox.add", "type", f"must be a non-empty string, got {type!r}")
        if key is not None and not isinstance(key, str):
            raise ConfigError("Outbox.add", "key", f"must be a string or None, got {key!r}")
        if isinstance(payload, bytes):
            body = payload
        elif isinstance(payload, str):
            body = payload.encode()
        else:
            body = json.dumps({} if payload is None else payload, separators=(",", ":")).encode()
        event_id = id or new_id()
        params = (event_id, type, key, body, json.dumps(dict(headers or {})), self.clock.time())
        module = getattr(type_of(conn), "__module__", "")
        if module.startswith("asyncpg"):
            await self._add_asyncpg(conn, params)
        elif module.startswith("aiosqlite"):
            if conn.isolation_level is None and not conn.in_transaction:
                raise _no_transaction("the aiosqlite connection is in autocommit mode outside a transaction")
            await _translate_missing(self, conn.execute(self._sql.insert, params))
        elif isinstance(conn, sqlite3.Connection):
            if conn.isolation_level is None and not conn.in_transaction:
                raise _no_transaction("the sqlite3 connection is in autocommit mode outside a transaction")
            try:
                conn.execute(self._sql.insert, params)
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    raise _missing(self) from exc
                raise
        else:
            raise ConfigError(
                "Outbox.add",
                "conn",
                f"expected an asyncpg, aiosqlite or sqlite3 connection, got {type_of(conn).__name__}",
            )
        self._wake.set()  # a relay in this process looks soon (it finds the row once committed)
        return event_id

    async def _add_asyncpg(self, conn: Any, params: tuple[Any, ...]) -> None:
        if self.dialect != "postgres":
            raise ConfigError(
                "Outbox.add", "conn", f"an asyncpg connection, but the outbox's database is {self.dialect}"
            )
        if not conn.is_in_transaction():
            raise _no_transaction("the asyncpg connection is not inside `async with conn.transaction():`")
        import asyncpg

        try:
            await conn.execute(self._sql.insert, *params)
        except asyncpg.UndefinedTableError as exc:
            raise _missing(self) from exc
        # Delivered when (and only if) the transaction commits: the relay wakes for committed rows.
        await conn.execute("SELECT pg_notify($1, '')", self.channel)

    # -- lifecycle -------------------------------------------------------------------------------

    @opens_once
    async def open(self) -> None:
        """Connect the relay's store (creating the outbox table if missing) and open the inbox."""
        await self._store.open()
        await self.inbox.open()
        self._opened = True

    async def aclose(self) -> None:
        """Stop the relay (its round in flight finishes), close the inbox if the outbox made it,
        and the relay's connections."""
        await self.stop_relay()
        if self._own_inbox:
            await self.inbox.aclose()
        await self._store.aclose()
        self._opened = False

    # -- relaying --------------------------------------------------------------------------------

    async def relay_once(self) -> int:
        """One relay round: move up to ``batch`` committed events to the queue; how many rows."""
        if not self._opened:
            await self.open()
        return await self._store.round(self.batch, self._put)

    async def _put(self, row: OutboxRow) -> None:
        targets = [self.consumer_source(name) for name in self.consumers_of(row.type)] or [self.source]
        headers = json.loads(row.headers)
        for source in targets:
            await self.inbox.submit(
                source, row.type, row.body, id=row.id, headers=headers, ordering_key=row.key
            )
            self.relayed += 1

    async def pending(self) -> int:
        """Events committed to the outbox table and not yet relayed."""
        if not self._opened:
            await self.open()
        return await self._store.count()

    async def run_relay(self) -> None:
        """Relay until ``stop_relay()`` or cancellation: a round whenever rows may be waiting
        (a NOTIFY on PostgreSQL, an ``add`` in this process), at least every ``poll_interval``
        s; a failing round is logged and retried after 1 s."""
        await self.open()
        self._stopping.clear()
        while not self._stopping.is_set():
            try:
                moved = await self.relay_once()
            except Exception as exc:
                log.error("outbox relay round failed, retrying in 1 s: %r", exc)
                await self._pause(1.0)
                continue
            if moved >= self.batch:
                continue  # more may be waiting
            self._wake.clear()
            waits = [
                asyncio.ensure_future(self._store.wait(self.poll_interval)),
                asyncio.ensure_future(self._wake.wait()),
                asyncio.ensure_future(self._stopping.wait()),
            ]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for w in waits:
                w.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*waits, return_exceptions=True)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def start_relay(self) -> asyncio.Task[None]:
        """Run the relay in a background task (``stop_relay()`` or ``aclose()`` stops it)."""
        if self._relay_task is None or self._relay_task.done():
            self._relay_task = asyncio.create_task(self.run_relay(), name="interlock-outbox-relay")
        return self._relay_task

    async def stop_relay(self) -> None:
        """Stop the background relay after its round in flight."""
        self._stopping.set()
        task, self._relay_task = self._relay_task, None
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def start_workers(self, concurrency: int = 8, *, visibility: float | None = None) -> WorkerPool:
        """The consumers' workers in a background task (the inbox's ``start_workers``)."""
        return self.inbox.start_workers(concurrency, visibility=visibility)

    async def run_workers(self, concurrency: int = 8, *, visibility: float | None = None) -> None:
        """Run the relay and the consumers' workers until cancelled."""
        relay = self.start_relay()
        try:
            await self.inbox.run_workers(concurrency, visibility=visibility)
        finally:
            await self.stop_relay()
            del relay

    def __repr__(self) -> str:
        state = "relaying" if self._relay_task is not None else "open" if self._opened else "closed"
        consumers = {name: sorted(types) for name, types in self._consumers.items()}
        return f"Outbox({self.dialect}, table={self.table!r}, consumers={consumers}, {state})"


def type_of(obj: Any) -> type:
    """``type(obj)``, under a name that does not shadow ``add``'s ``type`` argument."""
    return obj.__class__  # type: ignore[no-any-return]


def _no_transaction(why: str) -> ConfigError:
    return ConfigError(
        "Outbox.add",
        "conn",
        f"{why}: add the event in the same transaction as the business rows, or it is not atomic",
    )


def _missing(outbox: Outbox) -> ConfigError:
    return ConfigError(
        "Outbox.add",
        "conn",
        f"the outbox table {outbox.table!r} does not exist in that database: open the Outbox once"
        " (`await outbox.open()` or `async with outbox:`), which creates it",
    )


async def _translate_missing(outbox: Outbox, call: Any) -> None:
    try:
        await call
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            raise _missing(outbox) from exc
        raise
