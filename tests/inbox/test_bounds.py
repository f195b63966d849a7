"""What the ingress refuses to let grow or wait without bound: metric labels, store waits, hostile
bodies, stored credentials, settled rows."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time

import pytest

import interlock
from interlock.inbox import InboxMetrics
from interlock.stores import Message
from interlock.stores.queue_postgres import PostgresQueue
from interlock.testing import FakeClock, TcpProxy

from .conftest import SECRET, call, github_headers

BODY = json.dumps({"action": "opened"}).encode()


def hmac_headers(body: bytes, **extra: str) -> dict[str, str]:
    return {"X-Sig": hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest(), **extra}


def shop(box: interlock.Inbox, **options: object) -> None:
    """A source whose id, type and ordering key all come from the (signed) JSON body."""
    box.source(
        "shop", interlock.signatures.HMAC(SECRET, header="X-Sig"), dedupe="$.id", event_type="$.type",
        ordering_key="$.customer", **options,  # type: ignore[arg-type]
    )


# -- 1. metric labels ----------------------------------------------------------------------------


def prometheus_samples(metrics: InboxMetrics) -> list[tuple[str, tuple[str, ...]]]:
    return [
        (sample.name, tuple(sorted(sample.labels.items())))
        for family in metrics.prometheus_metrics(None, time.time())
        for sample in family.samples
    ]


async def test_unknown_source_names_share_one_label(inbox: interlock.Inbox) -> None:
    app = inbox.asgi()
    for i in range(2000):
        name = f"made-up-{i}-" + "x" * 2000
        reply = await call(app, f"/hooks/{name}", BODY, github_headers(BODY, f"d-{i}"))
        assert reply.status == 404
        assert len(reply.body) < 300  # the name is quoted cut short
    await call(app, "/hooks/github", BODY, github_headers(BODY, "real"))
    metrics = inbox.metrics
    assert dict(metrics.rejected) == {("_unknown", "unknown_source"): 2000}
    assert dict(metrics.received) == {"github": 1}
    samples = prometheus_samples(metrics)
    assert len(samples) < 40
    assert not any("made-up" in value for _, labels in samples for _, value in labels)
    assert (await inbox.stats())["rejected"] == {"unknown_source": 2000}


async def test_worker_labels_stop_at_max_sources(sqlite_path: str) -> None:
    box = interlock.Inbox(store=f"sqlite:///{sqlite_path}")
    box.metrics = InboxMetrics(max_sources=10)
    try:
        for i in range(50):  # e.g. events of sources no longer configured, still in the queue
            await box.put(Message(source=f"src-{i}", id="e", type="t", body=b"{}"))
        pool = box.start_workers(concurrency=4)
        while sum(box.metrics.unhandled.values()) < 50:
            await box.queue.wait(1.0)
        await pool.aclose()
        labels = set(box.metrics.unhandled)
        assert len(labels) == 11
        assert "_other" in labels
        assert box.metrics.unhandled["_other"] == 40
    finally:
        await box.aclose()


# -- 2. a frozen store ---------------------------------------------------------------------------


async def test_a_frozen_postgres_is_answered_503_with_retry_after_in_bounded_time(
    postgres_dsn: str, postgres_schema: str, postgres_proxy: TcpProxy
) -> None:
    queue = PostgresQueue(postgres_proxy.url(postgres_dsn), schema=postgres_schema, command_timeout=1.0)
    box = interlock.Inbox(store=queue, put_timeout=0.5)
    box.source("github", interlock.signatures.GitHub(SECRET))
    app = box.asgi()
    try:
        assert (await call(app, "/hooks/github", BODY, github_headers(BODY, "before"))).status == 200
        postgres_proxy.freeze()
        # A burst (grouped into one stuck flush), then more behind it: each answered, none held.
        burst = await asyncio.wait_for(
            asyncio.gather(*(call(app, "/hooks/github", BODY, github_headers(BODY, f"f-{i}")) for i in range(10))), 30
        )
        later = [await asyncio.wait_for(call(app, "/hooks/github", BODY, github_headers(BODY, f"g-{i}")), 30) for i in range(3)]
        for reply in burst + later:
            assert (reply.status, reply.headers.get("retry-after")) == (503, "5")
        assert box.metrics.rejected[("github", "store_timeout")] == 13
        postgres_proxy.thaw()
        statuses = []
        for attempt in range(5):  # a loaded machine may need more than one try to reconnect
            reply = await asyncio.wait_for(call(app, "/hooks/github", BODY, github_headers(BODY, f"after-{attempt}")), 30)
            statuses.append(reply.status)
            if reply.status == 200:
                break
        assert statuses[-1] == 200, statuses
    finally:
        postgres_proxy.thaw()
        await asyncio.wait_for(box.aclose(), 30)


# -- 5. hostile but validly signed bodies ---------------------------------------------------------


async def test_a_deeply_nested_body_is_400_not_500(sqlite_path: str) -> None:
    box = interlock.Inbox(store=f"sqlite:///{sqlite_path}")
    box.source("github", interlock.signatures.GitHub(SECRET))
    shop(box, max_depth=5)
    app = box.asgi()
    try:
        for depth in (1000, 100_000):
            deep = b"[" * depth + b"]" * depth
            reply = await call(app, "/hooks/github", deep, github_headers(deep, f"deep-{depth}"))
            assert reply.status == 400
            assert "nests JSON deeper than 100 levels" in reply.json()["error"]
        ok = json.dumps({"id": "ok", "type": "t", "a": [[[1]]]}).encode()
        six = json.dumps({"id": "six", "type": "t", "a": [[[[[1]]]]]}).encode()
        replies = [await call(app, "/hooks/shop", b, hmac_headers(b)) for b in (ok, six)]
        assert [r.status for r in replies] == [200, 400]
        assert "deeper than 5 levels" in replies[1].json()["error"]
        assert (await box.stats())["queue_depth"] == 1
    finally:
        await box.aclose()


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("id", "evt\u0000", "holds a NUL character"),
        ("id", "evt\ud800", "holds a lone surrogate"),
        ("type", "paid\u0000", "holds a NUL character"),
        ("customer", "\udfffcus", "holds a lone surrogate"),
        ("id", "e" * 513, "at most 512 are accepted"),
    ],
)
async def test_ids_types_and_keys_that_cannot_be_stored_are_400(
    sqlite_path: str, field: str, value: str, reason: str
) -> None:
    box = interlock.Inbox(store=f"sqlite:///{sqlite_path}")
    shop(box)
    try:
        doc = {"id": "evt_1", "type": "paid", "customer": "cus_1", field: value}
        body = json.dumps(doc).encode()  # \u escapes: valid JSON whatever the value holds
        reply = await call(box.asgi(), "/hooks/shop", body, hmac_headers(body))
        assert reply.status == 400, reply.body
        assert reason in reply.json()["error"]
        assert (await box.stats())["queue_depth"] == 0
    finally:
        await box.aclose()


async def test_a_bad_delivery_does_not_fail_the_healthy_ones_beside_it(
    postgres_dsn: str, postgres_schema: str
) -> None:
    box = interlock.Inbox(store=PostgresQueue(postgres_dsn, schema=postgres_schema))
    shop(box)
    app = box.asgi()
    try:
        bodies = [json.dumps({"id": f"e{i}", "type": "t", "customer": "c"}).encode() for i in range(20)]
        bad = json.dumps({"id": "bad\u0000", "type": "t"}).encode()
        replies = await asyncio.gather(*(call(app, "/hooks/shop", b, hmac_headers(b)) for b in [*bodies[:10], bad, *bodies[10:]]))
        assert [r.status for r in replies] == [200] * 10 + [400] + [200] * 10
    finally:
        await box.aclose()


# -- 6. credentials of the sender ----------------------------------------------------------------


async def test_authorization_headers_are_not_stored_unless_asked(sqlite_path: str) -> None:
    box = interlock.Inbox(store=f"sqlite:///{sqlite_path}")
    box.source("github", interlock.signatures.GitHub(SECRET))
    box.source("kept", interlock.signatures.GitHub(SECRET), keep_sensitive_headers=True)
    box.source("custom", interlock.signatures.GitHub(SECRET), sensitive_headers=["X-Tenant-Token"])
    app = box.asgi()
    credentials = {"Authorization": "Bearer sk_live_hunter2", "Cookie": "session=abc123", "X-Tenant-Token": "tt-42"}
    try:
        for name in ("github", "kept", "custom"):
            reply = await call(app, f"/hooks/{name}", BODY, {**github_headers(BODY, "d-1"), **credentials})
            assert reply.status == 200
        leases = await box.queue.lease(10, 30.0)
        stored = {lease.message.source: dict(lease.message.headers) for lease in leases}
        assert "authorization" not in stored["github"] and "cookie" not in stored["github"]
        assert stored["github"]["x-tenant-token"] == "tt-42"  # not in the default list
        assert stored["github"]["x-github-delivery"] == "d-1"  # the rest is kept
        assert stored["kept"]["authorization"] == "Bearer sk_live_hunter2"
        assert "x-tenant-token" not in stored["custom"] and stored["custom"]["authorization"] == "Bearer sk_live_hunter2"
        assert len(leases) == 3
        assert not any("hunter2" in repr(lease) for lease in leases)  # a stored one, too
    finally:
        await box.aclose()


def test_message_reprs_leave_headers_and_body_out() -> None:
    message = Message(source="s", id="1", type="t", body=b"secret-body", headers={"authorization": "Bearer hunter2"})
    assert "hunter2" not in repr(message)
    assert "secret-body" not in repr(message)


async def test_sensitive_header_values_are_redacted_from_store_errors_in_logs(
    sqlite_path: str, caplog: pytest.LogCaptureFixture
) -> None:
    from interlock.stores.queue_sqlite import SQLiteQueue

    class Leaky(SQLiteQueue):
        async def put(self, message: Message) -> bool:
            raise OSError(f"could not write {dict(message.headers)}")

    box = interlock.Inbox(store=Leaky(f"sqlite:///{sqlite_path}"))
    box.source("github", interlock.signatures.GitHub(SECRET), keep_sensitive_headers=True)
    caplog.set_level(logging.DEBUG)
    try:
        reply = await call(box.asgi(), "/hooks/github", BODY, {**github_headers(BODY, "d-1"), "Authorization": "Bearer hunter2"})
        assert reply.status == 503
        assert "could not write" in caplog.text
        assert "hunter2" not in caplog.text and "[redacted]" in caplog.text
    finally:
        await box.aclose()


# -- 7. retention --------------------------------------------------------------------------------


async def test_the_ingress_prunes_done_events_and_dead_letters_without_workers(sqlite_path: str) -> None:
    clock = FakeClock()
    box = interlock.Inbox(store=f"sqlite:///{sqlite_path}", clock=clock, retention=3600.0, dead_retention=7200.0)
    box.source("github", interlock.signatures.GitHub(SECRET))
    try:
        for i in range(3):
            await box.put(Message(source="github", id=f"old-{i}", type="push", body=b"{}"))
        done, dead, dead_later = await box.queue.lease(3, 30.0)
        await box.queue.ack(done)
        await box.queue.dead_letter(dead, error="boom")
        clock.advance(3601.0)
        await box.queue.dead_letter(dead_later, error="boom")
        clock.advance(3600.0)  # done: 2 h old, dead: 2 h old, dead_later: 1 h old
        reply = await call(box.asgi(), "/hooks/github", BODY, github_headers(BODY, "new"))
        assert reply.status == 200
        await asyncio.wait_for(box.pruner.ran(1), 30)
        assert box.pruner.pruned == 2
        assert [d.message.id for d in await box.dlq.list()] == ["old-2"]
        assert await box.put(Message(source="github", id="old-0", type="push", body=b"{}")) is True  # forgotten
    finally:
        await box.aclose()


async def test_retention_settings_are_checked(sqlite_path: str) -> None:
    url = f"sqlite:///{sqlite_path}"
    for keyword, value in (("retention", 0.0), ("dead_retention", -1.0), ("prune_every", 0.0), ("put_timeout", 0.0)):
        with pytest.raises(interlock.errors.ConfigError, match=keyword):
            interlock.Inbox(store=url, **{keyword: value})  # type: ignore[arg-type]
    box = interlock.Inbox(store=url, retention=None, dead_retention=None)
    assert await box.prune() == 0
    await box.aclose()
