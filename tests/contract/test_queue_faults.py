"""The PostgreSQL queue when its server misbehaves: frozen, restarted, or refusing one row.

Faults go through a loopback TCP proxy each test starts between the queue and the machine's
PostgreSQL; the shared server itself is never frozen or restarted.
"""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from interlock.stores import Message
from interlock.stores.queue_postgres import PostgresQueue
from interlock.testing import TcpProxy

pytestmark = pytest.mark.postgres


def msg(i: int | str, **fields: str) -> Message:
    return Message(source="src", id=f"m{i}", type="t", body=b"{}", received_at=time.time(), **fields)


async def test_a_frozen_server_fails_puts_within_the_command_timeout_and_they_recover(
    postgres_dsn: str, postgres_schema: str, postgres_proxy: TcpProxy
) -> None:
    queue = PostgresQueue(postgres_proxy.url(postgres_dsn), schema=postgres_schema, command_timeout=0.5, pool_size=2)
    await queue.open()
    try:
        assert await queue.put(msg(1)) is True
        postgres_proxy.freeze()
        # Several puts at once: the first batch is stuck on the frozen connection, the others
        # are grouped behind it; every one of them fails rather than waiting for ever.
        results = await asyncio.wait_for(
            asyncio.gather(*(queue.put(msg(i)) for i in range(2, 8)), return_exceptions=True), 30
        )
        assert all(isinstance(r, TimeoutError) for r in results), results
        assert "did not answer a put within 0.5 s" in str(results[0])
        stats = await asyncio.wait_for(asyncio.gather(queue.stats(), return_exceptions=True), 30)
        assert isinstance(stats[0], TimeoutError)
        postgres_proxy.thaw()
        # The same queue, not reopened, stores again (a loaded machine may take more than one
        # try to open a fresh connection within half a second).
        for attempt in range(5):
            try:
                # A fresh id each time: a try that timed out may have been stored all the same.
                assert await asyncio.wait_for(queue.put(msg(f"after-{attempt}")), 30) is True
                break
            except TimeoutError:
                continue
        else:
            pytest.fail("no put succeeded after the server thawed")
    finally:
        postgres_proxy.thaw()
        await asyncio.wait_for(queue.aclose(), 30)
    check = PostgresQueue(postgres_dsn, schema=postgres_schema)
    async with check:
        ids = {lease.message.id for lease in await check.lease(100, 30.0)}
    assert "m1" in ids and any(i.startswith("mafter-") for i in ids)  # acknowledged, so stored


async def test_workers_listen_again_after_the_connection_drops(
    postgres_dsn: str, postgres_schema: str, postgres_proxy: TcpProxy
) -> None:
    # A poll interval far longer than the test: only a NOTIFY can wake the waiting consumer
    # before it, and the notification count says which one did.
    consumer = PostgresQueue(postgres_proxy.url(postgres_dsn), schema=postgres_schema, poll_interval=3600.0, command_timeout=2.0)
    producer = PostgresQueue(postgres_dsn, schema=postgres_schema)
    await consumer.open()
    await producer.open()
    try:
        assert consumer.listens == 1
        await consumer.wait(0)  # nothing left over: the next wake-up is the put's
        waiter = asyncio.create_task(consumer.wait(3600.0))
        await producer.put(msg(1))
        await asyncio.wait_for(waiter, 30)
        assert consumer.notifications == 1

        postgres_proxy.cut()  # what a restart does to every connection
        postgres_proxy.restore()
        # Listening again wakes the consumer (notifications sent meanwhile are lost).
        while consumer.listens < 2:
            await asyncio.wait_for(consumer.wait(3600.0), 30)
        await consumer.wait(0)
        waiter = asyncio.create_task(consumer.wait(3600.0))
        await producer.put(msg(2))
        await asyncio.wait_for(waiter, 30)
        assert consumer.notifications == 2
        assert [lease.message.id for lease in await consumer.lease(10, 30.0)] == ["m1", "m2"]
    finally:
        await producer.aclose()
        await asyncio.wait_for(consumer.aclose(), 30)


async def test_a_row_the_database_refuses_fails_only_its_own_put(postgres_dsn: str, postgres_schema: str) -> None:
    # Passes the queue's own checks, but is too long for the (source, id) index: PostgreSQL
    # refuses the whole statement, and the batch is split until the bad row stands alone.
    too_long = os.urandom(6000).hex()
    queue = PostgresQueue(postgres_dsn, schema=postgres_schema)
    async with queue:
        results = await asyncio.gather(
            *(queue.put(msg(i)) for i in range(30)), queue.put(msg(too_long)), *(queue.put(msg(i)) for i in range(30, 60)),
            return_exceptions=True,
        )
        assert results[:30] + results[31:] == [True] * 60
        assert isinstance(results[30], ValueError)
        assert "PostgreSQL refused the message src/" in str(results[30])
        assert too_long[:300] not in str(results[30])
        assert (await queue.stats()).pending == 60
        assert queue._puts.batches < 30  # grouped, not one statement per put
