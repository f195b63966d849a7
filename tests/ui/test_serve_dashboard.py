"""The dashboard of a real ``interlock serve`` process, under testbed traffic sent through its
proxy: after login the overview shows the upstream's live figures, and they follow the traffic."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import standardwebhooks

from interlock.testbed import Testbed, TestbedConfig

from .conftest import free_port, need_browser

INTERLOCK = str(Path(sys.executable).with_name("interlock"))
TOKEN = "serve-ui-admin-token-5c4b3a"
CONFIG = """
[server]
host = "127.0.0.1"
port = {port}
admin_token = "${{UI_ADMIN_TOKEN}}"

[store]
url = "sqlite:///{db}"

[upstreams.crm]
base_url = "{upstream}"
concurrency = 20

[sources.billing]
scheme = "standard-webhooks"
secrets = ["{secret}"]
forward = "{upstream}/orders"
"""
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

pytestmark = pytest.mark.timeout(120)


async def test_the_served_dashboard_follows_proxied_traffic(tmp_path: Path, browser: Any) -> None:
    need_browser()
    async with Testbed(TestbedConfig(), port=0) as tb:
        port = free_port()
        config = tmp_path / "interlock.toml"
        config.write_text(CONFIG.format(port=port, db=tmp_path / "interlock.db", upstream=tb.url, secret=SECRET))
        proc = await asyncio.create_subprocess_exec(
            INTERLOCK, "serve", "-c", str(config), cwd=tmp_path, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={"UI_ADMIN_TOKEN": TOKEN, "PATH": ""},
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            url = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip()
            assert url == f"http://127.0.0.1:{port}"
            rate = [5.0]
            stop = asyncio.Event()

            async def traffic() -> None:
                async with aiohttp.ClientSession() as http:
                    i = 0
                    while not stop.is_set():
                        i += 1
                        async with http.get(f"{url}/proxy/crm/customers/{i % 50 + 1}") as response:
                            assert response.status == 200
                        await asyncio.sleep(1 / rate[0])

            sender = asyncio.create_task(traffic())
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            page = await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            await page.goto(url + "/ui")
            assert "/ui/login" in page.url
            await page.fill('input[name="token"]', TOKEN)
            await page.click('button[type="submit"]')
            pace = page.locator('tr[data-upstream="crm"] [data-field="pace"]')

            async def shown_pace() -> float:
                text = await pace.inner_text()
                return float(text) if text.replace(".", "").isdigit() else 0.0

            deadline = time.monotonic() + 40
            while await shown_pace() <= 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
            slow = await shown_pace()
            assert slow > 0
            assert (await page.locator('tr[data-upstream="crm"] [data-field="p95"]').inner_text()).endswith(
                "ms"
            )
            rate[0] = 60.0  # the traffic rises: the figure follows without a reload
            deadline = time.monotonic() + 60
            while await shown_pace() < 2 * slow and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
            assert await shown_pace() >= 2 * slow
            stop.set()
            await sender

            # A signed webhook, handled (forwarded): its source page lists it; its page shows it whole.
            payload = '{"type": "invoice.paid", "amount": 42}'
            signature = standardwebhooks.Webhook(SECRET).sign("msg_ui_1", datetime.now(UTC), payload)
            hook = {"webhook-id": "msg_ui_1", "webhook-timestamp": str(int(time.time())),
                    "webhook-signature": signature, "Content-Type": "application/json"}  # fmt: skip
            async with aiohttp.ClientSession() as http:
                async with http.post(f"{url}/hooks/billing", data=payload, headers=hook) as response:
                    assert response.status in (200, 202)
            row = page.locator('#recent-events tr[data-event="msg_ui_1"]')
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                await page.goto(url + "/ui/sources/billing")
                if await row.count() and "succeeded" in (await row.inner_text()):
                    break
                await asyncio.sleep(0.5)
            assert "succeeded" in await row.inner_text()
            await row.locator("a").click()
            assert '"amount": 42' in await page.locator("pre").last.inner_text()
            assert errors == []
        finally:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 30)
