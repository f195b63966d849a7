"""The InteractionStore contract: every backend (SQLite, PostgreSQL) passes the same tests:
round trip of every field, filters, newest first, bounded reads, retention by age and by rows
(on ``prune`` and as records are written), several instances on one database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from interlock.stores import (
    Attempt,
    Interaction,
    InteractionFilter,
    InteractionRetention,
    InteractionStore,
    open_interactions,
)
from interlock.stores.interactions import MAX_LIMIT

Factory = Callable[..., InteractionStore]


@pytest.fixture
async def store_factory(sql_store_url: str) -> AsyncIterator[Factory]:
    """Makes stores on one shared database (several instances = several processes)."""
    made: list[InteractionStore] = []

    def factory(**options: Any) -> InteractionStore:
        store = open_interactions(sql_store_url, **options)
        made.append(store)
        return store

    try:
        yield factory
    finally:
        for store in made:
            await store.aclose()


def item(i: int, *, at: float, failed: bool = False, tracking: str | None = None) -> Interaction:
    return Interaction(
        id=f"{i:024x}", at=at, upstream="api", method="GET", url=f"https://api.test/x/{i}?api_key=***",
        route="/x/{id}", status=503 if failed else 200, failed=failed, error="boom" if failed else None,
        tracking_id=tracking, correlation_id=f"evt_{i % 2}", trace_id=f"{i:032x}", duration=0.01,
        attempts=(Attempt(1, 503, None, 0.0, 0.004), Attempt(2, None, "ConnectError: refused", 0.01, 0.002)),
        request_headers=(("Accept", "*/*"), ("Authorization", "***")), request_body=b'{"a":1}',
        response_headers=(("Content-Type", "application/json"),), response_body=b"\x00\xffbinary",
        response_truncated=True,
    )  # fmt: skip


async def test_round_trip_filters_and_order(store_factory: Factory) -> None:
    store = store_factory()
    await store.open()
    await store.open()  # idempotent
    for i in range(8):
        await store.record(item(i, at=1000.0 + i, failed=i % 3 == 0, tracking=f"t{i}"))
    assert await store.find(InteractionFilter(tracking_id="t3")) == [
        item(3, at=1003.0, failed=True, tracking="t3")
    ]
    assert [x.id for x in await store.find(InteractionFilter(failed=True))] == [
        item(6, at=0).id, item(3, at=0).id, item(0, at=0).id
    ]  # fmt: skip
    assert [x.at for x in await store.find(limit=3)] == [1007.0, 1006.0, 1005.0]  # newest first
    assert await store.count(InteractionFilter(correlation_id="evt_1")) == 4
    assert await store.count(InteractionFilter(since=1004.0, until=1006.0)) == 2
    assert await store.count(InteractionFilter(trace_id=f"{5:032x}")) == 1
    assert await store.count(InteractionFilter(ids=[item(1, at=0).id, item(2, at=0).id], failed=False)) == 2
    assert await store.count(InteractionFilter(upstream="other")) == 0
    assert len(await store.find(limit=10 * MAX_LIMIT)) == 8


async def test_recording_the_same_id_replaces_it(store_factory: Factory) -> None:
    store = store_factory()
    await store.open()
    await store.record(item(1, at=1.0))
    await store.record(item(1, at=2.0, failed=True))
    [kept] = await store.find()
    assert kept.failed and kept.at == 2.0


async def test_retention_by_rows_then_by_age(store_factory: Factory) -> None:
    store = store_factory(retention=InteractionRetention(max_age=100.0, max_rows=5, every=1000))
    await store.open()
    for i in range(8):
        await store.record(item(i, at=1000.0 + i))
    assert await store.prune(now=1050.0) == 3  # the three oldest, past max_rows
    assert await store.count() == 5
    assert await store.prune(now=1105.5) == 3  # begun before now - max_age
    assert sorted(x.at for x in await store.find()) == [1006.0, 1007.0]


async def test_retention_is_enforced_as_records_are_written(store_factory: Factory) -> None:
    store = store_factory(retention=InteractionRetention(max_age=None, max_rows=3, every=2))
    await store.open()
    for i in range(10):
        await store.record(item(i, at=2000.0 + i))
    assert await store.count() == 3
    assert sorted(x.at for x in await store.find()) == [2007.0, 2008.0, 2009.0]


async def test_instances_share_one_database(store_factory: Factory) -> None:
    writer, reader = store_factory(), store_factory()
    await writer.open()
    await reader.open()
    await writer.record(item(1, at=1.0, tracking="shared"))
    assert [x.tracking_id for x in await reader.find(InteractionFilter(tracking_id="shared"))] == ["shared"]


async def test_a_closed_store_says_so(store_factory: Factory) -> None:
    store = store_factory()
    with pytest.raises(RuntimeError, match="open"):
        await store.record(item(1, at=1.0))
