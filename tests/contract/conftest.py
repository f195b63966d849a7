"""Backends for the Queue contract suite: every test runs on SQLite, PostgreSQL, RabbitMQ and
NATS JetStream (the brokers with a fresh queue/stream name per test and a SQLite companion)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest

from interlock.stores import Queue
from interlock.testing import FakeClock, temporary_schema


@pytest.fixture(params=["sqlite", "postgres", "rabbitmq", "nats"])
async def queue_factory(
    request: pytest.FixtureRequest, sqlite_path: str
) -> AsyncIterator[Callable[..., Queue]]:
    """Makes queues on one shared store (several instances = several processes); closes them.
    ``factory(clock=FakeClock(), poll_interval=60)`` for a queue on a clock the test moves."""
    schemas = AsyncExitStack()
    made: list[Queue] = []
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

        def factory(**options: Any) -> Queue:
            # A generous command bound: the suite shares a loaded machine's server; the fault
            # tests (test_queue_faults.py) check the bound itself with their own.
            defaults = {"poll_interval": 0.05, "pool_size": 4, "command_timeout": 60.0}
            q = PostgresQueue(dsn, schema=schema, **{**defaults, **options})
            made.append(q)
            return q

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


@pytest.fixture
def clock() -> FakeClock:
    """The clock of the ``queue`` fixture's queue: leases and delays expire when the test moves it."""
    return FakeClock(wall=1_767_225_600.0)


@pytest.fixture
async def queue(queue_factory: Callable[..., Queue], clock: FakeClock) -> Queue:
    q = queue_factory(clock=clock)
    await q.open()
    return q
