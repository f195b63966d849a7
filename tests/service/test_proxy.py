"""``/proxy/{upstream}/{path}`` over real uvicorn: pass-through, the policies as a caller in
any language sees them (headers and problem details), caller tokens."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest

from interlock.testbed import Testbed
from interlock.testing import TcpProxy

from .conftest import Origin, raw_http, serving


def config(upstream_url: str, extra: str = "", name: str = "crm") -> str:
    return (
        "[store]\nurl = 'sqlite:///{db}'\n"
        f"[upstreams.{name}]\nbase_url = '{upstream_url}'\n"
        "headers = { Authorization = 'Bearer ${CRM_TOKEN}' }\n"
        "retry = { attempts = 3, backoff = { base = 0.01, cap = 0.02 } }\n" + extra
    )


ENV = {"CRM_TOKEN": "upstream-secret"}


async def test_query_body_and_end_to_end_headers_pass_hop_by_hop_do_not(tmp_path: Path, origin: Origin) -> None:
    async with serving(config(origin.url + "/v1"), tmp_path, ENV) as (_, url), aiohttp.ClientSession() as http:
        headers = {
            "X-Custom": "kept",
            "Connection": "keep-alive, X-Hop",
            "X-Hop": "dropped",
            "Keep-Alive": "timeout=5",
            "TE": "trailers",
            "Proxy-Authorization": "Basic cHJveHk6cHc=",
            "Authorization": "Bearer caller-tries-its-own",
            "Content-Type": "application/json",
        }
        async with http.post(f"{url}/proxy/crm/orders/7?expand=items&q=a%20b", data=b'{"a":1}', headers=headers) as resp:
            assert resp.status == 200
            assert resp.headers["X-Interlock-Attempts"] == "1"
            assert resp.headers["X-Interlock-Cache"] == "bypass"
            assert resp.headers.get("X-Request-ID")
    [(method, path, seen, body)] = origin.requests
    assert (method, body) == ("POST", b'{"a":1}')
    assert path.startswith("/v1/orders/7?") and "expand=items" in path and ("q=a%20b" in path or "q=a+b" in path)
    lowered = {k.lower(): v for k, v in seen.items()}
    assert lowered["x-custom"] == "kept" and lowered["content-type"] == "application/json"
    for hop in ("x-hop", "keep-alive", "te", "proxy-authorization"):
        assert hop not in lowered, hop
    assert lowered["authorization"] == "Bearer upstream-secret"  # the config's, never the caller's
    assert lowered["host"] == origin.url.removeprefix("http://")


async def test_a_503_is_retried_and_the_attempts_are_reported(tmp_path: Path, origin: Origin) -> None:
    origin.statuses = [503]
    async with serving(config(origin.url), tmp_path, ENV) as (_, url), aiohttp.ClientSession() as http:
        async with http.get(f"{url}/proxy/crm/customers/1") as resp:
            assert resp.status == 200
            assert resp.headers["X-Interlock-Attempts"] == "2"
    assert len(origin.requests) == 2


async def test_a_cached_route_is_answered_without_an_upstream_call(tmp_path: Path, testbed: Testbed) -> None:
    extra = "cache = { routes = { '/products/{id}' = 600 } }\n"
    async with serving(config(testbed.url, extra), tmp_path, ENV) as (_service, url), aiohttp.ClientSession() as http:
        seen = []
        for _ in range(3):
            async with http.get(f"{url}/proxy/crm/products/5") as resp:
                assert resp.status == 200
                seen.append((resp.headers["X-Interlock-Cache"], resp.headers["X-Interlock-Attempts"], (await resp.json())["id"]))
        assert seen == [("miss", "1", 5), ("hit", "0", 5), ("hit", "0", 5)]
        assert [r.path for r in testbed.recent()].count("/products/5") == 1
        async with http.get(f"{url}/proxy/crm/customers/5") as resp:
            assert resp.headers["X-Interlock-Cache"] == "bypass"


async def test_retries_exhausted_then_breaker_open_are_problem_details(tmp_path: Path, origin: Origin) -> None:
    origin.status = 503
    extra = "breaker = { min_calls = 2, failure_ratio = 0.5, open_for = 30 }\n"
    text = config(origin.url, extra).replace("attempts = 3", "attempts = 2")
    async with serving(text, tmp_path, ENV) as (_, url), aiohttp.ClientSession() as http:
        async with http.get(f"{url}/proxy/crm/customers/1") as resp:
            assert resp.status == 502
            assert resp.content_type == "application/problem+json"
            doc = await resp.json(content_type=None)
            assert doc["type"].endswith("/retries-exhausted") and doc["upstream_status"] == 503 and doc["upstream"] == "crm"
        calls = len(origin.requests)
        async with http.get(f"{url}/proxy/crm/customers/1") as resp:
            assert resp.status == 503
            doc = await resp.json(content_type=None)
            assert doc["type"].endswith("/circuit-open") and doc["status"] == 503
            assert 1 <= int(resp.headers["Retry-After"]) <= 30 and doc["retry_after"] == int(resp.headers["Retry-After"])
        assert len(origin.requests) == calls  # refused without a call
        assert "upstream-secret" not in json.dumps(doc)


async def test_the_local_rate_limit_is_a_429_with_retry_after(tmp_path: Path, origin: Origin) -> None:
    extra = "rate_limit = { per_second = 0.5, burst = 1, max_wait = 0, adaptive = false }\n"
    async with serving(config(origin.url, extra), tmp_path, ENV) as (_, url), aiohttp.ClientSession() as http:
        async with http.get(f"{url}/proxy/crm/a") as resp:
            assert resp.status == 200
        async with http.get(f"{url}/proxy/crm/b") as resp:
            assert resp.status == 429
            doc = await resp.json(content_type=None)
            assert doc["type"].endswith("/rate-limited") and int(resp.headers["Retry-After"]) >= 1
    assert len(origin.requests) == 1


async def test_the_deadline_is_a_504(tmp_path: Path, origin: Origin) -> None:
    origin.delay = 2.0
    extra = "timeout = 0.3\n"
    async with serving(config(origin.url, extra), tmp_path, ENV) as (_, url), aiohttp.ClientSession() as http:
        async with http.get(f"{url}/proxy/crm/slow") as resp:
            assert resp.status == 504
            assert (await resp.json(content_type=None))["type"].endswith("/deadline-exceeded")


async def test_caller_tokens(tmp_path: Path, origin: Origin) -> None:
    extra = "callers = ['${ORDERS_TOKEN}']\n"
    env = {**ENV, "ORDERS_TOKEN": "orders-caller-token"}
    async with serving(config(origin.url, extra), tmp_path, env) as (_, url), aiohttp.ClientSession() as http:
        for auth in (None, "Bearer wrong-token-xyz", "Basic b3JkZXJzOng="):
            headers = {"Authorization": auth} if auth else {}
            async with http.get(f"{url}/proxy/crm/x", headers=headers) as resp:
                assert resp.status == 401
                assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert origin.requests == []
        async with http.get(f"{url}/proxy/crm/x", headers={"Authorization": "Bearer orders-caller-token"}) as resp:
            assert resp.status == 200
    [(_, _, seen, _)] = origin.requests
    assert {k.lower(): v for k, v in seen.items()}["authorization"] == "Bearer upstream-secret"


async def test_bodies_over_the_bound_are_refused(tmp_path: Path, origin: Origin) -> None:
    text = config(origin.url).replace("[store]", "[server]\nmax_body = 1024\n[store]")
    async with serving(text, tmp_path, ENV) as (_, url), aiohttp.ClientSession() as http:
        async with http.post(f"{url}/proxy/crm/x", data=b"x" * 5000) as resp:
            assert resp.status == 413
    assert origin.requests == []


async def test_an_unknown_upstream_is_404_and_health_endpoints_answer(tmp_path: Path, origin: Origin) -> None:
    async with serving(config(origin.url), tmp_path, ENV) as (_, url), aiohttp.ClientSession() as http:
        async with http.get(f"{url}/proxy/nope/x") as resp:
            assert resp.status == 404
            assert "no upstream named 'nope'" in (await resp.json(content_type=None))["detail"]
        async with http.get(f"{url}/healthz") as resp:
            assert resp.status == 200
        async with http.get(f"{url}/readyz") as resp:
            assert resp.status == 200 and (await resp.json())["workers"] == "running"
        await http.get(f"{url}/proxy/crm/x")
        async with http.get(f"{url}/metrics") as resp:
            text = await resp.text()
            assert resp.status == 200 and "interlock_" in text and 'upstream="crm"' in text


@pytest.mark.postgres
async def test_readyz_is_503_while_the_store_does_not_answer(tmp_path: Path, origin: Origin, postgres_proxy: TcpProxy, postgres_dsn: str) -> None:
    text = f"[store]\nurl = '{postgres_proxy.url(postgres_dsn)}'\n[upstreams.crm]\nbase_url = '{origin.url}'\n"
    async with serving(text, tmp_path) as (_, url), aiohttp.ClientSession() as http:
        async with http.get(f"{url}/readyz") as resp:
            assert resp.status == 200
        postgres_proxy.freeze()
        try:
            async with http.get(f"{url}/readyz") as resp:
                assert resp.status == 503
                assert (await resp.json())["store"].startswith("unreachable")
            async with http.get(f"{url}/healthz") as resp:
                assert resp.status == 200  # the process is up
            async with http.get(f"{url}/proxy/crm/x") as resp:
                assert resp.status == 200  # the proxy does not need the store
        finally:
            postgres_proxy.thaw()
        async with http.get(f"{url}/readyz") as resp:
            assert resp.status == 200


async def test_revalidated_and_stale_answers_are_labelled(tmp_path: Path, testbed: Testbed) -> None:
    extra = "cache = { routes = { '/products/{id}' = { ttl = 0.2, stale_if_error = 600 } } }\n"
    async with serving(config(testbed.url, extra), tmp_path, ENV) as (_, url), aiohttp.ClientSession() as http:
        async with http.get(f"{url}/proxy/crm/products/9") as resp:
            assert resp.headers["X-Interlock-Cache"] == "miss"
        await asyncio.sleep(0.3)  # past the TTL: the next read asks the testbed with its ETag
        async with http.get(f"{url}/proxy/crm/products/9") as resp:
            assert resp.status == 200 and (await resp.json())["id"] == 9
            assert (resp.headers["X-Interlock-Cache"], resp.headers["X-Interlock-Attempts"]) == ("revalidated", "1")
        await asyncio.sleep(0.3)
        testbed.start_outage(60)
        async with http.get(f"{url}/proxy/crm/products/9") as resp:
            assert resp.status == 200 and (await resp.json())["id"] == 9
            assert resp.headers["X-Interlock-Cache"] == "stale"


async def test_odd_bytes_in_headers_are_not_a_server_error(tmp_path: Path, origin: Origin) -> None:
    origin.headers = {"X-Name": "Zoë", "X-Tracking": "t-1"}
    async with serving(config(origin.url), tmp_path, ENV) as (_, url):
        head = b"GET /proxy/crm/x HTTP/1.1\r\nHost: i\r\nX-Caller: caf\xe9\r\nConnection: close\r\n\r\n"
        status, headers, _ = await raw_http(url, head)
    assert status == 200
    assert headers["x-tracking"] == "t-1"
    assert headers["x-name"].encode("latin-1") == "Zoë".encode()  # the upstream's bytes, as sent
    [(_, _, seen, _)] = origin.requests
    assert "X-Caller" in seen or "x-caller" in {k.lower() for k in seen}
