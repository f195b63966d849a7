"""Pagination styles end to end, pathological shapes, updated_since, field selection."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import pytest

from interlock.testbed import Testbed, TestbedConfig
from interlock.testbed._timefmt import parse_rfc3339_ms

LINK_NEXT = re.compile(r'<([^>]+)>;\s*rel="next"')


async def get_json(session: aiohttp.ClientSession, url: str, **params: Any) -> Any:
    async with session.get(url, params=params) as r:
        assert r.status == 200, await r.text()
        return await r.json()


def by_time(records: list[dict[str, Any]]) -> list[int]:
    return [r["id"] for r in sorted(records, key=lambda r: (parse_rfc3339_ms(r["updated_at"]), r["id"]))]


async def test_cursor_pagination_walks_every_record_once(session: aiohttp.ClientSession) -> None:
    async with Testbed(TestbedConfig(records=23)) as tb:
        ids: list[int] = []
        params: dict[str, Any] = {"limit": 5}
        pages = 0
        while True:
            page = await get_json(session, f"{tb.url}/customers", **params)
            pages += 1
            ids += [d["id"] for d in page["data"]]
            if not page["has_more"]:
                assert page["next_cursor"] is None
                break
            params = {"limit": 5, "cursor": page["next_cursor"]}
        assert ids == list(range(1, 24))
        assert pages == 5
        assert tb.counters.list_calls == 5
        async with session.get(f"{tb.url}/customers", params={"cursor": "!!bogus"}) as r:
            assert r.status == 400


async def test_offset_pagination(session: aiohttp.ClientSession) -> None:
    async with Testbed(TestbedConfig(records=23)) as tb:
        ids: list[int] = []
        offset = 0
        while True:
            page = await get_json(session, f"{tb.url}/products", limit=10, offset=offset)
            assert page["total"] == 23 and page["offset"] == offset and page["limit"] == 10
            ids += [d["id"] for d in page["data"]]
            offset += 10
            if offset >= page["total"]:
                break
        assert ids == list(range(1, 24))
        beyond = await get_json(session, f"{tb.url}/products", limit=10, offset=40)
        assert beyond["data"] == []


async def test_page_pagination_follows_link_header(session: aiohttp.ClientSession) -> None:
    async with Testbed(TestbedConfig(records=23, default_limit=5, max_limit=8)) as tb:
        url: str | None = f"{tb.url}/orders?page=1&per_page=100"  # clamped to max_limit 8
        ids: list[int] = []
        pages = []
        while url:
            async with session.get(url) as r:
                body = await r.json()
                match = LINK_NEXT.search(r.headers["Link"])
            pages.append(body["page"])
            assert body["per_page"] == 8 and body["total_pages"] == 3
            ids += [d["id"] for d in body["data"]]
            url = match.group(1) if match else None
        assert pages == [1, 2, 3]
        assert ids == list(range(1, 24))


async def test_default_style_is_configurable(session: aiohttp.ClientSession) -> None:
    async with Testbed(TestbedConfig(records=5, pagination="offset", default_limit=2)) as tb:
        page = await get_json(session, f"{tb.url}/customers")
        assert page["total"] == 5 and len(page["data"]) == 2


async def test_updated_since_is_inclusive_and_ordered_with_shared_timestamps(
    session: aiohttp.ClientSession,
) -> None:
    config = TestbedConfig(records=30, updated_at_step=1.0, same_timestamp_every=3)
    async with Testbed(config) as tb:
        records = tb.data.all("customers")
        # Groups of three records share each timestamp.
        stamps = [r["updated_at"] for r in records]
        assert all(stamps.count(s) == 3 for s in stamps)
        since = "2026-01-01T00:00:04Z"
        expected = by_time([r for r in records if r["updated_at"] >= since])
        assert len(expected) == 18 and expected != sorted(expected)  # not id order
        for style in ({"limit": 2}, {"offset": 0, "limit": 2}, {"page": 1, "per_page": 2}):
            ids: list[int] = []
            params: dict[str, Any] = {**style, "updated_since": since}
            for _ in range(50):
                page = await get_json(session, f"{tb.url}/customers", **params)
                ids += [d["id"] for d in page["data"]]
                if "next_cursor" in page:
                    if not page["has_more"]:
                        break
                    params["cursor"] = page["next_cursor"]
                elif "offset" in page:
                    if page["offset"] + page["limit"] >= page["total"]:
                        break
                    params["offset"] = page["offset"] + page["limit"]
                else:
                    if page["page"] >= page["total_pages"]:
                        break
                    params["page"] = page["page"] + 1
            assert ids == expected, style


async def test_updated_since_sees_touched_records_and_rejects_garbage(
    session: aiohttp.ClientSession,
) -> None:
    async with Testbed(TestbedConfig(records=10)) as tb:
        touched = tb.touch("products", [2, 7], updated_at="2027-06-01T12:00:00.250Z")
        assert [t["version"] for t in touched] == [2, 2]
        page = await get_json(session, f"{tb.url}/products", updated_since="2027-06-01T12:00:00.250Z")
        assert [d["id"] for d in page["data"]] == [2, 7]
        assert page["data"][0]["updated_at"] == "2027-06-01T12:00:00.250Z"
        later = await get_json(session, f"{tb.url}/products", updated_since="2027-06-01T12:00:00.251Z")
        assert later["data"] == []
        async with session.get(f"{tb.url}/products", params={"updated_since": "monday"}) as r:
            assert r.status == 400


async def test_fields_selection_always_keeps_id(session: aiohttp.ClientSession) -> None:
    async with Testbed(TestbedConfig(records=4)) as tb:
        page = await get_json(session, f"{tb.url}/customers", fields="name,email,nope")
        assert [set(d) for d in page["data"]] == [{"id", "name", "email"}] * 4
        batch = await get_json(session, f"{tb.url}/customers", ids="1,2", fields="name")
        assert [set(d) for d in batch["data"]] == [{"id", "name"}] * 2


async def test_bug_repeat_cursor(session: aiohttp.ClientSession) -> None:
    async with Testbed(TestbedConfig(records=20, pagination_bug="repeat_cursor")) as tb:
        first = await get_json(session, f"{tb.url}/customers", limit=5)
        second = await get_json(session, f"{tb.url}/customers", limit=5, cursor=first["next_cursor"])
        assert second["next_cursor"] == first["next_cursor"] and second["has_more"]
        third = await get_json(session, f"{tb.url}/customers", limit=5, cursor=second["next_cursor"])
        assert third == second


async def test_bug_has_more_without_cursor(session: aiohttp.ClientSession) -> None:
    config = TestbedConfig(records=7, pagination_bug="has_more_without_cursor")
    async with Testbed(config) as tb:
        first = await get_json(session, f"{tb.url}/customers", limit=5)
        last = await get_json(session, f"{tb.url}/customers", limit=5, cursor=first["next_cursor"])
        assert len(last["data"]) == 2
        assert last["has_more"] is True and last["next_cursor"] is None


async def test_bug_no_total(session: aiohttp.ClientSession) -> None:
    async with Testbed(TestbedConfig(records=7, pagination_bug="no_total")) as tb:
        page = await get_json(session, f"{tb.url}/customers", limit=5, offset=0)
        assert "total" not in page and len(page["data"]) == 5


@pytest.mark.parametrize("style", ["cursor", "offset", "page"])
async def test_bug_endless(session: aiohttp.ClientSession, style: str) -> None:
    async with Testbed(TestbedConfig(records=6, pagination_bug="endless")) as tb:
        seen_cursors: set[str] = set()
        params: dict[str, Any] = {
            "cursor": {"limit": 4},
            "offset": {"limit": 4, "offset": 0},
            "page": {"page": 1, "per_page": 4},
        }[style]
        for _ in range(10):  # 40 records served from a kind that has 6
            async with session.get(f"{tb.url}/customers", params=params) as r:
                page = await r.json()
                link = r.headers.get("Link", "")
            assert len(page["data"]) == 4
            if style == "cursor":
                assert page["has_more"] and page["next_cursor"] not in seen_cursors
                seen_cursors.add(page["next_cursor"])
                params["cursor"] = page["next_cursor"]
            elif style == "offset":
                assert page["total"] > page["offset"] + len(page["data"])
                params["offset"] += 4
            else:
                assert 'rel="next"' in link
                params["page"] += 1
