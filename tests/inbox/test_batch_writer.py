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


# -- issue #11, section 4: batches in parallel on a backlog, one round trip per small batch ----


class GatedSink(SQLiteSink):
    """Holds every batch until ``release`` is set, counting how many are written at once."""

    connections = 4

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.release = asyncio.Event()
        self.active = self.peak = 0
        self.batches: list[list[Any]] = []

    async def write_rows(self, rows: Any) -> None:
        self.active += 1
        self.peak = max(self.peak, self.active)
        self.batches.append(list(rows))
        try:
            await self.release.wait()
            await super().write_rows(rows)
        finally:
            self.active -= 1


async def wait_until(condition: Any) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


async def test_a_backlog_is_written_by_several_batches_at_once(sqlite_path: str) -> None:
    make_table(sqlite_path)
    sink = GatedSink(f"sqlite:///{sqlite_path}", "payments", ["id", "customer", "amount"], key=["id"])
    writer = interlock.BatchWriter(sink, max_rows=100, max_delay=60)
    assert writer.flushes == 4  # the sink's connections
    done = asyncio.ensure_future(writer.write_many([(f"p{i:04}", "c", i) for i in range(1000)]))
    await wait_until(lambda: sink.active == 4)
    assert len(sink.batches) == 4 and {len(b) for b in sink.batches} == {100}
    sink.release.set()
    await done
    await writer.aclose()
    assert sink.peak == 4
    assert len(rows_in(sqlite_path)) == 1000


async def test_awaited_writes_do_not_wait_for_a_batch_in_flight_while_a_flush_is_free(sqlite_path: str) -> None:
    # The first batch is still committing: the 64 rows that come meanwhile go at once, in one
    # second batch (slow commits overlap instead of queueing), not one batch per row.
    make_table(sqlite_path)
    sink = GatedSink(f"sqlite:///{sqlite_path}", "payments", ["id", "customer", "amount"], key=["id"])
    writer = interlock.BatchWriter(sink, max_rows=1000, max_delay=60)
    first = asyncio.ensure_future(writer.write(("p0", "c", 0)))
    await wait_until(lambda: sink.active == 1)
    rest = asyncio.ensure_future(asyncio.gather(*(writer.write((f"p{i}", "c", i)) for i in range(1, 65))))
    await wait_until(lambda: sink.active == 2)
    assert writer.pending == 0
    sink.release.set()
    await first
    await rest
    await writer.aclose()
    assert [len(b) for b in sink.batches] == [1, 64]
    assert len(rows_in(sqlite_path)) == 65


async def test_with_one_flush_awaited_writes_form_the_next_batch(sqlite_path: str) -> None:
    # flushes=1: one batch in flight, the next one growing while it commits (group commit).
    make_table(sqlite_path)
    sink = GatedSink(f"sqlite:///{sqlite_path}", "payments", ["id", "customer", "amount"], key=["id"])
    writer = interlock.BatchWriter(sink, max_rows=1000, max_delay=60, flushes=1)
    first = asyncio.ensure_future(writer.write(("p0", "c", 0)))
    await wait_until(lambda: sink.active == 1)
    rest = asyncio.ensure_future(asyncio.gather(*(writer.write((f"p{i}", "c", i)) for i in range(1, 65))))
    for _ in range(10):
        await asyncio.sleep(0)
    assert sink.active == 1 and writer.pending == 64
    sink.release.set()
    await first
    await rest
    await writer.aclose()
    assert [len(b) for b in sink.batches] == [1, 64]


async def test_awaited_writes_of_one_key_wait_for_the_batch_holding_it(sqlite_path: str) -> None:
    # A free flush does not take a row whose key is in a batch in flight: it goes after it.
    make_table(sqlite_path)
    sink = GatedSink(f"sqlite:///{sqlite_path}", "payments", ["id", "customer", "amount"], key=["id"])
    writer = interlock.BatchWriter(sink, max_rows=1000, max_delay=60)
    first = asyncio.ensure_future(writer.write(("k", "old", 1)))
    await wait_until(lambda: sink.active == 1)
    second = asyncio.ensure_future(writer.write(("k", "new", 2)))
    other = asyncio.ensure_future(writer.write(("j", "c", 3)))
    await wait_until(lambda: sink.active == 2)
    assert sink.batches[1] == [("j", "c", 3)] and writer.pending == 1
    sink.release.set()
    await asyncio.gather(first, second, other)
    await writer.aclose()
    assert sink.batches == [[("k", "old", 1)], [("j", "c", 3)], [("k", "new", 2)]]
    assert rows_in(sqlite_path) == [("j", "c", 3), ("k", "new", 2)]


