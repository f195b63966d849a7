"""BatchWriter: flush every N rows or T seconds, one statement per batch, idempotent upserts,
flush on close; on SQLite and PostgreSQL (executemany and COPY)."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

import interlock
from interlock.errors import ConfigError
from interlock.stores import PostgresSink, SQLiteSink


def make_table(path: str) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE payments (id TEXT PRIMARY KEY, customer TEXT, amount INTEGER)")
    conn.close()


def rows_in(path: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT id, customer, amount FROM payments ORDER BY id").fetchall()
    finally:
        conn.close()


class CountingSink(SQLiteSink):
    batches: list[int]

    async def write_rows(self, rows: Any) -> None:
        self.batches.append(len(rows))
        await super().write_rows(rows)


def counting(path: str) -> CountingSink:
    sink = CountingSink(f"sqlite:///{path}", "payments", ["id", "customer", "amount"], key=["id"])
    sink.batches = []
    return sink


async def test_flushes_every_n_rows_and_write_waits_for_the_commit(sqlite_path: str) -> None:
    make_table(sqlite_path)
    sink = counting(sqlite_path)
    async with interlock.BatchWriter(sink, max_rows=10, max_delay=60) as writer:
        await asyncio.gather(*(writer.write((f"p{i:03}", "cus_1", i)) for i in range(20)))
        assert sink.batches == [10, 10]
        assert len(rows_in(sqlite_path)) == 20  # durable when write() returned
        writer.add({"id": "p100", "customer": "cus_2", "amount": 5})
    # aclose flushed the remaining row
    assert sink.batches == [10, 10, 1]
    assert rows_in(sqlite_path)[-1] == ("p100", "cus_2", 5)


async def test_flushes_after_max_delay(sqlite_path: str) -> None:
    make_table(sqlite_path)
    sink = counting(sqlite_path)
    writer = interlock.BatchWriter(sink, max_rows=1000, max_delay=0.05)
    writer.add(("p1", "c", 1))
    writer.add(("p2", "c", 2))
    assert sink.batches == []
    for _ in range(200):
        if sink.batches:
            break
        await asyncio.sleep(0.01)
    assert sink.batches == [2]  # written by the timer, nobody called flush
    await writer.aclose()


async def test_awaited_writes_group_into_batches_while_the_sink_is_busy(sqlite_path: str) -> None:
    make_table(sqlite_path)
    sink = counting(sqlite_path)
    writer = interlock.BatchWriter(sink, max_rows=1000, max_delay=60)  # the timer never fires

    async def handler(n: int) -> None:
        for i in range(20):
            await writer.write((f"h{n}-{i}", "c", i))

    await asyncio.gather(*(handler(n) for n in range(10)))
    await writer.aclose()
    assert sum(sink.batches) == 200
    assert len(sink.batches) < 100  # concurrent writers shared batches
    assert len(rows_in(sqlite_path)) == 200


async def test_upserts_are_idempotent_and_last_write_wins(sqlite_path: str) -> None:
    make_table(sqlite_path)
    writer = interlock.BatchWriter(counting(sqlite_path), max_rows=100, max_delay=0.01)
    await writer.write_many([("p1", "c", 1), ("p2", "c", 2), ("p1", "c", 10)])
    await writer.write_many([("p1", "c", 10), ("p2", "c", 2)])  # a redelivered batch
    await writer.aclose()
    assert rows_in(sqlite_path) == [("p1", "c", 10), ("p2", "c", 2)]


async def test_a_failed_batch_fails_its_writers(sqlite_path: str) -> None:
    sink = counting(sqlite_path)  # no table: the batch fails
    writer = interlock.BatchWriter(sink, max_rows=2, max_delay=0.01)
    with pytest.raises(sqlite3.OperationalError):
        await writer.write(("p1", "c", 1))
    await writer.aclose()


async def test_a_failed_batch_leaves_the_next_batch_alone(sqlite_path: str) -> None:
    make_table(sqlite_path)

    class FailingOnce(CountingSink):
        async def write_rows(self, rows: Any) -> None:
            if not self.batches:
                self.batches.append(-len(rows))
                raise sqlite3.OperationalError("disk I/O error")
            await super().write_rows(rows)

    sink = FailingOnce(f"sqlite:///{sqlite_path}", "payments", ["id", "customer", "amount"], key=["id"])
    sink.batches = []
    writer = interlock.BatchWriter(sink, max_rows=2, max_delay=60)
    outcomes = await asyncio.gather(
        *(writer.write((f"p{i}", "c", i)) for i in range(4)), return_exceptions=True
    )
    await writer.aclose()
    assert [type(o).__name__ for o in outcomes] == ["OperationalError", "OperationalError", "NoneType", "NoneType"]
    assert sink.batches == [-2, 2]
    assert rows_in(sqlite_path) == [("p2", "c", 2), ("p3", "c", 3)]


def test_bad_rows_and_config() -> None:
    with pytest.raises(ConfigError):
        SQLiteSink("x.db", "t", ["a", "b"], key=["c"])
    with pytest.raises(ConfigError):
        interlock.BatchWriter(SQLiteSink("x.db", "t", ["a"], key=["a"]), max_rows=0)


async def test_rows_of_the_wrong_shape_are_refused(sqlite_path: str) -> None:
    writer = interlock.BatchWriter(SQLiteSink(sqlite_path, "t", ["a", "b"], key=["a"]))
    with pytest.raises(ConfigError, match="2 columns"):
        writer.add((1,))
    with pytest.raises(ConfigError, match="missing column 'b'"):
        writer.add({"a": 1})


@pytest.fixture
async def pg_table(postgres_dsn: str, postgres_schema: str) -> AsyncIterator[str]:
    import asyncpg

    conn = await asyncpg.connect(postgres_dsn)
    await conn.execute(
        f'CREATE TABLE "{postgres_schema}".payments (id TEXT PRIMARY KEY, customer TEXT, amount BIGINT)'
    )
    await conn.close()
    return postgres_schema


@pytest.mark.parametrize("method", ["copy", "executemany"])
async def test_postgres_sink(postgres_dsn: str, pg_table: str, method: Any) -> None:
    import asyncpg

    sink = PostgresSink("payments", ["id", "customer", "amount"], ["id"], dsn=postgres_dsn, schema=pg_table, method=method)
    async with interlock.BatchWriter(sink, max_rows=500, max_delay=0.02) as writer:
        await asyncio.gather(*(writer.write((f"p{i}", f"cus_{i % 7}", i)) for i in range(1200)))
        await writer.write_many([("p1", "changed", -1), ("p1", "changed", 99)])  # same key twice in a batch
        for i in range(50):
            writer.add((f"late{i}", "c", i))
    conn = await asyncpg.connect(postgres_dsn)
    try:
        count = await conn.fetchval(f'SELECT count(*) FROM "{pg_table}".payments')
        p1 = await conn.fetchrow(f'SELECT customer, amount FROM "{pg_table}".payments WHERE id = $1', "p1")
    finally:
        await conn.close()
    assert count == 1250
    assert (p1["customer"], p1["amount"]) == ("changed", 99)
    assert writer.batches >= 3


async def test_postgres_sink_shares_a_pool(postgres_dsn: str, pg_table: str) -> None:
    import asyncpg

    pool = await asyncpg.create_pool(postgres_dsn, min_size=1, max_size=2)
    try:
        sink = PostgresSink("payments", ["id", "customer", "amount"], ["id"], pool=pool, schema=pg_table)
        writer = interlock.BatchWriter(sink, max_rows=10)
        await writer.write_many([(str(uuid.uuid4()), "c", i) for i in range(25)])
        await writer.aclose()
        assert await pool.fetchval(f'SELECT count(*) FROM "{pg_table}".payments') == 25
    finally:
        await pool.close()
