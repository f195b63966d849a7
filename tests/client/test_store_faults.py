"""Shared stores that fail or freeze, through a loopback TCP proxy in front of the real Redis
(the proxy is frozen, never the server): no call outlasts its deadline, no ``redis.exceptions``
reach the caller, the rate limit degrades to a local bucket (or fails closed when asked), and a
local refusal is ``RateLimited`` with nothing sent and no retry budget spent."""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from typing import Any

import pytest

import interlock
from interlock import Cache, Client, RateLimit, Retry, Timeout
from interlock._metrics import work_stats
from interlock.errors import DeadlineExceeded, RateLimited
from interlock.testbed import Testbed, TestbedConfig

# Liveness only: a call that does not end within this many seconds hangs (the bug), whatever
# the machine's load. The calls under test have a deadline of one or two seconds.
HANGS_AFTER = 20.0

pytestmark = pytest.mark.redis


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed once we leave: nothing listens there


async def test_a_frozen_quota_store_degrades_to_a_local_bucket_within_the_deadline(
    redis_proxy: Any, redis_url: str, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    name = f"frozen-quota-{uuid.uuid4().hex[:6]}"
    store = redis_proxy.url(redis_url)
    limit = RateLimit(per_second=100, store=store, namespace=redis_prefix)
    async with (
        Testbed(TestbedConfig()) as tb,
        Client(tb.url, name=name, rate_limit=limit, timeout=Timeout(total=3.0)) as api,
    ):
        assert (await api.get("/customers/1")).status == 200  # through the store
        redis_proxy.freeze()
        with caplog.at_level(logging.WARNING, logger="interlock.ratelimit"):
            degraded = await asyncio.wait_for(api.get("/customers/2"), HANGS_AFTER)
            # The store is left alone for a while: the next calls do not wait for it again.
            after = [await asyncio.wait_for(api.get(f"/customers/{i}"), HANGS_AFTER) for i in range(3, 8)]
        assert degraded.status == 200 and {r.status for r in after} == {200}
        assert tb.counters.requests == 7
        assert api.rate_limit is not None and api.rate_limit.store_errors == 1
        redis_proxy.thaw()
    (warning,) = [r for r in caplog.records if "rate-limit store" in r.getMessage()]
    assert "pacing this process alone" in warning.getMessage()
    assert work_stats(name).store_errors["quota"] == 1


async def test_a_redis_that_is_down_raises_no_redis_exception(redis_prefix: str) -> None:
    store = f"redis://:hunter2@127.0.0.1:{closed_port()}/0"
    async with Testbed(TestbedConfig()) as tb:
        async with Client(
            tb.url, rate_limit=RateLimit(per_second=100, store=store, namespace=redis_prefix)
        ) as api:
            statuses = [(await api.get(f"/customers/{i}")).status for i in range(1, 4)]
        assert statuses == [200, 200, 200]
        closed = RateLimit(per_second=100, store=store, namespace=redis_prefix, on_store_error="fail")
        async with Client(tb.url, rate_limit=closed) as api:
            with pytest.raises(RateLimited, match="failing closed") as caught:
                await api.get("/customers/9")
            with pytest.raises(RateLimited, match="failing closed"):  # resting: refused at once
                await api.get("/customers/9")
        assert tb.counters.requests == 3  # nothing was sent for the refused calls
    error = caught.value
    assert error.attempts == 0
    assert type(error.__cause__).__module__.startswith("redis")  # chained, for the curious
    assert "hunter2" not in str(error)


async def test_a_frozen_cache_store_costs_one_bounded_wait_then_is_skipped(
    redis_proxy: Any, redis_url: str, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    name = f"frozen-cache-{uuid.uuid4().hex[:6]}"
    cache = Cache(routes={"/customers/{id}": 60}, store=redis_proxy.url(redis_url), namespace=redis_prefix)
    async with (
        Testbed(TestbedConfig()) as tb,
        Client(tb.url, name=name, cache=cache, timeout=Timeout(total=2.0)) as api,
    ):
        await api.get("/customers/1")
        assert (await api.get("/customers/1")).from_cache
        redis_proxy.freeze()
        with caplog.at_level(logging.WARNING, logger="interlock.cache"):
            try:
                first = await asyncio.wait_for(api.get("/customers/2"), HANGS_AFTER)
                assert first.status == 200 and not first.from_cache
            except DeadlineExceeded:
                pass  # the wait for the store may take what the deadline had; bounded either way
            later = await asyncio.wait_for(api.get("/customers/3"), HANGS_AFTER)  # skips the store
        assert later.status == 200 and not later.from_cache
        redis_proxy.thaw()
    assert any("cache store read" in r.getMessage() for r in caplog.records)
    assert work_stats(name).store_errors["cache"] >= 1


async def test_a_deadline_bounds_a_frozen_store_when_the_socket_timeout_is_longer(
    redis_proxy: Any, redis_url: str, redis_prefix: str
) -> None:
    store = redis_proxy.url(redis_url) + "?socket_timeout=60"
    limit = RateLimit(per_second=100, store=store, namespace=redis_prefix)
    async with (
        Testbed(TestbedConfig()) as tb,
        Client(tb.url, rate_limit=limit, timeout=Timeout(total=0.5)) as api,
    ):
        await api.get("/customers/1")
        redis_proxy.freeze()
        with pytest.raises(DeadlineExceeded):  # the store took the whole deadline: nothing sent
            await asyncio.wait_for(api.get("/customers/2"), HANGS_AFTER)
        redis_proxy.thaw()
        assert tb.counters.requests == 1


async def test_without_a_deadline_the_redis_socket_timeout_bounds_a_frozen_store(
    redis_proxy: Any, redis_url: str, redis_prefix: str
) -> None:
    limit = RateLimit(per_second=100, store=redis_proxy.url(redis_url), namespace=redis_prefix)
    cache = Cache(routes={"/customers/{id}": 60}, store=redis_proxy.url(redis_url), namespace=redis_prefix)
    no_deadline = Timeout(total=None)
    async with (
        Testbed(TestbedConfig()) as tb,
        Client(tb.url, rate_limit=limit, cache=cache, timeout=no_deadline) as api,
    ):
        await api.get("/customers/1")
        redis_proxy.freeze()
        response = await asyncio.wait_for(api.get("/customers/2"), HANGS_AFTER)
        redis_proxy.thaw()
    assert response.status == 200 and not response.from_cache


async def test_a_local_refusal_is_rate_limited_with_no_attempt_and_no_budget_spent() -> None:
    async with Testbed(TestbedConfig()) as tb:
        slow = RateLimit(per_second=0.2, burst=1)  # the next turn is 5 s away
        async with Client(tb.url, rate_limit=slow, timeout=Timeout(total=0.5)) as api:
            await api.get("/customers/1")
            with pytest.raises(RateLimited, match="after the call's deadline") as past_deadline:
                await api.get("/customers/2")
            budget = repr(api._retry._budget)
        async with Client(tb.url, rate_limit=RateLimit(per_second=0.2, burst=1, max_wait=0.1)) as api:
            await api.get("/customers/1")
            with pytest.raises(RateLimited, match="over max_wait") as past_max_wait:
                await api.get("/customers/2")
        assert tb.counters.requests == 2
    for caught in (past_deadline, past_max_wait):
        assert caught.value.attempts == 0
        assert caught.value.retry_in > 1
    assert "retries=0" in budget


async def test_a_retry_refused_by_the_rate_limit_counts_the_attempt_sent() -> None:
    # The first attempt gets a 503; its retry finds no turn before the deadline.
    async with Testbed(TestbedConfig(faults=interlock.testbed.Faults(error_rates={503: 1.0}))) as tb:
        limit = RateLimit(per_second=0.2, burst=1)
        async with Client(
            tb.url, rate_limit=limit, timeout=Timeout(total=1.0), retry=Retry(budget=None)
        ) as api:
            with pytest.raises(RateLimited) as caught:
                await api.get("/customers/1")
    assert caught.value.attempts == 1 and caught.value.status == 503
    assert tb.counters.requests == 1
