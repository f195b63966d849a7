"""The receiving side: status codes for every kind of bad input, dedupe, durability before 200."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest
import uvicorn

import interlock
from interlock.stores import Message
from interlock.stores.queue_sqlite import SQLiteQueue

from .conftest import SECRET, call, github_headers

BODY = json.dumps({"action": "opened", "number": 1}).encode()


async def test_accepts_then_acknowledges_a_duplicate_without_storing_it_again(inbox: interlock.Inbox) -> None:
    app = inbox.asgi()
    first = await call(app, "/hooks/github", BODY, github_headers(BODY, "d-1"))
    again = await call(app, "/hooks/github", BODY, github_headers(BODY, "d-1"))
    other = await call(app, "/hooks/github", BODY, github_headers(BODY, "d-2"))
    assert (first.status, first.json()) == (200, {"status": "accepted"})
    assert (again.status, again.json()) == (200, {"status": "duplicate"})
    assert other.status == 200
    stats = await inbox.stats()
    assert stats["queue_depth"] == 2
    assert (stats["received"], stats["duplicates"]) == (2, 1)


async def test_signature_failures_are_401_with_a_reason(inbox: interlock.Inbox) -> None:
    app = inbox.asgi()
    wrong = await call(app, "/hooks/github", BODY, github_headers(BODY, "d-1", secret="nope"))
    missing = await call(app, "/hooks/github", BODY, {"X-GitHub-Delivery": "d-2"})
    tampered = await call(app, "/hooks/github", BODY + b" ", github_headers(BODY, "d-3"))
    assert [r.status for r in (wrong, missing, tampered)] == [401, 401, 401]
    assert "does not match" in wrong.json()["error"]
    assert "missing x-hub-signature-256" in missing.json()["error"]
    stats = await inbox.stats()
    assert stats["queue_depth"] == 0
    assert stats["rejected"] == {"signature": 3}


async def test_stale_timestamp_is_401(sqlite_path: str) -> None:
    import time

    import stripe

    box = interlock.Inbox(store=f"sqlite:///{sqlite_path}")
    box.source("stripe", interlock.signatures.Stripe("whsec_x"))
    body = json.dumps({"id": "evt_1", "type": "invoice.paid"}).encode()
    header = stripe.WebhookSignature.generate_signature_header(body.decode(), "whsec_x", timestamp=int(time.time()) - 600)
    try:
        reply = await call(box.asgi(), "/hooks/stripe", body, {"Stripe-Signature": header})
        assert reply.status == 401
        assert "tolerance" in reply.json()["error"]
    finally:
        await box.aclose()


async def test_receipt_time_and_signature_timestamps_read_the_inbox_clock(sqlite_path: str) -> None:
    import stripe

    from interlock.testing import FakeClock

    clock = FakeClock(wall=1_600_000_000.0)  # years before the real now: far outside the tolerance
    box = interlock.Inbox(store=f"sqlite:///{sqlite_path}", clock=clock)
    box.source("stripe", interlock.signatures.Stripe("whsec_x"))
    body = json.dumps({"id": "evt_1", "type": "invoice.paid"}).encode()
    header = stripe.WebhookSignature.generate_signature_header(body.decode(), "whsec_x", timestamp=int(clock.time()))
    try:
        reply = await call(box.asgi(), "/hooks/stripe", body, {"Stripe-Signature": header})
        assert reply.status == 200
        (lease,) = await box.queue.lease(1, 30.0)
        assert lease.message.received_at == clock.time()
    finally:
        await box.aclose()


async def test_unknown_source_and_wrong_method(inbox: interlock.Inbox) -> None:
    app = inbox.asgi()
    unknown = await call(app, "/hooks/gitlab", BODY, github_headers(BODY, "d"))
    elsewhere = await call(app, "/other", BODY)
    get = await call(app, "/hooks/github", method="GET")
    assert (unknown.status, elsewhere.status, get.status) == (404, 404, 405)
    assert "gitlab" in unknown.json()["error"]
    assert get.headers["allow"] == "POST"


async def test_oversized_body_refused_from_content_length_without_reading(inbox: interlock.Inbox) -> None:
    big = b"x" * 2048
    reply = await call(inbox.asgi(), "/hooks/github", big, github_headers(big, "d-big"))
    assert reply.status == 413
    assert reply.reads == 0
    assert reply.headers["connection"] == "close"


async def test_oversized_chunked_body_stops_reading_at_the_limit(inbox: interlock.Inbox) -> None:
    chunks = [b"x" * 600] * 10
    reply = await call(
        inbox.asgi(), "/hooks/github", headers=github_headers(b"", "d-chunked"), chunks=chunks, content_length=False
    )
    assert reply.status == 413
    assert reply.reads == 2  # 1,200 bytes seen, over 1,024: the other 4,800 were never read


async def test_malformed_bodies_are_400_with_a_clear_message(sqlite_path: str) -> None:
    box = interlock.Inbox(store=f"sqlite:///{sqlite_path}")
    box.source("github", interlock.signatures.GitHub(SECRET))
    box.source("stripe", interlock.signatures.HMAC(SECRET, header="X-Sig"), dedupe="$.id")
    try:
        app = box.asgi()
        not_json = b"{not json"
        r1 = await call(app, "/hooks/github", not_json, github_headers(not_json, "d-1"))
        no_id = json.dumps({"type": "x"}).encode()
        import hashlib
        import hmac

        sig = hmac.new(SECRET.encode(), no_id, hashlib.sha256).hexdigest()
        r2 = await call(app, "/hooks/stripe", no_id, {"X-Sig": sig})
        bad_length = await call(app, "/hooks/github", BODY, {**github_headers(BODY, "d-3"), "content-length": "abc"}, content_length=False)
        assert (r1.status, r2.status, bad_length.status) == (400, 400, 400)
        assert "not valid JSON" in r1.json()["error"]
        assert "no delivery id at $.id" in r2.json()["error"]
    finally:
        await box.aclose()


class BrokenQueue(SQLiteQueue):
    async def put(self, message: Message) -> bool:
        raise OSError("disk full")


async def test_a_store_failure_is_503_and_not_acknowledged(sqlite_path: str) -> None:
    box = interlock.Inbox(store=BrokenQueue(f"sqlite:///{sqlite_path}"))
    box.source("github", interlock.signatures.GitHub(SECRET))
    try:
        reply = await call(box.asgi(), "/hooks/github", BODY, github_headers(BODY, "d-1"))
        assert reply.status == 503
        assert reply.headers["retry-after"] == "5"
        assert (await box.stats())["rejected"] == {"store_unavailable": 1}
    finally:
        await box.aclose()


async def test_secrets_stay_out_of_logs_and_answers(inbox: interlock.Inbox, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    app = inbox.asgi()
    replies = [
        await call(app, "/hooks/github", BODY, github_headers(BODY, "d-1", secret="wrong")),
        await call(app, "/hooks/github", BODY, {"X-Hub-Signature-256": "sha256=00"}),
    ]
    text = caplog.text + "".join(r.body.decode() for r in replies) + repr(inbox.sources)
    assert SECRET not in text


async def _serve(app: Any) -> tuple[uvicorn.Server, Any, int]:
    import asyncio
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    return server, task, port


@pytest.mark.parametrize("framework", ["starlette", "fastapi"])
async def test_mounted_in_a_framework_over_real_http(inbox: interlock.Inbox, framework: str) -> None:
    inner = inbox.asgi()
    if framework == "starlette":
        from starlette.applications import Starlette
        from starlette.routing import Mount

        app: Any = Starlette(routes=[Mount("/webhooks", app=inner)])
    else:
        from fastapi import FastAPI

        app = FastAPI()
        app.mount("/webhooks", inner)
    server, task, port = await _serve(app)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            ok = await client.post("/webhooks/hooks/github", content=BODY, headers=github_headers(BODY, "m-1"))
            dup = await client.post("/webhooks/hooks/github", content=BODY, headers=github_headers(BODY, "m-1"))
            bad = await client.post("/webhooks/hooks/github", content=BODY, headers=github_headers(BODY, "m-2", secret="x"))
            big = await client.post("/webhooks/hooks/github", content=b"x" * 5000, headers=github_headers(b"", "m-3"))
        assert (ok.status_code, dup.json()["status"], bad.status_code, big.status_code) == (200, "duplicate", 401, 413)
    finally:
        server.should_exit = True
        await task
    assert (await inbox.stats())["queue_depth"] == 1


async def test_served_directly_by_uvicorn_with_lifespan(sqlite_path: str) -> None:
    box = interlock.Inbox(store=f"sqlite:///{sqlite_path}")
    box.source("github", interlock.signatures.GitHub(SECRET))
    server, task, port = await _serve(box.asgi())
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            replies = [
                await client.post("/hooks/github", content=BODY, headers=github_headers(BODY, f"u-{i}"))
                for i in range(5)
            ]
        assert [r.status_code for r in replies] == [200] * 5
    finally:
        server.should_exit = True
        await task
    # Lifespan shutdown closed the store; reopening finds the five events durable.
    queue = SQLiteQueue(f"sqlite:///{sqlite_path}")
    async with queue:
        assert (await queue.stats()).pending == 5


@pytest.mark.parametrize("mount", ["/hooks", "/webhooks"])
async def test_the_mount_point_is_the_prefix(inbox: interlock.Inbox, mount: str) -> None:
    """``app.mount("/hooks", inbox.asgi())`` as the README shows: ``POST /hooks/github`` reaches
    source ``github`` (FastAPI passes the full path with the mount point as ``root_path``)."""
    from fastapi import FastAPI

    app = FastAPI()
    app.mount(mount, inbox.asgi())
    server, task, port = await _serve(app)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            ok = await client.post(f"{mount}/github", content=BODY, headers=github_headers(BODY, "r-1"))
            unknown = await client.post(f"{mount}/gitlab", content=BODY, headers=github_headers(BODY, "r-2"))
            outside = await client.post("/github", content=BODY, headers=github_headers(BODY, "r-3"))
        assert (ok.status_code, ok.json()) == (200, {"status": "accepted"})
        assert unknown.status_code == 404 and "gitlab" in unknown.json()["error"]
        assert outside.status_code == 404  # FastAPI's own 404: not under the mount
    finally:
        server.should_exit = True
        await task
    assert (await inbox.stats())["queue_depth"] == 1
