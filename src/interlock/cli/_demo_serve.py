"""``interlock demo --serve``: after the demo, the service and its dashboard stay up with the
demo's traffic still flowing, until Ctrl-C.

A fresh testbed plays the upstream with the demo's faults (latency, 503s, the quota; the
outage recurs every minute, so the breaker and the badges have something to show), an
``interlock serve`` app built from a config written here proxies to it, and a loop replays the
demo's workload through ``/proxy/crm/...`` as a caller in another language would. The URL and
the admin token (random, for this run only) are printed; the config is printed too.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
import socket
from typing import TYPE_CHECKING, Any

import aiohttp

from ..testbed import Testbed, TestbedConfig

if TYPE_CHECKING:
    from .demo import Call

__all__ = ["serve_demo"]

CONFIG = """\
[server]
host = "127.0.0.1"
port = {port}
admin_token = "${{INTERLOCK_DEMO_TOKEN}}"

[store]
url = "sqlite:///{db}"

[upstreams.crm]
base_url = "{upstream}"
profile = "interactive"
concurrency = 20
rate_limit = {{ adaptive = true }}
cache = {{ routes = {{ "/products/{{id}}" = 60 }} }}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def serve_demo(config: TestbedConfig, calls: list[Call], *, port: int, db: str) -> int:
    """Serve until cancelled (Ctrl-C); the exit status."""
    import uvicorn

    from ..service import Service, parse_config

    faults = config.faults
    outage = faults.outages[0].duration if faults is not None and faults.outages else None
    if faults is not None:
        faults = dataclasses.replace(faults, outages=())  # replayed every minute instead, below
    async with Testbed(dataclasses.replace(config, faults=faults), port=0) as tb:
        token = secrets.token_urlsafe(24)
        port = port or _free_port()
        text = CONFIG.format(port=port, db=db, upstream=tb.url)
        loaded = parse_config(text, file="demo.toml", env={"INTERLOCK_DEMO_TOKEN": token})
        service = Service(loaded)
        server = uvicorn.Server(uvicorn.Config(service, host="127.0.0.1", port=port, log_level="warning"))
        serving = asyncio.create_task(server.serve())
        while not server.started:
            if serving.done():
                return 2
            await asyncio.sleep(0.05)
        url = f"http://127.0.0.1:{port}"
        print("\nThe service stays up with the demo's traffic flowing through its proxy (Ctrl-C stops it):")
        print(f"  dashboard:   {url}/ui   (admin token: {token})")
        print(f"  proxy:       {url}/proxy/crm/customers/1")
        print(f"  admin API:   curl -H 'Authorization: Bearer {token}' {url}/admin/api/v1/upstreams")
        print(
            "  its config (the upstream is a fresh testbed with the demo's faults, the outage every minute):"
        )
        print("    " + text.replace("\n", "\n    ").rstrip())
        background = [asyncio.create_task(_traffic(url, calls))]
        if outage is not None:
            background.append(asyncio.create_task(_outages(tb, outage)))
        try:
            await serving
        finally:
            for task in background:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*background)
            server.should_exit = True
    return 0


async def _outages(tb: Testbed, duration: float) -> None:
    """The demo's outage again every minute, so the breaker and the badges have news to show."""
    while True:
        await asyncio.sleep(60)
        tb.start_outage(duration)


async def _traffic(url: str, calls: list[Call]) -> None:
    """The demo's workload through the proxy, over and over, 20 at a time, a page per 100 ms."""
    async with aiohttp.ClientSession() as http:

        async def one(method: str, path: str) -> Any:
            body = {"status": "paid"} if method == "PUT" else None
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                async with http.request(method, f"{url}/proxy/crm{path}", json=body) as response:
                    await response.read()

        while True:
            for start in range(0, len(calls), 10):
                await asyncio.gather(*(one(c.method, c.path) for c in calls[start : start + 10]))
                await asyncio.sleep(0.1)
