from __future__ import annotations

import asyncio
import gzip
import json
import time
from collections.abc import AsyncIterator

import brotli
import httpx
import pytest
import zstandard
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from interlock.errors import ConfigError
from interlock.server import CompressionMiddleware

from .conftest import serve

BIG = {"items": [{"id": i, "name": f"record number {i}"} for i in range(200)]}


def decode(coding: str, data: bytes) -> bytes:
    if coding == "gzip":
        return gzip.decompress(data)
    if coding == "br":
        return bytes(brotli.decompress(data))
    return bytes(zstandard.ZstdDecompressor().decompressobj().decompress(data))


class Stream:
    """A streamed response that sends its second chunk only once the test saw the first."""

    def __init__(self, media_type: str) -> None:
        self.media_type = media_type
        self.first_seen = asyncio.Event()
        self.sent: list[str] = []
        self.sent_at: list[float] = []

    async def endpoint(self, request: Request) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            self.sent.append("one")
            self.sent_at.append(time.monotonic())
            yield b"data: " + b"first chunk " * 100 + b"\n\n"
            await asyncio.wait_for(self.first_seen.wait(), 10.0)  # a buffering middleware times out here
            self.sent.append("two")
            self.sent_at.append(time.monotonic())
            yield b"data: " + b"second chunk " * 100 + b"\n\n"

        return StreamingResponse(body(), media_type=self.media_type)


def make_app(stream: Stream | None = None, **options: object) -> Starlette:
    async def big(request: Request) -> JSONResponse:
        return JSONResponse(BIG, headers={"etag": '"v1"'})

    async def small(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    async def pregzipped(request: Request) -> Response:
        return Response(
            gzip.compress(b"x" * 5000), media_type="text/plain", headers={"content-encoding": "gzip"}
        )

    async def png(request: Request) -> Response:
        return Response(b"\x89PNG" + b"\0" * 5000, media_type="image/png")

    routes = [Route("/big", big), Route("/small", small), Route("/pre", pregzipped), Route("/png", png)]
    if stream is not None:
        routes.append(Route("/stream", stream.endpoint))
    return Starlette(routes=routes, middleware=[Middleware(CompressionMiddleware, **options)])


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
async def test_buffered_json_is_compressed_with_the_chosen_coding(coding: str) -> None:
    async with serve(make_app()) as base, httpx.AsyncClient(base_url=base) as http:
        r = await http.get("/big", headers={"accept-encoding": coding})
        raw = b"".join([chunk async for chunk in (await http.send(r.request, stream=True)).aiter_raw()])
    assert r.headers["content-encoding"] == coding
    assert r.headers["vary"] == "Accept-Encoding"
    assert int(r.headers["content-length"]) == len(raw)
    assert json.loads(decode(coding, raw)) == BIG
    assert r.json() == BIG
    assert r.headers["etag"] == f'"v1-{coding}"'


@pytest.mark.parametrize(
    ("accept", "expected"),
    [("gzip;q=1, br;q=0.5", "gzip"), ("gzip, br", "br"), ("*", "zstd"), ("gzip;q=0, identity", None)],
)
async def test_q_values_pick_the_coding(accept: str, expected: str | None) -> None:
    async with serve(make_app()) as base, httpx.AsyncClient(base_url=base) as http:
        r = await http.get("/big", headers={"accept-encoding": accept})
    assert r.headers.get("content-encoding") == expected
    assert r.json() == BIG


async def test_left_alone_small_precompressed_and_incompressible() -> None:
    async with serve(make_app()) as base, httpx.AsyncClient(base_url=base) as http:
        small = await http.get("/small", headers={"accept-encoding": "gzip"})
        assert "content-encoding" not in small.headers
        assert small.headers["vary"] == "Accept-Encoding"
        pre = await http.get("/pre", headers={"accept-encoding": "gzip"})
        assert pre.headers["content-encoding"] == "gzip"
        assert pre.content == b"x" * 5000  # decoded once: not compressed twice
        png = await http.get("/png", headers={"accept-encoding": "gzip"})
        assert "content-encoding" not in png.headers and "vary" not in png.headers
        head = await http.head("/big", headers={"accept-encoding": "gzip"})
        assert "content-encoding" not in head.headers


async def test_if_none_match_with_the_coding_suffix_reaches_the_app_without_it() -> None:
    seen: list[str | None] = []

    async def tagged(request: Request) -> JSONResponse:
        seen.append(request.headers.get("if-none-match"))
        return JSONResponse(BIG, headers={"etag": '"v1"'})

    app = Starlette(routes=[Route("/", tagged)], middleware=[Middleware(CompressionMiddleware)])
    async with serve(app) as base, httpx.AsyncClient(base_url=base) as http:
        await http.get("/", headers={"accept-encoding": "br", "if-none-match": '"v1-br", "v0-gzip"'})
    assert seen == ['"v1", "v0"']


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
async def test_a_streamed_response_reaches_the_client_chunk_by_chunk(coding: str) -> None:
    stream = Stream("application/x-ndjson")
    async with serve(make_app(stream)) as base, httpx.AsyncClient(base_url=base) as http:
        async with http.stream("GET", "/stream", headers={"accept-encoding": coding}) as r:
            assert r.headers["content-encoding"] == coding
            assert "content-length" not in r.headers
            received = b""
            arrived_at: list[float] = []
            async for chunk in r.aiter_bytes():
                received += chunk
                arrived_at.append(time.monotonic())
                if b"first chunk" in received and not stream.first_seen.is_set():
                    # The first chunk arrived decoded while the app has not sent the second.
                    assert stream.sent == ["one"]
                    first_arrival = arrived_at[-1]
                    stream.first_seen.set()
    assert stream.sent == ["one", "two"]
    assert received.count(b"second chunk") == 100
    # Arrival times against send times: the first chunk was in the client's hands before the
    # app produced the second one, and the second arrived after it was sent (an order, no bound).
    assert stream.sent_at[0] <= first_arrival < stream.sent_at[1] <= arrived_at[-1]


async def test_event_streams_are_left_alone_and_arrive_as_sent() -> None:
    stream = Stream("text/event-stream")
    async with serve(make_app(stream)) as base, httpx.AsyncClient(base_url=base) as http:
        async with http.stream("GET", "/stream", headers={"accept-encoding": "gzip"}) as r:
            assert "content-encoding" not in r.headers
            async for chunk in r.aiter_raw():
                if not stream.first_seen.is_set():
                    assert chunk.startswith(b"data: first chunk")
                    assert stream.sent == ["one"]
                    stream.first_seen.set()
    assert stream.sent == ["one", "two"]


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="codings"):
        CompressionMiddleware(make_app(), codings=["deflate"])
    with pytest.raises(ConfigError, match="minimum_size"):
        CompressionMiddleware(make_app(), minimum_size=-1)
