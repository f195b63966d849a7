"""What a broker does not keep, kept in a SQL queue's table: the ledger behind the broker queues.

RabbitMQ and NATS JetStream carry the messages and their leases (an unacked delivery), but give
no dedupe across a long window, no dead-letter listing, replay or purge by filter, no stats and
no error history. ``BrokerQueue`` keeps those in a *companion*: a ``SQLiteQueue`` or
``PostgresQueue`` whose table (the ``_queue_rows`` model) holds one row per message. The
companion's own ``lease`` is never called; its rows say what the broker's copies mean:

- ``state`` pending / done / dead, ``attempts`` and ``errors``, as in the SQL queues;
- a pending row with ``lease_token`` NULL and ``visible_at = 0`` is *not yet confirmed published*;
  once the broker confirms the publish it gets ``visible_at = 1``;
- a leased row has the lease's token and ``visible_at`` = its expiry.

Order of writes, so that no acknowledged event is lost if the process dies between the two:

- ``put``: insert the row first (the dedupe), publish and wait for the broker's confirm second,
  then mark the row published; ``put`` returns True only after the confirm. A process that dies
  between insert and confirm leaves an unconfirmed row, which ``open`` (the reconcile) publishes
  again: a duplicate copy at worst, never a lost event.
- ``ack`` / ``dead_letter``: the row is settled first, the broker delivery acked second. A
  process dying between them leaves a delivery the broker hands out again; it finds its row
  settled and is dropped.
- ``nack``: the failure is recorded first, then the broker is told to redeliver later.
- A delivery whose row is leased by someone else (a duplicate copy, or the copy of a consumer
  that died before its lease expired) is given back to the broker, never dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .._clock import SYSTEM_CLOCK, Clock
from .._lifecycle import opens_once
from ..errors import ConfigError
from . import _queue_rows as model
from ._backends import redact_url
from ._signal import WorkSignal
from .queue import DeadLetter, DeadLetterFilter, Failure, Lease, Message, QueueStats

logger = logging.getLogger("interlock.stores")

UNPUBLISHED, PUBLISHED = 0.0, 1.0
"""``visible_at`` of a pending, unleased row before and after the broker confirmed its publish."""


def split_companion(url: str, default: str) -> tuple[str, str]:
    """A broker URL without its ``companion=`` query parameter, and that parameter (or ``default``):
    ``amqp://host/?companion=sqlite:///inbox.db`` keeps the companion in ``inbox.db``."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    found = [v for k, v in pairs if k == "companion"]
    rest = urlencode([(k, v) for k, v in pairs if k != "companion"])
    return urlunsplit(parts._replace(query=rest)), (found[-1] if found else default)


