"""Fan-out: 10,000 order events, each reading one customer and two products (Zipf-distributed ids,
about 2,000 distinct), against a testbed with 20 ms latency and a 50 req/s quota.

Contenders, each on a fresh quota and fresh counters of the same testbed (in a child process):

- ``naive-sequential``: one httpx call after another, no retry.
- ``naive-gather``: all events at once, httpx, an ``asyncio.Semaphore(50)``, no retry.
- ``diy-stack``: httpx + hishel (cache) + aiolimiter (50/s) + tenacity (retry 429/5xx with
  exponential backoff), 50 at a time: what a careful team assembles today.
- ``interlock``: ``Client`` with ``Cache`` on the item routes, coalescing, ``Batch`` for
  customers and products, ``RateLimit(per_second=50)``.

Naive contenders that cannot finish within ``--cap`` seconds are stopped; their projected wall
time (``wall * events / events_done``) is shown and marked as such.

    .venv/bin/python benchmarks/fanout.py [--events 10000] [--cap 60]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import random
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from _common import emit, table

import interlock
from interlock.testbed import Faults, Latency, RateLimitConfig, TestbedConfig, spawn_testbed

RECORDS = 2000
ZIPF_S = 1.3
QUOTA = RateLimitConfig(limit=50, window=1.0, dialect="x-ratelimit-epoch")
BATCH = 100
Event = tuple[int, int, int]


def make_events(n: int, seed: int = 42) -> list[Event]:
    weights = list(itertools.accumulate(1 / k**ZIPF_S for k in range(1, RECORDS + 1)))
    rng = random.Random(seed)
    ids = range(1, RECORDS + 1)
    customers = rng.choices(ids, cum_weights=weights, k=n)
    products = rng.choices(ids, cum_weights=weights, k=2 * n)
    return [(customers[i], products[2 * i], products[2 * i + 1]) for i in range(n)]


@dataclass
class Result:
    name: str
    events_done: int
    failures: int
    wall: float
    calls: int
    throttled: int
    finished: bool

    def row(self, total: int) -> list[object]:
        projected = self.wall * total / max(1, self.events_done)
        wall = (
            f"{self.wall:.2f}" if self.finished else f"{self.wall:.1f} (stopped; ~{projected:.0f} projected)"
        )
        return [self.name, f"{self.events_done}/{total}", self.calls, self.throttled, self.failures, wall]

    def projected(self, total: int) -> float:
        return self.wall * total / max(1, self.events_done)


Fetch = Callable[[str], Awaitable[bool]]


async def run_events(
    events: list[Event], fetch: Fetch, concurrency: int | None, cap: float
) -> tuple[int, int, bool]:
    """Process events (each: its three reads) with at most ``concurrency`` events at once
    (None: all at once); stop at ``cap`` seconds. Returns (done, failures, finished)."""
    done = failures = 0
    deadline = time.monotonic() + cap

    async def one(event: Event) -> None:
        nonlocal done, failures
        if time.monotonic() > deadline:
            return
        customer, p1, p2 = event
        oks = await asyncio.gather(
            fetch(f"/customers/{customer}"), fetch(f"/products/{p1}"), fetch(f"/products/{p2}")
        )
        done += 1
        failures += not all(oks)

    if concurrency == 1:
        for event in events:
            if time.monotonic() > deadline:
                return done, failures, False
            await one(event)
        return done, failures, True
    gate = asyncio.Semaphore(concurrency or len(events))

    async def gated(event: Event) -> None:
        async with gate:
            await one(event)

    await asyncio.gather(*[gated(e) for e in events])
    return done, failures, done == len(events)


async def naive(url: str, events: list[Event], concurrency: int, cap: float) -> tuple[int, int, bool]:
    import httpx

    async with httpx.AsyncClient(base_url=url, limits=httpx.Limits(max_connections=100)) as http:

        async def fetch(path: str) -> bool:
            try:
                response = await http.get(path)
            except httpx.HTTPError:
                return False
            return response.status_code == 200

        if concurrency == 1:  # sequential: one read at a time, not three gathered
            done = failures = 0
            deadline = time.monotonic() + cap
            for customer, p1, p2 in events:
                if time.monotonic() > deadline:
                    return done, failures, False
                oks = [
                    await fetch(f"/customers/{customer}"),
                    await fetch(f"/products/{p1}"),
                    await fetch(f"/products/{p2}"),
                ]
                done += 1
                failures += not all(oks)
            return done, failures, True
        return await run_events(events, fetch, concurrency, cap)


class LimitedTransport:
    """An httpx transport taking an aiolimiter slot per request that reaches the network."""

    def __init__(self, inner: Any, limiter: Any) -> None:
        self.inner = inner
        self.limiter = limiter

    async def handle_async_request(self, request: Any) -> Any:
        async with self.limiter:
            return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def diy(url: str, events: list[Event], cap: float) -> tuple[int, int, bool]:
    import hishel
    import httpx
    from aiolimiter import AsyncLimiter
    from hishel.httpx import AsyncCacheTransport
    from tenacity import AsyncRetrying, retry_if_result, stop_after_attempt, wait_random_exponential

    limiter = AsyncLimiter(QUOTA.limit, QUOTA.window)
    with tempfile.TemporaryDirectory() as tmp:
        # hishel's default storage (SQLite; the async one needs ``hishel[async]``).
        storage = hishel.AsyncSqliteStorage(database_path=f"{tmp}/cache.db", default_ttl=300)
        # The limiter sits under the cache, so cache hits spend no quota (a limiter around
        # client.get() would throttle hits too: 3 reads per event at 50/s, whatever is cached).
        pool = LimitedTransport(httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=100)), limiter)
        async with httpx.AsyncClient(
            base_url=url, transport=AsyncCacheTransport(pool, storage=storage)
        ) as http:

            async def fetch(path: str) -> bool:
                async for attempt in AsyncRetrying(
                    retry=retry_if_result(lambda r: r is None or r.status_code in (429, 502, 503, 504)),
                    wait=wait_random_exponential(multiplier=0.1, max=5),
                    stop=stop_after_attempt(6),
                    retry_error_callback=lambda state: None,
                ):
                    with attempt:
                        try:
                            response: Any = await http.get(path)
                        except httpx.HTTPError:
                            response = None
                    if not attempt.retry_state.outcome.failed:  # type: ignore[union-attr]
                        attempt.retry_state.set_result(response)
                return response is not None and response.status_code == 200

            return await run_events(events, fetch, 50, cap)


async def with_interlock(url: str, events: list[Event], cap: float) -> tuple[int, int, bool]:
    client = interlock.Client(
        url,
        rate_limit=interlock.RateLimit(per_second=QUOTA.limit / QUOTA.window),
        cache=interlock.Cache(routes={"/customers/{id}": 300, "/products/{id}": 300}),
        batch=[
            interlock.Batch("/customers/{id}", via="/customers", ids_param="ids", max_size=BATCH),
            interlock.Batch("/products/{id}", via="/products", ids_param="ids", max_size=BATCH),
        ],
    )
    async with client:

        async def fetch(path: str) -> bool:
            try:
                return (await client.get(path)).status == 200
            except interlock.errors.CallError:
                return False

        return await run_events(events, fetch, None, cap)


async def main_async(args: argparse.Namespace) -> None:
    events = make_events(args.events)
    distinct_c = len({e[0] for e in events})
    distinct_p = len({p for e in events for p in e[1:]})
    minimum = math.ceil(distinct_c / BATCH) + math.ceil(distinct_p / BATCH)
    config = TestbedConfig(records=RECORDS, faults=Faults(latency=Latency.fixed(20)), rate_limit=QUOTA)
    print(
        f"{args.events} events, {distinct_c} distinct customers + {distinct_p} distinct products "
        f"= {distinct_c + distinct_p}; testbed 20 ms, quota {QUOTA.limit}/{QUOTA.window:g}s; "
        f"minimum list calls ceil(c/{BATCH}) + ceil(p/{BATCH}) = {minimum}"
    )
    contenders: dict[str, Callable[[str], Awaitable[tuple[int, int, bool]]]] = {
        "naive-sequential": lambda url: naive(url, events, 1, args.cap),
        "naive-gather": lambda url: naive(url, events, 50, args.cap),
        "diy-stack": lambda url: diy(url, events, args.diy_cap),
        "interlock": lambda url: with_interlock(url, events, args.diy_cap),
    }
    chosen = args.only.split(",") if args.only else list(contenders)
    results: list[Result] = []
    with spawn_testbed(config) as tb:
        for name in chosen:
            tb.configure(rate_limit=QUOTA)  # a full quota for each contender
            tb.reset_counters()
            start = time.perf_counter()
            done, failures, finished = await contenders[name](tb.url)
            wall = time.perf_counter() - start
            counters = tb.counters()
            results.append(
                Result(name, done, failures, wall, counters.requests, counters.rate_limited, finished)
            )
            print(f"  {name}: {wall:.2f}s, {counters.requests} calls", flush=True)
    print(
        table(
            ["contender", "events", "upstream calls", "429s", "failures", "wall s"],
            [r.row(args.events) for r in results],
        )
    )
    by_name = {r.name: r for r in results}
    summary: dict[str, Any] = {
        "events": args.events,
        "distinct_ids": distinct_c + distinct_p,
        "minimum_calls": minimum,
        "results": {
            r.name: {
                "events_done": r.events_done,
                "calls": r.calls,
                "throttled": r.throttled,
                "failures": r.failures,
                "wall_s": round(r.wall, 3),
                "finished": r.finished,
                "projected_wall_s": round(r.projected(args.events), 1),
            }
            for r in results
        },
    }
    if "interlock" in by_name:
        il = by_name["interlock"]
        summary["interlock_calls_over_minimum"] = round(il.calls / minimum, 3)
        print(
            f"interlock upstream calls / minimum: {il.calls}/{minimum} = {il.calls / minimum:.2f}x (target <= 1.1x)"
        )
        for name, r in by_name.items():
            if name != "interlock":
                ratio = r.projected(args.events) / il.wall
                summary[f"speedup_vs_{name}"] = round(ratio, 1)
                label = "" if r.finished else " (projected)"
                print(f"interlock vs {name}: {ratio:.1f}x faster{label}")
    emit("fanout", summary)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--cap", type=float, default=60.0, help="seconds before a naive contender is stopped")
    parser.add_argument(
        "--diy-cap", type=float, default=600.0, help="seconds before the DIY stack / interlock are stopped"
    )
    parser.add_argument("--only", default="", help="comma-separated contenders to run")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
