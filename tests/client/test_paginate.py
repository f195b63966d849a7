"""Pagination over every style the testbed speaks, and termination on every pathological shape."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import interlock
from interlock.client._paginate import next_link
from interlock.testbed import Faults, Latency, Testbed, TestbedConfig

RECORDS = 250


async def collect(api: interlock.Client, **options: Any) -> tuple[list[Any], interlock.Paginator]:
    items = []
    async with api.paginate("/customers", **options) as pages:
        async for item in pages:
            items.append(item)
    return items, pages


@pytest.mark.parametrize(
    ("style", "asked", "detected", "calls"),
    [
        ("cursor", "auto", "cursor", 7),
        ("offset", "auto", "offset", 7),
        # Auto mode sends `limit`, which a page-style API ignores (its default per_page is 100).
        ("page", "auto", "link", 3),
        ("page", "page", "page", 7),
    ],
)
async def test_every_style_yields_every_item_once(style: str, asked: str, detected: str, calls: int) -> None:
    config = TestbedConfig(records=RECORDS, pagination=style)  # type: ignore[arg-type]
    async with Testbed(config) as tb, interlock.Client(tb.url) as api:
        items, pages = await collect(api, page_size=40, style=asked)
    assert [i["id"] for i in items] == list(range(1, RECORDS + 1))
    assert pages.stop_reason == "end"
    assert pages.style == detected
    assert pages.pages == tb.counters.list_calls == calls


@pytest.mark.parametrize(
    ("style", "bug", "reason", "complete"),
    [
        ("cursor", "repeat_cursor", "repeated_cursor", False),
        ("cursor", "has_more_without_cursor", "has_more_without_cursor", True),
        ("cursor", "endless", "no_new_items", True),
        ("offset", "no_total", "end", True),
        ("offset", "endless", "no_new_items", True),
        ("page", "endless", "no_new_items", True),
    ],
)
async def test_pathological_listings_terminate(style: str, bug: str, reason: str, complete: bool) -> None:
    config = TestbedConfig(records=RECORDS, pagination=style, pagination_bug=bug)  # type: ignore[arg-type]
    async with Testbed(config) as tb, interlock.Client(tb.url) as api:
        items, pages = await asyncio.wait_for(collect(api, page_size=50), timeout=30)
    ids = [i["id"] for i in items]
    assert len(ids) == len(set(ids))  # never an item twice
    assert pages.stop_reason == reason
    if complete:
        assert sorted(ids) == list(range(1, RECORDS + 1))
    assert tb.counters.list_calls <= RECORDS // 50 + 2


async def test_max_pages_and_explicit_style() -> None:
    async with (
        Testbed(TestbedConfig(records=RECORDS, pagination="offset")) as tb,
        interlock.Client(tb.url) as api,
    ):
        items, pages = await collect(api, style="offset", page_size=10, max_pages=3)
    assert len(items) == 30 and pages.stop_reason == "max_pages"
    assert tb.counters.list_calls == 3


async def test_params_and_fields_carry_to_every_page() -> None:
    async with Testbed(TestbedConfig(records=RECORDS)) as tb, interlock.Client(tb.url) as api:
        items, _ = await collect(
            api, page_size=100, fields=["name"], params={"updated_since": "2026-01-01T00:01:00Z"}
        )
    assert items and all(set(i) == {"id", "name"} for i in items)
    assert len(items) == RECORDS - 60  # one record per second from the epoch
    assert {r.query.count("fields=name") for r in tb.recent()} == {1}


async def test_the_next_page_is_fetched_while_the_caller_works() -> None:
    faults = Faults(latency=Latency.fixed(20))
    async with Testbed(TestbedConfig(records=RECORDS, faults=faults)) as tb, interlock.Client(tb.url) as api:
        async with api.paginate("/customers", page_size=50) as pages:
            first = await pages.__anext__()
            assert first["id"] == 1
            for _ in range(100):  # the caller is busy with page 1; page 2 arrives meanwhile
                if tb.counters.list_calls == 2:
                    break
                await asyncio.sleep(0.01)
            assert tb.counters.list_calls == 2
        assert tb.counters.list_calls == 2  # leaving early cancelled nothing else


async def test_single_page_and_bare_list_bodies() -> None:
    async with Testbed(TestbedConfig(records=5)) as tb, interlock.Client(tb.url) as api:
        items, pages = await collect(api)
    assert len(items) == 5 and pages.stop_reason == "end" and tb.counters.list_calls == 1


def test_sync_client_paginates() -> None:
    import threading

    ready = threading.Event()
    holder: dict[str, Any] = {}

    def serve() -> None:
        async def main() -> None:
            async with Testbed(TestbedConfig(records=120)) as tb:
                holder["url"] = tb.url
                ready.set()
                while not holder.get("done"):
                    await asyncio.sleep(0.01)

        asyncio.run(main())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        with interlock.SyncClient(holder["url"]) as api:
            ids = [item["id"] for item in api.paginate("/customers", page_size=50)]
        assert ids == list(range(1, 121))
    finally:
        holder["done"] = True
        thread.join(5)


def test_link_header_parsing() -> None:
    header = '<http://x/c?page=3>; rel="next", <http://x/c?page=1>; rel="prev first"'
    assert next_link(header) == "http://x/c?page=3"
    assert next_link('<http://x/c?page=1>; rel="prev"') is None
    assert next_link(None) is None
