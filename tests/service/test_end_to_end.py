"""End to end over real HTTP: a signed webhook in -> the forward handler -> an internal service
that calls the upstream through ``/proxy/`` -> the upstream fails -> DLQ -> replay through the
admin API -> applied once."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import standardwebhooks
from aiohttp import web

from interlock.testbed import Testbed

from .conftest import admin_headers, serving

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class InternalService:
    """The team's own service: each webhook it is forwarded becomes an order at the upstream,
    created through Interlock's proxy (it holds no upstream credential)."""

    def __init__(self) -> None:
        self.proxy = ""
        self.applied: list[str] = []
        self.failed = 0
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _billing(self, request: web.Request) -> web.Response:
        event = await request.json()
        async with aiohttp.ClientSession() as http, http.post(
            f"{self.proxy}/proxy/crm/orders", json={"customer_id": event["customer"], "total_cents": 100},
            headers={"Idempotency-Key": request.headers["Idempotency-Key"]},
        ) as resp:
            if resp.status >= 300:
                self.failed += 1
                return web.json_response({"error": await resp.text()}, status=502)
        self.applied.append(request.headers["X-Interlock-Event-Id"])
        return web.json_response({"ok": True})

    async def __aenter__(self) -> InternalService:
        app = web.Application()
        app.router.add_post("/internal/billing", self._billing)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


async def until(predicate: Callable[[], object], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_webhook_forward_proxy_failure_dlq_replay_applied_once(tmp_path: Path, testbed: Testbed) -> None:
    async with InternalService() as internal:
        text = (
            "[server]\nadmin_token = '${ADMIN}'\n[store]\nurl = 'sqlite:///{db}'\n"
            f"[upstreams.crm]\nbase_url = '{testbed.url}'\nheaders = {{ Authorization = 'Bearer ${{CRM}}' }}\n"
            "retry = { attempts = 2, backoff = { base = 0.01, cap = 0.02 } }\nbreaker = false\n"
            "[sources.billing]\nscheme = 'standard-webhooks'\nsecrets = ['${HOOK}']\n"
            f"forward = '{internal.url}/internal/billing'\n"
            "retry = { attempts = 2, backoff = { base = 0.05, cap = 0.1 } }\n"
            "delivery = { retry = { attempts = 1 }, breaker = false }\n"
        )
        async with serving(text, tmp_path, {"CRM": "crm-secret", "HOOK": SECRET}) as (service, url):
            internal.proxy = url
            testbed.start_outage(3600)  # the upstream fails every call
            body = json.dumps({"type": "invoice.paid", "customer": 7}).encode()
            signature = standardwebhooks.Webhook(SECRET).sign("msg_e2e", datetime.now(UTC), body.decode())
            headers = {"webhook-id": "msg_e2e", "webhook-timestamp": str(int(time.time())), "webhook-signature": signature,
                       "content-type": "application/json"}
            async with aiohttp.ClientSession() as http:
                async with http.post(f"{url}/hooks/billing", data=body, headers=headers) as resp:
                    assert resp.status in (200, 202), await resp.text()
                async with http.post(f"{url}/hooks/billing", data=body, headers={**headers, "webhook-signature": "v1,AAAA"}) as resp:
                    assert resp.status == 401  # a bad signature is refused at the door
                async with http.get(f"{url}/admin/api/v1/dlq", headers=admin_headers()) as resp:
                    assert resp.status == 200

                async def dead() -> int:
                    async with http.get(f"{url}/admin/api/v1/dlq", headers=admin_headers()) as r:
                        return int((await r.json())["total"])

                deadline = time.monotonic() + 20
                while await dead() < 1:
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.05)
                assert internal.failed == 2 and internal.applied == []  # two attempts, both through the failing proxy
                async with http.get(f"{url}/admin/api/v1/dlq/msg_e2e", headers=admin_headers()) as resp:
                    shown = await resp.json()
                assert json.loads(shown["body"]) == {"type": "invoice.paid", "customer": 7}
                assert len(shown["failures"]) == 2 and "502" in shown["failures"][-1]["error"]

                testbed.configure(faults=None)  # the upstream is back
                async with http.post(f"{url}/admin/api/v1/dlq/msg_e2e/replay", headers=admin_headers()) as resp:
                    assert await resp.json() == {"replayed": 1}
                await until(lambda: internal.applied)
                # Give a duplicate delivery the chance to show, then check it was applied once.
                await asyncio.sleep(0.5)
                assert internal.applied == ["msg_e2e"]
                assert await dead() == 0
            created = [r for r in testbed.recent() if r.method == "POST" and r.path == "/orders" and r.status == 201]
            assert len(created) == 1
            assert service.inbox.metrics.processed[service.inbox.metrics.label("billing")] == 1
