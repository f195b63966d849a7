"""A Node.js caller (the machine's ``node``, built-in ``fetch``, no packages) sees the Client
policies through the proxy: a 503 retried, a cached read answered without an upstream call,
problem details while the breaker is open."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
from aiohttp import web

from .conftest import serving

SCRIPT = Path(__file__).parent / "node" / "proxy_client.mjs"


class Upstream:
    """Answers ``/flaky/*`` 503 once then 200, ``/down/*`` always 503, anything else 200; counts calls."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        n = self.calls[request.path] = self.calls.get(request.path, 0) + 1
        if request.path.startswith("/down/") or (request.path.startswith("/flaky/") and n == 1):
            return web.json_response({"error": "unavailable"}, status=503)
        return web.json_response({"path": request.path, "n": n}, headers={"X-Request-Tracking": "t"})

    async def __aenter__(self) -> Upstream:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


async def test_node_sees_the_policies(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node not found: install Node.js >= 18 (apt-get install nodejs) to run the cross-language test")
    async with Upstream() as upstream:
        text = (
            "[store]\nurl = 'sqlite:///{db}'\n"
            f"[upstreams.crm]\nbase_url = '{upstream.url}'\n"
            "retry = { attempts = 2, backoff = { base = 0.01, cap = 0.02 } }\n"
            "breaker = { min_calls = 6, failure_ratio = 0.5, open_for = 30 }\n"
            "cache = { routes = { '/industries' = 3600 } }\n"
        )
        async with serving(text, tmp_path) as (_, url):
            proc = await asyncio.create_subprocess_exec(
                node, str(SCRIPT), url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
            )
            out, err = await asyncio.wait_for(proc.communicate(), 60)
            assert proc.returncode == 0, err.decode()
    seen = json.loads(out)
    assert seen["retried"]["status"] == 200 and seen["retried"]["attempts"] == "2"
    assert upstream.calls["/flaky/1"] == 2
    assert (seen["first"]["cache"], seen["second"]["cache"]) == ("miss", "hit")
    assert seen["second"]["attempts"] == "0" and upstream.calls["/industries"] == 1
    assert seen["failing"][0]["status"] == 502  # retried, then given up: the breaker still closed
    assert seen["failing"][0]["body"]["type"].endswith("/retries-exhausted")
    opened = seen["open"]
    assert opened["status"] == 503 and opened["type"] == "application/problem+json"
    assert opened["body"]["type"].endswith("/circuit-open") and int(opened["retryAfter"]) >= 1
    assert "/down/2" not in upstream.calls  # refused without calling the upstream
