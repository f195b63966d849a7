"""The HTTP forward handler goes through interlock.Client to an internal service."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn

import interlock
from interlock import Backoff, Redelivery
from interlock.stores import Message

from .conftest import until


class Internal:
    """A tiny internal service: answers with the next scripted status, records requests."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.requests: list[tuple[str, dict[str, str], bytes]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        self.requests.append((scope["path"], {k.decode(): v.decode() for k, v in scope["headers"]}, body))
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
async def internal() -> AsyncIterator[tuple[Internal, str]]:
    service = Internal([200])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(service, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    yield service, f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


def event(i: int) -> Message:
    body = json.dumps({"id": f"evt_{i}", "type": "invoice.paid"}).encode()
    return Message("stripe", f"evt_{i}", "invoice.paid", body, {"content-type": "application/json", "stripe-signature": "t=1"}, time.time())


async def test_forward_through_the_client(sqlite_path: str, internal: tuple[Internal, str]) -> None:
    service, base = internal
    box = interlock.Inbox(store=f"sqlite:///{sqlite_path}")
    box.internal_source("stripe")  # the test puts its events from code
    client = interlock.Client(base, retry=interlock.Retry(attempts=2))
    box.forward("stripe", "*", url="/internal/stripe", client=client)
    await box.put(event(1))
    pool = box.start_workers()
    await until(lambda: box.metrics.processed["stripe"] == 1)
    await pool.aclose()
    await box.aclose()
    await client.aclose()
    (path, headers, body) = service.requests[0]
    assert path == "/internal/stripe"
    assert json.loads(body)["id"] == "evt_1"
    assert headers["x-request-id"] == "evt_1"  # the event id is the correlation id
    assert headers["idempotency-key"] == "stripe:evt_1"
    assert headers["x-interlock-attempt"] == "1"
    assert headers["content-type"] == "application/json"
    assert "stripe-signature" not in headers  # provider headers stay at the edge


async def test_a_refusing_service_fails_the_attempt_and_the_event_is_retried(
    sqlite_path: str, internal: tuple[Internal, str]
) -> None:
    service, base = internal
    service.statuses[:] = [422, 200]
    box = interlock.Inbox(
        store=f"sqlite:///{sqlite_path}", redelivery=Redelivery(attempts=3, backoff=Backoff(delays=[0.05], jitter="none"))
    )
    box.internal_source("stripe")
    box.forward("stripe", url=f"{base}/internal/stripe")  # no client given: one is made and closed
    await box.put(event(2))
    pool = box.start_workers()
    await until(lambda: box.metrics.processed["stripe"] == 1)
    await pool.aclose()
    await box.aclose()
    assert [h["x-interlock-attempt"] for _, h, _ in service.requests] == ["1", "2"]
    assert box.metrics.retries["stripe"] == 1


async def test_forward_calls_wait_out_a_breaker_as_background_work(internal: tuple[Internal, str]) -> None:
    """Nobody waits on a forward: through a client built without explicit retry settings, its
    call is one of the background profile, which waits out the breaker the failures opened."""
    service, base = internal
    service.statuses[:] = [503, 503, 503, 200]
    breaker = interlock.CircuitBreaker(failure_ratio=0.5, min_calls=2, window=10.0, open_for=0.2)
    async with interlock.Client(base, breaker=breaker) as client:
        forward = interlock.inbox.Forward("/internal/stripe", client=client)
        await forward(interlock.Event("evt_7", "stripe", "invoice.paid", b'{"id": "evt_7"}', {}, time.time()))
    assert len(service.requests) == 4  # three 503s (the breaker opened between) and the 200
    made = interlock.inbox.Forward(f"{base}/internal/stripe")
    assert made._get_client().profile is interlock.client.PROFILES["background"]
    await made.aclose()
