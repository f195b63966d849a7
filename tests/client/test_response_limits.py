"""A hostile upstream's answers, on both transports: compression bombs and huge bodies stop at
``max_response_bytes`` (read and decoded), a body trickling past the deadline is cut at it, a
corrupt body and an unknown charset fail as Interlock's own errors, not the libraries'."""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import Callable

import pytest

from interlock import Client, Limits, Retry, Timeout
from interlock.client.transports import AiohttpTransport, HttpxTransport, Transport
from interlock.errors import ResponseTooLarge, TimedOut, TransportError
from interlock.testbed import Testbed, TestbedConfig

MIB = 1 << 20
TRANSPORTS: dict[str, Callable[[], Transport]] = {"aiohttp": AiohttpTransport, "httpx": HttpxTransport}


@pytest.fixture(params=sorted(TRANSPORTS))
def transport(request: pytest.FixtureRequest) -> Callable[[], Transport]:
    return TRANSPORTS[request.param]


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
async def test_a_512_mib_bomb_stops_at_the_default_bound(
    transport: Callable[[], Transport], coding: str
) -> None:
    bomb = {"coding": coding, "mib": 512}  # about 0.5 MB of gzip, 16 KB of zstd, 1 KB of br
    async with (
        Testbed(TestbedConfig()) as tb,
        Client(tb.url, transport=transport(), retry=Retry(attempts=1)) as api,
    ):
        with pytest.raises(ResponseTooLarge):
            await api.get("/_testbed/hostile/bomb", params=bomb)  # warms the testbed's copy of the bomb
        tracemalloc.start()
        try:
            with pytest.raises(ResponseTooLarge) as caught:
                await api.get("/_testbed/hostile/bomb", params=bomb)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert (await api.get("/customers/1")).status == 200  # the client is fine afterwards
    assert peak < 48 * MIB  # the default bound is 8 MiB; inflating the bomb would take 512
    error = caught.value
    assert error.limit == 8 * MIB
    assert (error.upstream, error.route, error.method) == (api.name, "/_testbed/hostile/bomb", "GET")
    assert "max_response_bytes=8388608" in str(error) and coding in str(error)


@pytest.mark.parametrize("chunked", ["0", "1"])
async def test_a_body_past_the_bound_fails_and_a_route_may_allow_more(
    transport: Callable[[], Transport], chunked: str
) -> None:
    limits = Limits(max_response_bytes=MIB, routes={"/_testbed/hostile/large": 4 * MIB})
    async with Testbed(TestbedConfig()) as tb, Client(tb.url, transport=transport(), limits=limits) as api:
        big = {"bytes": 2 * MIB, "chunked": chunked}
        assert len((await api.get("/_testbed/hostile/large", params=big)).content) == 2 * MIB
        with pytest.raises(ResponseTooLarge) as caught:
            await api.get("/_testbed/hostile/large", params={"bytes": 5 * MIB, "chunked": chunked})
        assert caught.value.limit == 4 * MIB
        assert caught.value.attempts == 1  # not retried: the same request gets the same answer
        small = Limits(max_response_bytes=MIB)
    async with Testbed(TestbedConfig()) as tb, Client(tb.url, transport=transport(), limits=small) as api:
        with pytest.raises(ResponseTooLarge, match="max_response_bytes=1048576"):
            await api.get("/_testbed/hostile/large", params=big)
        assert (await api.get("/_testbed/hostile/large", params={"bytes": MIB, "chunked": chunked})).ok


async def test_no_bound_when_asked(transport: Callable[[], Transport]) -> None:
    async with (
        Testbed(TestbedConfig()) as tb,
        Client(tb.url, transport=transport(), limits=Limits(max_response_bytes=None)) as api,
    ):
        response = await api.get("/_testbed/hostile/bomb", params={"coding": "gzip", "mib": 9})
    assert response.content == bytes(9 * MIB)


async def test_a_corrupt_body_is_a_transport_error(transport: Callable[[], Transport]) -> None:
    async with (
        Testbed(TestbedConfig()) as tb,
        Client(tb.url, transport=transport(), retry=Retry(attempts=1)) as api,
    ):
        with pytest.raises(TransportError, match="could not decode the gzip body") as caught:
            await api.get("/_testbed/hostile/corrupt", params={"coding": "gzip"})
    assert caught.value.route == "/_testbed/hostile/corrupt"


async def test_a_trickling_body_cannot_outlast_the_deadline(transport: Callable[[], Transport]) -> None:
    # 40 bytes, one every 0.1 s: each read comes well within any per-read timeout, the whole
    # body takes 4 s, the call has 0.5 s. httpx's timeouts are per read; the attempt's is not.
    async with (
        Testbed(TestbedConfig()) as tb,
        Client(tb.url, transport=transport(), retry=Retry(attempts=1), timeout=Timeout(total=0.5)) as api,
    ):
        with pytest.raises(TimedOut):
            await asyncio.wait_for(
                api.get("/_testbed/hostile/trickle", params={"bytes": 40, "interval": 0.1}), 30
            )


@pytest.mark.parametrize("charset", ["no-such-charset", "rot13", "idna"])
async def test_an_unknown_charset_reads_as_utf8(transport: Callable[[], Transport], charset: str) -> None:
    async with Testbed(TestbedConfig()) as tb, Client(tb.url, transport=transport()) as api:
        response = await api.get("/_testbed/hostile/charset", params={"charset": charset})
    assert response.text == "caf\u00e9 \u2713"


async def test_a_borrowed_aiohttp_session_that_decompresses_is_bounded_too() -> None:
    import aiohttp

    async with Testbed(TestbedConfig(records=200)) as tb, aiohttp.ClientSession() as session:
        async with Client(tb.url, transport=AiohttpTransport(session=session), retry=Retry(attempts=1)) as api:
            listing = await api.get("/customers", params={"limit": 100})
            with pytest.raises(ResponseTooLarge):
                await api.get("/_testbed/hostile/bomb", params={"coding": "gzip", "mib": 64})
        assert not session.closed  # borrowed: left open
    assert listing.headers.get("Content-Encoding") in ("gzip", "br", "zstd")
    assert len(listing.json()["data"]) == 100
