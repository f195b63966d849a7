"""The httpx transport behind the same Transport seam: same answers, same error translation."""

from __future__ import annotations

import socket

import pytest

from interlock import Client, Retry, Timeout
from interlock.client.transports import HttpxTransport
from interlock.errors import ConnectError, TimedOut
from interlock.testbed import Faults, Testbed, TestbedConfig

pytest.importorskip("httpx")


async def test_get_put_and_tracking_id_through_httpx() -> None:
    async with Testbed(TestbedConfig(faults=Faults(lost_response_rate=0.0))) as tb:
        transport = HttpxTransport(tracking_headers=("Trackingid",))
        async with Client(tb.url, transport=transport) as client:
            got = await client.get("/customers/3")
            put = await client.put("/orders/3", json={"status": "paid"})
        assert got.status == 200 and got.json()["id"] == 3 and got.tracking_id
        assert put.status in (200, 201)
        assert tb.counters.applied_writes[("orders", 3)] == 1


async def test_errors_are_translated() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once we leave: nothing listens there
    async with Client(
        f"http://127.0.0.1:{port}", transport=HttpxTransport(), retry=Retry(attempts=1)
    ) as client:
        with pytest.raises(ConnectError):
            await client.get("/x")
    async with Testbed(TestbedConfig(faults=Faults(slow_rate=1.0, slow_ms=1000))) as tb:
        async with Client(
            tb.url, transport=HttpxTransport(), retry=Retry(attempts=1), timeout=Timeout(read=0.1)
        ) as client:
            with pytest.raises(TimedOut):
                await client.get("/customers/1")
