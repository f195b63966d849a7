from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route

from interlock.server import CompressionMiddleware, ConditionalMiddleware, strong_etag

from .conftest import serve

MODIFIED = "Wed, 21 Oct 2025 07:28:00 GMT"


class Store:
    def __init__(self) -> None:
        self.doc: dict[str, Any] = {"id": 1, "name": "first", "pad": "x" * 600}
        self.writes = 0

    async def item(self, request: Request) -> JSONResponse | PlainTextResponse:
        if request.method == "PUT":
            self.writes += 1
            self.doc = {**self.doc, **(await request.json())}
        return JSONResponse(self.doc)

    async def dated(self, request: Request) -> PlainTextResponse:
        return PlainTextResponse("dated", headers={"last-modified": MODIFIED})

    async def streamed(self, request: Request) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            yield b"one"
            yield b"two"

        return StreamingResponse(body(), headers={"etag": '"s1"'})

    async def missing(self, request: Request) -> PlainTextResponse:
        if request.method == "PUT":
            self.writes += 1
        return PlainTextResponse("no such thing", status_code=404)


def make_app(store: Store, *outer: Middleware) -> Starlette:
    return Starlette(
        routes=[
            Route("/item", store.item, methods=["GET", "PUT"]),
            Route("/dated", store.dated),
            Route("/streamed", store.streamed),
            Route("/missing", store.missing, methods=["GET", "PUT"]),
        ],
        middleware=[*outer, Middleware(ConditionalMiddleware)],
    )


async def test_strong_etag_then_304_with_an_empty_body() -> None:
    store = Store()
    async with serve(make_app(store)) as base, httpx.AsyncClient(base_url=base) as http:
        first = await http.get("/item")
        etag = first.headers["etag"]
        assert etag == strong_etag(first.content).decode() and not etag.startswith("W/")
        again = await http.get("/item", headers={"if-none-match": etag})
        assert again.status_code == 304
        assert again.content == b""
        assert again.headers["etag"] == etag
        assert "content-type" not in again.headers and again.headers.get("content-length", "0") == "0"
        for value in (f'"other", {etag}', f"W/{etag}", "*"):
            assert (await http.get("/item", headers={"if-none-match": value})).status_code == 304
        assert (await http.get("/item", headers={"if-none-match": '"other"'})).status_code == 200


async def test_last_modified_and_if_modified_since() -> None:
    async with serve(make_app(Store())) as base, httpx.AsyncClient(base_url=base) as http:
        same = await http.get("/dated", headers={"if-modified-since": MODIFIED})
        later = await http.get("/dated", headers={"if-modified-since": "Thu, 22 Oct 2025 07:28:00 GMT"})
        older = await http.get("/dated", headers={"if-modified-since": "Mon, 20 Oct 2025 07:28:00 GMT"})
        garbage = await http.get("/dated", headers={"if-modified-since": "not a date"})
    assert (same.status_code, later.status_code, older.status_code, garbage.status_code) == (
        304,
        304,
        200,
        200,
    )
    assert same.content == b"" and same.headers["last-modified"] == MODIFIED


async def test_if_match_on_a_write_412_when_stale_and_the_write_does_not_run() -> None:
    store = Store()
    async with serve(make_app(store)) as base, httpx.AsyncClient(base_url=base) as http:
        etag = (await http.get("/item")).headers["etag"]
        ok = await http.put("/item", json={"name": "second"}, headers={"if-match": etag})
        assert ok.status_code == 200 and store.writes == 1
        stale = await http.put("/item", json={"name": "third"}, headers={"if-match": etag})
        assert stale.status_code == 412
        assert stale.json()["type"].endswith("/precondition-failed")
        assert stale.headers["etag"] == (await http.get("/item")).headers["etag"] != etag
        assert store.writes == 1 and store.doc["name"] == "second"
        weak = await http.put("/item", json={}, headers={"if-match": "W/" + stale.headers["etag"]})
        assert weak.status_code == 412  # If-Match compares strongly
        star = await http.put("/item", json={}, headers={"if-match": "*"})
        assert star.status_code == 200
        gone = await http.put("/missing", headers={"if-match": "*"})
        assert gone.status_code == 412 and store.writes == 2
        unconditional = await http.put("/item", json={"name": "free"})
        assert unconditional.status_code == 200 and store.writes == 3


async def test_streamed_responses_use_only_the_apps_own_validators() -> None:
    async with serve(make_app(Store())) as base, httpx.AsyncClient(base_url=base) as http:
        full = await http.get("/streamed")
        cached = await http.get("/streamed", headers={"if-none-match": '"s1"'})
    assert (full.status_code, full.content, full.headers["etag"]) == (200, b"onetwo", '"s1"')
    assert (cached.status_code, cached.content) == (304, b"")


async def test_behind_compression_the_coded_etag_still_validates() -> None:
    store = Store()
    app = make_app(store, Middleware(CompressionMiddleware))
    async with serve(app) as base, httpx.AsyncClient(base_url=base) as http:
        first = await http.get("/item", headers={"accept-encoding": "gzip"})
        assert first.headers["content-encoding"] == "gzip" and first.headers["etag"].endswith('-gzip"')
        again = await http.get(
            "/item", headers={"accept-encoding": "gzip", "if-none-match": first.headers["etag"]}
        )
        assert again.status_code == 304 and again.content == b""
        write = await http.put("/item", json={"name": "z"}, headers={"if-match": first.headers["etag"]})
        assert write.status_code == 200 and store.writes == 1
