"""Fan-out: N order events (default 10,000), each reading one customer and two products
(Zipf-distributed ids, about 2,000 distinct), against a testbed (child process) with 20 ms latency
and a 50 req/s quota.

Contenders, each on a fresh quota and fresh counters of the same testbed, alternated over
``--rounds`` rounds (A B C D, B C D A, ...); medians with min-max are printed:

- ``naive-sequential``: one httpx call after another, no retry.
- ``naive-gather``: 50 events at a time, httpx, no retry.
- ``diy-stack``: what a competent engineer writes in about 20 lines on top of httpx: a
  DataLoader-style batcher over ``?ids=`` (loads arriving within 5 ms, up to 100 distinct ids,
  become one list call; identical loads share one future and results are memoized, which is
  DataLoader's default cache), every event at once (the same event concurrency as Interlock),
  tenacity retrying 429/5xx and network errors with a Retry-After-aware wait, aiolimiter at the
  share of the quota Interlock uses (49.5/s, burst 45: ``RateLimit``'s 1 % headroom and 10 %
  reserve) under hishel (version printed; its hit count printed).
- ``interlock``: ``Client`` with ``Cache`` on the item routes, coalescing, ``Batch`` for
  customers and products, ``RateLimit(per_second=50)``, every event at once.

The naive contenders are stopped after ``--cap`` seconds; a projected wall time
(``wall * events / events_done``) is shown for them. A speed-up is printed only against a
contender that had no failure in any round; otherwise its failure count is printed instead.

    .venv/bin/python benchmarks/fanout.py [--events 10000] [--rounds 3] [--cap 5]
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

from _common import Load, emit, med, rotations, spread, table

import interlock
from interlock.testbed import Faults, Latency, RateLimitConfig, TestbedConfig, spawn_testbed

RECORDS = 2000
ZIPF_S = 1.3
QUOTA = RateLimitConfig(limit=50, window=1.0, dialect="x-ratelimit-epoch")
BATCH = 100
WINDOW = 0.005  # interlock.Batch's default window
# The share of the quota interlock.RateLimit paces at: refill at (1 - headroom) of the rate,
# a burst of the capacity less its reserve (RateLimit's defaults: headroom 0.01, reserve 0.1).
PACE_RATE = QUOTA.limit / QUOTA.window * (1 - 0.01)
PACE_BURST = QUOTA.capacity - max(1, math.floor(QUOTA.capacity * 0.1))
Event = tuple[int, int, int]


def make_events(n: int, seed: int = 42) -> list[Event]:
    weights = list(itertools.accumulate(1 / k**ZIPF_S for k in range(1, RECORDS + 1)))
    rng = random.Random(seed)
    ids = range(1, RECORDS + 1)
    customers = rng.choices(ids, cum_weights=weights, k=n)
    products = rng.choices(ids, cum_weights=weights, k=2 * n)
    return [(customers[i], products[2 * i], products[2 * i + 1]) for i in range(n)]


@dataclass
class Outcome:
    events_done: int
    failures: int  # events with at least one failed read
    finished: bool
    cache_hits: int | None = None  # hishel's hits, for the DIY stack


@dataclass
class Result:
    events_done: int
    failures: int
    wall: float
    calls: int
    throttled: int
    finished: bool
    cache_hits: int | None
    cpu: float  # this process's CPU seconds (the testbed runs in a child)

    def projected(self, total: int) -> float:
        return self.wall * total / max(1, self.events_done)


Fetch = Callable[[str], Awaitable[bool]]


async def run_events(
    events: list[Event], fetch: Fetch, concurrency: int | None, cap: float
) -> tuple[int, int, bool]:
    """Process events (each: its three reads gathered) with at most ``concurrency`` events at
    once (None: all at once); stop starting events after ``cap`` seconds."""
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

    gate = asyncio.Semaphore(concurrency or len(events))

    async def gated(event: Event) -> None:
        async with gate:
            await one(event)

    await asyncio.gather(*[gated(e) for e in events])
    return done, failures, done == len(events)


async def naive(url: str, events: list[Event], concurrency: int, cap: float) -> Outcome:
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
                    return Outcome(done, failures, False)
                oks = [
                    await fetch(f"/customers/{customer}"),
                    await fetch(f"/products/{p1}"),
                    await fetch(f"/products/{p2}"),
                ]
                done += 1
                failures += not all(oks)
            return Outcome(done, failures, True)
        return Outcome(*await run_events(events, fetch, concurrency, cap))


# --------------------------------------------------------------------------------------------
# the DIY stack: httpx + hishel + aiolimiter + tenacity + a DataLoader-style batcher


class LimitedTransport:
    """An httpx transport taking an aiolimiter slot per request that reaches the network (under
    the cache, so cache hits spend no quota)."""

    def __init__(self, inner: Any, limiter: Any) -> None:
        self.inner = inner
        self.limiter = limiter

    async def handle_async_request(self, request: Any) -> Any:
        async with self.limiter:
            return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class Loader:
    """DataLoader-style: ``load(id)`` calls arriving within ``window`` seconds (or until
    ``max_size`` distinct ids are pending) become one ``load_many(ids)``; identical ids share
    one future, and results are memoized (DataLoader's default cache). A failed id is dropped
    from the memo so a later load tries again."""

    def __init__(self, load_many: Callable[[list[int]], Awaitable[dict[int, Any]]]) -> None:
        self.load_many = load_many
        self.memo: dict[int, asyncio.Future[Any]] = {}
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.timer: asyncio.TimerHandle | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    def load(self, rid: int) -> asyncio.Future[Any]:
        future = self.memo.get(rid)
        if future is None:
            future = self.memo[rid] = self.pending[rid] = asyncio.get_running_loop().create_future()
            if len(self.pending) >= BATCH:
                self.flush()
            elif self.timer is None:
                self.timer = asyncio.get_running_loop().call_later(WINDOW, self.flush)
        return future

    def flush(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        batch, self.pending = self.pending, {}
        task = asyncio.ensure_future(self.run(batch))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def run(self, batch: dict[int, asyncio.Future[Any]]) -> None:
        try:
            found = await self.load_many(list(batch))
        except Exception as exc:
            found, error = {}, exc
        else:
            error = None
        for rid, future in batch.items():
            if rid in found:
                future.set_result(found[rid])
            else:
                self.memo.pop(rid, None)
                future.set_exception(error or KeyError(rid))


def wait_retry_after(fallback: Any) -> Callable[[Any], float]:
    """A tenacity wait: the response's Retry-After (delay-seconds) when there is one, else
    ``fallback`` (exponential backoff with jitter)."""

    def wait(state: Any) -> float:
        outcome = state.outcome
        if outcome is not None and not outcome.failed:
            response = outcome.result()
            value = response.headers.get("retry-after") if response is not None else None
            if value is not None:
                try:
                    return max(0.0, float(value)) + random.uniform(0, 0.05)
                except ValueError:
                    pass
        return float(fallback(state))

    return wait


async def diy(url: str, events: list[Event], cap: float) -> Outcome:
    import hishel
    import httpx
    from aiolimiter import AsyncLimiter
    from hishel.httpx import AsyncCacheTransport
    from tenacity import AsyncRetrying, retry_if_result, stop_after_attempt, wait_random_exponential

    limiter = AsyncLimiter(PACE_BURST, PACE_BURST / PACE_RATE)  # 49.5/s, burst 45
    retrying = {
        "retry": retry_if_result(lambda r: r is None or r.status_code in (429, 502, 503, 504)),
        "wait": wait_retry_after(wait_random_exponential(multiplier=0.1, max=5)),
        "stop": stop_after_attempt(6),
        "retry_error_callback": lambda state: state.outcome.result(),
    }
    hits = 0
    with tempfile.TemporaryDirectory() as tmp:
        storage = hishel.AsyncSqliteStorage(database_path=f"{tmp}/cache.db", default_ttl=300)
        pool = LimitedTransport(httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=100)), limiter)
        async with httpx.AsyncClient(
            base_url=url, transport=AsyncCacheTransport(pool, storage=storage)
        ) as http:

            async def get(path: str, params: dict[str, str]) -> Any:
                nonlocal hits
                async for attempt in AsyncRetrying(**retrying):
                    with attempt:
                        try:
                            response: Any = await http.get(path, params=params)
                        except httpx.HTTPError:
                            response = None
                        if response is not None and getattr(
                            response.extensions.get("caching"), "from_cache", False
                        ):
                            hits += 1
                    if not attempt.retry_state.outcome.failed:  # type: ignore[union-attr]
                        attempt.retry_state.set_result(response)
                return response

            def loader(kind: str) -> Loader:
                async def load_many(ids: list[int]) -> dict[int, Any]:
                    response = await get(f"/{kind}", {"ids": ",".join(map(str, ids))})
                    if response is None or response.status_code != 200:
                        raise RuntimeError(f"/{kind}?ids=: {getattr(response, 'status_code', 'no response')}")
                    return {item["id"]: item for item in response.json()["data"]}

                return Loader(load_many)

            loaders = {"customers": loader("customers"), "products": loader("products")}

            async def fetch(path: str) -> bool:
                _, kind, rid = path.split("/")
                try:
                    await loaders[kind].load(int(rid))
                except Exception:
                    return False
                return True

            done, failures, finished = await run_events(events, fetch, None, cap)
    return Outcome(done, failures, finished, hits)


async def with_interlock(url: str, events: list[Event], cap: float) -> Outcome:
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

        return Outcome(*await run_events(events, fetch, None, cap))


async def measure(tb: Any, run: Callable[[str], Awaitable[Outcome]]) -> Result:
    tb.configure(rate_limit=QUOTA)  # a full quota for each contender
    tb.reset_counters()
    cpu = time.process_time()
    start = time.perf_counter()
    out = await run(tb.url)
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu
    counters = tb.counters()
    return Result(
        out.events_done,
        out.failures,
        wall,
        counters.requests,
        counters.rate_limited,
        out.finished,
        out.cache_hits,
        cpu,
    )


async def main_async(args: argparse.Namespace) -> None:
    from importlib.metadata import version

    load = Load()
    hishel_version = version("hishel")
    events = make_events(args.events)
    distinct_c = len({e[0] for e in events})
    distinct_p = len({p for e in events for p in e[1:]})
    minimum = math.ceil(distinct_c / BATCH) + math.ceil(distinct_p / BATCH)
    config = TestbedConfig(records=RECORDS, faults=Faults(latency=Latency.fixed(20)), rate_limit=QUOTA)
    print(
        f"{args.events} events, {distinct_c} distinct customers + {distinct_p} distinct products "
        f"= {distinct_c + distinct_p}; testbed 20 ms, quota {QUOTA.limit}/{QUOTA.window:g}s; "
        f"minimum list calls ceil(c/{BATCH}) + ceil(p/{BATCH}) = {minimum}; hishel {hishel_version}"
    )
    contenders: dict[str, Callable[[str], Awaitable[Outcome]]] = {
        "naive-sequential": lambda url: naive(url, events, 1, args.cap),
        "naive-gather": lambda url: naive(url, events, 50, args.cap),
        "diy-stack": lambda url: diy(url, events, args.full_cap),
        "interlock": lambda url: with_interlock(url, events, args.full_cap),
    }
    chosen = args.only.split(",") if args.only else list(contenders)
    results: dict[str, list[Result]] = {name: [] for name in chosen}
    with spawn_testbed(config) as tb:
        for round_no, order in enumerate(rotations(chosen, args.rounds), 1):
            for name in order:
                r = await measure(tb, contenders[name])
                results[name].append(r)
                hits = "" if r.cache_hits is None else f", hishel hits {r.cache_hits}"
                print(
                    f"  round {round_no} {name}: {r.wall:.2f}s, {r.events_done} events, {r.calls} calls, "
                    f"{r.throttled} x 429, {r.failures} failed, client CPU {r.cpu:.2f}s{hits}",
                    flush=True,
                )
    rows = []
    for name, rs in results.items():
        finished = all(r.finished for r in rs)
        wall = spread([r.wall for r in rs], "{:.2f}")
        if not finished:
            wall += f" stopped; ~{med([r.projected(args.events) for r in rs]):.0f} projected"
        hits = rs[0].cache_hits is not None
        rows.append(
            [
                name,
                spread([r.events_done for r in rs], "{:.0f}"),
                spread([r.calls for r in rs], "{:.0f}"),
                spread([r.throttled for r in rs], "{:.0f}"),
                spread([r.failures for r in rs], "{:.0f}"),
                spread([r.cache_hits or 0 for r in rs], "{:.0f}") if hits else "-",
                spread([r.cpu for r in rs], "{:.2f}"),
                wall,
            ]
        )
    print()
    print(f"{args.events} events x {args.rounds} rounds (contenders rotated); median (min-max)")
    print(
        table(
            [
                "contender",
                "events done",
                "upstream calls",
                "429s",
                "failed events",
                "hishel hits",
                "client CPU s",
                "wall s",
            ],
            rows,
        )
    )
    summary: dict[str, Any] = {
        "events": args.events,
        "rounds": args.rounds,
        "distinct_ids": distinct_c + distinct_p,
        "minimum_calls": minimum,
        "hishel": hishel_version,
        "results": {
            name: {
                "events_done": [r.events_done for r in rs],
                "calls": [r.calls for r in rs],
                "throttled": [r.throttled for r in rs],
                "failures": [r.failures for r in rs],
                "cache_hits": [r.cache_hits for r in rs],
                "wall_s": [round(r.wall, 3) for r in rs],
                "client_cpu_s": [round(r.cpu, 3) for r in rs],
                "finished": [r.finished for r in rs],
                "median_wall_s": round(med([r.wall for r in rs]), 3),
            }
            for name, rs in results.items()
        },
    }
    if "interlock" in results:
        il = results["interlock"]
        il_wall = med([r.wall for r in il])
        il_calls = med([r.calls for r in il])
        summary["interlock_calls_over_minimum"] = round(il_calls / minimum, 3)
        print(
            f"interlock upstream calls / minimum: {il_calls:.0f}/{minimum} = {il_calls / minimum:.2f}x (target <= 1.1x)"
        )
        if any(r.failures for r in il):
            print(
                f"interlock itself failed events: {spread([r.failures for r in il], '{:.0f}')}: no speed-up printed"
            )
        else:
            for name, rs in results.items():
                if name == "interlock":
                    continue
                failed = [r.failures for r in rs]
                if any(failed):
                    summary[f"speedup_vs_{name}"] = None
                    print(
                        f"interlock vs {name}: no speed-up: {name} failed {spread(failed, '{:.0f}')} of "
                        f"{spread([r.events_done for r in rs], '{:.0f}')} events it ran"
                    )
                    continue
                finished = all(r.finished for r in rs)
                other = med([r.wall if finished else r.projected(args.events) for r in rs])
                ratio = other / il_wall
                summary[f"speedup_vs_{name}"] = round(ratio, 2)
                label = " (projected: it was stopped)" if not finished else ""
                verdict = (
                    f"interlock {ratio:.2f}x faster" if ratio >= 1 else f"{name} {1 / ratio:.2f}x faster"
                )
                print(f"interlock vs {name}: median wall {il_wall:.2f}s vs {other:.2f}s{label}: {verdict}")
    summary.update(load.end())
    emit("fanout", summary)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cap", type=float, default=5.0, help="seconds before a naive contender is stopped")
    parser.add_argument(
        "--full-cap", type=float, default=300.0, help="seconds before the DIY stack / interlock are stopped"
    )
    parser.add_argument("--only", default="", help="comma-separated contenders to run")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
