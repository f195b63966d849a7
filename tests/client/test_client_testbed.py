"""The Client end to end against the real testbed over loopback: each policy proven by what the
upstream saw (the testbed's counters), not by what the client believes it did."""

from __future__ import annotations

import asyncio
import threading

import pytest

import interlock
from interlock import Backoff, CircuitBreaker, Client, Concurrency, Retry, SyncClient, Timeout
from interlock.errors import CircuitOpen, DeadlineExceeded, RetriesExhausted, TransportError
from interlock.testbed import Faults, Latency, RateLimitConfig, Testbed, TestbedConfig

FAST_BACKOFF = Backoff(base=0.001, cap=0.005)


@pytest.mark.parametrize("dialect", ["retry-after-seconds", "retry-after-date"])
async def test_retries_wait_as_long_as_retry_after_says(dialect: str) -> None:
    limit = RateLimitConfig(algorithm="fixed_window", limit=3, window=1.0, dialect=dialect)
    async with Testbed(TestbedConfig(rate_limit=limit)) as tb:
        # The backoff alone (a few ms) would burn all 4 attempts inside one window; only by
        # waiting for Retry-After (1 s, or the HTTP-date) can every call succeed.
        retry = Retry(attempts=4, backoff=FAST_BACKOFF, budget=None)
        async with Client(tb.url, retry=retry, breaker=None) as client:
            responses = [await client.get(f"/customers/{i}") for i in range(1, 7)]
        assert [r.status for r in responses] == [200] * 6
        throttled = tb.counters.rate_limited
        assert 1 <= throttled <= 3
        assert sum(r.attempts - 1 for r in responses) == throttled


async def test_ignoring_retry_after_fails_where_honouring_it_succeeds() -> None:
    limit = RateLimitConfig(algorithm="fixed_window", limit=2, window=1.0, dialect="retry-after-seconds")
    async with Testbed(TestbedConfig(rate_limit=limit)) as tb:
        retry = Retry(attempts=4, backoff=FAST_BACKOFF, respect_retry_after=False, budget=None)
        async with Client(tb.url, retry=retry, breaker=None) as client:
            await client.get("/customers/1")
            await client.get("/customers/2")
            with pytest.raises(RetriesExhausted) as caught:
                await client.get("/customers/3")
        assert caught.value.status == 429
        assert caught.value.attempts == 4
        assert caught.value.tracking_id  # the upstream's id for the last attempt, for its support desk


async def test_breaker_opens_fails_fast_half_opens_and_closes() -> None:
    async with Testbed(TestbedConfig(faults=Faults(error_rates={503: 1.0}))) as tb:
        breaker = CircuitBreaker(failure_ratio=0.5, min_calls=5, window=10.0, open_for=0.3)
        async with Client(tb.url, retry=None, breaker=breaker) as client:
            for i in range(5):
                assert (await client.get(f"/customers/{i + 1}")).status == 503
            with pytest.raises(CircuitOpen) as caught:
                await client.get("/customers/9")
            assert tb.counters.requests == 5  # failed fast: the upstream never saw the 6th call
            assert caught.value.upstream == client.name
            tb.configure(faults=Faults())  # the upstream recovers
            await asyncio.sleep(0.35)
            assert (await client.get("/customers/9")).status == 200  # the half-open probe
            assert client.stats()["breaker"] == "closed"
            assert (await client.get("/customers/10")).status == 200
        assert tb.counters.requests == 7


async def test_idempotency_key_stops_a_retried_put_from_applying_twice() -> None:
    # Every write is applied, then its response is lost: the client must retry, and only the
    # idempotency key stops the upstream from applying the same write again.
    faults = Faults(lost_response_rate=1.0)
    async with Testbed(TestbedConfig(seed=3, faults=faults)) as tb:
        retry = Retry(attempts=2, backoff=FAST_BACKOFF, budget=None)
        async with Client(tb.url, retry=retry, breaker=None) as client:
            for order in range(1, 11):
                response = await client.put(f"/orders/{order}", json={"status": "paid"})
                # the first answer was lost; the retry got the stored answer to the first attempt
                assert response.status in (200, 201)
                assert response.attempts == 2
                assert response.headers.get("Idempotent-Replayed") == "true"
        counters = tb.counters
        assert counters.idempotent_replays == 10
        assert all(counters.applied_writes[("orders", order)] == 1 for order in range(1, 11))

        # The same without keys: PUT is retried (idempotent by RFC 9110) and applied twice.
        tb.reset_counters()
        async with Client(tb.url, retry=retry, breaker=None, idempotency_keys=False) as client:
            with pytest.raises(RetriesExhausted):  # both answers lost: both attempts applied
                await client.put("/orders/20", json={"status": "paid"})
        assert tb.counters.applied_writes[("orders", 20)] == 2


async def test_retried_post_reuses_its_key_and_succeeds() -> None:
    faults = Faults(lost_response_rate=0.5)
    async with Testbed(TestbedConfig(seed=5, faults=faults)) as tb:
        retry = Retry(attempts=8, backoff=FAST_BACKOFF, budget=None)
        async with Client(tb.url, retry=retry, breaker=None) as client:
            responses = [await client.put(f"/orders/{n}", json={"n": n}) for n in range(1, 21)]
        assert all(r.status in (200, 201) for r in responses)
        counters = tb.counters
        assert counters.lost_responses > 0
        assert counters.idempotent_replays == counters.lost_responses
        assert all(counters.applied_writes[("orders", n)] == 1 for n in range(1, 21))


