"""Unit tests of the Client's pipeline wiring, with a scripted ``MockTransport`` and a fake
clock. End-to-end behaviour against the real testbed is in test_client_testbed.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

import interlock
from interlock import Backoff, CircuitBreaker, Client, Request, Response, Retry, Timeout
from interlock.client.transports import AttemptTimeout
from interlock.errors import (
    CircuitOpen,
    ConfigError,
    ConnectError,
    DeadlineExceeded,
    RetriesExhausted,
    TransportError,
)
from interlock.testing import FakeClock, MockTransport, respond

Outcome = int | tuple[int, dict[str, str]] | Exception | Callable[[Request], Response]


class ScriptedTransport(MockTransport):
    """A MockTransport whose handler plays ``outcomes`` in order (the last one repeats)."""

    def __init__(self, *outcomes: Outcome, clock: FakeClock | None = None, takes: float = 0.0) -> None:
        super().__init__(self.play)
        self.outcomes = list(outcomes)
        self.headers_seen: list[dict[str, str]] = []
        self.clock = clock
        self.takes = takes

    def play(self, request: Request) -> Response:
        self.headers_seen.append(dict(request.headers))
        if self.clock and self.takes:
            self.clock.advance(self.takes)
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, Exception):
            raise outcome
        if callable(outcome):
            return outcome(request)
        status, headers = outcome if isinstance(outcome, tuple) else (outcome, {})
        return respond(
            status, content=b'{"ok": true}', headers={"Trackingid": f"t{len(self.requests)}", **headers}
        )


def make(
    *outcomes: Outcome, clock: FakeClock | None = None, **options: object
) -> tuple[Client, ScriptedTransport]:
    clock = clock or FakeClock()
    transport = ScriptedTransport(*outcomes, clock=clock)
    options.setdefault("retry", Retry(attempts=4, backoff=Backoff(base=0.5, jitter="none"), budget=None))
    client = Client("http://upstream.test/v1", name="crm", transport=transport, clock=clock, **options)  # type: ignore[arg-type]
    return client, transport


async def test_retries_503_then_succeeds_with_backoff() -> None:
    clock = FakeClock()
    client, transport = make(503, 503, 200, clock=clock)
    retries_before = client.stats()["retries"]  # stats live per upstream name, across clients
    response = await client.get("/customers/42")
    assert response.status == 200
    assert response.attempts == 3
    assert len(transport.requests) == 3
    assert clock.sleeps == [0.5, 1.0]
    assert response.route == "/customers/{id}"
    assert client.stats()["retries"] == retries_before + 2


async def test_retry_after_seconds_and_http_date_are_honoured() -> None:
    clock = FakeClock()
    date = format_datetime(datetime.fromtimestamp(clock.time() + 10, tz=UTC), usegmt=True)
    client, _ = make((429, {"Retry-After": "3"}), (503, {"Retry-After": date}), 200, clock=clock)
    assert (await client.get("/x")).status == 200
    assert clock.sleeps[0] == 3.0
    assert clock.sleeps[1] == pytest.approx(7.0, abs=1.0)  # 10 s date minus the 3 s slept; 1 s resolution


async def test_exhausted_retries_raise_with_status_and_tracking_id() -> None:
    client, transport = make(503)
    with pytest.raises(RetriesExhausted) as caught:
        await client.get("/customers/7")
    error = caught.value
    assert (error.status, error.attempts, error.upstream, error.route) == (503, 4, "crm", "/customers/{id}")
    assert error.tracking_id == "t4"
    assert "crm/customers/{id}" in str(error) and "tracking_id=t4" in str(error)
    assert len(transport.requests) == 4


async def test_non_retryable_status_is_returned_not_raised() -> None:
    client, transport = make(404)
    response = await client.get("/customers/1")
    assert response.status == 404 and len(transport.requests) == 1
    with pytest.raises(interlock.errors.UpstreamError, match="404"):
        response.raise_for_status()


async def test_post_without_key_is_not_retried_after_a_possible_apply() -> None:
    client, transport = make(TransportError("reset"), idempotency_keys=False)
    with pytest.raises(TransportError, match="idempotency_key"):
        await client.post("/orders", json={"a": 1})
    assert len(transport.requests) == 1
    client, transport = make(503, idempotency_keys=False)
    assert (await client.post("/orders", json={"a": 1})).status == 503
    assert len(transport.requests) == 1


async def test_post_is_retried_with_the_same_automatic_idempotency_key() -> None:
    client, transport = make(503, 503, 201)
    response = await client.post("/orders", json={"a": 1})
    assert response.status == 201
    keys = {h["Idempotency-Key"] for h in transport.headers_seen}
    assert len(keys) == 1 and next(iter(keys))
    assert transport.requests[0].body == b'{"a":1}'


async def test_connect_errors_are_retried_even_for_post() -> None:
    client, transport = make(ConnectError("refused"), 201, idempotency_keys=False)
    assert (await client.post("/orders", content=b"x")).status == 201
    assert len(transport.requests) == 2


async def test_single_attempt_failure_raises_the_original_error() -> None:
    client, _ = make(ConnectError("refused"), retry=Retry(attempts=1))
    with pytest.raises(ConnectError) as caught:
        await client.get("/x")
    assert caught.value.attempts == 1 and caught.value.upstream == "crm"


async def test_deadline_stops_retrying() -> None:
    clock = FakeClock()
    client, transport = make(503, clock=clock, timeout=Timeout(total=2.0))
    with pytest.raises(DeadlineExceeded, match="deadline") as caught:
        await client.get("/x")
    # backoffs 0.5 + 1.0 fit in 2 s; the next (2.0) would not
    assert len(transport.requests) == 3
    assert caught.value.status == 503
    assert isinstance(caught.value, TimeoutError)


@pytest.mark.parametrize(
    ("timeout", "expected_total"),
    [
        (Timeout(connect=1, read=2, total=5, attempt=10), 2.0),  # read is tightest
        (Timeout(connect=1, read=2, total=5, attempt=1.5), 1.5),  # explicit per-attempt cap
        (Timeout(connect=1, read=20, total=5), 5.0),  # the call's remaining deadline
        (Timeout(connect=None, read=None, total=None), None),  # no limit at all
    ],
)
async def test_attempt_timeout_is_the_tightest_bound(timeout: Timeout, expected_total: float | None) -> None:
    client, transport = make(200, timeout=timeout)
    seen: list[AttemptTimeout] = transport.timeouts
    await client.get("/x")
    assert seen[0].connect == timeout.connect
    assert seen[0].total == (pytest.approx(expected_total) if expected_total else None)


async def test_breaker_opens_and_fails_fast() -> None:
    clock = FakeClock()
    client, transport = make(
        500, clock=clock, retry=None, breaker=CircuitBreaker(min_calls=4, failure_ratio=0.5, open_for=10)
    )
    for _ in range(4):
        assert (await client.get("/x")).status == 500
    with pytest.raises(CircuitOpen) as caught:
        await client.get("/x")
    assert caught.value.retry_in == pytest.approx(10)
    assert len(transport.requests) == 4
    assert "breaker=open" in repr(client)
    clock.advance(10)
    transport.outcomes = [200]
    assert (await client.get("/x")).status == 200
    assert "breaker=closed" in repr(client)


async def test_429_does_not_trip_the_breaker() -> None:
    client, _ = make(429, retry=None, breaker=CircuitBreaker(min_calls=2))
    for _ in range(5):
        assert (await client.get("/x")).status == 429
    assert client.stats()["breaker"] == "closed"


async def test_request_id_comes_from_the_correlation_context() -> None:
    client, transport = make(200)
    with interlock.correlation_id("evt_123"):
        response = await client.get("/x")
    await client.get("/y")
    assert transport.headers_seen[0]["X-Request-ID"] == "evt_123"
    assert response.request_id == "evt_123"
    assert transport.headers_seen[1]["X-Request-ID"] not in ("", "evt_123")


async def test_params_and_query_merge() -> None:
    client, transport = make(200)
    await client.get("/customers?limit=5", params={"ids": [1, 2, 3], "active": True})
    request = transport.requests[0]
    assert request.url == "http://upstream.test/v1/customers"
    assert request.params == {"limit": "5", "ids": "1,2,3", "active": "true"}
    assert request.route == "/customers"


async def test_concurrency_bound_holds() -> None:
    peak = 0
    running = 0

    async def send(request: Request) -> Response:
        nonlocal peak, running
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.001)
        running -= 1
        return respond(200)

    client, transport = make(200, concurrency=interlock.Concurrency(limit=7, writes=2))
    transport.handler = send
    await asyncio.gather(*(client.get(f"/r/{i}") for i in range(50)))
    assert peak == 7
    peak = 0
    await asyncio.gather(*(client.put(f"/r/{i}", json={}) for i in range(20)))
    assert peak == 2


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"base_url": "ftp://x"}, "Client.base_url"), ({"concurrency": "5"}, "Client.concurrency")],
)
def test_bad_configuration_names_the_field(kwargs: dict[str, object], field: str) -> None:
    kwargs.setdefault("base_url", "http://ok")
    with pytest.raises(ConfigError, match=field):
        Client(**kwargs)  # type: ignore[arg-type]


def test_timeout_rejects_non_positive_values() -> None:
    with pytest.raises(ConfigError, match="Timeout.read"):
        Timeout(read=0)


async def test_waiting_for_an_open_breaker_when_asked() -> None:
    clock = FakeClock()
    retry = Retry(attempts=5, backoff=Backoff(base=0.1, jitter="none"), circuit_open=True, budget=None)
    client, transport = make(
        500, 500, 200, clock=clock, retry=retry, breaker=CircuitBreaker(min_calls=2, open_for=3)
    )
    client.retry = None  # trip the breaker with two plain 500s
    await client.get("/a")
    await client.get("/b")
    assert client.stats()["breaker"] == "open"
    client.retry = retry
    retries_before = client.stats()["retries"]  # stats live per upstream name, across clients
    response = await client.get("/c")
    assert response.status == 200
    assert clock.sleeps[-1] == pytest.approx(3.0)
    assert len(transport.requests) == 3  # the refused attempt sent nothing
    assert client.stats()["retries"] == retries_before  # ...and is no retry: /c went out once


async def test_waiting_for_a_concurrency_slot_is_bounded_by_the_deadline() -> None:
    release = asyncio.Event()

    async def send(request: Request) -> Response:
        await release.wait()  # the first call holds the only slot
        return respond(200)

    client, transport = make(
        200, concurrency=interlock.Concurrency(limit=1), clock=interlock._clock.SYSTEM_CLOCK
    )  # type: ignore[arg-type]
    transport.handler = send
    holder = asyncio.ensure_future(client.get("/slow"))
    await asyncio.sleep(0)
    with pytest.raises(DeadlineExceeded, match="concurrency slot"):
        await client.get("/queued", timeout=0.05)
    assert client.stats()["breaker"] == "closed"
    release.set()
    assert (await holder).status == 200


async def test_a_deadline_spent_before_sending_does_not_count_against_the_upstream() -> None:
    clock = FakeClock()
    client, transport = make(
        200, clock=clock, retry=None, breaker=CircuitBreaker(min_calls=1, failure_ratio=0.5)
    )
    request = client.build_request("GET", "/x", timeout=1.0)
    clock.advance(2.0)  # e.g. the call waited for its turn longer than its deadline
    with pytest.raises(DeadlineExceeded):
        await client.send(request)
    assert transport.requests == []
    assert client.stats()["breaker"] == "closed"
