"""``Inbox.serve()`` / ``uvicorn_config()``: real uvicorn over loopback, every connection bounded.

Each test speaks raw HTTP/1.1 over a socket, as a slow or hostile sender would. The waits are
for the server to answer or close; a server that never does fails the test by the 30 s guard.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn

import interlock
from interlock.inbox import ServeSettings

from .conftest import SECRET, github_headers

BODY = json.dumps({"action": "opened"}).encode()


def fast(http: str) -> ServeSettings:
    return ServeSettings(
        http=http, header_timeout=0.3, keep_alive=0.3, max_header_bytes=16 * 1024, limit_concurrency=50  # type: ignore[arg-type]
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(params=["httptools", "h11"])
async def served(request: pytest.FixtureRequest, sqlite_path: str) -> AsyncIterator[tuple[interlock.Inbox, int]]:
    box = interlock.Inbox(store=f"sqlite:///{sqlite_path}", body_timeout=0.3)
    box.source("github", interlock.signatures.GitHub(SECRET))
    port = free_port()
    server = uvicorn.Server(box.uvicorn_config(port=port, settings=fast(request.param), log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield box, port
    finally:
        server.should_exit = True
        await task


async def until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection (30 s at most)."""
    return await asyncio.wait_for(reader.read(), 30)


def status_of(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])


def request_head(body: bytes, delivery: str, length: int | None = None) -> bytes:
    headers = {**github_headers(body, delivery), "Content-Length": str(len(body) if length is None else length)}
    return b"POST /hooks/github HTTP/1.1\r\nHost: inbox\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items()
    ).encode() + b"\r\n"


async def test_the_config_names_the_bounds(sqlite_path: str) -> None:
    box = interlock.Inbox(store=f"sqlite:///{sqlite_path}")
    config = box.uvicorn_config(port=9999)
    assert (config.timeout_keep_alive, config.h11_max_incomplete_event_size, config.limit_concurrency) == (
        5.0, 16384, 1000
    )
    assert config.lifespan == "on"
    assert config.http.__name__ == "BoundedHttpToolsProtocol"  # "auto", and httptools is installed
    with pytest.raises(interlock.errors.ConfigError, match="header_timeout"):
        ServeSettings(header_timeout=0)
    await box.aclose()


async def test_deliveries_are_served(served: tuple[interlock.Inbox, int]) -> None:
    box, port = served
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        replies = [await client.post("/hooks/github", content=BODY, headers=github_headers(BODY, f"d-{i}")) for i in range(3)]
    assert [r.status_code for r in replies] == [200] * 3
    assert (await box.stats())["queue_depth"] == 3


async def oversized_head(port: int, padding: int) -> bytes:
    """What the server answers a request whose head carries ``padding`` bytes of one header."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = request_head(BODY, "big")
    writer.write(head[:-2] + b"X-Padding: " + b"a" * padding + b"\r\n\r\n" + BODY)
    try:
        await writer.drain()
        return await until_closed(reader)
    finally:
        writer.close()


async def test_a_header_block_over_the_limit_is_refused(served: tuple[interlock.Inbox, int]) -> None:
    box, port = served
    # Just over the 16 KiB limit, arriving whole in one read: answered 431 and closed.
    assert status_of(await oversized_head(port, 17 * 1024)) == 431
    # Far over it: refused as soon as the limit is passed; the rest is never read, so the
    # close may reach the sender as a reset before the 431 does.
    with contextlib.suppress(ConnectionError):
        assert status_of(await oversized_head(port, 20 * 1024 * 1024)) == 431
    # Just under it: served.
    assert status_of(await oversized_head(port, 15 * 1024)) == 200
    assert (await box.stats())["queue_depth"] == 1


@pytest.mark.parametrize(
    "sent", [b"", request_head(BODY, "slow")[:40]], ids=["nothing", "part of a head, the rest never comes"]
)
async def test_a_connection_without_a_whole_request_head_is_closed(
    served: tuple[interlock.Inbox, int], sent: bytes
) -> None:
    _, port = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(sent)
    await writer.drain()
    raw = await until_closed(reader)
    writer.close()
    assert status_of(raw) == 408


async def test_a_body_trickling_in_is_answered_408(served: tuple[interlock.Inbox, int]) -> None:
    box, port = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request_head(BODY, "slow-body") + BODY[:5])  # the head, then a body that stalls
    await writer.drain()
    raw = await until_closed(reader)
    writer.close()
    assert status_of(raw) == 408
    assert b"the body was not received within 0.3 s" in raw
    assert box.metrics.rejected[("github", "body_timeout")] == 1


async def test_an_idle_kept_alive_connection_is_closed(served: tuple[interlock.Inbox, int]) -> None:
    _, port = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request_head(BODY, "keep") + BODY)
    await writer.drain()
    raw = await until_closed(reader)  # answered, then closed once idle
    writer.close()
    assert status_of(raw) == 200
    assert raw.count(b"HTTP/1.1") == 1


async def test_a_kept_alive_connection_serves_the_next_request_in_time(served: tuple[interlock.Inbox, int]) -> None:
    _, port = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request_head(BODY, "one") + BODY + request_head(BODY, "two") + BODY)  # pipelined
    await writer.drain()
    raw = await until_closed(reader)
    writer.close()
    assert raw.count(b"HTTP/1.1 200") == 2


async def test_connections_past_the_limit_are_answered_503(sqlite_path: str) -> None:
    box = interlock.Inbox(store=f"sqlite:///{sqlite_path}")
    box.source("github", interlock.signatures.GitHub(SECRET))
    port = free_port()
    settings = ServeSettings(header_timeout=30.0, limit_concurrency=3)
    server = uvicorn.Server(box.uvicorn_config(port=port, settings=settings, log_level="critical"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request_head(BODY, "over") + BODY)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n"), 30)
        writer.close()
        assert status_of(head) == 503
    finally:
        for _, w in idle:
            w.close()
        server.should_exit = True
        await task
