"""The CacheStore contract, run against every backend: in-memory LRU and Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from interlock.core.freshness import CacheEntry
from interlock.stores.cache import CacheStore
from interlock.stores.cache_memory import MemoryCacheStore
from interlock.stores.cache_redis import RedisCacheStore
from interlock.testing import FakeClock


def make_entry(body: bytes = b'{"id":1}', tags: tuple[str, ...] = ()) -> CacheEntry:
    return CacheEntry(
        status=200,
        headers=(("Content-Type", "application/json"), ("ETag", '"1"')),
        content=body,
        stored_at=1_700_000_000.0,
        lifetime=60.0,
        tags=tags,
    )


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[CacheStore]:
    if request.param == "memory":
        yield MemoryCacheStore()
        return
    url = request.getfixturevalue("redis_url")
    prefix = request.getfixturevalue("redis_prefix")
    redis_store = RedisCacheStore(url, namespace=prefix + "cache:")
    try:
        yield redis_store
    finally:
        await redis_store.clear()
        await redis_store.aclose()


async def test_is_a_cache_store(store: CacheStore) -> None:
    assert isinstance(store, CacheStore)


async def test_set_get_round_trip(store: CacheStore) -> None:
    e = make_entry()
    assert await store.get("up|/a?|") is None
    await store.set("up|/a?|", e, ttl=60)
    assert await store.get("up|/a?|") == e


async def test_large_values_round_trip(store: CacheStore) -> None:
    e = make_entry(body=b'{"blob":"' + b"x" * 200_000 + b'"}')
    await store.set("big", e, ttl=60)
    assert await store.get("big") == e


async def test_overwrite(store: CacheStore) -> None:
    await store.set("k", make_entry(b"1"), ttl=60)
    await store.set("k", make_entry(b"2"), ttl=60)
    got = await store.get("k")
    assert got is not None and got.content == b"2"


async def test_delete(store: CacheStore) -> None:
    await store.set("k", make_entry(), ttl=60)
    assert await store.delete("k") is True
    assert await store.delete("k") is False
    assert await store.get("k") is None


async def test_delete_prefix_is_literal(store: CacheStore) -> None:
    for key in (
        "up|/customers/1?|",
        "up|/customers/1?x=1|",
        "up|/customers/12?|",
        "up|/orders/1?|",
        "up|/c*?|",
    ):
        await store.set(key, make_entry(), ttl=60)
    assert await store.delete_prefix("up|/customers/1?") == 2
    assert await store.get("up|/customers/12?|") is not None
    assert await store.delete_prefix("up|/c*") == 1  # a glob character matches only itself
    assert await store.get("up|/orders/1?|") is not None


async def test_delete_tag(store: CacheStore) -> None:
    await store.set("a", make_entry(tags=("customer:1",)), ttl=60)
    await store.set("b", make_entry(tags=("customer:1", "zone:eu")), ttl=60)
    await store.set("c", make_entry(tags=("customer:2",)), ttl=60)
    assert await store.delete_tag("customer:1") == 2
    assert await store.get("a") is None and await store.get("b") is None
    assert await store.get("c") is not None
    assert await store.delete_tag("nobody") == 0


async def test_clear(store: CacheStore) -> None:
    await store.set("a", make_entry(), ttl=60)
    await store.set("b", make_entry(tags=("t",)), ttl=60)
    await store.clear()
    assert await store.get("a") is None and await store.get("b") is None


async def test_ttl_expiry_memory() -> None:
    clock = FakeClock()
    store = MemoryCacheStore(clock=clock)
    await store.set("k", make_entry(), ttl=5)
    clock.advance(4.9)
    assert await store.get("k") is not None
    clock.advance(0.2)
    assert await store.get("k") is None


async def test_ttl_expiry_redis(redis_url: str, redis_prefix: str) -> None:
    import redis.asyncio as aioredis

    store = RedisCacheStore(redis_url, namespace=redis_prefix)
    try:
        await store.set("k", make_entry(), ttl=30)
        raw = aioredis.Redis.from_url(redis_url)
        ttl_ms = await raw.pttl(redis_prefix + "e:k")
        await raw.aclose()
        assert 0 < ttl_ms <= 30_000
    finally:
        await store.clear()
        await store.aclose()


async def test_memory_lru_bounded_by_entries_and_bytes() -> None:
    store = MemoryCacheStore(max_entries=3, max_bytes=10_000)
    for key in "abc":
        await store.set(key, make_entry(), ttl=60)
    await store.get("a")  # a is now the most recently used
    await store.set("d", make_entry(), ttl=60)
    assert await store.get("b") is None
    assert {k for k in "acd" if await store.get(k) is not None} == set("acd")
    big = make_entry(body=b"x" * 6000)
    await store.set("big1", big, ttl=60)
    await store.set("big2", big, ttl=60)
    assert store.bytes <= 10_000
    assert await store.get("big1") is None and await store.get("big2") is not None
    await store.set("huge", make_entry(body=b"x" * 20_000), ttl=60)  # never fits: not stored
    assert await store.get("huge") is None and await store.get("big2") is not None