def split_options(url: str, owner: str, kinds: dict[str, type]) -> tuple[str, dict[str, Any]]:
    """A broker URL without the query parameters named in ``kinds`` (Interlock's own options,
    such as ``?ack_wait=5``), and their values converted to those types; a value that does not
    convert is a ``ConfigError`` naming the parameter. The client library's own parameters
    (aio-pika's ``reconnect_interval``...) stay in the URL."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    found: dict[str, Any] = {}
    for k, v in pairs:
        if k in kinds:
            try:
                found[k] = kinds[k](v)
            except ValueError:
                raise ConfigError(owner, k, f"the URL's {k}= must be a {kinds[k].__name__}, got {v!r}") from None
    rest = urlencode([(k, v) for k, v in pairs if k not in kinds])
    return urlunsplit(parts._replace(query=rest)), found


RECONCILE_EVERY = 10.0
"""How often (seconds) an open broker queue looks for rows whose publish was never confirmed."""


class Companion:
    """A few statements on a SQL queue's table, in SQLite's or PostgreSQL's spelling."""

    def __init__(self, url: str, *, table: str, clock: Clock) -> None:
        self.url = url
        scheme = url.partition(":")[0].lower() if ":" in url else ""
        self.postgres = scheme in ("postgresql", "postgres")
        self.queue: Any
        if self.postgres:
            from .queue_postgres import PostgresQueue

            self.queue = PostgresQueue(url, table=table, clock=clock, pool_size=4)
            self.table = self.queue._qualified
        else:
            from .queue_sqlite import SQLiteQueue

            self.queue = SQLiteQueue(url, table=table, clock=clock)
            self.table = table
        fail = "errors || {}::jsonb" if self.postgres else "json_insert(coalesce(errors, '[]'), '$[#]', json({}))"
        self._fail = fail

    def _sql(self, sql: str) -> str:
        """``?`` placeholders as ``$1, $2...`` for PostgreSQL."""
        if not self.postgres:
            return sql
        count = iter(range(1, 1000))
        return re.sub(r"\?", lambda _: f"${next(count)}", sql)

    async def fetch(self, sql: str, *params: Any) -> list[Sequence[Any]]:
        """Rows of a statement (with ``RETURNING``, an update's rows)."""
        sql = self._sql(sql)
        if self.postgres:
            return list(await self.queue.pool.fetch(sql, *params))
        return await self.queue._run(lambda conn: conn.execute(sql, params).fetchall())  # type: ignore[no-any-return]

    async def execute(self, sql: str, *params: Any) -> int:
        """Rows a statement changed."""
        sql = self._sql(sql)
        if self.postgres:
            status = await self.queue.pool.execute(sql, *params)
            return int(status.split()[-1])
        return await self.queue._run(lambda conn: conn.execute(sql, params).rowcount)  # type: ignore[no-any-return]

    async def fetch_many(self, sql: str, params: Sequence[Sequence[Any]]) -> list[list[Sequence[Any]]]:
        """The rows of one statement run once per parameter tuple, all in one transaction (one
        commit for a whole lease batch instead of one per delivery)."""
        sql = self._sql(sql)
        if self.postgres:
            async with self.queue.pool.acquire() as conn, conn.transaction():
                return [list(await conn.fetch(sql, *p)) for p in params]
        return await self.queue._run(  # type: ignore[no-any-return]
            lambda conn: [conn.execute(sql, tuple(p)).fetchall() for p in params]
        )

    def failure_sql(self) -> str:
        """The ``errors = ...`` assignment appending the JSON parameter ``?``."""
        return "errors = " + self._fail.format("?")


@dataclass(slots=True)
class Held:
    """A delivery this process holds for a lease, until settled or expired."""

    handle: Any
    lease: Lease
    expires_at: float


