"""Where events come from: declared webhook sources, internal sources fed from code with
``Inbox.submit``, and the clear error for a handler of a source nobody declared."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest

import interlock
from interlock.errors import ConfigError

from .conftest import SECRET, call, github_headers


@pytest.fixture
async def box(sqlite_path: str) -> AsyncIterator[interlock.Inbox]:
    inbox = interlock.Inbox(store=f"sqlite:///{sqlite_path}")
    try:
        yield inbox
    finally:
        await inbox.aclose()


async def until(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def test_submit_puts_an_event_the_workers_handle_like_a_delivery(box: interlock.Inbox) -> None:
    box.internal_source("billing-jobs")
    seen: list[tuple[str, str, object, str | None]] = []

    @box.handler("billing-jobs", "invoice.close")
    async def close(event: interlock.Event) -> None:
        seen.append((event.id, event.type, event.json(), event.headers.get("x-origin")))

    assert await box.submit("billing-jobs", "invoice.close", {"invoice": 7}, id="job-7", headers={"X-Origin": "cron"})
    assert not await box.submit("billing-jobs", "invoice.close", {"invoice": 7}, id="job-7")  # a duplicate
    assert await box.submit("billing-jobs", "invoice.close", b'{"invoice": 8}')  # bytes as they are, a new id
    pool = box.start_workers(concurrency=2)
    await until(lambda: len(seen) == 2)
    await pool.aclose()
    assert ("job-7", "invoice.close", {"invoice": 7}, "cron") in seen
    assert {payload["invoice"] for _, _, payload, _ in seen} == {7, 8}  # type: ignore[index]


async def test_submit_to_a_webhook_source_orders_by_its_own_key(box: interlock.Inbox) -> None:
    box.source("stripe", interlock.signatures.Stripe("whsec_x"), ordering_key="$.data.customer")
    assert await box.submit("stripe", "invoice.paid", {"id": "evt_1", "data": {"customer": "cus_9"}}, id="evt_1")
    assert await box.submit("stripe", "invoice.paid", {"id": "evt_2"}, id="evt_2", ordering_key="cus_3")
    keys = {lease.message.id: lease.message.ordering_key for lease in await box.queue.lease(10, 30.0)}
    # The same key a delivery over HTTP would get, so both paths are handled in one order.
    assert keys == {"evt_1": "stripe\x1fcus_9", "evt_2": "stripe\x1fcus_3"}


async def test_a_handler_or_forward_of_an_undeclared_source_is_refused(box: interlock.Inbox) -> None:
    box.source("github", interlock.signatures.GitHub(SECRET))
    with pytest.raises(ConfigError, match=r"no source named 'gihtub' \(declared: github\)"):
        box.add_handler("gihtub", "push", lambda event: None)
    with pytest.raises(ConfigError, match="inbox.source"):

        @box.handler("stripe", "invoice.paid")
        async def never(event: interlock.Event) -> None: ...

    with pytest.raises(ConfigError, match="no source named 'shop'"):
        box.forward("shop", url="http://billing.internal/hooks")
    with pytest.raises(ConfigError, match="no source named 'nope'"):
        await box.submit("nope", "x", {})
    with pytest.raises(ConfigError, match="already"):
        box.internal_source("github")
    box.internal_source("jobs")
    box.internal_source("jobs")  # declaring it again is harmless
    box.add_handler("jobs", "*", lambda event: None)


async def test_an_internal_source_is_not_served_over_http(box: interlock.Inbox) -> None:
    box.internal_source("jobs")
    body = json.dumps({"x": 1}).encode()
    reply = await call(box.asgi(), "/hooks/jobs", body, github_headers(body, "d-1"))
    assert reply.status == 404
    assert (await box.stats())["queue_depth"] == 0
