"""The per-call cost of the pipeline, as structure rather than timing (issue #11, section 1):
how many coroutine frames a call's suspensions resume through, what a lone read allocates for
coalescing, what the aiohttp transport rebuilds per attempt, and how often a cache builds the
entry of one answer shared by identical reads."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import interlock
from interlock import Request
from interlock.client.transports import AiohttpTransport, AttemptTimeout
from interlock.core.breaker import CircuitBreaker
from interlock.stores import MemoryCacheStore
from interlock.testbed import Faults, Latency, Testbed, TestbedConfig
from interlock.testing import MockTransport, respond

PACKAGE = str(Path(interlock.__file__).parent) + "/"
"""Frames of the package itself (not this test's own, wherever the checkout lives)."""


def interlock_frames(task: asyncio.Task[Any]) -> list[str]:
    """The interlock coroutines a suspended task's await chain runs through, outermost first."""
    names = []
    coro: Any = task.get_coro()
    while coro is not None:
        code = getattr(coro, "cr_code", None)
        if code is not None and code.co_filename.startswith(PACKAGE):
            names.append(code.co_qualname)
        coro = getattr(coro, "cr_await", None)
    return names


async def suspended_in_transport(client_options: dict[str, Any]) -> list[str]:
    """The frames of a call held inside the transport (the handler waits for a gate)."""
    gate = asyncio.Event()
    entered = asyncio.Event()

    async def handler(request: Request) -> interlock.Response:
        entered.set()
        await gate.wait()
        return respond(200, json={"id": 1})

    async with interlock.Client(
        "http://upstream.test", transport=MockTransport(handler), **client_options
    ) as api:
        call = asyncio.ensure_future(api.get("/customers/1"))
        await entered.wait()
        frames = interlock_frames(call)
        gate.set()
        assert (await call).status == 200
    return frames


async def test_a_default_call_suspends_through_one_pipeline_frame() -> None:
    # Every suspension in the transport resumes each coroutine frame above it: the default
    # pipeline (coalesce, retry, concurrency, breaker, metrics) is one frame, not one per stage.
    frames = await suspended_in_transport({})
    assert frames == ["DirectPipeline.send", "MockTransport.send"]


async def test_a_chained_pipeline_still_runs_every_stage() -> None:
    # With a cache the stages are chained (the cache wraps the rest): the order stays the one
    # interlock.client states.
    frames = await suspended_in_transport({"cache": interlock.Cache(routes={"/customers/{id}": 60})})
    assert frames[0] == "Observed.send"
    assert frames.index("CachePolicy.handle") < frames.index("CoalescePolicy.handle")
    assert frames.index("CoalescePolicy.handle") < frames.index("RetryPolicy.handle")
    assert frames.index("RetryPolicy.handle") < frames.index("GatedSend.send")
    assert frames[-1] == "MockTransport.send"


async def count_futures(call: Callable[[], Awaitable[Any]]) -> int:
    loop = asyncio.get_running_loop()
    made = 0
    original = loop.create_future

    def counting() -> asyncio.Future[Any]:
        nonlocal made
        made += 1
        return original()

    loop.create_future = counting  # type: ignore[method-assign]
    try:
        await call()
    finally:
        del loop.create_future  # type: ignore[method-assign]
    return made


async def test_a_read_nobody_joins_costs_no_future() -> None:
    async with interlock.Client(
        "http://upstream.test", transport=MockTransport(lambda r: respond(200))
    ) as api:
        await api.get("/customers/1")  # warm: route names, pools
        assert await count_futures(lambda: api.get("/customers/2")) == 0


async def test_identical_reads_still_share_one_call() -> None:
    calls = 0
    gate = asyncio.Event()

    async def handler(request: Request) -> interlock.Response:
        nonlocal calls
        calls += 1
        await gate.wait()
        return respond(200, json={"id": 1})

    async with interlock.Client("http://upstream.test", transport=MockTransport(handler)) as api:
        reads = [asyncio.ensure_future(api.get("/customers/1")) for _ in range(20)]
        for _ in range(5):
            await asyncio.sleep(0)
        gate.set()
        answers = await asyncio.gather(*reads)
    assert calls == 1
    assert len({id(a) for a in answers}) == 20
    assert len({a.request_id for a in answers}) == 20


def test_a_closed_breaker_admits_without_allocating() -> None:
    breaker = CircuitBreaker().new_state(0.0)
    assert breaker.admit(1.0) is breaker.admit(2.0)


@pytest.fixture
async def testbed() -> Testbed:  # type: ignore[misc]
    async with Testbed(TestbedConfig(records=10)) as tb:
        yield tb


async def test_the_aiohttp_transport_builds_one_timeout_for_attempts_that_share_one(
    testbed: Testbed, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = 0
    original = aiohttp.ClientTimeout

    def counting(*args: Any, **kwargs: Any) -> aiohttp.ClientTimeout:
        nonlocal built
        built += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(aiohttp, "ClientTimeout", counting)
    transport = AiohttpTransport()
    shared = AttemptTimeout(connect=3.0, read=None, total=10.0)
    try:
        for i in (1, 2, 3, 1):
            url = f"{testbed.url}/customers/{i}"
            request = Request("GET", url, f"/customers/{i}", "/customers/{id}", "tb")
            assert (await transport.send(request, shared)).status == 200
        assert built == 1
        request = Request("GET", f"{testbed.url}/customers/1", "/customers/1", "/customers/{id}", "tb")
        await transport.send(request, AttemptTimeout(connect=3.0, read=None, total=0.5))
        assert built == 2  # a tighter attempt gets its own
    finally:
        await transport.aclose()


async def test_a_deadline_closer_than_the_attempt_cap_still_bounds_the_attempt() -> None:
    transport = MockTransport(lambda r: respond(200))
    timeout = interlock.Timeout(read=10.0, total=30.0)
    async with interlock.Client("http://upstream.test", transport=transport, timeout=timeout) as api:
        await api.get("/a")
        await api.get("/b", timeout=2.0)
    first, second = transport.timeouts
    assert first.total == 10.0
    assert second.total is not None and second.total <= 2.0


class CountingStore(MemoryCacheStore):
    sets = 0

    async def set(self, key: str, entry: Any, ttl: float) -> None:
        self.sets += 1
        await super().set(key, entry, ttl)


async def test_identical_misses_build_and_store_the_entry_once() -> None:
    # benchmarks/fanout.py: thousands of reads of the same few keys miss together; the cache
    # stored one entry per reader (30,000 for 1,978 keys). Now one per shared answer.
    store = CountingStore()
    async with Testbed(TestbedConfig(records=20, faults=Faults(latency=Latency.fixed(20)))) as tb:
        cache = interlock.Cache(routes={"/customers/{id}": 60}, store=store)
        async with interlock.Client(tb.url, cache=cache) as api:
            answers = await asyncio.gather(*(api.get(f"/customers/{i % 3 + 1}") for i in range(60)))
            again = await api.get("/customers/1")
        assert tb.counters.requests == 3
    assert store.sets == 3
    assert {a.status for a in answers} == {200}
    assert len({id(a) for a in answers}) == 60  # every caller its own Response
    assert [a.json()["id"] for a in answers[:3]] == [1, 2, 3]
    assert again.from_cache
    stats = api.cache.stats() if api.cache else {}
    assert stats["lookups"] == 61 and stats["routes"]["/customers/{id}"]["miss"] == 60
    # The 57 reads that shared a fill are reported as coalesced, as the coalescing stage's are.
    assert api.stats()["coalesced"] == 57


async def test_a_shared_fill_still_tells_apart_reads_with_other_credentials() -> None:
    seen: list[str | None] = []

    async def handler(request: Request) -> interlock.Response:
        seen.append(request.headers.get("Authorization"))
        await asyncio.sleep(0)
        return respond(403 if request.headers.get("Authorization") == "Bearer bad" else 200, json={})

    cache = interlock.Cache(routes={"/customers/{id}": 60})
    async with interlock.Client("http://upstream.test", transport=MockTransport(handler), cache=cache) as api:
        good, bad = await asyncio.gather(
            api.get("/customers/1", headers={"Authorization": "Bearer good"}),
            api.get("/customers/1", headers={"Authorization": "Bearer bad"}),
        )
    assert (good.status, bad.status) == (200, 403)
    assert sorted(seen, key=str) == ["Bearer bad", "Bearer good"]
