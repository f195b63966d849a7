"""The admin API over real uvicorn: the token guards every route (the OpenAPI document's list),
the fixed paths answer the documented shapes, mistakes are 4xx problems, secrets never show."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import aiohttp
import pytest

from interlock.service._openapi import openapi_document
from interlock.stores.queue import Failure, Message
from interlock.testbed import Testbed

from .conftest import ADMIN_TOKEN, Origin, admin_headers, serving

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def config(upstream: str, *, token: bool = True, sync: bool = True) -> str:
    return (
        ("[server]\nadmin_token = '${ADMIN}'\n" if token else "")
        + "[store]\nurl = 'sqlite:///{db}'\n"
        + f"[upstreams.crm]\nbase_url = '{upstream}'\nheaders = {{ Authorization = 'Bearer ${{CRM_TOKEN}}' }}\n"
        + "cache = { routes = { '/products/{id}' = { ttl = 600, tags = ['product:{id}'] } } }\n"
        + "rate_limit = { per_second = 100 }\nbreaker = { min_calls = 2, open_for = 60 }\n"
        + "retry = { attempts = 1 }\n"
        + f"[sources.billing]\nscheme = 'standard-webhooks'\nsecrets = ['${{HOOK_SECRET}}']\nforward = '{upstream}/orders'\n"
        + ("[syncs.customers]\nupstream = 'crm'\npath = '/customers'\nhandler = 'json:dumps'\nevery = 3600\n" if sync else "")
    )


ENV = {"CRM_TOKEN": "crm-upstream-secret", "HOOK_SECRET": SECRET}


def concrete(path: str) -> str:
    return path.replace("{name}", "crm" if "upstreams" in path else ("billing" if "sources" in path else "customers")).replace("{id}", "evt_1")


async def test_every_route_refuses_without_the_token(tmp_path: Path, testbed: Testbed) -> None:
    doc = openapi_document()
    async with serving(config(testbed.url), tmp_path, ENV) as (_, url), aiohttp.ClientSession() as http:
        checked = 0
        for path, ops in doc["paths"].items():
            for method in ops:
                for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {ADMIN_TOKEN}"},
                                {"Authorization": f"Bearer {ADMIN_TOKEN}x"}):
                    async with http.request(method.upper(), url + concrete(path), headers=headers) as resp:
                        assert resp.status == 401, (method, path, headers)
                        assert resp.content_type == "application/problem+json"
                        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
                checked += 1
        assert checked >= 19


async def test_without_a_configured_token_the_admin_api_is_off(tmp_path: Path, testbed: Testbed) -> None:
    async with serving(config(testbed.url, token=False), tmp_path, ENV) as (_, url), aiohttp.ClientSession() as http:
        async with http.get(f"{url}/admin/api/v1/upstreams", headers={"Authorization": "Bearer anything"}) as resp:
            assert resp.status == 503
            assert "admin_token" in (await resp.json(content_type=None))["detail"]


async def test_the_document_lists_exactly_the_app_routes(tmp_path: Path, testbed: Testbed) -> None:
    async with serving(config(testbed.url), tmp_path, ENV) as (service, url), aiohttp.ClientSession() as http:
        async with http.get(f"{url}/admin/api/openapi.json", headers=admin_headers()) as resp:
            doc = await resp.json()
        assert doc["openapi"] == "3.1.0"
        routes = {("/admin" + r.path, m.lower()) for r in service.admin.routes for m in r.methods if m != "HEAD"}  # type: ignore[attr-defined]
        described = {(p, m) for p, ops in doc["paths"].items() for m in ops}
        assert routes == described
        for fixed in ("/admin/api/v1/upstreams", "/admin/api/v1/sources", "/admin/api/v1/dlq", "/admin/api/v1/dlq/{id}",
                      "/admin/api/v1/dlq/{id}/replay", "/admin/api/v1/dlq/replay", "/admin/api/v1/syncs"):
            assert fixed in doc["paths"]


async def test_upstreams_breaker_reset_and_cache_invalidation(tmp_path: Path, origin: Origin) -> None:
    async with serving(config(origin.url, sync=False), tmp_path, ENV) as (service, url), aiohttp.ClientSession(headers=admin_headers()) as http:
        await http.get(f"{url}/proxy/crm/products/1")
        await http.get(f"{url}/proxy/crm/products/1")
        assert len(origin.requests) == 1
        async with http.get(f"{url}/admin/api/v1/upstreams") as resp:
            [up] = (await resp.json())["upstreams"]
        assert up["name"] == "crm" and up["breaker"] == "closed" and up["proxied"] == 2
        assert up["rate_limit"]["keys"] and up["cache"]["routes"]["/products/{id}"]["hit"] == 1
        async with http.post(f"{url}/admin/api/v1/upstreams/crm/cache/invalidate", json={"tag": "product:1"}) as resp:
            assert resp.status == 200 and (await resp.json())["removed"] == 1
        await http.get(f"{url}/proxy/crm/products/1")
        assert len(origin.requests) == 2
        for body in ({"path": "/products/1"}, {"prefix": "/products/"}):
            async with http.post(f"{url}/admin/api/v1/upstreams/crm/cache/invalidate", json=body) as resp:
                assert resp.status == 200, await resp.text()
        for bad in ({}, {"path": "x"}, {"path": "/a", "tag": "b"}, {"pth": "/a"}, [1]):
            async with http.post(f"{url}/admin/api/v1/upstreams/crm/cache/invalidate", json=bad) as resp:
                assert resp.status == 400, bad
        origin.status = 503
        for _ in range(3):
            await http.get(f"{url}/proxy/crm/customers/1")
        assert service.clients["crm"].breaker_state() == "open"
        async with http.post(f"{url}/admin/api/v1/upstreams/crm/breaker/reset") as resp:
            assert (await resp.json()) == {"upstream": "crm", "breaker": "closed"}
        async with http.get(f"{url}/admin/api/v1/upstreams/nope") as resp:
            assert resp.status == 404


async def test_sources_pause_and_resume(tmp_path: Path, origin: Origin) -> None:
    async with serving(config(origin.url, sync=False), tmp_path, ENV) as (service, url), aiohttp.ClientSession(headers=admin_headers()) as http:
        async with http.post(f"{url}/admin/api/v1/sources/billing/pause") as resp:
            assert (await resp.json())["paused"] is True
        await service.inbox.submit("billing", "invoice.paid", {"id": 1}, id="evt_paused")
        await asyncio.sleep(0.5)
        assert origin.requests == []  # received and stored, not processed
        async with http.post(f"{url}/admin/api/v1/sources/billing/resume") as resp:
            assert (await resp.json())["paused"] is False
        for _ in range(200):
            if origin.requests:
                break
            await asyncio.sleep(0.05)
        assert [r[0] for r in origin.requests] == ["POST"]
        async with http.get(f"{url}/admin/api/v1/sources") as resp:
            [src] = (await resp.json())["sources"]
        assert src["name"] == "billing" and src["scheme"] == "standard-webhooks"


async def test_dlq_list_show_replay_and_purge(tmp_path: Path, origin: Origin) -> None:
    async with serving(config(origin.url, sync=False), tmp_path, ENV) as (service, url), aiohttp.ClientSession(headers=admin_headers()) as http:
        queue = service.inbox.queue
        for i in range(3):
            message = Message("billing", f"evt_{i}", "invoice.paid", b'{"n": %d}' % i, {"content-type": "application/json"}, time.time())
            await queue.put_dead(message, failures=[Failure(1, time.time(), f"boom {i}")])
        async with http.get(f"{url}/admin/api/v1/dlq", params={"limit": "2"}) as resp:
            page = await resp.json()
        assert page["total"] == 3 and len(page["items"]) == 2 and page["items"][0]["last_error"] == "boom 0"
        async with http.get(f"{url}/admin/api/v1/dlq/evt_1") as resp:
            one = await resp.json()
        assert one["body"] == '{"n": 1}' and one["failures"][0]["error"] == "boom 1" and one["headers"]["content-type"]
        async with http.post(f"{url}/admin/api/v1/dlq/replay", json={"type": "invoice.paid", "dry_run": True}) as resp:
            assert await resp.json() == {"dry_run": True, "matched": 3}
        async with http.get(f"{url}/admin/api/v1/dlq") as resp:
            assert (await resp.json())["total"] == 3  # a dry run moves nothing
        async with http.post(f"{url}/admin/api/v1/dlq/evt_0/replay") as resp:
            assert await resp.json() == {"replayed": 1}
        async with http.post(f"{url}/admin/api/v1/dlq/evt_0/replay") as resp:
            assert resp.status == 404
        async with http.post(f"{url}/admin/api/v1/dlq/purge", json={}) as resp:
            assert resp.status == 400  # an empty filter needs "all": true
        async with http.post(f"{url}/admin/api/v1/dlq/purge", json={"ids": ["evt_1"]}) as resp:
            assert await resp.json() == {"dry_run": False, "purged": 1}
        async with http.post(f"{url}/admin/api/v1/dlq/replay", json={"source": "billing"}) as resp:
            assert await resp.json() == {"dry_run": False, "replayed": 1}
        for bad in ("limit=0", "limit=x", "since=-1", "since=nan", "offset=-3"):
            async with http.get(f"{url}/admin/api/v1/dlq?{bad}") as resp:
                assert resp.status == 400, bad
        for body in (b"not json", b"[1]", json.dumps({"since": "yesterday"}).encode(), json.dumps({"bogus": 1}).encode()):
            async with http.post(f"{url}/admin/api/v1/dlq/replay", data=body) as resp:
                assert resp.status == 400, body


async def test_syncs_status_trigger_reset(tmp_path: Path, testbed: Testbed) -> None:
    async with serving(config(testbed.url), tmp_path, ENV) as (service, url), aiohttp.ClientSession(headers=admin_headers()) as http:
        async with http.get(f"{url}/admin/api/v1/syncs") as resp:
            [job] = (await resp.json())["syncs"]
        assert job["name"] == "customers" and job["upstream"] == "crm" and job["running"] is True
        polls = service.syncs["customers"].polls
        async with http.post(f"{url}/admin/api/v1/syncs/customers/trigger") as resp:
            assert resp.status == 202
        for _ in range(200):
            if service.syncs["customers"].polls > polls:
                break
            await asyncio.sleep(0.05)
        assert service.syncs["customers"].polls > polls
        async with http.post(f"{url}/admin/api/v1/syncs/customers/reset") as resp:
            assert resp.status == 200 and (await resp.json())["name"] == "customers"
        async with http.post(f"{url}/admin/api/v1/syncs/nope/trigger") as resp:
            assert resp.status == 404


async def test_the_effective_config_shows_no_secret(tmp_path: Path, testbed: Testbed) -> None:
    async with serving(config(testbed.url), tmp_path, ENV) as (_, url), aiohttp.ClientSession(headers=admin_headers()) as http:
        async with http.get(f"{url}/admin/api/v1/config") as resp:
            text = await resp.text()
        assert resp.status == 200 and "upstreams" in json.loads(text)
        for secret in (ADMIN_TOKEN, "crm-upstream-secret", SECRET):
            assert secret not in text
        async with http.get(f"{url}/admin/api/v1/upstreams") as resp:
            assert "crm-upstream-secret" not in await resp.text()


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
async def test_a_wrong_method_is_a_405_problem(tmp_path: Path, testbed: Testbed, method: str) -> None:
    async with serving(config(testbed.url), tmp_path, ENV) as (_, url), aiohttp.ClientSession(headers=admin_headers()) as http:
        async with http.request(method, f"{url}/admin/api/v1/upstreams") as resp:
            assert resp.status == 405


async def test_a_replay_job_reports_progress_and_can_be_cancelled(tmp_path: Path, origin: Origin) -> None:
    async with serving(config(origin.url, sync=False), tmp_path, ENV) as (service, url), aiohttp.ClientSession(headers=admin_headers()) as http:
        service.gate.pause("billing")  # replayed events wait in the queue, not in our way
        queue = service.inbox.queue
        for i in range(250):
            message = Message("billing", f"evt_{i}", "invoice.paid", b"{}", {}, time.time())
            await queue.put_dead(message, failures=[Failure(1, time.time(), "boom")])
        async with http.post(f"{url}/admin/api/v1/dlq/replay-jobs", json={"source": "billing"}) as resp:
            assert resp.status == 202
            job = await resp.json()
        assert job["total"] == 250 and job["state"] in ("running", "done")
        for _ in range(400):
            async with http.get(f"{url}/admin/api/v1/dlq/replay-jobs/{job['id']}") as resp:
                job = await resp.json()
            if job["state"] != "running":
                break
            await asyncio.sleep(0.02)
        assert job["state"] == "succeeded" and job["replayed"] == job["done"] == 250
        assert await service.inbox.dlq.count() == 0
        async with http.get(f"{url}/admin/api/v1/dlq/replay-jobs") as resp:
            assert [j["id"] for j in (await resp.json())["jobs"]] == [job["id"]]
        # Cancelling: the job stops after its current page; what it replayed stays replayed.
        for i in range(300):
            message = Message("billing", f"late_{i}", "invoice.paid", b"{}", {}, time.time())
            await queue.put_dead(message, failures=[Failure(1, time.time(), "boom")])
        async with http.post(f"{url}/admin/api/v1/dlq/replay-jobs", json={"source": "billing"}) as resp:
            started = await resp.json()
        async with http.delete(f"{url}/admin/api/v1/dlq/replay-jobs/{started['id']}") as resp:
            cancelled = await resp.json()
        assert cancelled["state"] in ("cancelled", "succeeded")
        assert cancelled["replayed"] + await service.inbox.dlq.count() == 300
        async with http.delete(f"{url}/admin/api/v1/dlq/replay-jobs/nope") as resp:
            assert resp.status == 404
        async with http.post(f"{url}/admin/api/v1/dlq/replay-jobs", json={"dry_run": True}) as resp:
            assert resp.status == 400


async def test_events_handled_here_with_every_attempt(tmp_path: Path, origin: Origin) -> None:
    text = config(origin.url, sync=False).replace("forward = ", "retry = { attempts = 2, backoff = { base = 0.01, cap = 0.02 } }\nforward = ")
    origin.statuses = [500]  # the first forward fails, the second succeeds
    async with serving(text, tmp_path, ENV) as (service, url), aiohttp.ClientSession(headers=admin_headers()) as http:
        await service.inbox.submit("billing", "invoice.paid", {"n": 1}, id="evt_a")
        for _ in range(400):
            async with http.get(f"{url}/admin/api/v1/events", params={"status": "succeeded"}) as resp:
                page = await resp.json()
            if page["items"]:
                break
            await asyncio.sleep(0.02)
        [item] = page["items"]
        assert (item["id"], item["source"], item["attempts"]) == ("evt_a", "billing", 2)
        async with http.get(f"{url}/admin/api/v1/events/evt_a") as resp:
            shown = await resp.json()
        assert json.loads(shown["body"]) == {"n": 1}
        errors = [a["error"] for a in shown["attempt_history"]]
        assert errors[0] is not None and "500" in errors[0] and errors[1] is None
        async with http.get(f"{url}/admin/api/v1/events", params={"status": "failed"}) as resp:
            assert (await resp.json())["items"] == []
        for bad in ("status=nope", "limit=0", "since=x"):
            async with http.get(f"{url}/admin/api/v1/events?{bad}") as resp:
                assert resp.status == 400, bad
        async with http.get(f"{url}/admin/api/v1/events/nope") as resp:
            assert resp.status == 404


async def test_an_upstream_never_called_has_null_figures(tmp_path: Path) -> None:
    name = f"fresh{uuid.uuid4().hex[:8]}"  # metrics are per upstream name, process-wide
    text = f"[server]\nadmin_token = '${{ADMIN}}'\n[store]\nurl = 'sqlite:///{{db}}'\n[upstreams.{name}]\nbase_url = 'http://127.0.0.1:9'\n"
    async with serving(text, tmp_path) as (_, url), aiohttp.ClientSession(headers=admin_headers()) as http:
        async with http.get(f"{url}/admin/api/v1/upstreams/{name}") as resp:
            assert resp.status == 200
            assert (await resp.json())["latency"] == {"p50": None, "p95": None, "p99": None}


async def test_the_dashboard_is_served_at_ui(tmp_path: Path, testbed: Testbed) -> None:
    async with serving(config(testbed.url, sync=False), tmp_path, ENV) as (service, url):
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:  # unsafe: an IP host
            await http.get(f"{url}/proxy/crm/customers/1")
            async with http.get(f"{url}/ui/api/overview") as resp:
                assert resp.status == 401  # no session yet
            async with http.get(f"{url}/ui", allow_redirects=False) as resp:
                assert resp.status == 303 and "/ui/login" in resp.headers["Location"]
            async with http.post(f"{url}/ui/login", data={"token": ADMIN_TOKEN, "next": "/ui"}, allow_redirects=False) as resp:
                assert resp.status == 303
            await service.monitor.tick()
            async with http.get(f"{url}/ui/api/overview") as resp:
                assert resp.status == 200
                overview = await resp.json()
        assert "crm" in json.dumps(overview) and "billing" in json.dumps(overview)
        assert "crm-upstream-secret" not in json.dumps(overview)
    async with serving(config(testbed.url, token=False, sync=False), tmp_path, ENV) as (_, url), aiohttp.ClientSession() as http:
        async with http.get(f"{url}/ui") as resp:
            assert resp.status == 503


def test_the_document_is_valid_openapi_3_1() -> None:
    from openapi_spec_validator import validate

    doc = openapi_document()
    assert doc["openapi"] == "3.1.0"
    validate(doc)  # raises on any violation of the OpenAPI 3.1 schema


@pytest.mark.postgres
async def test_one_process_of_those_sharing_a_postgres_store_runs_a_sync(
    tmp_path: Path, testbed: Testbed, postgres_dsn: str
) -> None:
    name = f"customers{uuid.uuid4().hex[:8]}"  # the lock is per sync name, server-wide
    text = (
        f"[store]\nurl = '{postgres_dsn}'\n[upstreams.crm]\nbase_url = '{testbed.url}'\n"
        f"[syncs.{name}]\nupstream = 'crm'\npath = '/customers'\nhandler = 'json:dumps'\nevery = 3600\n"
    )
    async with serving(text, tmp_path) as (first, _), serving(text, tmp_path) as (second, _):
        for leader in (*first.leaders.values(), *second.leaders.values()):
            leader.retry_every = 0.1
        for _ in range(200):
            if first.leaders[name].leading or second.leaders[name].leading:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # both had several chances to take the lock
        assert [first.leaders[name].leading, second.leaders[name].leading].count(True) == 1
        holder, other = (first, second) if first.leaders[name].leading else (second, first)
        # The holder stops: the other takes over.
        for task in holder._tasks:
            task.cancel()
        for _ in range(200):
            if other.leaders[name].leading:
                break
            await asyncio.sleep(0.05)
        assert other.leaders[name].leading
        assert (await other.sync_status(name))["running"] is True
