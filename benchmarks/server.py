"""server: what interlock.server's middleware cost on a small JSON endpoint.

A Starlette endpoint answering a small JSON object, served by uvicorn (one worker, a child
process), loaded by aiohttp from this process with a closed loop of --concurrency requests in
flight, in rounds that rotate the contenders (medians with min-max):
  - bare: the endpoint alone (the baseline);
  - full-stack: AccessLog, Security, RateLimit (memory), Compression, Conditional, Fields;
  - ratelimit-redis: only RateLimitMiddleware on Redis (one EVALSHA per request);
  - slowapi-redis: slowapi's Limiter on the same Redis, headers on (its documented setup).
The limits never bind (every request is admitted), so every contender does the same work.
Targets (issue 14): full-stack >= 0.7x bare throughput; ratelimit-redis adds <= 0.3 ms p99 over
bare and is >= 2x slowapi-redis' throughput. The load generator shares the 2 cores with the
server: ratios of contenders in the same rounds are the result, not absolute figures.

Then the accuracy run: uvicorn with 4 worker processes behind RateLimit on a redis-server this
script starts on a spare port (so INFO commandstats counts only these checks), a limit of 100
per hour, and 1,000 requests sent at once; it prints how many were admitted (exactly 100 is
the target) and the Redis round trips per check (EVALSHA + EVAL calls / checks: 1 is the
target; the commands the script runs inside Redis are printed beside it). A first race warms
every worker's script cache, then FLUSHDB and CONFIG RESETSTAT, then the measured race.

    .venv/bin/python benchmarks/server.py [--requests 4000] [--rounds 3] [--concurrency 32]
        [--race 1000] [--race-limit 100] [--skip-throughput]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from typing import Any

import _common
import aiohttp

CONTENDERS = ["bare", "full-stack", "ratelimit-redis", "slowapi-redis"]
NEVER = 1_000_000_000
WARMUP = 200


def build(name: str, redis_url: str, prefix: str) -> Any:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from interlock.server import (
        AccessLogMiddleware,
        CompressionMiddleware,
        ConditionalMiddleware,
        FieldsMiddleware,
        Limit,
        RateLimitMiddleware,
        RedisRateLimitBackend,
        SecurityMiddleware,
    )

    async def item(request: Request) -> JSONResponse:
        return JSONResponse({"id": 7, "email": "ann@example.com", "stats": {"total_bookings": 3}})

    if name == "bare":
        return Starlette(routes=[Route("/item", item)])
    if name == "full-stack":
        return Starlette(
            routes=[Route("/item", item)],
            middleware=[
                Middleware(AccessLogMiddleware),
                Middleware(SecurityMiddleware),
                Middleware(RateLimitMiddleware, limits=[Limit("api", NEVER, 60.0)]),
                Middleware(CompressionMiddleware),
                Middleware(ConditionalMiddleware),
                Middleware(FieldsMiddleware),
            ],
        )
    if name == "ratelimit-redis":
        backend = RedisRateLimitBackend(redis_url, namespace=prefix)
        return Starlette(
            routes=[Route("/item", item)],
            middleware=[Middleware(RateLimitMiddleware, limits=[Limit("api", NEVER, 60.0)], backend=backend)],
        )
    from slowapi import Limiter, _rate_limit_exceeded_handler
    from slowapi.errors import RateLimitExceeded
    from slowapi.util import get_remote_address

    limiter = Limiter(
        key_func=get_remote_address, storage_uri=redis_url, headers_enabled=True, key_prefix=prefix
    )

    @limiter.limit(f"{NEVER}/minute")
    async def limited(request: Request) -> JSONResponse:
        return JSONResponse({"id": 7, "email": "ann@example.com", "stats": {"total_bookings": 3}})

    app = Starlette(routes=[Route("/item", limited)])
    app.state.limiter = limiter
    app.add_exception_handler(RateLimitExceeded, _rate_limit_exceeded_handler)  # type: ignore[arg-type]
    return app


def __getattr__(name: str) -> Any:
    """``server:race_app`` for ``uvicorn --workers 4`` (built from the environment on import)."""
    if name != "race_app":
        raise AttributeError(name)
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from interlock.server import Limit, RateLimitMiddleware, RedisRateLimitBackend

    async def hello(request: Any) -> JSONResponse:
        return JSONResponse({"ok": True})

    import logging

    logging.basicConfig(level=logging.WARNING)  # a check that fails open says why
    backend = RedisRateLimitBackend(os.environ["RACE_REDIS"], namespace="race:", timeout=5.0)
    return Starlette(
        routes=[Route("/", hello)],
        middleware=[
            Middleware(
                RateLimitMiddleware,
                limits=[Limit("race", int(os.environ["RACE_LIMIT"]), 3600.0)],
                backend=backend,
                timeout=5.0,
            )
        ],
    )


async def _race(port: int, n: int) -> dict[int, int]:
    codes: dict[int, int] = {}
    connector = aiohttp.TCPConnector(limit=n)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

        async def one() -> None:
            async with http.get(f"http://127.0.0.1:{port}/") as r:
                await r.read()
                codes[r.status] = codes.get(r.status, 0) + 1

        await asyncio.gather(*(one() for _ in range(n)))
    return codes


async def _commandstats(url: str) -> dict[str, int]:
    import redis.asyncio as aioredis

    probe = aioredis.Redis.from_url(url)
    try:
        stats = await probe.info("commandstats")
    finally:
        await probe.aclose()
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}


async def _reset(url: str) -> None:
    import redis.asyncio as aioredis

    probe = aioredis.Redis.from_url(url)
    try:
        await probe.flushdb()
        await probe.config_resetstat()
    finally:
        await probe.aclose()


def accuracy(n: int, limit: int) -> dict[str, Any]:
    """The 4-process race on a private redis-server; see the module docstring."""
    import resource
    import shutil

    if shutil.which("redis-server") is None:
        raise SystemExit("the accuracy run needs redis-server (apt-get install redis-server)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4 * n + 256)), hard))
    redis_port, port = free_port(), free_port()
    url = f"redis://127.0.0.1:{redis_port}/0"
    redis_proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(redis_port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    env = {**os.environ, "RACE_REDIS": url, "RACE_LIMIT": str(limit)}
    here = os.path.dirname(os.path.abspath(__file__))
    server = None
    try:
        wait_for(redis_port)
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--app-dir", here, "server:race_app", "--workers", "4",
             "--port", str(port), "--log-level", "warning", "--no-access-log", "--backlog", str(2 * n)],
            env=env,
        )  # fmt: skip
        wait_for(port)
        warm = asyncio.run(_race(port, n))  # every worker connects and caches the script
        asyncio.run(_reset(url))
        codes = asyncio.run(_race(port, n))
        stats = asyncio.run(_commandstats(url))
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
        redis_proc.terminate()
        redis_proc.wait(30)
    checks = sum(codes.values())
    trips = stats.get("evalsha", 0) + stats.get("eval", 0)
    # HELLO is a connection's handshake (the pools grow to the burst), CONFIG the reset itself.
    inner = {
        k: v for k, v in stats.items() if k not in ("evalsha", "eval", "info", "hello", "config|resetstat")
    }
    return {
        "requests": n,
        "limit": limit,
        "admitted": codes.get(200, 0),
        "refused": codes.get(429, 0),
        "other": {k: v for k, v in codes.items() if k not in (200, 429)},
        "warmup_admitted": warm.get(200, 0),
        "connections_opened": stats.get("hello", 0),
        "round_trips_per_check": trips / checks if checks else float("nan"),
        "inner_commands_per_check": {k: v / checks for k, v in inner.items()} if checks else {},
    }


def serve(name: str, port: int, redis_url: str, prefix: str) -> None:
    import logging

    import uvicorn

    logging.getLogger("interlock.server.access").setLevel(
        logging.WARNING
    )  # a log line per request is not the point
    uvicorn.run(
        build(name, redis_url, prefix), host="127.0.0.1", port=port, log_level="warning", access_log=False
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux ``/proc``): the server's own cost per
    request, which other load on the machine disturbs far less than its throughput."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"server on {port} did not start")


async def load(port: int, requests: int, concurrency: int) -> tuple[float, float, int]:
    """(requests/s, p99 seconds, non-200 answers) of a closed loop."""
    url = f"http://127.0.0.1:{port}/item"
    latencies: list[float] = []
    bad = 0
    remaining = requests
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:
        for _ in range(WARMUP):  # warm-up
            async with http.get(url) as r:
                await r.read()

        async def worker() -> None:
            nonlocal remaining, bad
            while remaining > 0:
                remaining -= 1
                t0 = time.perf_counter()
                async with http.get(url) as r:
                    await r.read()
                    if r.status != 200:
                        bad += 1
                latencies.append(time.perf_counter() - t0)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return requests / elapsed, _common.percentile(latencies, 99), bad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--redis", default=os.environ.get("INTERLOCK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument("--race", type=int, default=1000, help="requests sent at once in the accuracy run")
    parser.add_argument("--race-limit", type=int, default=100)
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--serve", choices=CONTENDERS)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--prefix", default="")
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.redis, args.prefix)
        return
    load_avg = _common.Load()
    race = accuracy(args.race, args.race_limit)
    print(
        f"accuracy: {race['requests']} requests at once, limit {race['limit']}, 4 uvicorn workers on one Redis:"
        f" {race['admitted']} admitted, {race['refused']} refused (429), other {race['other'] or 0}"
        f" -> {'exactly the limit' if race['admitted'] == race['limit'] else 'NOT the limit'}"
    )
    inner = ", ".join(f"{k} {v:.2f}" for k, v in sorted(race["inner_commands_per_check"].items()))
    print(
        f"Redis round trips per check (EVALSHA+EVAL / checks, INFO commandstats): "
        f"{race['round_trips_per_check']:.3f} (target 1); run inside the script: {inner};"
        f" connections opened during the race: {race['connections_opened']}",
        flush=True,
    )
    if args.skip_throughput:
        _common.emit("server", {**load_avg.end(), "accuracy": race})
        return
    results: dict[str, dict[str, list[float]]] = {
        n: {"rps": [], "p99": [], "solo_p99": [], "bad": [], "cpu_us": []} for n in CONTENDERS
    }
    for r, order in enumerate(_common.rotations(CONTENDERS, args.rounds)):
        for name in order:
            port = free_port()
            prefix = f"bench:{uuid.uuid4().hex[:8]}:"
            child = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--serve",
                    name,
                    "--port",
                    str(port),
                    "--redis",
                    args.redis,
                    "--prefix",
                    prefix,
                ]
            )
            try:
                wait_for(port)
                cpu_before = cpu_seconds(child.pid)
                rps, p99, bad = asyncio.run(load(port, args.requests, args.concurrency))
                cpu = (cpu_seconds(child.pid) - cpu_before) / (args.requests + WARMUP)
                _, solo, bad_solo = asyncio.run(load(port, args.requests // 4, 1))
                bad += bad_solo
            finally:
                child.terminate()
                child.wait(30)
            results[name]["rps"].append(rps)
            results[name]["cpu_us"].append(cpu * 1e6)
            results[name]["p99"].append(p99)
            results[name]["solo_p99"].append(solo)
            results[name]["bad"].append(bad)
            print(
                f"round {r + 1} {name}: {rps:,.0f} req/s, p99 {p99 * 1000:.2f} ms,"
                f" server CPU {cpu * 1e6:.0f} us/request, non-200 {bad}",
                flush=True,
            )
    rows = []
    bare_rps = _common.med(results["bare"]["rps"])
    bare_p99 = _common.med(results["bare"]["p99"])
    bare_solo = _common.med(results["bare"]["solo_p99"])
    for name in CONTENDERS:
        rps = _common.med(results[name]["rps"])
        p99 = _common.med(results[name]["p99"])
        rows.append(
            [
                name,
                _common.spread(results[name]["rps"], "{:,.0f}"),
                _common.spread([v * 1000 for v in results[name]["p99"]], "{:.2f}"),
                f"{rps / bare_rps:.2f}x",
                f"{(p99 - bare_p99) * 1000:+.2f}",
                _common.spread([v * 1000 for v in results[name]["solo_p99"]], "{:.2f}"),
                f"{(_common.med(results[name]['solo_p99']) - bare_solo) * 1000:+.2f}",
                int(sum(results[name]["bad"])),
            ]
        )
    print(
        _common.table(
            ["contender", "req/s", "p99 ms", "vs bare", "p99 +ms", "solo p99 ms", "solo +ms", "non-200"], rows
        )
    )

    # The machine's load drifts between rounds (other work shares the 2 cores): the ratio of two
    # contenders within each round, then the median of those, is the figure to trust.
    def per_round(a: str, b: str) -> list[float]:
        return [x / y for x, y in zip(results[a]["rps"], results[b]["rps"], strict=True)]

    full = per_round("full-stack", "bare")
    versus = per_round("ratelimit-redis", "slowapi-redis")
    print(f"full-stack / bare throughput, per round: {_common.spread(full, '{:.2f}')}x (target >= 0.7)")
    print(
        f"ratelimit-redis / slowapi-redis throughput, per round: {_common.spread(versus, '{:.2f}')}x (target >= 2)"
    )
    print(
        f"ratelimit-redis / bare throughput, per round: {_common.spread(per_round('ratelimit-redis', 'bare'), '{:.2f}')}x"
    )
    bare_cpu = _common.med(results["bare"]["cpu_us"])
    for name in CONTENDERS:
        cpu_med = _common.med(results[name]["cpu_us"])
        print(
            f"server CPU per request, {name}: {_common.spread(results[name]['cpu_us'], '{:.0f}')} us"
            f" ({cpu_med / bare_cpu:.2f}x bare, {cpu_med - bare_cpu:+.0f} us)"
        )
    solo_added = (_common.med(results["ratelimit-redis"]["solo_p99"]) - bare_solo) * 1000
    print(f"ratelimit-redis p99 over bare, one request at a time: {solo_added:+.2f} ms (target <= 0.3)")
    _common.emit(
        "server", {**load_avg.end(), "results": results, "requests": args.requests, "accuracy": race}
    )


if __name__ == "__main__":
    main()