async def test_writes_of_one_key_commit_in_order_across_parallel_batches(sqlite_path: str) -> None:
    make_table(sqlite_path)
    sink = GatedSink(f"sqlite:///{sqlite_path}", "payments", ["id", "customer", "amount"], key=["id"])
    sink.release.set()
    writer = interlock.BatchWriter(sink, max_rows=50, max_delay=60)
    # 20 keys written 30 times each, interleaved: every batch in flight holds each key once
    # at most, and the last write of each key is the one that stays.
    rows = [(f"k{i % 20:02}", f"v{i}", i) for i in range(600)]
    for row in rows:
        writer.add(row)
    await writer.aclose()
    assert rows_in(sqlite_path) == sorted((f"k{k:02}", f"v{580 + k}", 580 + k) for k in range(20))


@pytest.mark.parametrize("method", ["auto", "unnest"])
async def test_postgres_sink_small_batches(postgres_dsn: str, pg_table: str, method: Any) -> None:
    import asyncpg

    sink = PostgresSink(
        "payments", ["id", "customer", "amount"], ["id"], dsn=postgres_dsn, schema=pg_table, method=method
    )
    async with interlock.BatchWriter(sink, max_rows=500, max_delay=0.02) as writer:
        await asyncio.gather(*(writer.write((f"p{i}", f"cus_{i % 7}", i)) for i in range(300)))
        await writer.write_many([("p1", "changed", -1), ("p1", "changed", 99)])  # same key twice in a batch
        await writer.write_many([(f"big{i}", "c", i) for i in range(1200)])  # over copy_over: COPY
    conn = await asyncpg.connect(postgres_dsn)
    try:
        count = await conn.fetchval(f'SELECT count(*) FROM "{pg_table}".payments')
        p1 = await conn.fetchrow(f'SELECT customer, amount FROM "{pg_table}".payments WHERE id = $1', "p1")
    finally:
        await conn.close()
    assert count == 1500
    assert (p1["customer"], p1["amount"]) == ("changed", 99)


async def test_postgres_sink_writes_a_small_batch_in_one_statement(postgres_dsn: str, pg_table: str) -> None:
    import asyncpg

    statements: list[str] = []

    async def log_queries(conn: Any) -> None:
        # asyncpg's own type introspection (once per connection and type) is not the sink's
        ours = (
            "INSERT",
            "BEGIN",
            "COMMIT",
            "CREATE",
            "COPY",
            "SELECT pg_advisory",
            "RESET",
            "SELECT attname",
        )
        conn.add_query_logger(
            lambda record: statements.append(record.query) if record.query.strip().startswith(ours) else None
        )

    pool = await asyncpg.create_pool(postgres_dsn, min_size=1, max_size=4, init=log_queries)
    sink = PostgresSink("payments", ["id", "customer", "amount"], ["id"], pool=pool, schema=pg_table)
    writer = interlock.BatchWriter(sink, max_rows=1000)
    try:
        for n in range(3):
            await writer.write_many([(f"p{n}-{i}", "c", i) for i in range(50)])
        upserts = [s for s in statements if s.startswith("INSERT")]
        assert len(upserts) == 3 and all("unnest(" in s for s in upserts)
        # one statement per batch besides the column types looked up once: no BEGIN/COMMIT,
        # no CREATE TEMP TABLE, no reset query between batches (the connection is held)
        assert len(statements) == 4, [s.strip()[:30] for s in statements]
        statements.clear()
        await writer.write_many([(f"big{i}", "c", i) for i in range(2500)])  # COPY batches
        await writer.write_many([(f"big{i}", "d", i) for i in range(2500)])
        assert sum("CREATE TEMP TABLE" in s for s in statements) <= sink.connections  # once per connection
    finally:
        await writer.aclose()
    try:
        assert await pool.fetchval(f'SELECT count(*) FROM "{pg_table}".payments') == 2650
        assert (
            await pool.fetchval(f"SELECT count(*) FROM \"{pg_table}\".payments WHERE customer = 'd'") == 2500
        )
    finally:
        await pool.close()
