"""Backends for the Queue contract suite: every test runs on SQLite, PostgreSQL, RabbitMQ and
NATS JetStream (the brokers with a fresh queue/stream name per test and a SQLite companion)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest

from interlock.stores import Queue
from interlock.stores.queue import Lease
from interlock.testing import FakeClock, temporary_schema


@pytest.fixture(params=["sqlite", "postgres", "rabbitmq", "nats"])
async def queue_factory(
    request: pytest.FixtureRequest, sqlite_path: str
) -> AsyncIterator[Callable[..., Queue]]:
    """Makes queues on one shared store (several instances = several processes); closes them.
    ``factory(clock=FakeClock(), poll_interval=60)`` for a queue on a clock the test moves."""
    schemas = AsyncExitStack()
    made: list[Queue] = []
    # The same store as a URL (and table) that ``open_queue`` opens in another process: the
    # tests that run workers or an ingress in child processes pass these to them.
    store_url, table = f"sqlite:///{sqlite_path}", None
    if request.param == "sqlite":
        from interlock.stores.queue_sqlite import SQLiteQueue

        def factory(**options: Any) -> Queue:
            q = SQLiteQueue(f"sqlite:///{sqlite_path}", **{"poll_interval": 0.05, **options})
            made.append(q)
            return q
    elif request.param in ("rabbitmq", "nats"):
        from interlock.stores.queue_nats import NATSQueue
        from interlock.stores.queue_rabbitmq import RabbitMQQueue

        broker = RabbitMQQueue if request.param == "rabbitmq" else NATSQueue
        url = request.getfixturevalue(f"{request.param}_url")  # skips (or fails under CI) without a server
        name = f"contract_{request.getfixturevalue('run_id')}_{uuid.uuid4().hex[:8]}"
        sep = "&" if "?" in url else "?"
        store_url, table = f"{url}{sep}companion=sqlite:///{sqlite_path}", name

        def factory(**options: Any) -> Queue:
            defaults = {"name": name, "companion": f"sqlite:///{sqlite_path}", "poll_interval": 0.05}
            q = broker(url, **{**defaults, **options})
            made.append(q)
            return q
    else:
        from interlock.stores.queue_postgres import PostgresQueue

        dsn = request.getfixturevalue("postgres_dsn")  # skips (or fails under CI) without a server
        schema = await schemas.enter_async_context(
            temporary_schema(dsn, f"contract_{request.getfixturevalue('run_id')}")
        )
        store_url = f"{dsn}{'&' if '?' in dsn else '?'}schema={schema}"

        def factory(**options: Any) -> Queue:
            # A generous command bound: the suite shares a loaded machine's server; the fault
            # tests (test_queue_faults.py) check the bound itself with their own.
            defaults = {"poll_interval": 0.05, "pool_size": 4, "command_timeout": 60.0}
            q = PostgresQueue(dsn, schema=schema, **{**defaults, **options})
            made.append(q)
            return q

    factory.kind = request.param  # type: ignore[attr-defined]
    factory.store_url = store_url  # type: ignore[attr-defined]
    factory.table = table  # type: ignore[attr-defined]
    factory.made = made  # type: ignore[attr-defined]
    try:
        yield factory
    finally:
        for q in made:
            await q.aclose()
        await schemas.aclose()
        if request.param in ("rabbitmq", "nats") and made:
            await delete_broker_objects(made[0])


async def delete_broker_objects(queue: Queue, url: str | None = None) -> None:
    """Delete what a test's broker queue declared, so runs leave the machine's brokers clean."""
    from interlock.stores.queue_nats import NATSQueue
    from interlock.stores.queue_rabbitmq import RabbitMQQueue

    if isinstance(queue, RabbitMQQueue):
        import aio_pika

        connection = await aio_pika.connect(url or queue.url)
        try:
            delays = queue._delay_queues
            for name in [queue.name, f"{queue.name}.dead", *(f"{queue.name}.delay.{ms}" for ms in delays)]:
                channel = await connection.channel()
                await channel.queue_delete(name)
            channel = await connection.channel()
            await channel.exchange_delete(f"{queue.name}.dlx")
        finally:
            await connection.close()
    elif isinstance(queue, NATSQueue):
        import nats

        nc = await nats.connect(url or queue.url)
        try:
            js = nc.jetstream()
            for stream in (queue.stream, f"{queue.stream}_dead"):
                await js.delete_stream(stream)
        finally:
            await nc.close()


class Elapse:
    """Time passing for a nack delay, on whichever clock the backend times it with.

    The SQL queues time a delay on the queue's clock (the test's ``FakeClock``), so moving the
    clock is enough. A broker times it on its own clock (RabbitMQ's TTL delay queues,
    JetStream's ``nak`` delay), which no FakeClock moves: there the delay is a real one,
    ``delay`` seconds long, and ``leasable_after_delay`` polls until the broker hands the
    message out again (bounded), after moving the FakeClock past it too (leases stay timed by
    the FakeClock on every backend).
    """

    def __init__(self, clock: FakeClock, broker: bool) -> None:
        self.clock = clock
        self.broker = broker
        self.delay = 2.0 if broker else 0.3
        """The nack delay a test uses: long enough on a broker that the message is still held
        when the test looks right after the nack, even on a loaded machine."""
        self._nacked_at = 0.0
        self._nacked_on_clock = 0.0

    def nacked(self) -> None:
        """Note when the nack was sent (real and fake time), for ``leasable_after_delay``."""
        self._nacked_at = time.monotonic()
        self._nacked_on_clock = self.clock.monotonic()

    async def leasable_after_delay(
        self, queue: Queue, want: int = 1, visibility: float = 30.0
    ) -> list[Lease]:
        """Move past the delay and lease ``want`` messages (on a broker: wait for them, up to
        30 s after the delay). On a broker, also checks the delay was really waited for."""
        self.clock.advance(max(0.0, self._nacked_on_clock + self.delay + 0.01 - self.clock.monotonic()))
        if not self.broker:
            return await queue.lease(want, visibility)
        leases: list[Lease] = []
        end = time.monotonic() + self.delay + 30.0
        while len(leases) < want and time.monotonic() < end:
            leases += await queue.lease(want - len(leases), visibility)
            if len(leases) < want:
                await asyncio.sleep(0.05)
        # A lower bound only (a broker that redelivers early breaks the delay's promise); a
        # loaded machine can only make the wait longer.
        assert time.monotonic() - self._nacked_at >= self.delay * 0.9, "redelivered before its delay"
        return leases


@pytest.fixture
def elapse(request: pytest.FixtureRequest, clock: FakeClock) -> Elapse:
    """How a test lets a nack delay pass on the ``queue`` fixture's backend (see ``Elapse``)."""
    return Elapse(clock, request.node.callspec.params.get("queue_factory") in ("rabbitmq", "nats"))


@pytest.fixture
def clock() -> FakeClock:
    """The clock of the ``queue`` fixture's queue: leases and delays expire when the test moves it."""
    return FakeClock(wall=1_767_225_600.0)


@pytest.fixture
async def queue(queue_factory: Callable[..., Queue], clock: FakeClock) -> Queue:
    q = queue_factory(clock=clock)
    await q.open()
    return q
