from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from interlock.errors import ConfigError
from interlock.server import DEFAULT_SECURITY_HEADERS, SecurityMiddleware

from .conftest import serve

bodies: list[int] = []


async def echo(request: Request) -> PlainTextResponse:
    body = await request.body()
    bodies.append(len(body))
    return PlainTextResponse(str(len(body)))


async def framed(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok", headers={"x-frame-options": "SAMEORIGIN"})


async def slow(request: Request) -> PlainTextResponse:
    await asyncio.Event().wait()  # never finishes by itself
    return PlainTextResponse("never")


def make_app(**options: object) -> Starlette:
    return Starlette(
        routes=[Route("/echo", echo, methods=["POST"]), Route("/framed", framed), Route("/slow", slow)],
        middleware=[Middleware(SecurityMiddleware, **options)],
    )


async def test_security_headers_by_default_without_overriding_the_app() -> None:
    async with (
        serve(make_app(headers={"referrer-policy": None})) as base,
        httpx.AsyncClient(base_url=base) as http,
    ):
        r = await http.get("/framed")
    for name, value in DEFAULT_SECURITY_HEADERS.items():
        if name == "x-frame-options":
            assert r.headers[name] == "SAMEORIGIN"
        elif name == "referrer-policy":
            assert name not in r.headers
        else:
            assert r.headers[name] == value
    assert "frame-ancestors" in r.headers["content-security-policy"]


async def test_body_limit_413_by_content_length_and_while_streaming() -> None:
    bodies.clear()
    async with serve(make_app(max_body=1000)) as base, httpx.AsyncClient(base_url=base) as http:
        ok = await http.post("/echo", content=b"x" * 1000)
        big = await http.post("/echo", content=b"x" * 1001)

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(10):
                yield b"y" * 500

        streamed = await http.post("/echo", content=chunks())  # chunked: no Content-Length
    assert (ok.status_code, ok.text) == (200, "1000")
    assert big.status_code == 413 and big.json()["type"].endswith("/payload-too-large")
    assert streamed.status_code == 413
    assert bodies == [1000]  # the app never saw the oversized bodies whole


async def test_timeout_503_problem_details() -> None:
    async with serve(make_app(timeout=0.2)) as base, httpx.AsyncClient(base_url=base, timeout=10.0) as http:
        r = await http.get("/slow")
    assert r.status_code == 503
    assert r.json()["type"].endswith("/request-timeout")
    assert r.headers["retry-after"] == "1"
    assert r.headers["x-content-type-options"] == "nosniff"


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="max_body"):
        SecurityMiddleware(make_app(), max_body=-1)
    with pytest.raises(ConfigError, match="timeout"):
        SecurityMiddleware(make_app(), timeout=0)
