"""overhead: what does the resilience pipeline cost on the happy path?

50-way concurrent GETs against a fault-free testbed in a child process, in rounds that rotate
the contenders (A B C, B C A, ...: machine noise hits each alike); medians with min-max:
  - bare aiohttp (one session, no policies): the baseline;
  - interlock.Client with every policy of the foundation on (retry + budget, breaker,
    concurrency bound, timeouts and deadline, correlation ids, metrics), and the same with
    coalescing of identical reads (on by default since the work-avoided policies);
  - the same with a rate limit that never binds (the DIY stacks carry aiolimiter);
  - the resilience comparison: aiohttp + tenacity + pybreaker + aiolimiter (+ a semaphore of 64
    and aiohttp timeouts): what a team assembles on the same transport;
  - the transport comparison: bare httpx, and httpx + tenacity + pybreaker + aiolimiter. These
    measure httpx against aiohttp, not resilience: most of their gap is httpx itself.
The judgement is on client CPU per request (this process's CPU time / requests; the testbed
runs in a child): with an upstream that answers at once, throughput is CPU-bound and shares the
machine with the testbed, so CPU per request is the pipeline's cost. Throughput is printed
beside it (target: Client >= 0.90x bare aiohttp).

    .venv/bin/python benchmarks/overhead.py [--requests 3000] [--rounds 3] [--concurrency 50]
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


async def bare_aiohttp(url: str, n: int, c: int, records: int) -> float:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:

        async def get(path: str) -> int:
            async with session.get(url + path) as resp:
                await resp.read()
                return resp.status

        return await _common.drive(get, n, c, records)


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

        return await _common.drive(get, n, c, records)


async def interlock_client(url: str, n: int, c: int, records: int) -> float:
    """The foundation's policies: timeouts and deadline, retry with budget, breaker, concurrency."""
    return await run_client(url, n, c, records, coalesce=False, **FOUNDATION)


async def interlock_coalescing(url: str, n: int, c: int, records: int) -> float:
    """The same plus coalescing of identical reads (on by default)."""
    return await run_client(url, n, c, records, **FOUNDATION)


async def diy_httpx(url: str, n: int, c: int, records: int) -> float:
    """Transport comparison: the same policies as ``diy_aiohttp`` on httpx."""
    import httpx
    import pybreaker
    from aiolimiter import AsyncLimiter
    from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

    breaker = pybreaker.CircuitBreaker(fail_max=20, reset_timeout=10)
    limiter = AsyncLimiter(1_000_000, 1)
    gate = asyncio.Semaphore(64)
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
                    async with gate, limiter:
                        with breaker.calling():
                            response = await client.get(path)
                            return response.status_code
            raise AssertionError("unreachable")

        return await _common.drive(get, n, c, records)


async def bare_httpx(url: str, n: int, c: int, records: int) -> float:
    import httpx

    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(base_url=url, limits=limits) as client:

        async def get(path: str) -> int:
            return (await client.get(path)).status_code

        return await _common.drive(get, n, c, records)


async def diy_aiohttp(url: str, n: int, c: int, records: int) -> float:
    """Resilience comparison: aiohttp + tenacity (retry on network errors, exponential backoff
    with jitter, 4 attempts) + pybreaker (breaker) + aiolimiter (a limiter that never binds,
    for its cost) + a semaphore of 64 (Concurrency's limit) + aiohttp timeouts."""
    import pybreaker
    from aiolimiter import AsyncLimiter
    from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

    breaker = pybreaker.CircuitBreaker(fail_max=20, reset_timeout=10)
    limiter = AsyncLimiter(1_000_000, 1)
    gate = asyncio.Semaphore(64)
    timeout = aiohttp.ClientTimeout(total=15.0, connect=1.0, sock_read=5.0)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100), timeout=timeout) as session:

        async def get(path: str) -> int:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(4),
                wait=wait_random_exponential(multiplier=0.1, max=10),
                retry=retry_if_exception_type((aiohttp.ClientError, asyncio.TimeoutError)),
                reraise=True,
            ):
                with attempt:
                    async with gate, limiter:
                        with breaker.calling():
                            async with session.get(url + path) as resp:
                                await resp.read()
                                return resp.status
            raise AssertionError("unreachable")

        return await _common.drive(get, n, c, records)


async def interlock_rate_limited(url: str, n: int, c: int, records: int) -> float:
    """The foundation plus a rate limit that never binds: the same policies as the DIY stacks."""
    rate = interlock.RateLimit(per_second=1_000_000)
    return await run_client(url, n, c, records, coalesce=False, rate_limit=rate, **FOUNDATION)


