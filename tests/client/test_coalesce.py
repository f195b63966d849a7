"""Coalescing: identical reads in flight share one upstream call."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

import interlock
from interlock.testbed import Faults, Latency, Testbed, TestbedConfig


@pytest.fixture
async def tb() -> Testbed:  # type: ignore[misc]
    async with Testbed(TestbedConfig(records=50, faults=Faults(latency=Latency.fixed(50)))) as testbed:
        yield testbed


async def test_100_identical_reads_cost_one_call(tb: Testbed) -> None:
    async with interlock.Client(tb.url) as api:
        responses = await asyncio.gather(*[api.get("/customers/1") for _ in range(100)])
    assert tb.counters.requests == 1
    assert len({id(r) for r in responses}) == 100  # every caller its own Response
    assert {r.status for r in responses} == {200}
    assert len({r.request_id for r in responses}) == 100
    responses[0].json()["name"] = "mutated"  # one caller's parsed body is not another's
    assert responses[1].json()["name"] != "mutated"


async def test_coalescing_protects_a_cold_cache(tb: Testbed) -> None:
    async with interlock.Client(tb.url, cache=interlock.Cache(routes={"/customers/{id}": 60})) as api:
        await asyncio.gather(*[api.get("/customers/2") for _ in range(100)])
        assert (await api.get("/customers/2")).from_cache
    assert tb.counters.requests == 1


async def test_different_requests_are_not_merged(tb: Testbed) -> None:
    async with interlock.Client(tb.url) as api:
        await asyncio.gather(
            api.get("/customers/1"),
            api.get("/customers/2"),
            api.get("/customers/1", params={"fields": "name"}),
            api.get("/customers/1", headers={"Authorization": "Bearer other"}),
            api.get("/customers/1"),
        )
    assert tb.counters.requests == 4


async def test_writes_are_never_merged(tb: Testbed) -> None:
    async with interlock.Client(tb.url) as api:
        await asyncio.gather(*[api.put("/customers/1", json={"name": "same"}) for _ in range(3)])
    assert tb.counters.requests == 3


async def test_coalescing_can_be_turned_off(tb: Testbed) -> None:
    async with interlock.Client(tb.url, coalesce=False) as api:
        await asyncio.gather(*[api.get("/customers/1") for _ in range(10)])
    assert tb.counters.requests == 10


async def test_errors_reach_every_caller(tb: Testbed) -> None:
    tb.configure(faults=Faults(latency=Latency.fixed(50), reset_rate=1.0))
    async with interlock.Client(tb.url, retry=None) as api:
        results = await asyncio.gather(*[api.get("/customers/1") for _ in range(20)], return_exceptions=True)
    assert all(isinstance(r, interlock.errors.TransportError) for r in results)
    assert tb.counters.resets == 1


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for a state the test cannot be told about (the testbed's or the client's counts)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {timeout}s")
        await asyncio.sleep(0.001)


async def leader_and_follower(api: interlock.Client, tb: Testbed, path: str) -> tuple[Any, Any]:
    """Two identical reads: the second starts once the first is at the upstream (held there by
    the testbed's 50 ms latency) and returns once it has joined the first one's flight."""
    coalesce = api._coalesce
    assert coalesce is not None
    leader = asyncio.ensure_future(api.get(path))
    await until(lambda: tb.counters.in_flight == 1)
    follower = asyncio.ensure_future(api.get(path))
    await until(lambda: coalesce.coalesced == 1)
    assert tb.counters.in_flight == 1 and tb.counters.requests == 1  # still the leader's call alone
    return leader, follower


async def test_a_cancelled_caller_does_not_cancel_the_others(tb: Testbed) -> None:
    async with interlock.Client(tb.url) as api:
        first, second = await leader_and_follower(api, tb, "/customers/3")
        first.cancel()
        response = await second
    assert response.status == 200 and first.cancelled()
    # The leader's call went with it; its follower, instead of failing, called again itself.
    assert tb.counters.requests == 2


async def test_a_cancelled_follower_leaves_the_call_to_the_others(tb: Testbed) -> None:
    async with interlock.Client(tb.url) as api:
        leader, follower = await leader_and_follower(api, tb, "/customers/4")
        follower.cancel()
        response = await leader
    assert response.status == 200 and follower.cancelled()
    assert tb.counters.requests == 1


async def test_sequential_reads_are_separate_calls(tb: Testbed) -> None:
    async with interlock.Client(tb.url) as api:
        await api.get("/customers/1")
        await api.get("/customers/1")
    assert tb.counters.requests == 2
