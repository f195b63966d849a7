"""Auto-batching: single reads merged into list calls and split back, per caller."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import interlock
from interlock.client.transports import AiohttpTransport
from interlock.testbed import Faults, Latency, Testbed, TestbedConfig

CUSTOMERS = interlock.Batch("/customers/{id}", via="/customers", ids_param="ids", max_size=100)


@pytest.fixture
async def tb() -> Testbed:  # type: ignore[misc]
    async with Testbed(TestbedConfig(records=300)) as testbed:
        yield testbed


async def test_concurrent_reads_become_one_list_call(tb: Testbed) -> None:
    async with interlock.Client(tb.url, batch=[CUSTOMERS]) as api:
        responses = await asyncio.gather(*[api.get(f"/customers/{i}") for i in range(1, 51)])
    assert [r.json()["id"] for r in responses] == list(range(1, 51))
    assert {r.status for r in responses} == {200}
    assert all(r.route == "/customers/{id}" for r in responses)
    counters = tb.counters
    assert counters.batch_calls == 1 and counters.ids_requested == 50
    assert counters.requests == 1


async def test_max_size_splits_into_several_calls(tb: Testbed) -> None:
    spec = interlock.Batch("/customers/{id}", via="/customers", max_size=10)
    async with interlock.Client(tb.url, batch=spec) as api:
        responses = await asyncio.gather(*[api.get(f"/customers/{i}") for i in range(1, 26)])
    assert [r.json()["id"] for r in responses] == list(range(1, 26))
    assert tb.counters.batch_calls == 3
    assert tb.counters.ids_requested == 25


async def test_missing_ids_are_404_for_their_own_callers_only(tb: Testbed) -> None:
    async with interlock.Client(tb.url, batch=[CUSTOMERS]) as api:
        responses = await asyncio.gather(*[api.get(f"/customers/{i}") for i in (1, 99999, 2, 88888)])
    assert [r.status for r in responses] == [200, 404, 200, 404]
    assert responses[1].json()["id"] == "99999"
    with pytest.raises(interlock.errors.UpstreamError):
        responses[3].raise_for_status()
    assert tb.counters.batch_calls == 1


async def test_a_failed_batch_falls_back_to_single_calls(tb: Testbed) -> None:
    tb.configure(max_ids=5)  # the upstream refuses lists of more than 5 ids with a 400
    spec = interlock.Batch("/customers/{id}", via="/customers", max_size=8)
    async with interlock.Client(tb.url, batch=spec) as api:
        responses = await asyncio.gather(*[api.get(f"/customers/{i}") for i in range(1, 9)])
    assert [r.json()["id"] for r in responses] == list(range(1, 9))
    routes = tb.counters.by_route
    assert routes["GET /customers"] == {"400": 1}
    assert routes["GET /customers/{id}"] == {"200": 8}


class HealsAfterListCalls:
    """The real transport, over loopback, that clears the testbed's faults once ``failures``
    list calls came back failed: the exact moment the batch has failed and its members have
    not yet called alone. No timing: the order of the calls decides."""

    def __init__(self, tb: Testbed, failures: int) -> None:
        self.inner = AiohttpTransport()
        self.tb = tb
        self.left = failures

    async def send(self, request: Any, timeout: Any) -> Any:
        response = await self.inner.send(request, timeout)
        if request.path == "/customers" and response.status >= 500:
            self.left -= 1
            if self.left == 0:
                self.tb.configure(faults=None)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_batch_that_fails_after_retries_fails_only_its_members(tb: Testbed) -> None:
    spec = interlock.Batch("/customers/{id}", via="/customers", window=0.02)
    retry = interlock.Retry(attempts=2, backoff=interlock.Backoff(base=0.001, cap=0.001))
    transport = HealsAfterListCalls(tb, failures=2)
    async with interlock.Client(tb.url, batch=spec, retry=retry, transport=transport) as api:
        tb.configure(faults=Faults(error_rates={503: 1.0}))
        responses = await asyncio.gather(*[api.get(f"/customers/{i}") for i in (1, 2, 99999, 3)])
    routes = tb.counters.by_route
    # The list call failed, its retry too; then each member called alone, with its own outcome.
    assert routes["GET /customers"] == {"503": 2}
    assert routes["GET /customers/{id}"] == {"200": 3, "404": 1}
    assert [r.status for r in responses] == [200, 200, 404, 200]
    assert [r.json()["id"] for r in responses] == [1, 2, 99999, 3]  # the upstream's own 404s
    assert not any("X-Interlock-Batch" in r.headers for r in responses)  # singles, not batch items


async def test_cached_ids_never_enter_a_batch(tb: Testbed) -> None:
    cache = interlock.Cache(routes={"/customers/{id}": 60})
    async with interlock.Client(tb.url, batch=[CUSTOMERS], cache=cache) as api:
        await asyncio.gather(*[api.get(f"/customers/{i}") for i in range(1, 11)])
        again = await asyncio.gather(*[api.get(f"/customers/{i}") for i in range(1, 21)])
    assert all(r.from_cache for r in again[:10]) and not any(r.from_cache for r in again[10:])
    assert [r.json()["id"] for r in again] == list(range(1, 21))
    assert tb.counters.batch_calls == 2 and tb.counters.ids_requested == 20


async def test_duplicates_and_fields_pass_through(tb: Testbed) -> None:
    async with interlock.Client(tb.url, batch=[CUSTOMERS], coalesce=False) as api:
        responses = await asyncio.gather(
            api.get("/customers/1", fields=["name"]),
            api.get("/customers/1", fields=["name"]),
            api.get("/customers/2", fields=["name"]),
            api.get("/customers/3"),  # other query: its own batch group
        )
    assert responses[0].json().keys() == {"id", "name"}
    assert responses[0].json() == responses[1].json()
    assert responses[0] is not responses[1]
    assert responses[3].json() == tb.data.get("customers", 3)  # the whole record, unprojected
    assert tb.counters.ids_requested == 2  # id 1 once, id 2; id 3 went alone


async def test_a_lone_read_is_sent_as_itself(tb: Testbed) -> None:
    async with interlock.Client(tb.url, batch=[CUSTOMERS]) as api:
        response = await api.get("/customers/5")
    assert response.headers.get("ETag") is not None
    assert tb.counters.by_route == {"GET /customers/{id}": {"200": 1}}


async def test_batches_respect_the_rate_limit(tb: Testbed) -> None:
    tb.configure(faults=Faults(latency=Latency.fixed(5)))
    spec = interlock.Batch("/customers/{id}", via="/customers", max_size=5)
    async with interlock.Client(tb.url, batch=spec, rate_limit=interlock.RateLimit(per_second=1000)) as api:
        await asyncio.gather(*[api.get(f"/customers/{i}") for i in range(1, 21)])
        assert api.rate_limit is not None
        buckets = api.rate_limit.store.buckets  # type: ignore[attr-defined]
        assert buckets[api.name].seq == 4  # each list call took its turn from the quota
    assert tb.counters.batch_calls == 4


def test_batch_config_is_validated() -> None:
    with pytest.raises(interlock.errors.ConfigError):
        interlock.Batch("/customers", via="/customers")
    with pytest.raises(interlock.errors.ConfigError):
        interlock.Batch("/customers/{id}", via="/customers", max_size=0)
