"""The QuotaStore contract, run against the in-process bucket and the Redis Lua script.

Rates are tiny (one token per 100 s) so the real time a Redis round trip takes cannot move the
figures the assertions look at: no timing asserts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from interlock.stores.quota import QuotaStore
from interlock.stores.quota_memory import MemoryQuotaStore
from interlock.stores.quota_redis import RedisQuotaStore
from interlock.testing import FakeClock

SLOW = 0.01  # tokens per second: one per 100 s


@pytest.fixture
def clock() -> FakeClock:
    """The in-process store's clock: frozen unless a test moves it (Redis keeps its own)."""
    return FakeClock()


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[QuotaStore]:
    if request.param == "memory":
        yield MemoryQuotaStore(clock=clock)
        return
    url = request.getfixturevalue("redis_url")
    prefix = request.getfixturevalue("redis_prefix")
    redis_store = RedisQuotaStore(url, namespace=prefix + "quota:")
    try:
        yield redis_store
    finally:
        await redis_store.aclose()


async def test_is_a_quota_store(store: QuotaStore) -> None:
    assert isinstance(store, QuotaStore)


async def test_burst_then_queue(store: QuotaStore) -> None:
    grants = [await store.acquire("k", rate=SLOW, capacity=3) for _ in range(5)]
    assert [g.granted for g in grants] == [True] * 5
    assert [g.seq for g in grants] == [1, 2, 3, 4, 5]
    assert [g.wait == 0 for g in grants[:3]] == [True] * 3
    assert 99 < grants[3].wait <= 100
    assert 199 < grants[4].wait <= 200


async def test_keys_are_independent(store: QuotaStore) -> None:
    await store.acquire("a", rate=SLOW, capacity=1)
    assert (await store.acquire("b", rate=SLOW, capacity=1)).wait == 0


async def test_max_wait_refuses_without_taking(store: QuotaStore) -> None:
    await store.acquire("k", rate=SLOW, capacity=1)
    refused = await store.acquire("k", rate=SLOW, capacity=1, max_wait=10)
    assert not refused.granted and refused.wait > 10
    again = await store.acquire("k", rate=SLOW, capacity=1, max_wait=150)
    assert again.granted and 99 < again.wait <= 100  # the refusal reserved nothing


async def test_refund(store: QuotaStore) -> None:
    await store.acquire("k", rate=SLOW, capacity=1)
    await store.refund("k", rate=SLOW, capacity=1)
    assert (await store.acquire("k", rate=SLOW, capacity=1)).wait == 0


async def test_observe_lowers_counting_later_reservations(store: QuotaStore) -> None:
    first = await store.acquire("k", rate=SLOW, capacity=10)
    await store.acquire("k", rate=SLOW, capacity=10)
    # The upstream has 2 left after `first`; one reservation came after it: 1 left for us.
    await store.observe("k", remaining=2, seq=first.seq, rate=SLOW, capacity=10)
    assert (await store.acquire("k", rate=SLOW, capacity=10)).wait == 0
    assert (await store.acquire("k", rate=SLOW, capacity=10)).wait > 99
    # A higher remaining never raises the balance...
    await store.observe("k", remaining=10, seq=first.seq, rate=SLOW, capacity=10)
    assert (await store.acquire("k", rate=SLOW, capacity=10)).wait > 199


async def test_observe_adopt_sets_the_balance(store: QuotaStore) -> None:
    for _ in range(3):
        await store.acquire("k", rate=SLOW, capacity=3)
    last = await store.acquire("k", rate=SLOW, capacity=3)
    await store.observe("k", remaining=2, seq=last.seq, rate=SLOW, capacity=3, adopt=True)
    waits = [(await store.acquire("k", rate=SLOW, capacity=3)).wait for _ in range(3)]
    assert waits[:2] == [0, 0] and waits[2] > 99


async def test_pause_stops_grants_for_everyone(store: QuotaStore, clock: FakeClock) -> None:
    # Redis measures on its own clock, which runs (a little) between the calls; the in-process
    # store on the frozen fake clock gives the figures exactly. The upper bounds allow for
    # float rounding: (now + 50) - now is 50 give or take one ulp of now, never exactly 50
    # (the wall-clock version of this test failed on that one time in a hundred).
    exact = isinstance(store, MemoryQuotaStore)
    ulp = 1e-6
    assert await store.paused_for("k") == 0
    left = await store.pause("k", 50, rate=SLOW, capacity=10)
    assert left == 50 if exact else 49 < left <= 50 + ulp
    paused = await store.paused_for("k")
    assert paused == 50 if exact else 49 < paused <= 50 + ulp
    first = await store.acquire("k", rate=SLOW, capacity=10)
    # The next in line goes when the pause ends, to ask again...
    assert first.wait == pytest.approx(50) if exact else 49 < first.wait <= 50 + ulp
    second = await store.acquire("k", rate=SLOW, capacity=10)
    # ...and the others at the bucket's pace after it.
    assert second.wait == pytest.approx(150) if exact else 149 < second.wait <= 150 + ulp
    shorter = await store.pause("k", 5, rate=SLOW, capacity=10)
    assert shorter == 50 if exact else shorter > 49  # the longest pause wins
    if exact:
        clock.advance(50)
        assert await store.paused_for("k") == 0


async def test_concurrent_acquires_never_share_a_token(store: QuotaStore) -> None:
    grants = await asyncio.gather(*[store.acquire("k", rate=SLOW, capacity=5) for _ in range(20)])
    assert sum(1 for g in grants if g.wait == 0) == 5
    assert sorted(g.seq for g in grants) == list(range(1, 21))


async def test_a_caller_without_limits_keeps_the_stored_ones(store: QuotaStore) -> None:
    for _ in range(3):  # unknown everywhere: probes are not paced (the caller serialises them)
        assert (await store.acquire("new", rate=0, capacity=0)).wait == 0
    for _ in range(3):
        await store.acquire("k", rate=SLOW, capacity=3)
    probing = await store.acquire("k", rate=0, capacity=0)
    assert 99 < probing.wait <= 100  # the stored 1-per-100s pace, not a guessed one
