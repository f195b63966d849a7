from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from interlock.errors import ConfigError
from interlock.server import (
    Limit,
    MemoryRateLimitBackend,
    RateLimitMiddleware,
    RedisRateLimitBackend,
    client_ip,
)
from interlock.server.ratelimit import _networks
from interlock.testing import FakeClock

from .conftest import PrivateRedis, free_port, serve, wait_for_port

# Where a test is not about the timeout, a generous one: on a loaded machine a healthy Redis
# may take longer than the 0.25 s default, and failing open would turn a 429 into a 200.
SLACK = 5.0


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


def make_app(**options: Any) -> Starlette:
    return Starlette(
        routes=[
            Route("/", hello),
            Route("/a", hello),
            Route("/b", hello),
            Route("/write", hello, methods=["POST"]),
        ],
        middleware=[Middleware(RateLimitMiddleware, **options)],
    )


async def test_admits_the_limit_then_429_problem_details_with_retry_after_and_fields() -> None:
    clock = FakeClock()
    app = make_app(limits=[Limit("api", 3, 60.0)], clock=clock, backend=MemoryRateLimitBackend(clock=clock))
    async with serve(app) as base, httpx.AsyncClient(base_url=base) as http:
        answers = [await http.get("/") for _ in range(4)]
        assert [r.status_code for r in answers] == [200, 200, 200, 429]
        assert answers[0].headers["ratelimit-policy"] == '"api";q=3;w=60'
        assert answers[0].headers["ratelimit"] == '"api";r=2;t=20'
        assert answers[2].headers["ratelimit"] == '"api";r=0;t=60'
        refused = answers[3]
        assert refused.headers["content-type"] == "application/problem+json"
        body = refused.json()
        assert body["type"].endswith("/quota-exceeded") and body["status"] == 429
        assert refused.headers["retry-after"] == "20"
        assert refused.headers["ratelimit"] == '"api";r=0;t=20'
        assert "x-ratelimit-limit" not in refused.headers
        clock.advance(20.0)
        assert (await http.get("/")).status_code == 200


async def test_legacy_headers_are_optional() -> None:
    app = make_app(limits=[Limit("a", 5, 10.0), Limit("b", 2, 10.0)], legacy_headers=True)
    async with serve(app) as base, httpx.AsyncClient(base_url=base) as http:
        r = await http.get("/")
    assert (
        r.headers["x-ratelimit-limit"],
        r.headers["x-ratelimit-remaining"],
        r.headers["x-ratelimit-reset"],
    ) == (
        "2",
        "1",
        "5",
    )
    assert r.headers["ratelimit-policy"] == '"a";q=5;w=10, "b";q=2;w=10'


def api_key(scope: Any) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-api-key":
            return str(value.decode())
    return None


async def test_several_limits_per_key_and_a_refusal_consumes_nothing() -> None:
    app = make_app(limits=[Limit("burst", 2, 3600.0, key=api_key), Limit("daily", 3, 86400.0, key=api_key)])
    async with serve(app) as base, httpx.AsyncClient(base_url=base) as http:
        alice = {"x-api-key": "alice"}
        codes = [(await http.get("/", headers=alice)).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        bob = await http.get("/", headers={"x-api-key": "bob"})
        assert bob.status_code == 200
        assert bob.headers["ratelimit"] == '"burst";r=1;t=1800, "daily";r=2;t=28800'
        # No key: neither limit applies.
        anonymous = [(await http.get("/")).status_code for _ in range(5)]
        assert anonymous == [200] * 5
        # The refused third request left daily at 1 remaining, not 0.
        again = await http.get("/", headers=alice)
        assert again.headers["ratelimit"].endswith('"daily";r=1;t=57600')


async def test_per_route_paths_and_methods() -> None:
    limits = [
        Limit("route", 1, 60.0, per_route=True, paths=("/a", "/b")),
        Limit("writes", 1, 60.0, methods=("post",)),
    ]
    async with serve(make_app(limits=limits)) as base, httpx.AsyncClient(base_url=base) as http:
        assert [(await http.get(p)).status_code for p in ("/a", "/b", "/a", "/b")] == [200, 200, 429, 429]
        assert [(await http.get("/")).status_code for _ in range(3)] == [200] * 3
        assert "ratelimit" not in (await http.get("/")).headers
        assert [(await http.post("/write")).status_code for _ in range(2)] == [200, 429]


async def test_x_forwarded_for_only_from_trusted_proxies() -> None:
    untrusted = make_app(limits=[Limit("ip", 1, 60.0)])
    trusted = make_app(limits=[Limit("ip", 1, 60.0)], trusted_proxies=["127.0.0.0/8"])
    async with serve(untrusted) as base, httpx.AsyncClient(base_url=base) as http:
        first = await http.get("/", headers={"x-forwarded-for": "203.0.113.1"})
        spoofed = await http.get("/", headers={"x-forwarded-for": "203.0.113.2"})
        assert (first.status_code, spoofed.status_code) == (200, 429)
    async with serve(trusted) as base, httpx.AsyncClient(base_url=base) as http:
        a = await http.get("/", headers={"x-forwarded-for": "203.0.113.1"})
        b = await http.get("/", headers={"x-forwarded-for": "203.0.113.2"})
        # The client wrote the left entry; the right-most untrusted hop is the one believed.
        a2 = await http.get("/", headers={"x-forwarded-for": "198.51.100.9, 203.0.113.1"})
        assert (a.status_code, b.status_code, a2.status_code) == (200, 200, 429)


def test_client_ip_walks_forwarded_for_from_the_right() -> None:
    nets = _networks(["10.0.0.0/8", "127.0.0.1"])
    scope = {"client": ("127.0.0.1", 1), "headers": [(b"x-forwarded-for", b"1.1.1.1, 2.2.2.2, 10.1.1.1")]}
    assert client_ip(scope, nets) == "2.2.2.2"
    assert client_ip({"client": ("9.9.9.9", 1), "headers": scope["headers"]}, nets) == "9.9.9.9"
    assert client_ip({"client": ("127.0.0.1", 1), "headers": []}, nets) == "127.0.0.1"


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match=r"Limit\.limit"):
        Limit("x", 0, 1.0)
    with pytest.raises(ConfigError, match=r"Limit\.name"):
        Limit("a b", 1, 1.0)
    with pytest.raises(ConfigError, match="trusted_proxies"):
        RateLimitMiddleware(hello, limits=[Limit("a", 1, 1.0)], trusted_proxies=["nope"])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unique"):
        RateLimitMiddleware(hello, limits=[Limit("a", 1, 1.0), Limit("a", 2, 1.0)])  # type: ignore[arg-type]


