"""The Client's spans: one logical span per call, one HTTP client span per attempt with the
stable semantic conventions' attributes, its own traceparent on the wire, no duplicate span
when the contrib aiohttp instrumentation is active, and one trace id from a webhook to the
outbound call its handler makes, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode

import interlock
from interlock import Backoff, Client, Retry
from interlock.errors import RetriesExhausted

from ._hooks import SECRET, _github, asgi_post

FAST = Retry(attempts=3, backoff=Backoff(base=0.001, cap=0.002), budget=None)
TRACE = "0af7651916cd43dd8448eb211c80319c"


def _traceparent_ids(header: str) -> tuple[str, str]:
    _version, trace_id, span_id, _flags = header.split("-")
    return trace_id, span_id


async def test_one_logical_span_and_one_client_span_per_attempt(spans: Any, upstream: Any) -> None:
    upstream.script = [503]
    async with Client(upstream.url, retry=FAST, breaker=None, routes=["/items/{id}"]) as client:
        response = await client.get("/items/7", params={"api_key": "K3Y", "page": "2"})
    assert response.status == 200 and response.attempts == 2
    call = spans.one("GET /items/{id}")
    attempts = sorted((s for s in spans.all() if s.kind is SpanKind.CLIENT), key=lambda s: s.start_time)
    assert call.kind is SpanKind.INTERNAL and len(attempts) == 2
    assert all(a.parent.span_id == call.context.span_id for a in attempts)
    port = int(upstream.url.rsplit(":", 1)[1])
    common = {
        "http.request.method": "GET", "server.address": "127.0.0.1", "server.port": port,
        "url.full": f"{upstream.url}/items/7?api_key=***&page=2", "url.template": "/items/{id}",
        "interlock.upstream": client.name,
    }  # fmt: skip
    assert dict(attempts[0].attributes) == {**common, "http.response.status_code": 503, "error.type": "503"}
    assert attempts[0].status.status_code is StatusCode.ERROR
    assert dict(attempts[1].attributes) == {
        **common,
        "http.request.resend_count": 1,
        "http.response.status_code": 200,
    }
    assert attempts[0].name == "GET"
    assert dict(call.attributes) == {
        "http.request.method": "GET", "url.template": "/items/{id}", "interlock.upstream": client.name,
        "http.response.status_code": 200, "interlock.attempts": 2, "interlock.tracking_id": "up-2",
    }  # fmt: skip
    # Each attempt went out with its own span as the parent: the upstream can join the trace.
    sent = [_traceparent_ids(h["traceparent"]) for h in upstream.seen]
    assert sent == [(f"{a.context.trace_id:032x}", f"{a.context.span_id:016x}") for a in attempts]
    assert "K3Y" not in json.dumps([dict(s.attributes) for s in spans.all()])


async def test_a_failed_call_is_an_error_span_naming_the_error(spans: Any, upstream: Any) -> None:
    upstream.script = [502, 502, 502]
    async with Client(upstream.url, retry=FAST, routes=["/items/{id}"]) as client:
        with pytest.raises(RetriesExhausted):
            await client.post("/items/1", json={"a": 1})
    call = spans.one("POST /items/{id}")
    assert call.status.status_code is StatusCode.ERROR
    assert call.attributes["error.type"] == "RetriesExhausted"
    assert call.attributes["http.response.status_code"] == 502
    assert call.attributes["interlock.attempts"] == 3
    assert call.attributes["interlock.breaker.state"] == "closed"
    assert [e.name for e in call.events] == ["exception"]
    assert call.events[0].attributes["exception.type"].endswith("RetriesExhausted")
    resends = sorted(
        s.attributes.get("http.request.resend_count", 0) for s in spans.all() if s.kind is SpanKind.CLIENT
    )
    assert resends == [0, 1, 2]


async def test_a_network_error_is_the_attempts_error_type(spans: Any) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    async with Client(f"http://127.0.0.1:{port}", retry=Retry(attempts=1), breaker=None) as client:
        with pytest.raises(interlock.errors.ConnectError):
            await client.get("/x")
    (attempt,) = [s for s in spans.all() if s.kind is SpanKind.CLIENT]
    assert attempt.attributes["error.type"] == "ConnectError"
    assert "http.response.status_code" not in attempt.attributes


async def test_coalesced_reads_make_one_attempt_span(spans: Any, upstream: Any) -> None:
    async with Client(upstream.url, routes=["/items/{id}"]) as client:
        replies = await asyncio.gather(*(client.get("/items/1") for _ in range(5)))
    assert [r.status for r in replies] == [200] * 5
    calls = spans.named("GET /items/{id}")
    attempts = [s for s in spans.all() if s.kind is SpanKind.CLIENT]
    assert len(calls) == 5 and len(attempts) == len(upstream.seen)
    assert sum(1 for c in calls if c.attributes.get("interlock.coalesced")) == 5 - len(upstream.seen)


async def test_no_duplicate_span_when_the_contrib_aiohttp_instrumentation_is_active(
    spans: Any, upstream: Any
) -> None:
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor

    instrumentor = AioHttpClientInstrumentor()
    instrumentor.instrument()
    try:
        # Proof the instrumentation is live: a plain aiohttp call makes its span.
        import aiohttp

        async with aiohttp.ClientSession() as session, session.get(upstream.url + "/plain") as r:
            assert r.status == 200
        assert len([s for s in spans.all() if s.kind is SpanKind.CLIENT]) == 1
        spans.exporter.clear()
        upstream.script = [503]
        async with Client(upstream.url, retry=FAST, breaker=None) as client:
            assert (await client.get("/items/3")).status == 200
    finally:
        instrumentor.uninstrument()
    client_spans = [s for s in spans.all() if s.kind is SpanKind.CLIENT]
    assert len(client_spans) == 2  # one per attempt, Interlock's own
    assert all(s.instrumentation_scope.name == "interlock" for s in client_spans)


async def test_one_trace_id_from_webhook_to_outbound_call(
    spans: Any, upstream: Any, sql_store_url: str
) -> None:
    client = Client(upstream.url, retry=FAST, breaker=None, routes=["/orders/{id}"])
    box = interlock.Inbox(store=sql_store_url)
    box.source("github", interlock.signatures.GitHub(SECRET))
    done: list[str] = []

    @box.handler("github", "push")
    async def forward(event: interlock.Event) -> None:
        await client.post(f"/orders/{event.json()['order']}", json={"from": event.id})
        done.append(event.id)

    body = json.dumps({"order": 42}).encode()
    headers = {**_github(body, "d-e2e"), "traceparent": f"00-{TRACE}-b7ad6b7169203331-01"}
    try:
        assert await asgi_post(box.asgi(), "/hooks/github", body, headers) == 200
        box.start_workers(concurrency=1)
        deadline = time.monotonic() + 15
        while not done:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
    finally:
        await box.aclose()
        await client.aclose()
    names = {s.name for s in spans.all()}
    assert {"POST /hooks/{source}", "create github", "process github", "POST /orders/{id}", "POST"} <= names
    assert {f"{s.context.trace_id:032x}" for s in spans.all()} == {TRACE}
    (seen,) = upstream.seen
    assert _traceparent_ids(seen["traceparent"])[0] == TRACE  # and on to the third party
    process, call = spans.one("process"), spans.one("POST /orders/{id}")
    assert call.parent.span_id == process.context.span_id


async def test_cache_batch_and_rate_limit_attributes(spans: Any) -> None:
    from interlock.testbed import Testbed, TestbedConfig

    async with Testbed(TestbedConfig(records=50)) as tb:
        async with Client(
            tb.url,
            cache=interlock.Cache(routes={"/customers/{id}": 60}),
            batch=interlock.Batch("/products/{id}", via="/products", max_size=10),
            rate_limit=interlock.RateLimit(per_second=20, burst=1, adaptive=False),
        ) as client:
            await client.get("/customers/1")
            await client.get("/customers/1")
            await asyncio.gather(*(client.get(f"/products/{i}") for i in range(1, 4)))
    first, second = sorted(spans.named("GET /customers/{id}"), key=lambda s: s.start_time)
    assert first.attributes["interlock.cache"] == "miss" and second.attributes["interlock.cache"] == "hit"
    attempts = [s for s in spans.all() if s.kind is SpanKind.CLIENT]
    batched = [s for s in attempts if "interlock.batch.size" in s.attributes]
    assert [s.attributes["interlock.batch.size"] for s in batched] == [3]
    assert batched[0].attributes["url.template"] == "/products"
    members = spans.named("GET /products/{id}")
    assert len(members) == 3 and all(m.attributes.get("interlock.batched") for m in members)
    assert not any("interlock.coalesced" in m.attributes for m in members)
    # A burst of one at 20/s: the attempts after the first waited for their turn.
    assert any(s.attributes.get("interlock.rate_limit.wait", 0) > 0 for s in attempts)
