"""``interlock.testing`` for users' tests: MockTransport and testing mode."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from interlock import Backoff, Cache, Client, Request, Response, Retry, SyncClient
from interlock.errors import ConfigError, ConnectError, RetriesExhausted
from interlock.testing import FakeClock, MockTransport, is_testing, respond, set_testing

SLOW_RETRY = Retry(attempts=5, backoff=Backoff(base=1.0, multiplier=2.0, jitter="none"), budget=None)


@pytest.fixture(autouse=True)
def normal_mode() -> Iterator[None]:
    set_testing(False)
    yield
    set_testing(False)


def client_of(upstream: FlakyUpstream, clock: FakeClock) -> Client:
    """A client with a slow retry policy whose upstream is ``upstream``."""
    return Client("https://api.test", transport=MockTransport(upstream), retry=SLOW_RETRY, clock=clock)


class FlakyUpstream:
    """Fails ``failures`` times with 503, then answers 200."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def __call__(self, request: Request) -> Response:
        self.calls += 1
        return respond(503) if self.calls <= self.failures else respond(200, json={"ok": True})


async def test_mock_transport_answers_from_a_plain_or_async_handler() -> None:
    async def handler(request: Request) -> Response:
        return respond(201, json={"id": request.path.rsplit("/", 1)[-1]}, headers={"X-Request-Id": "up-1"})

    transport = MockTransport(handler)
    async with Client("https://api.test", transport=transport) as api:
        response = await api.post("/customers/42", json={"name": "Ada"})
        assert (response.status, response.json()) == (201, {"id": "42"})
        assert response.headers["Content-Type"] == "application/json"
        assert response.tracking_id == "up-1"  # read from the headers, as a real transport does
        assert (response.route, response.upstream) == ("/customers/{id}", "api.test")
        transport.handler = lambda request: respond(204)
        assert (await api.delete("/customers/42")).status == 204
    assert [r.method for r in transport.requests] == ["POST", "DELETE"]
    assert transport.requests[0].body == b'{"name":"Ada"}'
    assert transport.timeouts[0].total is not None


async def test_mock_transport_errors_go_through_the_policies() -> None:
    clock = FakeClock()
    outcomes: list[Exception | Response] = [ConnectError("refused"), respond(200, content="ok")]

    def handler(request: Request) -> Response:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    transport = MockTransport(handler)
    cache = Cache(routes={"/x": 60})
    async with Client(
        "https://api.test", transport=transport, retry=SLOW_RETRY, cache=cache, clock=clock
    ) as api:
        first = await api.get("/x")
        again = await api.get("/x")
    assert (first.status, first.text, first.attempts) == (200, "ok", 2)
    assert again.from_cache and len(transport.requests) == 2
    assert clock.sleeps == [1.0]


async def test_testing_mode_makes_a_retrying_client_finish_at_once_then_normal_again() -> None:
    clock = FakeClock()
    upstream = FlakyUpstream(failures=3)
    async with client_of(upstream, clock) as api:
        set_testing(True, attempts=4)
        response = await api.get("/x")
        assert (response.status, response.attempts, upstream.calls) == (200, 4, 4)
        assert clock.sleeps == [] and clock.monotonic() == 1_000.0  # no backoff slept at all

        set_testing(False)
        upstream.calls = 0
        response = await api.get("/x")
        assert (response.status, response.attempts) == (200, 4)
        assert clock.sleeps == [1.0, 2.0, 4.0]  # the configured backoff, as usual


async def test_testing_mode_caps_attempts_and_restores_as_a_context_manager() -> None:
    clock = FakeClock()
    upstream = FlakyUpstream(failures=10)
    async with client_of(upstream, clock) as api:
        with set_testing(True, attempts=2):
            assert is_testing()
            with pytest.raises(RetriesExhausted) as caught:
                await api.get("/x")
            assert caught.value.attempts == 2 and upstream.calls == 2
            with set_testing(True), pytest.raises(RetriesExhausted) as caught:  # nested; default 1
                await api.get("/x")
            assert caught.value.attempts == 1 and upstream.calls == 3
            with pytest.raises(RetriesExhausted) as caught:
                await api.get("/x")
            assert caught.value.attempts == 2 and upstream.calls == 5  # back to two attempts
        assert not is_testing()
        assert clock.sleeps == []
        with pytest.raises(RetriesExhausted):
            await api.get("/x")
        assert upstream.calls == 10 and clock.sleeps == [1.0, 2.0, 4.0, 8.0]


def test_testing_mode_reaches_a_sync_clients_loop_thread() -> None:
    upstream = FlakyUpstream(failures=1)
    with SyncClient("https://api.test", transport=MockTransport(upstream), retry=SLOW_RETRY) as api:
        with set_testing(True), pytest.raises(RetriesExhausted):
            api.get("/x")  # one attempt only: the 503 stands
        assert upstream.calls == 1


def test_testing_mode_refuses_nonsense() -> None:
    with pytest.raises(ConfigError, match="set_testing.attempts"):
        set_testing(True, attempts=0)
    assert not is_testing()
