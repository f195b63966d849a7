"""The dashboard in real headless Chromium (Debian's ``chromium``, driven by Playwright), served
by real uvicorn in the test's own event loop beside a Client calling a real testbed and an
Inbox on a real SQLite file, so the page shows live figures of real traffic.

Without Chromium or Playwright these tests skip with how to get them (``.ci/run`` installs
both, and turns the skip into a failure).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import interlock
from interlock.core.alerts import Thresholds
from interlock.service.dashboard import FailureFeed, Monitor, dashboard_app
from interlock.testbed import Testbed, TestbedConfig

REQUIRE_SERVICES = os.environ.get("INTERLOCK_REQUIRE_SERVICES") == "1"
CHROMIUM = os.environ.get("INTERLOCK_CHROMIUM", "/usr/bin/chromium")
TOKEN = "ui-test-admin-token-9f8e7d"
ARTIFACTS = Path(
    os.environ.get("INTERLOCK_UI_ARTIFACTS", Path(__file__).parent.parent.parent / "artifacts" / "ui")
)


def need_browser() -> None:
    missing = []
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        missing.append(f"Chromium at {CHROMIUM} (apt-get install -y chromium)")
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        missing.append("Playwright (pip install playwright; no browser download needed)")
    if missing:
        message = "the dashboard tests need " + " and ".join(missing)
        if REQUIRE_SERVICES:
            pytest.fail(message + " (INTERLOCK_REQUIRE_SERVICES=1 turns this skip into a failure)")
        pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Service:
    """What a dashboard test drives: the testbed, the client, the inbox, the monitor, the URL."""

    url: str
    tb: Testbed
    client: interlock.Client
    inbox: interlock.Inbox
    monitor: Monitor
    applied: list[str] = field(default_factory=list)
    broken: bool = True
    traffic_paused: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Service]:
    need_browser()
    import uvicorn

    async with contextlib.AsyncExitStack() as stack:
        tb = await stack.enter_async_context(Testbed(TestbedConfig(records=200)))
        client = await stack.enter_async_context(
            interlock.Client(tb.url, name="crm", retry=interlock.Retry(attempts=1), breaker=None)
        )
        inbox = interlock.Inbox(
            store=f"sqlite:///{tmp_path / 'inbox.db'}", redelivery=interlock.Redelivery(attempts=1)
        )
        stack.push_async_callback(inbox.aclose)
        inbox.source(
            "billing", interlock.signatures.StandardWebhooks("whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        )
        thresholds = Thresholds.from_mapping({"p95_above": 0.2})
        monitor = Monitor({"crm": client}, inbox=inbox, thresholds=thresholds, interval=0.5, window=3.0)
        svc = Service("", tb, client, inbox, monitor)

        @inbox.handler("billing", "invoice.paid")
        async def on_paid(event: interlock.Event) -> None:
            if svc.broken:
                raise RuntimeError("ledger service down")
            svc.applied.append(event.id)

        feed = FailureFeed(monitor)
        for name in ("interlock.client", "interlock.inbox"):
            logger = logging.getLogger(name)
            logger.addHandler(feed)
            stack.callback(logger.removeHandler, feed)

        port = free_port()
        config = uvicorn.Config(
            dashboard_app(monitor, admin_token=TOKEN),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
        )
        server = uvicorn.Server(config)
        stop = asyncio.Event()
        tasks = [
            asyncio.create_task(server.serve()),
            asyncio.create_task(monitor.run(stop)),
            asyncio.create_task(_traffic(svc, stop)),
        ]
        pool = inbox.start_workers(concurrency=2)
        stack.push_async_callback(pool.aclose)
        while not server.started:
            await asyncio.sleep(0.02)
        svc.url = f"http://127.0.0.1:{port}"
        try:
            yield svc
        finally:
            stop.set()
            server.should_exit = True
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)


async def _traffic(svc: Service, stop: asyncio.Event) -> None:
    """A steady trickle of GETs (ten every 100 ms) while the test runs, unless paused."""
    while not stop.is_set():
        if not svc.traffic_paused.is_set():
            await asyncio.gather(
                *(svc.client.get(f"/customers/{i}") for i in range(1, 11)), return_exceptions=True
            )
        await asyncio.sleep(0.1)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    need_browser()
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--headless=new"])
        try:
            yield chromium
        finally:
            await chromium.close()
