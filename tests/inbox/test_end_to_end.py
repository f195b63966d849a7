"""Receive -> store -> process, on both backends: duplicates are processed once, failures go
to the DLQ and replay after the fix, the store URL form works."""

from __future__ import annotations

import asyncio
import json

import interlock
from interlock import Backoff, Redelivery

from .conftest import SECRET, call, github_headers, until


async def test_duplicate_deliveries_are_processed_once(sql_store_url: str) -> None:
    box = interlock.Inbox(store=sql_store_url)
    box.source("github", interlock.signatures.GitHub(SECRET))
    handled: list[str] = []
    box.add_handler("github", "push", lambda e: handled.append(e.id))
    box.start_workers(concurrency=4)  # stopped by box.aclose()
    app = box.asgi()
    body = json.dumps({"ref": "refs/heads/main"}).encode()
    try:
        # Each delivery is sent three times, the copies concurrently (a sender retrying on a
        # slow acknowledgement), and once more after it was processed.
        for i in range(10):
            replies = await asyncio.gather(
                *(call(app, "/hooks/github", body, github_headers(body, f"del-{i}")) for _ in range(3))
            )
            assert [r.status for r in replies] == [200, 200, 200]
            assert sorted(r.json()["status"] for r in replies) == ["accepted", "duplicate", "duplicate"]
        await until(lambda: len(handled) == 10)
        late = await call(app, "/hooks/github", body, github_headers(body, "del-3"))
        assert late.json()["status"] == "duplicate"
        await asyncio.sleep(0.3)
    finally:
        await box.aclose()
    assert sorted(handled) == sorted(f"del-{i}" for i in range(10))


async def test_dead_letter_then_replay_after_the_fix(sql_store_url: str) -> None:
    box = interlock.Inbox(store=sql_store_url, redelivery=Redelivery(attempts=2, backoff=Backoff(delays=[0.05], jitter="none")))
    box.source("stripe", interlock.signatures.HMAC(SECRET, header="X-Sig"), dedupe="$.id", event_type="$.type",
               ordering_key="$.data.customer")
    broken = True
    done: list[tuple[str, str | None, int]] = []

    @box.handler("stripe", "invoice.paid")
    async def on_paid(event: interlock.Event) -> None:
        if broken:
            raise ConnectionError("billing database unreachable")
        done.append((event.id, event.ordering_key, event.attempt))

    import hashlib
    import hmac

    body = json.dumps({"id": "evt_9", "type": "invoice.paid", "data": {"customer": "cus_1"}}).encode()
    reply = await call(box.asgi(), "/hooks/stripe", body, {"X-Sig": hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()})
    assert reply.status == 200
    box.start_workers()  # stopped by box.aclose()
    try:
        await until(lambda: box.metrics.dead_lettered["stripe"] == 1)
        (dead,) = await box.dlq.list(source="stripe")
        assert [f.error.split(" (at ")[0] for f in dead.failures] == ["ConnectionError: billing database unreachable"] * 2
        broken = False
        assert await box.dlq.replay("evt_9", source="stripe") == 1
        await until(lambda: len(done) == 1)
    finally:
        await box.aclose()
    assert done == [("evt_9", "cus_1", 1)]
