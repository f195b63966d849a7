"""The transactional outbox on real SQLite files and the machine's PostgreSQL: events committed
with the business rows reach every consumer, rolled-back ones never do, a relay that dies
loses nothing and a restarted one moves nothing twice."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from interlock import Event, Inbox, Outbox
from interlock.errors import ConfigError


async def until(check: Callable[[], bool], deadline: float = 30.0) -> None:
    end = time.monotonic() + deadline
    while not check():
        if time.monotonic() > end:
            raise AssertionError("not reached in time")
        await asyncio.sleep(0.02)


class Chain:
    """order -> inventory -> payment -> notification: one publish, three consumers."""

    def __init__(self, outbox: Outbox) -> None:
        self.calls: dict[str, list[str]] = {"inventory": [], "payment": [], "notification": []}
        for name in self.calls:
            outbox.add_consumer(name, "order.created", self._record(name))

    def _record(self, name: str) -> Callable[[Event], Any]:
        async def handle(event: Event) -> None:
            self.calls[name].append(event.json()["order"])

        return handle


@pytest.fixture
def queue_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/queue.db"


@pytest.fixture
async def sqlite_outbox(tmp_path: Path, queue_url: str) -> AsyncIterator[tuple[Outbox, str]]:
    app_db = str(tmp_path / "shop.db")
    outbox = Outbox(f"sqlite:///{app_db}", store=queue_url, poll_interval=0.05)
    yield outbox, app_db
    await outbox.aclose()


def shop(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE IF NOT EXISTS orders (id TEXT PRIMARY KEY)")
    conn.commit()
    return conn


async def test_sqlite_commit_reaches_every_consumer_and_rollback_none(
    sqlite_outbox: tuple[Outbox, str],
) -> None:
    outbox, app_db = sqlite_outbox
    chain = Chain(outbox)
    await outbox.open()
    conn = shop(app_db)
    try:
        conn.execute("INSERT INTO orders VALUES ('o1')")
        await outbox.add(conn, "order.created", {"order": "o1"}, key="o1")
        conn.commit()
        conn.execute("INSERT INTO orders VALUES ('o2')")
        await outbox.add(conn, "order.created", {"order": "o2"}, key="o2")
        conn.rollback()  # the order and its event go together
    finally:
        conn.close()
    assert await outbox.relay_once() == 1
    assert await outbox.pending() == 0
    pool = outbox.start_workers(concurrency=4)
    await until(lambda: all(chain.calls.values()))
    await pool.aclose()
    assert chain.calls == {"inventory": ["o1"], "payment": ["o1"], "notification": ["o1"]}
    assert outbox.relayed == 3  # one message per consumer


async def test_a_consumer_failing_retries_alone_and_dead_letters_alone(
    tmp_path: Path, queue_url: str
) -> None:
    from interlock import Redelivery
    from interlock.core.backoff import Backoff

    inbox = Inbox(
        store=queue_url, redelivery=Redelivery(attempts=2, backoff=Backoff(delays=[0.01], jitter="none"))
    )
    outbox = Outbox(f"sqlite:///{tmp_path}/shop.db", inbox=inbox, poll_interval=0.05)
    ok: list[int] = []

    @outbox.consumer("inventory", "order.created")
    async def reserve(event: Event) -> None:
        ok.append(event.attempt)

    @outbox.consumer("payment", "order.created")
    async def charge(event: Event) -> None:
        raise RuntimeError("card declined")

    async with inbox, outbox:
        conn = shop(str(tmp_path / "shop.db"))
        await outbox.add(conn, "order.created", {"order": "o1"}, id="evt-1")
        conn.commit()
        conn.close()
        outbox.start_relay()
        pool = outbox.start_workers(concurrency=2)
        await until(lambda: bool(ok))
        await until_async(lambda: inbox.queue.count_dead(), 1)
        await pool.aclose()
        (dead,) = await inbox.dlq.list()
        assert (dead.message.source, dead.message.id, dead.attempts) == ("outbox.payment", "evt-1", 2)
        assert ok == [1]  # inventory ran once: the payment's retries are its own


async def until_async(read: Callable[[], Any], want: int, deadline: float = 30.0) -> None:
    end = time.monotonic() + deadline
    while await read() < want:
        if time.monotonic() > end:
            raise AssertionError("not reached in time")
        await asyncio.sleep(0.02)


async def test_same_key_in_the_order_added(sqlite_outbox: tuple[Outbox, str]) -> None:
    outbox, app_db = sqlite_outbox
    seen: list[tuple[str, int]] = []

    @outbox.consumer("ledger", "*")
    async def record(event: Event) -> None:
        await asyncio.sleep(0.001)
        body = event.json()
        seen.append((body["account"], body["n"]))

    await outbox.open()
    conn = shop(app_db)
    for n in range(15):
        for account in ("a", "b"):
            await outbox.add(conn, "entry.posted", {"account": account, "n": n}, key=account)
        conn.commit()
    conn.close()
    outbox.start_relay()
    pool = outbox.start_workers(concurrency=8)
    await until(lambda: len(seen) == 30)
    await pool.aclose()
    for account in ("a", "b"):
        assert [n for a, n in seen if a == account] == list(range(15))


async def test_a_relay_that_dies_mid_round_loses_nothing_and_its_successor_moves_nothing_twice(
    tmp_path: Path, queue_url: str
) -> None:
    app = f"sqlite:///{tmp_path}/shop.db"
    handled: list[str] = []

    def build() -> Outbox:
        o = Outbox(app, store=queue_url, poll_interval=0.05)
        o.add_consumer("mailer", "*", lambda event: handled.append(event.id))
        return o

    first = build()
    await first.open()
    conn = shop(str(tmp_path / "shop.db"))
    ids = [await first.add(conn, "user.signed_up", {"n": n}) for n in range(20)]
    conn.commit()
    conn.close()
    real = first.inbox.submit
    puts = 0

    async def dies_after_five(*args: Any, **kwargs: Any) -> bool:
        nonlocal puts
        puts += 1
        if puts > 5:
            raise ConnectionError("the relay's process died here")
        return await real(*args, **kwargs)

    first.inbox.submit = dies_after_five  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        await first.relay_once()
    await first.aclose()
    second = build()
    async with second:
        assert await second.pending() == 20  # nothing was deleted: the round did not finish
        assert await second.relay_once() == 20
        assert await second.pending() == 0
        pool = second.start_workers(concurrency=4)
        await until(lambda: len(handled) >= 20)
        await asyncio.sleep(0.2)  # a duplicate, if one had been put, would be handled by now
        await pool.aclose()
    assert sorted(handled) == sorted(ids)  # each once, though five were put twice


async def test_aiosqlite_connection(tmp_path: Path, queue_url: str) -> None:
    import aiosqlite

    outbox = Outbox(f"sqlite:///{tmp_path}/shop.db", store=queue_url)
    got: list[str] = []
    outbox.add_consumer("c", "*", lambda event: got.append(event.type))
    async with outbox:
        async with aiosqlite.connect(str(tmp_path / "shop.db")) as conn:
            await outbox.add(conn, "a.happened")
            await conn.rollback()
            await outbox.add(conn, "b.happened")
            await conn.commit()
        assert await outbox.relay_once() == 1
        pool = outbox.start_workers(concurrency=1)
        await until(lambda: bool(got))
        await pool.aclose()
    assert got == ["b.happened"]


async def test_mistakes_are_precise(tmp_path: Path, queue_url: str) -> None:
    outbox = Outbox(f"sqlite:///{tmp_path}/shop.db", store=queue_url)
    auto = sqlite3.connect(str(tmp_path / "other.db"), isolation_level=None)
    with pytest.raises(ConfigError, match="autocommit mode outside a transaction"):
        await outbox.add(auto, "t")
    auto.execute("BEGIN")
    with pytest.raises(ConfigError, match="open the Outbox once"):
        await outbox.add(auto, "t")  # that database has no outbox table
    auto.close()
    with pytest.raises(ConfigError, match="expected an asyncpg, aiosqlite or sqlite3 connection"):
        await outbox.add(object(), "t")
    with pytest.raises(ConfigError, match="unsupported URL scheme 'mysql'"):
        Outbox("mysql://db/shop", store=queue_url)
    with pytest.raises(ConfigError, match="must be a SQL name"):
        Outbox(f"sqlite:///{tmp_path}/x.db", store=queue_url, table="orders; DROP TABLE x")
    with pytest.raises(ConfigError, match="without '.'"):
        outbox.add_consumer("a.b", "*", lambda e: None)
    await outbox.aclose()


@pytest.mark.postgres
async def test_postgres_transaction_commit_and_rollback(
    postgres_dsn: str, postgres_schema: str, queue_url: str
) -> None:
    import asyncpg

    outbox = Outbox(f"{postgres_dsn}?schema={postgres_schema}", store=queue_url, poll_interval=5.0)
    chain = Chain(outbox)
    async with outbox:
        conn = await asyncpg.connect(postgres_dsn)
        try:
            await conn.execute(f'CREATE TABLE "{postgres_schema}".orders (id TEXT PRIMARY KEY)')
            relay = outbox.start_relay()
            async with conn.transaction():
                await conn.execute(f'INSERT INTO "{postgres_schema}".orders VALUES ($1)', "o1")
                await outbox.add(conn, "order.created", {"order": "o1"}, key="o1")

            async def declined() -> None:
                async with conn.transaction():
                    await conn.execute(f'INSERT INTO "{postgres_schema}".orders VALUES ($1)', "o2")
                    await outbox.add(conn, "order.created", {"order": "o2"}, key="o2")
                    raise RuntimeError("the payment provider said no")

            with pytest.raises(RuntimeError):
                await declined()
            with pytest.raises(ConfigError, match="not inside"):
                await outbox.add(conn, "order.created", {"order": "o3"})
        finally:
            await conn.close()
        pool = outbox.start_workers(concurrency=4)
        # The relay polls every 5 s: the commit's NOTIFY is what wakes it this soon.
        await until(lambda: all(chain.calls.values()), deadline=4.0)
        await asyncio.sleep(0.2)
        await pool.aclose()
        assert not relay.done()
        assert await outbox.pending() == 0
    assert chain.calls == {"inventory": ["o1"], "payment": ["o1"], "notification": ["o1"]}


@pytest.mark.postgres
async def test_postgres_relays_in_several_processes_move_each_event_once(
    postgres_dsn: str, postgres_schema: str, queue_url: str
) -> None:
    import asyncpg

    database = f"{postgres_dsn}?schema={postgres_schema}"
    handled: list[str] = []
    relays = []
    for _ in range(3):  # three processes' relays on one outbox table
        o = Outbox(database, store=queue_url, poll_interval=0.05)
        o.add_consumer("c", "*", lambda event: handled.append(event.id))
        await o.open()
        relays.append(o)
    try:
        conn = await asyncpg.connect(postgres_dsn)
        try:
            ids = []
            for n in range(60):
                async with conn.transaction():
                    ids.append(await relays[0].add(conn, "t", {"n": n}))
        finally:
            await conn.close()
        moved = await asyncio.gather(*(o.relay_once() for o in relays for _ in range(3)))
        assert sum(moved) == 60  # the advisory lock: one round at a time, each row moved once
        pool = relays[0].start_workers(concurrency=4)
        await until(lambda: len(handled) >= 60)
        await pool.aclose()
        assert sorted(handled) == sorted(ids)
    finally:
        for o in relays:
            await o.aclose()
