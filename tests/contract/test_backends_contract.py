"""The URL-scheme table behind the store factories: each scheme opens its backend, a store opened
through a factory works on every backend, an unknown scheme is a ConfigError naming the accepted
ones, and a missing client library names the extra to install."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

import interlock.stores as stores
from interlock.core.freshness import CacheEntry
from interlock.errors import ConfigError
from interlock.stores import (
    CacheStore,
    Checkpoint,
    CheckpointStore,
    Message,
    Queue,
    QuotaStore,
    Sink,
    TokenStore,
    open_cache,
    open_checkpoint,
    open_queue,
    open_quota,
    open_sink,
    open_token_store,
)
from interlock.testing import FakeClock

PG = "postgresql://app@127.0.0.1:5432/test"
SINK = {"table": "t", "columns": ["id", "v"], "key": ["id"]}

# (factory, extra arguments, URL, the class it must open, the seam's Protocol). Written out by
# hand rather than read from the table, so a wrong row in the table fails here.
CASES: list[tuple[Callable[..., Any], dict[str, Any], str, str, type]] = [
    (open_queue, {}, "sqlite:///{tmp}/q.db", "SQLiteQueue", Queue),
    (open_queue, {}, "{tmp}/q.db", "SQLiteQueue", Queue),
    (open_queue, {}, "SQLITE:///{tmp}/q.db", "SQLiteQueue", Queue),
    (open_queue, {}, PG, "PostgresQueue", Queue),
    (open_queue, {}, "postgres://app@127.0.0.1/test", "PostgresQueue", Queue),
    (open_queue, {}, "amqp://guest:guest@127.0.0.1:5672/", "RabbitMQQueue", Queue),
    (open_queue, {}, "amqps://app@mq.internal/vhost", "RabbitMQQueue", Queue),
    (open_queue, {}, "nats://127.0.0.1:4222", "NATSQueue", Queue),
    (open_cache, {}, "memory", "MemoryCacheStore", CacheStore),
    (open_cache, {}, "redis://127.0.0.1:6379/0", "RedisCacheStore", CacheStore),
    (open_cache, {}, "rediss://127.0.0.1:6380/0", "RedisCacheStore", CacheStore),
    (open_cache, {}, "unix:///run/redis.sock", "RedisCacheStore", CacheStore),
    (open_quota, {}, "memory", "MemoryQuotaStore", QuotaStore),
    (open_quota, {}, "redis://127.0.0.1:6379/0", "RedisQuotaStore", QuotaStore),
    (open_quota, {}, "unix:///run/redis.sock", "RedisQuotaStore", QuotaStore),
    (open_checkpoint, {}, "sqlite:///{tmp}/c.db", "SQLiteCheckpointStore", CheckpointStore),
    (open_checkpoint, {}, "{tmp}/c.db", "SQLiteCheckpointStore", CheckpointStore),
    (open_checkpoint, {}, PG, "PostgresCheckpointStore", CheckpointStore),
    (open_sink, SINK, "sqlite:///{tmp}/s.db", "SQLiteSink", Sink),
    (open_sink, SINK, PG, "PostgresSink", Sink),
    (open_token_store, {}, "memory", "MemoryTokenStore", TokenStore),
    (open_token_store, {}, "redis://127.0.0.1:6379/0", "RedisTokenStore", TokenStore),
    (open_token_store, {}, "sqlite:///{tmp}/t.db", "SQLiteTokenStore", TokenStore),
    (open_token_store, {}, "{tmp}/t.db", "SQLiteTokenStore", TokenStore),
    (open_token_store, {}, PG, "PostgresTokenStore", TokenStore),
]


@pytest.mark.parametrize(
    ("factory", "extra", "url", "name", "protocol"),
    CASES,
    ids=[f"{c[0].__name__}:{c[2].split(':')[0]}" for c in CASES],
)
async def test_each_scheme_opens_its_backend(
    tmp_path: Any, factory: Callable[..., Any], extra: dict[str, Any], url: str, name: str, protocol: type
) -> None:
    store = factory(url.format(tmp=tmp_path), **extra)
    try:
        assert type(store).__name__ == name
        assert isinstance(store, protocol)
        assert getattr(stores, name) is type(store)  # exported by interlock.stores, loaded lazily
    finally:
        if name.startswith("Redis"):
            await store.aclose()  # the only backends that hold a client before open()


async def test_no_url_means_the_in_process_store() -> None:
    clock = FakeClock()
    cache = open_cache(None, max_entries=3, max_bytes=1000, namespace="ignored:", clock=clock)
    assert type(cache).__name__ == "MemoryCacheStore"
    assert (cache.max_entries, cache.max_bytes) == (3, 1000)  # type: ignore[attr-defined]
    quota = open_quota(None, clock=clock)
    assert type(quota).__name__ == "MemoryQuotaStore"


async def test_settings_reach_the_backend_and_those_it_does_not_take_are_ignored(tmp_path: Any) -> None:
    clock = FakeClock()
    queue = open_queue(f"sqlite:///{tmp_path}/q.db", clock=clock, table="events", poll_interval=0.5, max_batch=8)
    assert (queue.table, queue.poll_interval, queue.max_batch) == ("events", 0.5, 8)  # type: ignore[attr-defined]
    rabbit = open_queue(f"amqp://127.0.0.1/?companion=sqlite:///{tmp_path}/c.db", table="events", poll_interval=0.5)
    assert (rabbit.name, rabbit.url, rabbit.poll_interval) == ("events", "amqp://127.0.0.1/", 0.5)  # type: ignore[attr-defined]
    assert rabbit._companion.url == f"sqlite:///{tmp_path}/c.db"  # type: ignore[attr-defined]
    pg = open_queue(f"{PG}?schema=s1", table="events", poll_interval=2.0)
    assert (pg.schema, pg.table, pg.poll_interval) == ("s1", "events", 2.0)  # type: ignore[attr-defined]
    redis = open_cache("redis://127.0.0.1:6379/0", max_entries=3, namespace="mine:")
    try:
        assert redis.namespace == "mine:"  # type: ignore[attr-defined]
    finally:
        await redis.aclose()
    checkpoints = open_checkpoint(f"sqlite:///{tmp_path}/c.db", prefix="jobs")
    await checkpoints.open()
    await checkpoints.aclose()
    conn = sqlite3.connect(f"{tmp_path}/c.db")
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()
    assert tables == {"jobs_checkpoints", "jobs_ledger"}


ACCEPTED = {
    open_queue: ("sqlite://", "a file path", "postgresql://", "postgres://", "amqp://", "amqps://", "nats://"),
    open_checkpoint: ("sqlite://", "a file path", "postgresql://", "postgres://"),
    open_sink: ("sqlite://", "a file path", "postgresql://", "postgres://"),
    open_cache: ("memory", "redis://", "rediss://", "unix://"),
    open_quota: ("memory", "redis://", "rediss://", "unix://"),
    open_token_store: ("memory", "redis://", "sqlite://", "a file path", "postgresql://"),
}


@pytest.mark.parametrize("factory", list(ACCEPTED), ids=lambda f: f.__name__)
def test_an_unknown_scheme_is_a_config_error_naming_the_accepted_ones(factory: Callable[..., Any]) -> None:
    extra = SINK if factory is open_sink else {}
    with pytest.raises(ConfigError) as caught:
        factory("mysql://app:s3cret@db.internal/app", **extra)
    message = str(caught.value)
    assert message.startswith(f"{factory.__name__}.url: unsupported URL scheme 'mysql'")
    for accepted in ACCEPTED[factory]:
        assert accepted in message
    assert "s3cret" not in message  # never a password in an error
    with pytest.raises(ConfigError, match=r"^Sync\.store: "):
        factory("mysql://x", owner="Sync", field="store", **extra)


def test_the_in_process_backends_take_no_file_path_and_the_file_backends_no_bare_word() -> None:
    with pytest.raises(ConfigError, match="unsupported"):
        open_cache("cache.db")
    with pytest.raises(ConfigError, match="unsupported"):
        open_queue("memory://")
    with pytest.raises(ConfigError, match="no URL given"):
        open_checkpoint("")


@pytest.mark.parametrize(
    ("library", "factory", "url", "extra"),
    [
        ("asyncpg", open_queue, PG, "postgres"),
        ("asyncpg", open_checkpoint, PG, "postgres"),
        ("aio_pika", open_queue, "amqp://guest:s3cret@127.0.0.1:5672/", "rabbitmq"),
        ("nats", open_queue, "nats://127.0.0.1:4222", "nats"),
        ("redis.asyncio", open_cache, "redis://127.0.0.1:6379/0", "redis"),
        ("redis.asyncio", open_quota, "redis://127.0.0.1:6379/0", "redis"),
    ],
)
def test_a_missing_client_library_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, library: str, factory: Callable[..., Any], url: str, extra: str
) -> None:
    monkeypatch.setitem(sys.modules, library, None)  # what an install without the extra looks like
    with pytest.raises(ImportError, match=rf"pip install 'interlock\[{extra}\]'") as caught:
        factory(url)
    assert "s3cret" not in str(caught.value)


def test_backend_modules_load_only_when_picked(tmp_path: Any) -> None:
    """Opening a SQLite queue and an in-process cache imports neither asyncpg nor redis."""
    code = (
        "import sys, interlock.stores as s;"
        f"s.open_queue('sqlite:///{tmp_path}/q.db'); s.open_cache(); s.open_quota();"
        f"s.open_checkpoint('{tmp_path}/c.db');"
        "print(sorted(m for m in ('asyncpg', 'redis', 'interlock.stores.queue_postgres') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- stores opened through the factories work, on every backend ----------------------------------


async def test_a_queue_from_the_factory_works(sql_store_url: str) -> None:
    queue = open_queue(sql_store_url, poll_interval=0.05)
    await queue.open()
    try:
        assert await queue.put(Message("src", "m1", "t", b"{}")) is True
        (lease,) = await queue.lease(1, 30.0)
        assert lease.message.id == "m1"
        assert await queue.ack(lease) is True
    finally:
        await queue.aclose()


async def test_a_checkpoint_store_from_the_factory_works(sql_store_url: str) -> None:
    store = open_checkpoint(sql_store_url, prefix="factory")
    await store.open()
    try:
        await store.save_checkpoint("job", Checkpoint(123, "r1"))
        loaded = await store.load_checkpoint("job")
        assert loaded is not None
        assert (loaded.updated_at, loaded.record_id) == (123, "r1")
    finally:
        await store.aclose()


async def test_concurrent_first_uses_open_one_writer_or_pool(
    sql_store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A BatchWriter's parallel batches all call the sink's open() at once: they must share one
    SQLite writer thread (a CI run caught four, three never closed, failing with SQLITE_MISUSE)
    or one PostgreSQL pool."""
    import threading

    import interlock.stores._postgres as postgres_base

    pools: list[Any] = []
    real_create_pool = postgres_base.create_pool

    async def counted_create_pool(*args: Any, **kwargs: Any) -> Any:
        pools.append(await real_create_pool(*args, **kwargs))
        return pools[-1]

    monkeypatch.setattr(postgres_base, "create_pool", counted_create_pool)
    url = sql_store_url
    store = open_checkpoint(url, prefix="factory_open")
    await asyncio.gather(*(store.open() for _ in range(4)))
    try:
        if url.startswith("sqlite"):
            path = url.removeprefix("sqlite:///")
            writers = [t for t in threading.enumerate() if t.name == f"interlock-sqlite:{path}"]
            assert len(writers) == 1
        else:
            assert len(pools) == 1
    finally:
        await store.aclose()


