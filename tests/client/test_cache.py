"""The response cache against the testbed over loopback (and the real Redis for the shared
store): revalidation as 304s, stale serving, invalidation, figures."""

from __future__ import annotations

import asyncio
import math

import pytest

import interlock
from interlock._metrics import cache_hit_rate
from interlock.testbed import Faults, Testbed, TestbedConfig


@pytest.fixture
async def tb() -> interlock.testbed.Testbed:  # type: ignore[name-defined]
    async with Testbed(TestbedConfig(records=200)) as testbed:
        yield testbed


async def wait_for(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def test_fresh_entries_are_served_without_calls(tb: Testbed) -> None:
    cache = interlock.Cache(routes={"/customers/{id}": 60})
    async with interlock.Client(tb.url, cache=cache) as api:
        first = await api.get("/customers/7")
        again = [await api.get("/customers/7") for _ in range(9)]
        assert not first.from_cache
        assert all(r.from_cache and not r.stale and r.status == 200 for r in again)
        assert all(r.json() == first.json() for r in again)
        assert again[0].attempts == 0 and "Age" in again[0].headers
        assert tb.counters.requests == 1
        stats = api.cache.stats()
        assert stats["routes"]["/customers/{id}"]["hit"] == 9
        assert stats["hit_rate"] == pytest.approx(0.9)
        assert cache_hit_rate(api.name, "/customers/{id}") == pytest.approx(0.9)


async def test_uncached_routes_always_go_upstream(tb: Testbed) -> None:
    async with interlock.Client(tb.url, cache=interlock.Cache(routes={"/products/{id}": 60})) as api:
        for _ in range(3):
            assert not (await api.get("/orders/1")).from_cache
        assert tb.counters.requests == 3
        assert math.isnan(cache_hit_rate(api.name, "/orders/{id}"))


async def test_stale_entries_are_revalidated_into_304s(tb: Testbed) -> None:
    # ttl 0: every read after the first is a revalidation with the stored ETag.
    async with interlock.Client(tb.url, cache=interlock.Cache(routes={"/customers/{id}": 0})) as api:
        first = await api.get("/customers/3")
        reads = [await api.get("/customers/3") for _ in range(5)]
    assert tb.counters.not_modified == 5
    assert tb.counters.by_route["GET /customers/{id}"] == {"200": 1, "304": 5}
    assert all(r.status == 200 and r.from_cache and r.content == first.content for r in reads)
    assert api.cache is not None and api.cache.stats()["routes"]["/customers/{id}"]["revalidated"] == 5


async def test_a_changed_record_is_fetched_in_full(tb: Testbed) -> None:
    async with interlock.Client(tb.url, cache=interlock.Cache(routes={"/customers/{id}": 0})) as api:
        before = await api.get("/customers/4")
        tb.touch("customers", [4])
        after = await api.get("/customers/4")
    assert after.json()["version"] == before.json()["version"] + 1
    assert not after.from_cache
    assert tb.counters.not_modified == 0


async def test_respect_headers_follows_upstream_cache_control(tb: Testbed) -> None:
    tb.configure(max_age={"customers": 60})
    cache = interlock.Cache(routes={"/customers/{id}": 0, "/products/{id}": 60}, respect_headers=True)
    async with interlock.Client(tb.url, cache=cache) as api:
        for _ in range(3):
            await api.get("/customers/1")  # upstream says max-age=60: fresh despite ttl 0
            await api.get("/products/1")  # upstream says no-cache: revalidated despite ttl 60
    assert tb.counters.by_route["GET /customers/{id}"] == {"200": 1}
    assert tb.counters.by_route["GET /products/{id}"] == {"200": 1, "304": 2}


async def test_stale_if_error_serves_stale_during_an_outage(tb: Testbed) -> None:
    cache = interlock.Cache(routes={"/customers/{id}": 0}, stale_if_error=300)
    async with interlock.Client(tb.url, cache=cache, retry=interlock.Retry(attempts=2)) as api:
        fresh = await api.get("/customers/9")
        tb.start_outage(60)
        during = await api.get("/customers/9")
        assert during.status == 200 and during.from_cache and during.stale
        assert during.content == fresh.content
        assert tb.counters.outage_rejections == 2  # the call really went upstream, twice
        with pytest.raises(interlock.errors.RetriesExhausted):
            await api.get("/customers/10")  # nothing stored: the failure shows


async def test_stale_if_error_when_the_breaker_is_open(tb: Testbed) -> None:
    cache = interlock.Cache(routes={"/customers/{id}": 0}, stale_if_error=300)
    breaker = interlock.CircuitBreaker(failure_ratio=0.5, min_calls=2, window=60, open_for=60)
    async with interlock.Client(tb.url, cache=cache, retry=None, breaker=breaker) as api:
        await api.get("/customers/1")
        tb.start_outage(60)

        async def until_open() -> None:
            for _ in range(10):
                await api.get("/customers/2")  # uncached: 503s until the breaker opens

        with pytest.raises(interlock.errors.CircuitOpen):
            await until_open()
        rejections = tb.counters.outage_rejections
        served = await api.get("/customers/1")
        assert served.stale and served.status == 200
        assert tb.counters.outage_rejections == rejections  # failed fast, nothing sent


async def test_no_stale_if_error_outside_the_window(tb: Testbed) -> None:
    cache = interlock.Cache(routes={"/customers/{id}": 0}, stale_if_error=0)
    async with interlock.Client(tb.url, cache=cache, retry=None) as api:
        await api.get("/customers/1")
        tb.start_outage(60)
        assert (await api.get("/customers/1")).status == 503


async def test_stale_while_revalidate_serves_stale_and_refreshes_once(tb: Testbed) -> None:
    cache = interlock.Cache(routes={"/customers/{id}": 0}, stale_while_revalidate=300)
    async with interlock.Client(tb.url, cache=cache) as api:
        await api.get("/customers/5")
        tb.touch("customers", [5])
        stale = await asyncio.gather(*[api.get("/customers/5") for _ in range(10)])
        assert all(r.stale and r.from_cache for r in stale)
        assert all(r.json()["version"] == 1 for r in stale)
        refreshing = list(api.cache._refreshing.values())
        assert len(refreshing) == 1  # one background refresh for the ten stale reads
        await asyncio.gather(*refreshing)
        assert tb.counters.requests == 2
        refreshed = await api.get("/customers/5")
        assert refreshed.json()["version"] == 2


async def test_unsafe_methods_invalidate_their_resource(tb: Testbed) -> None:
    async with interlock.Client(tb.url, cache=interlock.Cache(routes={"/customers/{id}": 60})) as api:
        await api.get("/customers/1")
        await api.get("/customers/1", params={"fields": "name"})
        await api.get("/customers/11")
        written = await api.put("/customers/1", json={"name": "Renamed"})
        assert written.status < 400
        after = await api.get("/customers/1")
        assert not after.from_cache and after.json()["name"] == "Renamed"
        assert not (await api.get("/customers/1", params={"fields": "name"})).from_cache
        assert (await api.get("/customers/11")).from_cache  # a string prefix, not a neighbour


async def test_invalidate_by_key_prefix_and_tag(tb: Testbed) -> None:
    rule = interlock.CacheRule(ttl=60, tags=["customer:{id}"])
    async with interlock.Client(
        tb.url, cache=interlock.Cache(routes={"/customers/{id}": rule, "/products/{id}": 60})
    ) as api:
        assert api.cache is not None
        for path in ("/customers/1", "/customers/2", "/products/1", "/products/2"):
            await api.get(path)
        assert await api.cache.invalidate("/customers/1") == 1
        assert await api.cache.invalidate_tag("customer:2") == 1
        assert await api.cache.invalidate_prefix("/products/") == 2
        before = tb.counters.requests
        for path in ("/customers/1", "/customers/2", "/products/1", "/products/2"):
            assert not (await api.get(path)).from_cache
        assert tb.counters.requests == before + 4


async def test_wildcard_routes_and_rule_order() -> None:
    cache = interlock.Cache(routes={"/zones/*": 3600, "/zones/{id}/live": 0, "/industries": 600})
    assert cache.rule_for("/zones/eu/live")[0].ttl == 0  # type: ignore[index]
    assert cache.rule_for("/zones/eu/cities/1")[0].ttl == 3600  # type: ignore[index]
    assert cache.rule_for("/industries")[0].ttl == 600  # type: ignore[index]
    assert cache.rule_for("/orders/1") is None
    with pytest.raises(interlock.errors.ConfigError):
        interlock.Cache(routes={"/x": "forever"})  # type: ignore[dict-item]


async def test_credentials_vary_the_cache_and_never_reach_the_key(tb: Testbed) -> None:
    async with interlock.Client(tb.url, cache=interlock.Cache(routes={"/customers/{id}": 60})) as api:
        await api.get("/customers/1", headers={"Authorization": "Bearer alice"})
        assert not (await api.get("/customers/1", headers={"Authorization": "Bearer bob"})).from_cache
        assert (await api.get("/customers/1", headers={"Authorization": "Bearer alice"})).from_cache
        request = api.build_request("GET", "/customers/1", headers={"Authorization": "Bearer alice"})
        assert api.cache is not None and "alice" not in api.cache.key(request)


async def test_redis_store_is_shared_between_clients(tb: Testbed, redis_url: str, redis_prefix: str) -> None:
    def cache() -> interlock.Cache:
        return interlock.Cache(routes={"/customers/{id}": 60}, store=redis_url, namespace=redis_prefix)

    async with interlock.Client(tb.url, cache=cache()) as one, interlock.Client(tb.url, cache=cache()) as two:
        await one.get("/customers/1")
        shared = await two.get("/customers/1")
        assert shared.from_cache and shared.json()["id"] == 1
        assert tb.counters.requests == 1
        await two.put("/customers/1", json={"name": "x"})  # invalidates for everyone
        assert not (await one.get("/customers/1")).from_cache
        assert two.cache is not None
        await two.cache.clear()


async def test_a_broken_store_never_breaks_a_call(tb: Testbed) -> None:
    cache = interlock.Cache(routes={"/customers/{id}": 60}, store="redis://127.0.0.1:1/0")
    async with interlock.Client(tb.url, cache=cache) as api:
        assert (await api.get("/customers/1")).status == 200
        assert (await api.get("/customers/1")).status == 200
    assert tb.counters.requests == 2


async def test_faults_config_smoke(tb: Testbed) -> None:
    # The error statuses RFC 5861 covers; a 404 is an answer, not a failure: never masked.
    cache = interlock.Cache(routes={"/customers/{id}": 0}, stale_if_error=60)
    async with interlock.Client(tb.url, cache=cache, retry=None) as api:
        await api.get("/customers/1")
        tb.configure(faults=Faults(error_rates={500: 1.0}))
        assert (await api.get("/customers/1")).stale
        assert (await api.get("/customers/999999")).status == 500