async def test_concurrency_never_exceeds_its_bound() -> None:
    async with Testbed(TestbedConfig(faults=Faults(latency=Latency("fixed", ms=10)))) as tb:
        async with Client(tb.url, concurrency=Concurrency(limit=7, writes=3)) as client:
            await asyncio.gather(*(client.get(f"/customers/{i}") for i in range(1, 101)))
            assert tb.counters.max_concurrency == 7
            tb.reset_counters()
            await asyncio.gather(*(client.put(f"/orders/{i}", json={}) for i in range(1, 31)))
            assert tb.counters.max_concurrency == 3


async def test_deadline_stops_retrying() -> None:
    faults = Faults(error_rates={503: 1.0}, latency=Latency("fixed", ms=20))
    async with Testbed(TestbedConfig(faults=faults)) as tb:
        retry = Retry(attempts=100, backoff=Backoff(base=0.05, cap=0.1, jitter="none"), budget=None)
        async with Client(tb.url, retry=retry, breaker=None, timeout=Timeout(total=0.5)) as client:
            with pytest.raises(DeadlineExceeded) as caught:
                await client.get("/customers/1")
        assert caught.value.status == 503
        assert 2 <= tb.counters.requests < 10  # ~0.5 s / (20 ms + 50-100 ms), far below 100


async def test_slow_answers_time_out_and_resets_are_transport_errors() -> None:
    faults = Faults(slow_rate=1.0, slow_ms=1000)
    async with Testbed(TestbedConfig(faults=faults)) as tb:
        async with Client(tb.url, retry=Retry(attempts=1), timeout=Timeout(connect=1, read=0.1)) as client:
            with pytest.raises(interlock.errors.TimedOut) as caught:
                await client.get("/customers/1")
        assert isinstance(caught.value, TimeoutError)
        tb.configure(faults=Faults(reset_rate=1.0))
        async with Client(tb.url, retry=Retry(attempts=2, backoff=FAST_BACKOFF)) as client:
            with pytest.raises(RetriesExhausted) as exhausted:
                await client.get("/customers/1")
        assert isinstance(exhausted.value.__cause__, TransportError)
        assert tb.counters.resets == 2


async def test_request_id_reaches_the_upstream_and_tracking_id_comes_back() -> None:
    async with Testbed(TestbedConfig()) as tb:
        async with Client(tb.url) as client:
            with interlock.correlation_id("evt_42"):
                response = await client.get("/customers/1")
        (seen,) = tb.recent()
        assert seen.request_id == "evt_42"
        assert response.request_id == "evt_42"
        assert response.tracking_id and len(response.tracking_id) >= 8


async def test_compressed_answers_are_decoded() -> None:
    async with Testbed(TestbedConfig(records=200)) as tb:
        async with Client(tb.url) as client:
            response = await client.get("/customers", params={"limit": 100})
        assert response.headers.get("Content-Encoding") in ("gzip", "br", "zstd")
        assert len(response.json()["data"]) == 100


async def test_metrics_are_exported_for_prometheus() -> None:
    async with Testbed(TestbedConfig()) as tb, Client(tb.url, name="metrics-test") as client:
        await client.get("/customers/1")
        await client.get("/customers/2")
        exposition = interlock._metrics.render().decode()
        quantiles = client.stats()["latency"]
    assert (
        'interlock_client_requests_total{method="GET",outcome="2xx",route="/customers/{id}",upstream="metrics-test"} 2.0'
        in exposition
    )
    assert (
        'interlock_client_request_duration_seconds_count{route="/customers/{id}",upstream="metrics-test"} 2.0'
        in exposition
    )
    assert 'interlock_client_breaker_state{upstream="metrics-test"} 0.0' in exposition
    assert 0 < quantiles["p50"] <= quantiles["p99"]


def test_sync_client_from_several_threads() -> None:
    import asyncio as aio

    holder: dict[str, str] = {}
    ready = threading.Event()
    stop = threading.Event()

    def serve() -> None:
        async def main() -> None:
            async with Testbed(TestbedConfig(faults=Faults(latency=Latency("fixed", ms=5)))) as tb:
                holder["url"] = tb.url
                ready.set()
                while not stop.is_set():
                    await aio.sleep(0.01)
                holder["max"] = str(tb.counters.max_concurrency)

        aio.run(main())

    server = threading.Thread(target=serve)
    server.start()
    assert ready.wait(10)
    try:
        with SyncClient(holder["url"], concurrency=2) as client:
            statuses: list[int] = []
            threads = [
                threading.Thread(target=lambda i=i: statuses.append(client.get(f"/customers/{i}").status))
                for i in range(1, 9)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    finally:
        stop.set()
        server.join()
    assert statuses == [200] * 8
    assert holder["max"] == "2"  # the bound is shared by every thread using the SyncClient


async def test_one_structured_log_record_per_call(caplog: pytest.LogCaptureFixture) -> None:
    async with Testbed(TestbedConfig(faults=Faults(error_rates={503: 1.0}))) as tb:
        async with Client(tb.url, name="logged", retry=Retry(attempts=2, backoff=FAST_BACKOFF)) as client:
            with caplog.at_level("INFO", logger="interlock.client"):
                tb.configure(faults=Faults())
                await client.get("/customers/5")
                tb.configure(faults=Faults(error_rates={503: 1.0}))
                with pytest.raises(RetriesExhausted):
                    await client.get("/customers/6")
    records = [r for r in caplog.records if r.name == "interlock.client"]
    assert [r.levelname for r in records] == ["INFO", "WARNING"]
    ok, failed = (r.interlock for r in records)  # type: ignore[attr-defined]
    assert ok["route"] == "/customers/{id}" and ok["status"] == 200 and ok["attempts"] == 1
    assert ok["tracking_id"] and ok["duration_ms"] > 0 and ok["upstream"] == "logged"
    assert failed["status"] == 503 and failed["attempts"] == 2 and failed["error"] == "RetriesExhausted"
    assert failed["tracking_id"]