@pytest.fixture(params=["memory", "redis"])
def shared_url(request: pytest.FixtureRequest) -> str | None:
    return None if request.param == "memory" else request.getfixturevalue("redis_url")


async def test_a_cache_store_from_the_factory_works(shared_url: str | None, redis_prefix: str) -> None:
    store = open_cache(shared_url, namespace=redis_prefix)
    entry = CacheEntry(status=200, headers=(), content=b"x", stored_at=1.0, lifetime=60.0)
    try:
        await store.set("k", entry, ttl=60)
        assert await store.get("k") == entry
        await store.clear()
    finally:
        await store.aclose()


async def test_a_quota_store_from_the_factory_works(shared_url: str | None, redis_prefix: str) -> None:
    store = open_quota(shared_url, namespace=redis_prefix)
    try:
        grants = [await store.acquire("k", rate=0.01, capacity=1) for _ in range(2)]
        assert [g.wait == 0 for g in grants] == [True, False]
    finally:
        await store.aclose()


# -- SQLite durability: what the store's own connection really runs with ------------------------

SQLITE_STORES = [
    (open_queue, {}),
    (open_checkpoint, {}),
    (open_sink, SINK),
]


@pytest.mark.parametrize(("factory", "extra"), SQLITE_STORES, ids=lambda f: getattr(f, "__name__", ""))
async def test_sqlite_stores_commit_in_wal_mode_with_synchronous_full(
    tmp_path: Any, factory: Callable[..., Any], extra: dict[str, Any]
) -> None:
    """Read the PRAGMAs back on the connection the store commits with (synchronous is per
    connection: another connection would show its own default, not the store's): WAL, and
    synchronous=FULL, which fsyncs the WAL at every commit, so an acknowledged write survives a
    power cut (https://www.sqlite.org/pragma.html#pragma_synchronous)."""
    path = f"{tmp_path}/durable.db"
    if factory is open_sink:
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    store = factory(f"sqlite:///{path}", **extra)
    await store.open()
    try:
        journal, synchronous = await store._run(  # the writer thread's own connection
            lambda conn: (
                conn.execute("PRAGMA journal_mode").fetchone()[0],
                conn.execute("PRAGMA synchronous").fetchone()[0],
            )
        )
    finally:
        await store.aclose()
    assert (journal, synchronous) == ("wal", 2)  # 2 is FULL (0 OFF, 1 NORMAL, 3 EXTRA)
    with sqlite3.connect(path) as conn:  # WAL is a property of the file: every reader sees it
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
