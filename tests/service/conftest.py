"""Fixtures of the service tests: the testbed as the upstream, a second loopback origin that
must never be reached, and ``interlock serve``'s app under real uvicorn on a free port."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import uvicorn
from aiohttp import web

from interlock.service import parse_config
from interlock.service._app import Service
from interlock.testbed import Testbed, TestbedConfig

ADMIN_TOKEN = "admin-token-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Origin:
    """A loopback HTTP server that records every request it receives (the "second origin")."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.status = 200
        self.statuses: list[int] = []
        """Answered first, one per request; then ``status``."""
        self.delay = 0.0
        self.headers: dict[str, str] = {}
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append((request.method, request.raw_path, dict(request.headers), body))
        if self.delay:
            await asyncio.sleep(self.delay)
        status = self.statuses.pop(0) if self.statuses else self.status
        return web.json_response({"ok": True, "n": len(self.requests)}, status=status, headers=self.headers)

    async def __aenter__(self) -> Origin:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


@pytest.fixture
async def testbed() -> AsyncIterator[Testbed]:
    async with Testbed(TestbedConfig(), port=0) as tb:
        yield tb


@pytest.fixture
async def origin() -> AsyncIterator[Origin]:
    async with Origin() as o:
        yield o


@contextlib.asynccontextmanager
async def serving(text: str, tmp_path: Path, env: dict[str, str] | None = None) -> AsyncIterator[tuple[Service, str]]:
    """Serve the config ``text`` (``{db}`` filled with a fresh SQLite path) with real uvicorn."""
    db = tmp_path / f"interlock-{free_port()}.db"
    loaded = parse_config(text.replace("{db}", str(db)), file="test.toml", env={"ADMIN": ADMIN_TOKEN, **(env or {})})
    service = Service(loaded)
    port = free_port()
    config = uvicorn.Config(service, host="127.0.0.1", port=port, lifespan="on", log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield service, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def raw_http(base_url: str, head: bytes, body: bytes = b"") -> tuple[int | None, dict[str, str], bytes]:
    """Send ``head`` (a request line and headers, ending in a blank line) exactly as written:
    clients normalise paths, hostile callers do not. (status, headers, body); status None when
    the server closed without answering."""
    host, _, port = base_url.removeprefix("http://").partition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head + body)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    if not raw:
        return None, {}, b""
    head_bytes, _, rest = raw.partition(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, rest