async def test_memory_backend_is_bounded() -> None:
    backend = MemoryRateLimitBackend(max_keys=2, clock=FakeClock())
    for key in ("a", "b", "c"):
        assert (await backend.check([key], [(1, 60.0)], 1))[0]
    assert repr(backend) == "<MemoryRateLimitBackend keys=2/2>"
    assert (await backend.check(["a"], [(1, 60.0)], 1))[0]  # "a" was dropped, starts afresh
    assert not (await backend.check(["c"], [(1, 60.0)], 1))[0]


@pytest.mark.redis
async def test_redis_backend_shares_one_limit_between_apps(redis_url: str, redis_prefix: str) -> None:
    backends = [RedisRateLimitBackend(redis_url, namespace=redis_prefix, timeout=SLACK) for _ in range(2)]
    apps = [make_app(limits=[Limit("api", 3, 60.0)], backend=backend, timeout=SLACK) for backend in backends]
    try:
        async with serve(apps[0]) as one, serve(apps[1]) as two, httpx.AsyncClient() as http:
            codes = [(await http.get(base + "/")).status_code for base in (one, two, one, two)]
            assert codes == [200, 200, 200, 429]
            r = await http.get(two + "/")
            assert r.headers["retry-after"] == "20"
    finally:
        for backend in backends:  # their Redis connections (lifespan is off: nobody else closes them)
            await backend.aclose()


async def _calls(client: Any) -> dict[str, int]:
    commands = await client.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): int(v["calls"])
        for name, v in commands.items()
        if name != "cmdstat_info"
    }


def _delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


def _per_check(n: int) -> dict[str, int]:
    """What ``n`` checks of two limits cost: n EVALSHA sent, and inside the script (commandstats
    counts those too) one TIME, a GET and a SET per limit. Any extra round trip would show."""
    return {"evalsha": n, "time": n, "get": 2 * n, "set": 2 * n}


async def test_one_redis_command_per_check_and_recovers_from_script_flush(
    private_redis: PrivateRedis,
) -> None:
    backend = RedisRateLimitBackend(private_redis.url, namespace="t:", timeout=SLACK)
    probe = aioredis.Redis.from_url(private_redis.url)
    app = make_app(
        limits=[Limit("burst", 1000, 1.0), Limit("daily", 10_000, 86400.0)], backend=backend, timeout=SLACK
    )
    async with serve(app) as base, httpx.AsyncClient(base_url=base) as http:
        assert (await http.get("/")).status_code == 200  # connects, loads the script
        before = await _calls(probe)
        for _ in range(20):
            assert (await http.get("/")).status_code == 200
        assert _delta(before, await _calls(probe)) == _per_check(20)

        await probe.script_flush()
        assert (await http.get("/")).status_code == 200  # NOSCRIPT, then EVAL caches it again
        before = await _calls(probe)
        for _ in range(5):
            assert (await http.get("/")).status_code == 200
        assert _delta(before, await _calls(probe)) == _per_check(5)
    await probe.aclose()
    await backend.aclose()


