"""Injected faults: error statistics, outages, resets, latency, concurrency counter."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter

import aiohttp
import pytest

from interlock.testbed import Faults, Latency, Outage, Testbed, TestbedConfig
from interlock.testbed._faults import FaultInjector, sample_latency


async def statuses(session: aiohttp.ClientSession, url: str, n: int) -> Counter[int]:
    seen: Counter[int] = Counter()
    for _ in range(n):
        async with session.get(url) as r:
            await r.read()
            seen[r.status] += 1
    return seen


async def test_error_rates_match_probabilities(session: aiohttp.ClientSession) -> None:
    faults = Faults(error_rates={503: 0.2, 500: 0.05})
    async with Testbed(TestbedConfig(records=5, faults=faults, seed=3)) as tb:
        n = 600
        seen = await statuses(session, f"{tb.url}/customers/1", n)
        # Binomial bounds at about 4 standard deviations: fails on a wrong rate, not on luck.
        assert 120 - 40 <= seen[503] <= 120 + 40
        assert 30 - 22 <= seen[500] <= 30 + 22
        assert seen[200] + seen[503] + seen[500] == n
        counters = tb.counters
        assert counters.errors_injected == seen[503] + seen[500]
        assert counters.status == {str(s): c for s, c in seen.items()}
        assert counters.requests == n


def test_fault_draws_are_seeded() -> None:
    faults = Faults(error_rates={503: 0.3}, latency=Latency("uniform", low_ms=1, high_ms=9))
    runs = [FaultInjector(faults, random.Random(11), 0.0) for _ in range(2)]
    assert [runs[0].draw() for _ in range(100)] == [runs[1].draw() for _ in range(100)]


def test_latency_distributions() -> None:
    rng = random.Random(5)
    assert sample_latency(Latency("fixed", ms=20), rng) == pytest.approx(0.020)
    uniform = [sample_latency(Latency("uniform", low_ms=5, high_ms=30), rng) for _ in range(2000)]
    assert min(uniform) >= 0.005 and max(uniform) <= 0.030
    lognormal = sorted(
        sample_latency(Latency("lognormal", median_ms=20, sigma=0.5), rng) for _ in range(4001)
    )
    assert lognormal[2000] == pytest.approx(0.020, rel=0.1)  # the median is the median
    assert lognormal[-40] > 0.050  # and the tail is long


async def test_latency_and_slow_requests(session: aiohttp.ClientSession) -> None:
    faults = Faults(latency=Latency("fixed", ms=60))
    async with Testbed(TestbedConfig(records=3, faults=faults)) as tb:
        start = time.perf_counter()
        async with session.get(f"{tb.url}/customers/1") as r:
            assert r.status == 200
        assert time.perf_counter() - start >= 0.06
        tb.configure(faults=Faults(slow_rate=1.0, slow_ms=150))
        start = time.perf_counter()
        async with session.get(f"{tb.url}/customers/1") as r:
            assert r.status == 200
        assert time.perf_counter() - start >= 0.15


def test_outage_windows_open_and_close_on_the_clock_they_are_given() -> None:
    """The window arithmetic, on explicit clock readings: no waiting for real time to pass."""
    faults = Faults(outages=[Outage(start=0.3, duration=0.4)])
    injector = FaultInjector(faults, random.Random(1), 100.0)  # re-based on the moment it was set
    assert [injector.outage_active(t) for t in (100.0, 100.29)] == [False, False]
    assert injector.outage_active(100.3) and injector.outage_active(100.69)
    assert not injector.outage_active(100.7)  # [start, end): over at 0.7
    assert injector._windows == []  # a finished window is forgotten
    injector.start_outage(0.25, 200.0)
    assert injector.outage_active(200.0) and injector.outage_active(200.24)
    assert not injector.outage_active(200.25)


async def test_an_outage_answers_its_status_over_http_until_it_ends(session: aiohttp.ClientSession) -> None:
    async with Testbed(TestbedConfig(records=3)) as tb:
        async with session.get(f"{tb.url}/customers/1") as r:
            assert r.status == 200
        tb.start_outage(60)
        async with session.get(f"{tb.url}/customers/1") as r:
            assert r.status == 503
            assert (await r.json())["outage"] is True
        assert tb.outage_active
        tb.configure(faults=None)  # new faults, new windows: the outage is over
        assert not tb.outage_active
        async with session.get(f"{tb.url}/customers/1") as r:
            assert r.status == 200
        counters = tb.counters
        assert counters.outage_rejections == 1 and counters.errors_injected == 1


async def test_start_outage_with_custom_status(session: aiohttp.ClientSession) -> None:
    async with Testbed(TestbedConfig(records=3, faults=Faults(outage_status=502))) as tb:
        tb.start_outage(duration=60)
        seen = await statuses(session, f"{tb.url}/customers/1", 5)
        assert seen == {502: 5}
        async with session.get(f"{tb.url}/_testbed/counters") as r:
            assert r.status == 200  # admin still answers during an outage
        tb.configure(faults=Faults(outage_status=502))  # ends it
        assert await statuses(session, f"{tb.url}/customers/1", 2) == {200: 2}
        async with session.post(f"{tb.url}/_testbed/outage", json={"duration": 60}) as r:
            assert r.status == 200
        assert await statuses(session, f"{tb.url}/customers/1", 1) == {502: 1}


async def test_reset_drops_the_connection() -> None:
    faults = Faults(reset_rate=1.0)
    async with Testbed(TestbedConfig(records=3, faults=faults)) as tb:
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:
            with pytest.raises(aiohttp.ClientError) as info:
                async with session.post(f"{tb.url}/customers", json={"name": "x"}):
                    pass
        assert isinstance(info.value, aiohttp.ClientOSError | aiohttp.ServerDisconnectedError), info.value
        counters = tb.counters
        assert counters.resets == 1
        assert counters.status == {}  # nothing was answered
        assert counters.writes_applied == 0
        assert tb.recent()[-1].status is None


async def test_max_concurrency_counter() -> None:
    faults = Faults(latency=Latency("fixed", ms=500))
    async with Testbed(TestbedConfig(records=10, faults=faults)) as tb:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def one(i: int) -> int:
                async with session.get(f"{tb.url}/customers/{i}") as r:
                    await r.read()
                    return r.status

            tasks = [asyncio.create_task(one(i)) for i in range(1, 9)]
            deadline = time.monotonic() + 10
            while tb.counters.in_flight < 8:  # all eight held by the 500 ms latency at once
                assert time.monotonic() < deadline, f"only {tb.counters.in_flight} in flight"
                await asyncio.sleep(0.001)
            assert tb.counters.in_flight == 8
            assert await asyncio.gather(*tasks) == [200] * 8
        counters = tb.counters
        assert counters.max_concurrency == 8
        assert counters.in_flight == 0
        tb.reset_counters()
        assert tb.counters.max_concurrency == 0
