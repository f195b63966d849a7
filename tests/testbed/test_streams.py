"""The testbed's event streams on the wire: SSE format, Last-Event-ID, retry hints, admin."""

from __future__ import annotations

import asyncio

import aiohttp

from interlock.testbed import Testbed, TestbedConfig


async def _read_until(response: aiohttp.ClientResponse, needle: bytes) -> bytes:
    data = b""
    async with asyncio.timeout(10):
        while needle not in data:
            data += await response.content.readany()
    return data


async def test_sse_wire_format_resume_and_retry_hint() -> None:
    async with Testbed(TestbedConfig(records=5)) as tb, aiohttp.ClientSession() as http:
        tb.streams.configure(retry_ms=2500)
        for rid in (1, 2, 3):
            tb.touch("customers", [rid])
        async with http.get(f"{tb.url}/events", headers={"Last-Event-ID": "1"}) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/event-stream")
            data = await _read_until(response, b"id: 3\n")
        assert data.startswith(b"retry: 2500\n\n")
        assert b"id: 1\n" not in data and b"id: 2\nevent: customers.updated\ndata: {" in data
        assert tb.streams.resumed_from == ["1"]


async def test_ignore_last_event_id_and_keepalives() -> None:
    async with Testbed(TestbedConfig(records=5)) as tb, aiohttp.ClientSession() as http:
        tb.streams.configure(ignore_last_event_id=True, keepalive=0.05)
        tb.touch("customers", [1])
        async with http.get(f"{tb.url}/events", headers={"Last-Event-ID": "1"}) as response:
            data = await _read_until(response, b": keep-alive")
        assert b"id: 1\n" in data  # replayed from the start


async def test_admin_controls_and_mistakes() -> None:
    async with Testbed(TestbedConfig(records=5)) as tb, aiohttp.ClientSession() as http:
        async with http.post(f"{tb.url}/_testbed/streams", json={"drop_every": 3, "stall": 0}) as response:
            body = await response.json()
            assert response.status == 200 and body["drop_every"] == 3
        async with http.post(f"{tb.url}/_testbed/streams", json={"nope": 1}) as response:
            assert response.status == 400 and "nope" in (await response.json())["error"]
        async with http.post(f"{tb.url}/_testbed/streams", json={"stall": "x"}) as response:
            assert response.status == 400
        async with http.get(f"{tb.url}/_testbed/streams") as response:
            assert (await response.json())["connections"] == 0


async def test_listings_answer_if_none_match_with_304() -> None:
    async with Testbed(TestbedConfig(records=5)) as tb, aiohttp.ClientSession() as http:
        async with http.get(f"{tb.url}/customers") as response:
            etag = response.headers["ETag"]
        async with http.get(f"{tb.url}/customers", headers={"If-None-Match": etag}) as response:
            assert response.status == 304 and await response.read() == b""
        tb.touch("customers", [2])
        async with http.get(f"{tb.url}/customers", headers={"If-None-Match": etag}) as response:
            assert response.status == 200
        assert tb.counters.not_modified == 1