@pytest.mark.parametrize("fail_open", [True, False])
async def test_redis_restarted_mid_test_never_gives_a_5xx(
    private_redis: PrivateRedis, fail_open: bool
) -> None:
    backend = RedisRateLimitBackend(private_redis.url, namespace="t:", timeout=SLACK)
    app = Starlette(routes=[Route("/", hello)])
    app.add_middleware(
        RateLimitMiddleware,
        limits=[Limit("api", 2, 3600.0)],
        backend=backend,
        fail_open=fail_open,
        timeout=SLACK,
    )
    async with serve(app) as base, httpx.AsyncClient(base_url=base) as http:
        assert [(await http.get("/")).status_code for _ in range(3)] == [200, 200, 429]
        private_redis.stop()
        down = [await http.get("/") for _ in range(3)]
        expected = 200 if fail_open else 429
        assert [r.status_code for r in down] == [expected] * 3
        assert all("ratelimit" not in r.headers for r in down)
        private_redis.start()  # same port, empty: the script is gone too
        back = [(await http.get("/")).status_code for _ in range(3)]
        assert back == [200, 200, 429]
    await backend.aclose()


async def test_a_redis_that_never_answers_is_bounded_by_the_timeout(caplog: pytest.LogCaptureFixture) -> None:
    """A listener that accepts and never replies: the check gives up after ``timeout``."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    try:
        backend = RedisRateLimitBackend(f"redis://127.0.0.1:{port}/0", timeout=0.2)
        app = make_app(limits=[Limit("api", 1, 60.0)], backend=backend, timeout=0.2)
        async with serve(app) as base, httpx.AsyncClient(base_url=base, timeout=10.0) as http:
            r = await http.get("/")
            r2 = await http.get("/")
        assert (r.status_code, r2.status_code) == (200, 200)
        assert "rate limit backend" in caplog.text and "admitting" in caplog.text
    finally:
        listener.close()


def _race_env(redis_url: str, prefix: str, limit: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(RACE_REDIS=redis_url, RACE_PREFIX=prefix, RACE_LIMIT=str(limit))
    return env


@pytest.fixture
def race_server(redis_url: str, redis_prefix: str) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--app-dir", str(Path(__file__).parent), "_race_app:app",
         "--workers", "4", "--port", str(port), "--log-level", "warning", "--no-access-log"],
        env=_race_env(redis_url, redis_prefix + uuid.uuid4().hex[:6] + ":", 100),
    )  # fmt: skip
    try:
        wait_for_port(port, 60.0)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.mark.redis
@pytest.mark.slow
async def test_four_worker_processes_on_one_redis_admit_exactly_the_limit(race_server: str) -> None:
    # All 1,000 in flight at once: ~250 concurrent checks per worker, more than redis-py's
    # default pool (100) holds; the backend's blocking pool makes them wait, never fail open.
    limits = httpx.Limits(max_connections=1000)
    async with httpx.AsyncClient(
        base_url=race_server, limits=limits, timeout=httpx.Timeout(30.0, pool=None)
    ) as http:
        answers = await asyncio.gather(*(http.get("/") for _ in range(1000)))
    codes = [r.status_code for r in answers]
    assert codes.count(200) == 100
    assert codes.count(429) == 900


@pytest.mark.redis
async def test_a_huge_limit_on_redis_is_checked_not_an_error(redis_url: str, redis_prefix: str) -> None:
    """An emission interval below the clock's precision (10**9 per minute) once made the script
    send 'SET ... PX 0', an error on every check: the middleware then failed open silently."""
    backend = RedisRateLimitBackend(redis_url, namespace=redis_prefix, timeout=SLACK)
    try:
        for _ in range(3):
            allowed, [verdict] = await backend.check(["huge"], [(10**9, 60.0)], 1)
            assert allowed and verdict.remaining > 10**8
    finally:
        await backend.aclose()


async def test_concurrent_checks_share_a_pipeline_one_evalsha_each_and_survive_script_flush(
    private_redis: PrivateRedis,
) -> None:
    """Checks made in the same tick go out as one pipeline: still exactly one EVALSHA per check
    (commandstats), exact admissions, and NOSCRIPT inside a pipeline is answered by EVAL."""
    backend = RedisRateLimitBackend(private_redis.url, namespace="p:", timeout=SLACK)
    probe = aioredis.Redis.from_url(private_redis.url)
    try:
        await backend.check(["warm"], [(10, 60.0)], 1)  # loads the script
        before = await _calls(probe)
        answers = await asyncio.gather(*(backend.check(["k"], [(150, 3600.0)], 1) for _ in range(200)))
        delta = _delta(before, await _calls(probe))
        assert [allowed for allowed, _ in answers].count(True) == 150
        assert delta["evalsha"] == 200 and "eval" not in delta
        await probe.script_flush()
        before = await _calls(probe)
        again = await asyncio.gather(*(backend.check(["j"], [(30, 3600.0)], 1) for _ in range(50)))
        delta = _delta(before, await _calls(probe))
        assert [allowed for allowed, _ in again].count(True) == 30
        assert delta["evalsha"] == 50 and delta["eval"] == 50  # each NOSCRIPT retried once by EVAL
    finally:
        await probe.aclose()
        await backend.aclose()