BASELINE = "bare aiohttp"
TARGET = "interlock.Client"
RESILIENCE = "aiohttp+tenacity+pybreaker+aiolimiter"
# kind: what the row is compared for
CONTENDERS: dict[str, tuple[str, Callable[[str, int, int, int], Awaitable[float]]]] = {
    BASELINE: ("baseline", bare_aiohttp),
    TARGET: ("target", interlock_client),
    "interlock.Client + coalescing": ("target", interlock_coalescing),
    "interlock.Client + rate limit": ("target", interlock_rate_limited),
    RESILIENCE: ("resilience comparison", diy_aiohttp),
    "bare httpx": ("transport comparison", bare_httpx),
    "httpx+tenacity+pybreaker+aiolimiter": ("transport comparison", diy_httpx),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument(
        "--httpx-requests",
        type=int,
        default=1000,
        help="GETs per run for the httpx rows (about 20x slower: req/s and CPU/request are per request)",
    )
    parser.add_argument("--skip-httpx", action="store_true", help="leave out the transport comparison")
    args = parser.parse_args()
    load = _common.Load()
    records = 1000
    contenders = {k: v for k, v in CONTENDERS.items() if not (args.skip_httpx and "httpx" in k)}
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    cpu_us: dict[str, list[float]] = {name: [] for name in contenders}  # this process's CPU per request
    with spawn_testbed(TestbedConfig(records=records)) as testbed:
        for _, run in contenders.values():  # warm-up: connections, imports, caches
            asyncio.run(run(testbed.url, 500, args.concurrency, records))
        for round_no, order in enumerate(_common.rotations(list(contenders), args.rounds), 1):
            for name in order:
                run = contenders[name][1]
                n = args.httpx_requests if "httpx" in name else args.requests
                cpu_before = time.process_time()
                rates[name].append(asyncio.run(run(testbed.url, n, args.concurrency, records)))
                cpu_us[name].append((time.process_time() - cpu_before) / n * 1e6)
            print(
                f"round {round_no}: "
                + ", ".join(f"{k} {rates[k][-1]:.0f}/s {cpu_us[k][-1]:.0f}us" for k in order),
                flush=True,
            )
    med = _common.med
    baseline, base_cpu = med(rates[BASELINE]), med(cpu_us[BASELINE])
    rows = [
        (
            name,
            kind,
            _common.spread(rates[name], "{:.0f}"),
            f"{med(rates[name]) / baseline:.2f}x",
            _common.spread(cpu_us[name], "{:.0f}"),
            f"{med(cpu_us[name]) / base_cpu:.2f}x",
            f"{med(cpu_us[name]) - base_cpu:+.0f}",
        )
        for name, (kind, _) in contenders.items()
    ]
    print()
    print(
        f"{args.requests} GETs ({args.httpx_requests} for httpx) x {args.rounds} rounds (contenders rotated), {args.concurrency}-way concurrency, "
        "testbed in a child process; median (min-max)"
    )
    print(
        _common.table(
            [
                "contender",
                "compared as",
                "req/s",
                "vs bare",
                "client CPU us/req",
                "CPU vs bare",
                "CPU us vs bare",
            ],
            rows,
        )
    )
    target_cpu = med(cpu_us[TARGET])
    print(
        f"verdict on client CPU per request: {TARGET} {target_cpu:.0f} us vs bare aiohttp {base_cpu:.0f} us "
        f"= {target_cpu / base_cpu:.2f}x (+{target_cpu - base_cpu:.0f} us per request)"
    )
    if RESILIENCE in cpu_us:
        diy_cpu = med(cpu_us[RESILIENCE])
        print(
            f"resilience comparison: {RESILIENCE} {diy_cpu:.0f} us vs bare aiohttp {base_cpu:.0f} us "
            f"= {diy_cpu / base_cpu:.2f}x; {TARGET} / it = {target_cpu / diy_cpu:.2f}x"
        )
    print(f"throughput: {TARGET} {med(rates[TARGET]) / baseline:.2f}x bare aiohttp (target >= 0.90x)")
    _common.emit(
        "overhead",
        {
            "requests": args.requests,
            "httpx_requests": args.httpx_requests,
            "rounds": args.rounds,
            "concurrency": args.concurrency,
            "rps": {name: [round(v, 1) for v in vs] for name, vs in rates.items()},
            "median_rps": {name: round(med(v), 1) for name, v in rates.items()},
            "ratio_to_bare": {name: round(med(v) / baseline, 3) for name, v in rates.items()},
            "client_cpu_us_per_request": {name: round(med(v), 1) for name, v in cpu_us.items()},
            "cpu_ratio_to_bare": {name: round(med(v) / base_cpu, 3) for name, v in cpu_us.items()},
            **load.end(),
        },
    )


if __name__ == "__main__":
    main()
