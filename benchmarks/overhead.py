"""overhead: what does the resilience pipeline cost on the happy path?

50-way concurrent GETs against a fault-free testbed in a child process, in rounds that alternate
the contenders (so machine noise hits each alike); the median req/s of each is compared:
  - bare aiohttp (one session, no policies): the baseline;
  - interlock.Client with every policy of the foundation on (retry + budget, breaker,
    concurrency bound, timeouts and deadline, correlation ids, metrics), and the same with
    coalescing of identical reads (on by default since the work-avoided policies);
  - a DIY stack: httpx + tenacity + pybreaker + aiolimiter.
Target: Client >= 0.90x bare aiohttp. Also printed: this process's CPU time per request, which
is what the pipeline costs when the upstream answers instantly (throughput is CPU-bound then).

    .venv/bin/python benchmarks/overhead.py [--requests 5000] [--rounds 5] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable

import _common
import aiohttp

import interlock
from interlock.testbed import TestbedConfig, spawn_testbed

Getter = Callable[[str], Awaitable[int]]


async def drive(get: Getter, requests: int, concurrency: int, records: int) -> float:
    """Run ``requests`` GETs over ``concurrency`` workers; return requests per second."""
    counter = iter(range(requests))
    failures = 0

    async def worker() -> None:
        nonlocal failures
        for i in counter:
            if await get(f"/customers/{i % records + 1}") != 200:
                failures += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    if failures:
        raise RuntimeError(f"{failures} requests failed: the comparison would be meaningless")
    return requests / elapsed


async def bare_aiohttp(url: str, n: int, c: int, records: int) -> float:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:

        async def get(path: str) -> int:
            async with session.get(url + path) as resp:
                await resp.read()
                return resp.status

        return await drive(get, n, c, records)


FOUNDATION = {
    "timeout": interlock.Timeout(connect=1.0, read=5.0, total=15.0),
    "retry": interlock.Retry(attempts=4),
    "breaker": interlock.CircuitBreaker(failure_ratio=0.5, min_calls=20, window=10.0, open_for=10.0),
    "concurrency": interlock.Concurrency(limit=64, writes=5),
}


async def run_client(url: str, n: int, c: int, records: int, **options: object) -> float:
    async with interlock.Client(url, **options) as client:  # type: ignore[arg-type]

        async def get(path: str) -> int:
            return (await client.get(path)).status

        return await drive(get, n, c, records)


async def interlock_client(url: str, n: int, c: int, records: int) -> float:
    """The foundation's policies: timeouts and deadline, retry with budget, breaker, concurrency."""
    return await run_client(url, n, c, records, coalesce=False, **FOUNDATION)


async def interlock_coalescing(url: str, n: int, c: int, records: int) -> float:
    """The same plus coalescing of identical reads (on by default)."""
    return await run_client(url, n, c, records, **FOUNDATION)


async def diy_stack(url: str, n: int, c: int, records: int) -> float:
    import httpx
    import pybreaker
    from aiolimiter import AsyncLimiter
    from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

    breaker = pybreaker.CircuitBreaker(fail_max=20, reset_timeout=10)
    limiter = AsyncLimiter(1_000_000, 1)
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(
        base_url=url, limits=limits, timeout=httpx.Timeout(5.0, connect=1.0)
    ) as client:

        async def get(path: str) -> int:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(4),
                wait=wait_random_exponential(multiplier=0.1, max=10),
                retry=retry_if_exception_type(httpx.TransportError),
                reraise=True,
            ):
                with attempt:
                    async with limiter:
                        with breaker.calling():
                            response = await client.get(path)
                            return response.status_code
            raise AssertionError("unreachable")

        return await drive(get, n, c, records)


CONTENDERS = {
    "bare aiohttp": bare_aiohttp,
    "interlock.Client": interlock_client,
    "interlock.Client + coalescing": interlock_coalescing,
    "httpx+tenacity+pybreaker+aiolimiter": diy_stack,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--skip-diy", action="store_true")
    args = parser.parse_args()
    records = 1000
    contenders = {k: v for k, v in CONTENDERS.items() if not (args.skip_diy and k.startswith("httpx"))}
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    cpu_us: dict[str, list[float]] = {name: [] for name in contenders}  # this process's CPU per request
    with spawn_testbed(TestbedConfig(records=records)) as testbed:
        for run in contenders.values():  # warm-up: connections, imports, JIT-free caches
            asyncio.run(run(testbed.url, 500, args.concurrency, records))
        for round_no in range(args.rounds):
            for name, run in contenders.items():
                cpu_before = time.process_time()
                rates[name].append(asyncio.run(run(testbed.url, args.requests, args.concurrency, records)))
                cpu_us[name].append((time.process_time() - cpu_before) / args.requests * 1e6)
            print(
                f"round {round_no + 1}: " + ", ".join(f"{k} {v[-1]:.0f}/s" for k, v in rates.items()),
                flush=True,
            )
    baseline = _common.median(rates["bare aiohttp"])
    base_cpu = _common.median(cpu_us["bare aiohttp"])
    rows = [
        (
            name,
            _common.median(v),
            min(v),
            max(v),
            _common.median(v) / baseline,
            f"{_common.median(cpu_us[name]):.1f}",
            f"{_common.median(cpu_us[name]) - base_cpu:+.1f}",
        )
        for name, v in rates.items()
    ]
    print()
    print(
        f"{args.requests} GETs x {args.rounds} rounds, {args.concurrency}-way concurrency, testbed in a child process"
    )
    print(
        _common.table(
            ["contender", "median req/s", "min", "max", "ratio to bare", "client CPU us/req", "vs bare"], rows
        )
    )
    _common.emit(
        "overhead",
        {
            "requests": args.requests,
            "rounds": args.rounds,
            "concurrency": args.concurrency,
            "median_rps": {name: round(_common.median(v), 1) for name, v in rates.items()},
            "ratio_to_bare": {name: round(_common.median(v) / baseline, 3) for name, v in rates.items()},
            "client_cpu_us_per_request": {name: round(_common.median(v), 1) for name, v in cpu_us.items()},
        },
    )


if __name__ == "__main__":
    main()