class BrokerQueue:
    """The ``Queue`` on a broker: the broker carries messages and leases, the companion the rest.

    Subclasses implement the ``_broker_*`` methods; everything else is here.
    """

    owner = "BrokerQueue"

    def __init__(
        self,
        url: str,
        *,
        name: str,
        companion: str | None,
        clock: Clock | None,
        poll_interval: float,
        max_in_flight: int,
    ) -> None:
        url, from_url = split_companion(url, "sqlite:///interlock.db")
        companion = companion or from_url
        self.url = url
        """The broker's URL (without ``companion=``)."""
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}", name):
            raise ConfigError(self.owner, "name", f"must be letters, digits, _ . - (at most 100), got {name!r}")
        if poll_interval <= 0:
            raise ConfigError(self.owner, "poll_interval", f"must be > 0 seconds, got {poll_interval!r}")
        if max_in_flight < 1:
            raise ConfigError(self.owner, "max_in_flight", f"must be >= 1, got {max_in_flight!r}")
        self.name = name
        self.poll_interval = poll_interval
        self.max_in_flight = max_in_flight
        self._clock = clock or SYSTEM_CLOCK
        self._companion = Companion(companion, table=name.replace(".", "_").replace("-", "_"), clock=self._clock)
        self._signal = WorkSignal(poll_interval)
        self._held: dict[str, Held] = {}
        self._marks: set[asyncio.Future[int]] = set()
        self._opened = False
        self._reaper: asyncio.Task[None] | None = None

    # -- what each broker does ---------------------------------------------------------------

    async def _broker_open(self) -> None:
        raise NotImplementedError

    async def _broker_close(self) -> None:
        raise NotImplementedError

    async def _broker_publish(self, message: Message, *, delay: float = 0.0) -> None:
        """Publish one copy of ``message``, leasable after ``delay`` s; return once durable."""
        raise NotImplementedError

    async def _broker_fetch(self, max_messages: int) -> list[tuple[Any, str, str]]:
        """Up to ``max_messages`` deliveries available now: (handle, source, id); never waits long."""
        raise NotImplementedError

    async def _broker_ack(self, handle: Any) -> None:
        raise NotImplementedError

    async def _broker_requeue(self, handle: Any) -> None:
        """Give the delivery back for immediate redelivery."""
        raise NotImplementedError

    async def _broker_retry(self, handle: Any, message: Message, delay: float) -> None:
        """Redeliver the message after ``delay`` s, then let go of ``handle``."""
        raise NotImplementedError

    async def _broker_heartbeat(self, handle: Any) -> None:
        """Tell the broker the delivery is still being worked on (NATS ``in_progress``)."""

    async def _broker_maintain(self) -> None:
        """Periodic broker housekeeping, run with each reconcile round (RabbitMQ: take back
        what the broker dead-lettered on its own)."""

    def _broker_lost(self, handle: Any) -> bool:
        """Whether the broker has taken the delivery back already (RabbitMQ: its channel closed)."""
        return False

    async def _ack_delivery(self, handle: Any) -> None:
        """Ack a delivery whose row is settled. A failure (the channel or connection it came
        on is gone) loses nothing: the broker hands the delivery out again, and the copy finds
        its row settled and is dropped."""
        try:
            await self._broker_ack(handle)
        except Exception as exc:
            logger.debug("%s %s: ack of a settled delivery failed (%s); it will be dropped on redelivery",
                         self.owner, self.name, type(exc).__name__)

    async def _requeue_delivery(self, handle: Any) -> None:
        """Give a delivery back. A failure loses nothing: the broker requeues the deliveries of
        a lost channel itself (RabbitMQ at once, JetStream after AckWait)."""
        try:
            await self._broker_requeue(handle)
        except Exception as exc:
            logger.debug("%s %s: requeue failed (%s); the broker redelivers it", self.owner, self.name,
                         type(exc).__name__)

    # -- lifecycle ---------------------------------------------------------------------------

    @opens_once
    async def open(self) -> None:
        """Open the companion, connect, declare what is missing, then publish the companion's
        unconfirmed rows again (the reconcile)."""
        await self._companion.queue.open()
        await self._broker_open()
        self._opened = True
        await self._reconcile()
        self._reaper = asyncio.create_task(self._reap_forever(), name=f"{self.owner}:{self.name}:reaper")

    async def _reconcile(self, only: set[int] | None = None) -> set[int]:
        """Publish the companion's unconfirmed rows (all of them, or those of ``only``); return
        the seqs of the unconfirmed rows seen."""
        c = self._companion
        seen: set[int] = set()
        after = -1
        while True:
            rows = await c.fetch(
                f"SELECT {model.COLUMNS} FROM {c.table} WHERE state = 0 AND lease_token IS NULL"
                " AND visible_at = ? AND seq > ? ORDER BY seq LIMIT 500",
                UNPUBLISHED,
                after,
            )
            for row in rows:
                seen.add(row[0])
                if only is None or row[0] in only:
                    await self._publish_row(model.message_of(row))
            if len(rows) < 500:
                return seen
            after = rows[-1][0]

    async def aclose(self) -> None:
        """Give back the deliveries held, disconnect and close the companion."""
        if not self._opened:
            return
        self._opened = False
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
            self._reaper = None
        if self._marks:  # the published marks in flight land before the companion closes
            await asyncio.gather(*self._marks, return_exceptions=True)
        held, self._held = list(self._held.values()), {}
        for h in held:
            with contextlib.suppress(Exception):
                await self._requeue_delivery(h.handle)
        try:
            await self._broker_close()
        finally:
            await self._companion.queue.aclose()

    def __repr__(self) -> str:
        state = "open" if self._opened else "closed"
        return f"{self.owner}(url={redact_url(self.url)!r}, name={self.name!r}, {state})"

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _need_open(self) -> None:
        if not self._opened:
            raise RuntimeError(f"{self.owner} is not open: call `await queue.open()` first")

    # -- leases held by this process ---------------------------------------------------------

    async def _reap_forever(self) -> None:
        # Every ``RECONCILE_EVERY`` s, rows still unconfirmed since the last look (a publish
        # that failed while the broker was away, in this process or one that died) are
        # published again; a row seen once may be a put in flight, so it waits one round.
        last_reconcile, suspects = self._clock.monotonic(), set[int]()
        while True:
            await asyncio.sleep(min(self.poll_interval, 0.1))
            with contextlib.suppress(Exception):
                await self._reap()
            if self._clock.monotonic() - last_reconcile >= RECONCILE_EVERY:
                last_reconcile = self._clock.monotonic()
                with contextlib.suppress(Exception):
                    suspects = await self._reconcile(only=suspects)
                with contextlib.suppress(Exception):
                    await self._broker_maintain()

    async def _reap(self) -> None:
        """Give expired leases' deliveries back to the broker: the message is leasable again.
        Leases whose delivery the broker already took back (its channel was lost) are given up
        in the companion too, so the redelivered copy is leasable at once, not at their expiry."""
        now = self._clock.time()
        c = self._companion
        for token, h in list(self._held.items()):
            if self._broker_lost(h.handle) and self._held.pop(token, None) is not None:
                await c.execute(
                    f"UPDATE {c.table} SET lease_token = NULL, visible_at = ? WHERE lease_token = ? AND state = 0",
                    PUBLISHED,
                    token,
                )
            elif h.expires_at <= now and self._held.pop(token, None) is not None:
                await self._requeue_delivery(h.handle)

    def _holding(self, lease: Lease) -> Held | None:
        h = self._held.get(lease.token)
        if h is None:
            return None
        if h.expires_at <= self._clock.time():
            return None  # expired: the reaper gives it back
        return h

    # -- inbox -------------------------------------------------------------------------------

    async def put(self, message: Message) -> bool:
        """Record in the companion (the dedupe), publish with the broker's confirm, mark it
        published; returns after the confirm."""
        self._need_open()
        if not await self._companion.queue.put(message):
            # Known. If its publish was never confirmed (the broker was unreachable when it was
            # first put, and the sender retries), publish it now: a retry must not be answered
            # "duplicate" while the event sits only in the companion.
            c = self._companion
            if await c.fetch(
                f"SELECT 1 FROM {c.table} WHERE source = ? AND id = ? AND state = 0 AND lease_token IS NULL"
                " AND visible_at = ?",
                message.source,
                message.id,
                UNPUBLISHED,
            ):
                await self._publish_row(message)
            return False
        await self._publish_row(message)
        self._signal.wake()
        return True

    async def _publish_row(self, message: Message) -> None:
        await self._broker_publish(message)
        c = self._companion
        # Marking the row published is not awaited: the event is durable already (the row and
        # the broker's confirmed copy), and a mark that is lost (a crash before its commit)
        # only makes the reconcile publish the row once more, a copy the lease check handles
        # once. Not waiting for that second commit doubles what one put stream can do.
        mark = asyncio.ensure_future(c.execute(
            f"UPDATE {c.table} SET visible_at = ? WHERE source = ? AND id = ? AND state = 0"
            " AND lease_token IS NULL AND visible_at = ?",
            PUBLISHED,
            message.source,
            message.id,
            UNPUBLISHED,
        ))
        self._marks.add(mark)
        mark.add_done_callback(self._mark_done)

    def _mark_done(self, mark: asyncio.Future[int]) -> None:
        self._marks.discard(mark)
        if not mark.cancelled() and mark.exception() is not None:
            logger.debug("%s %s: marking a row published failed (%s); the reconcile publishes it again",
                         self.owner, self.name, type(mark.exception()).__name__)

    # -- work queue --------------------------------------------------------------------------

    async def lease(self, max_messages: int, visibility: float) -> list[Lease]:
        """Take deliveries from the broker and claim their rows; at most ``max_in_flight`` held."""
        self._need_open()
        await self._reap()
        c = self._companion
        leases: list[Lease] = []
        room = max(0, min(max_messages, self.max_in_flight - len(self._held)))
        # Deliveries not leasable now (their ordering key is blocked, or someone else holds
        # their row) stay unacked until the end of this call, so the broker does not hand
        # them out again meanwhile; then they go back. At most ``max_in_flight`` are parked.
        parked: list[Any] = []
        try:
            while len(leases) < room and len(parked) < self.max_in_flight:
                deliveries = await self._broker_fetch(room - len(leases))
                if not deliveries:
                    break
                claimed = await self._claim_many([(source, id_) for _, source, id_ in deliveries], visibility)
                for (handle, source, id_), lease in zip(deliveries, claimed, strict=True):
                    if lease is not None:
                        self._held[lease.token] = Held(handle, lease, lease.expires_at)
                        leases.append(lease)
                        continue
                    live = await c.fetch(
                        f"SELECT 1 FROM {c.table} WHERE source = ? AND id = ? AND state = 0", source, id_
                    )
                    if live:
                        parked.append(handle)  # not ours to drop: someone holds it or its key waits
                    else:
                        await self._ack_delivery(handle)  # settled, purged or pruned: a stale copy
        finally:
            for handle in parked:
                await self._requeue_delivery(handle)
        return sorted(leases, key=lambda lease: lease.message.received_at)

    async def _claim_many(self, deliveries: Sequence[tuple[str, str]], visibility: float) -> list[Lease | None]:
        """Lease the rows of a batch of deliveries (source, id), in one companion transaction:
        each row must be pending, not held by a live lease, and first of its ordering key among
        the pending rows; ``None`` for a delivery whose row is not leasable now."""
        c = self._companion
        now = self._clock.time()
        expires = now + visibility
        tokens = [os.urandom(12).hex() for _ in deliveries]
        results = await c.fetch_many(
            f"UPDATE {c.table} AS e SET attempts = attempts + 1, lease_token = ?, visible_at = ?"
            " WHERE source = ? AND id = ? AND state = 0 AND (lease_token IS NULL OR visible_at <= ?)"
            f" AND (ordering_key IS NULL OR NOT EXISTS (SELECT 1 FROM {c.table} AS p WHERE p.state = 0"
            " AND p.ordering_key = e.ordering_key AND p.seq < e.seq))"
            f" RETURNING {model.COLUMNS}",
            [(token, expires, source, id_, now) for token, (source, id_) in zip(tokens, deliveries, strict=True)],
        )
        out: list[Lease | None] = []
        for token, rows in zip(tokens, results, strict=True):
            if not rows:
                out.append(None)
                continue
            row = rows[0]
            out.append(Lease(model.message_of(row), row[8], token, expires, model.failures_of(row[9])))
        return out

    async def extend(self, lease: Lease, visibility: float) -> bool:
        """Push the lease's expiry to now + ``visibility``, if this process still holds it."""
        h = self._holding(lease)
        if h is None:
            return False
        expires = self._clock.time() + visibility
        c = self._companion
        changed = await c.execute(
            f"UPDATE {c.table} SET visible_at = ? WHERE source = ? AND id = ? AND lease_token = ? AND state = 0",
            expires,
            lease.message.source,
            lease.message.id,
            lease.token,
        )
        if not changed:
            return False
        h.expires_at = expires
        await self._broker_heartbeat(h.handle)
        return True

    async def _settle(self, lease: Lease, sql: str, *params: Any) -> Held | None:
        h = self._holding(lease)
        if h is None:
            return None
        c = self._companion
        changed = await c.execute(
            f"UPDATE {c.table} SET {sql} WHERE source = ? AND id = ? AND lease_token = ? AND state = 0",
            *params,
            lease.message.source,
            lease.message.id,
            lease.token,
        )
        self._held.pop(lease.token, None)
        if not changed:
            await self._requeue_delivery(h.handle)
            return None
        return h

    async def ack(self, lease: Lease) -> bool:
        """Mark the row done (it dedupes until ``prune``), then ack the delivery."""
        h = await self._settle(lease, f"state = {model.DONE}, finished_at = ?, lease_token = NULL", self._clock.time())
        if h is None:
            return False
        await self._ack_delivery(h.handle)
        return True

    async def nack(self, lease: Lease, *, delay: float, error: str) -> bool:
        """Record the failure, then have the broker redeliver after ``delay`` s."""
        now = self._clock.time()
        delay = max(0.0, delay)
        h = await self._settle(
            lease,
            f"visible_at = ?, lease_token = NULL, {self._companion.failure_sql()}",
            now + delay,
            model.failure_json(lease.attempt, now, error),
        )
        if h is None:
            return False
        try:
            await self._broker_retry(h.handle, lease.message, delay)
        except Exception as exc:
            # The failure is recorded; rather than leave the delivery unacked on a live channel,
            # give it back now: redelivered before its delay, never stuck.
            logger.warning("%s %s: delayed retry failed (%s); redelivering at once", self.owner, self.name,
                           type(exc).__name__)
            await self._requeue_delivery(h.handle)
        return True

    async def dead_letter(self, lease: Lease, *, error: str) -> bool:
        """Record the failure and mark the row dead (the companion is the DLQ), then ack."""
        now = self._clock.time()
        h = await self._settle(
            lease,
            f"state = {model.DEAD}, finished_at = ?, lease_token = NULL, {self._companion.failure_sql()}",
            now,
            model.failure_json(lease.attempt, now, error),
        )
        if h is None:
            return False
        await self._ack_delivery(h.handle)
        try:
            await self._on_dead(lease.message, lease.failures, error)
        except Exception as exc:  # the companion's dead letter is the one that counts
            logger.warning("%s %s: copying a dead letter to the broker failed (%s)", self.owner, self.name,
                           type(exc).__name__)
        return True

    async def _on_dead(self, message: Message, failures: Sequence[Failure], error: str) -> None:
        """A hook for brokers that also keep dead letters of their own (NATS' DLQ stream)."""

    async def put_dead(self, message: Message, *, failures: Sequence[Failure]) -> None:
        """Store the message straight in the companion's dead letters."""
        self._need_open()
        await self._companion.queue.put_dead(message, failures=failures)

    async def wait(self, timeout: float) -> None:
        """Return when a local put woke us, or after ``min(timeout, poll_interval)`` s."""
        await self._signal.wait(timeout)

    # -- dead letters (the companion's) ------------------------------------------------------

    async def dead_letters(
        self, where: DeadLetterFilter = DeadLetterFilter(), *, limit: int = 100, offset: int = 0
    ) -> list[DeadLetter]:
        """Matching dead letters, oldest dead first, from the companion."""
        self._need_open()
        return await self._companion.queue.dead_letters(where, limit=limit, offset=offset)  # type: ignore[no-any-return]

    async def count_dead(self, where: DeadLetterFilter = DeadLetterFilter()) -> int:
        """How many dead letters match, from the companion."""
        self._need_open()
        return await self._companion.queue.count_dead(where)  # type: ignore[no-any-return]

    async def replay(self, where: DeadLetterFilter) -> int:
        """Make matching dead rows pending (unconfirmed, attempts reset), then publish each."""
        self._need_open()
        c = self._companion
        dialect = model.POSTGRES if c.postgres else model.SQLITE
        clause, params = model.dead_letter_where(where, dialect, first=2)
        sql = (
            f"UPDATE {c.table} SET state = {model.PENDING}, attempts = 0,"
            f" visible_at = {'$1' if c.postgres else '?'}, lease_token = NULL,"
            f" finished_at = NULL WHERE {clause} RETURNING {model.COLUMNS}"
        )
        if c.postgres:
            rows = list(await c.queue.pool.fetch(sql, UNPUBLISHED, *params))
        else:
            rows = await c.queue._run(lambda conn: conn.execute(sql, [UNPUBLISHED, *params]).fetchall())
        for row in sorted(rows, key=lambda r: r[0]):
            await self._publish_row(model.message_of(row))
        if rows:
            self._signal.wake()
        return len(rows)

    async def purge(self, where: DeadLetterFilter) -> int:
        """Delete matching dead letters from the companion."""
        self._need_open()
        return await self._companion.queue.purge(where)  # type: ignore[no-any-return]

    async def stats(self, source: str | None = None) -> QueueStats:
        """The companion's counts (pending = published and not yet settled), of the whole
        queue or of one ``source``."""
        self._need_open()
        return await self._companion.queue.stats(source)  # type: ignore[no-any-return]

    async def prune(self, done_before: float | None, dead_before: float | None = None) -> int:
        """Forget done rows settled before ``done_before`` (their ids stop deduping) and dead
        letters dead before ``dead_before``: both are the companion's rows."""
        self._need_open()
        return await self._companion.queue.prune(done_before, dead_before)  # type: ignore[no-any-return]


def import_client(module: str, owner: str, extra: str) -> Any:
    """The broker's client library, or an ImportError naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - the factory checks first
        raise ImportError(f"{owner} needs {extra}'s client: pip install 'interlock[{extra}]'") from exc


def message_headers(message: Message) -> dict[str, str]:
    """The headers a broker copy carries: who it is (the companion has the rest)."""
    headers = {
        "interlock-source": message.source,
        "interlock-id": message.id,
        "interlock-type": message.type,
        "interlock-received-at": repr(message.received_at),
        "interlock-headers": json.dumps(dict(message.headers), separators=(",", ":")),
    }
    if message.ordering_key is not None:
        headers["interlock-ordering-key"] = message.ordering_key
    return headers
