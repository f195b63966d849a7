"""Where events come from: declared webhook sources, internal sources fed from code with
``Inbox.submit``, and the clear error for a handler of a source nobody declared."""

from __future__ import annotations

import json

import pytest

import interlock
from interlock.errors import ConfigError

from .conftest import call, github_headers, until


async def test_submit_puts_an_event_the_workers_handle_like_a_delivery(inbox: interlock.Inbox) -> None:
    inbox.internal_source("billing-jobs")
    seen: list[tuple[str, str, object, str | None]] = []

    @inbox.handler("billing-jobs", "invoice.close")
    async def close(event: interlock.Event) -> None:
        seen.append((event.id, event.type, event.json(), event.headers.get("x-origin")))

    assert await inbox.submit("billing-jobs", "invoice.close", {"invoice": 7}, id="job-7", headers={"X-Origin": "cron"})
    assert not await inbox.submit("billing-jobs", "invoice.close", {"invoice": 7}, id="job-7")  # a duplicate
    assert await inbox.submit("billing-jobs", "invoice.close", b'{"invoice": 8}')  # bytes as they are, a new id
    pool = inbox.start_workers(concurrency=2)
    await until(lambda: len(seen) == 2)
    await pool.aclose()
    assert ("job-7", "invoice.close", {"invoice": 7}, "cron") in seen
    assert {payload["invoice"] for _, _, payload, _ in seen} == {7, 8}  # type: ignore[index]


async def test_submit_to_a_webhook_source_orders_by_its_own_key(inbox: interlock.Inbox) -> None:
    inbox.source("stripe", interlock.signatures.Stripe("whsec_x"), ordering_key="$.data.customer")
    assert await inbox.submit("stripe", "invoice.paid", {"id": "evt_1", "data": {"customer": "cus_9"}}, id="evt_1")
    assert await inbox.submit("stripe", "invoice.paid", {"id": "evt_2"}, id="evt_2", ordering_key="cus_3")
    keys = {lease.message.id: lease.message.ordering_key for lease in await inbox.queue.lease(10, 30.0)}
    # The same key a delivery over HTTP would get, so both paths are handled in one order.
    assert keys == {"evt_1": "stripe\x1fcus_9", "evt_2": "stripe\x1fcus_3"}


async def test_a_handler_or_forward_of_an_undeclared_source_is_refused(inbox: interlock.Inbox) -> None:
    # The fixture's inbox declares one source, "github".
    with pytest.raises(ConfigError, match=r"no source named 'gihtub' \(declared: github\)"):
        inbox.add_handler("gihtub", "push", lambda event: None)
    with pytest.raises(ConfigError, match=r"inbox\.source\(.stripe., signature\)"):

        @inbox.handler("stripe", "invoice.paid")
        async def never(event: interlock.Event) -> None: ...

    with pytest.raises(ConfigError, match="no source named 'shop'"):
        inbox.forward("shop", url="http://billing.internal/hooks")
    with pytest.raises(ConfigError, match="no source named 'nope'"):
        await inbox.submit("nope", "x", {})
    with pytest.raises(ConfigError, match="already"):
        inbox.internal_source("github")
    inbox.internal_source("jobs")
    inbox.internal_source("jobs")  # declaring it again is harmless
    inbox.add_handler("jobs", "*", lambda event: None)


async def test_an_internal_source_is_not_served_over_http(inbox: interlock.Inbox) -> None:
    inbox.internal_source("jobs")
    body = json.dumps({"x": 1}).encode()
    reply = await call(inbox.asgi(), "/hooks/jobs", body, github_headers(body, "d-1"))
    assert reply.status == 404
    assert (await inbox.stats())["queue_depth"] == 0
