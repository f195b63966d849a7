"""``interlock demo``: the same workload against a faulty simulated API, once with plain
sequential aiohttp calls and once through ``interlock.Client``, side by side.

Kept a thin script over public API: it is what a newcomer reads to see how Interlock is used.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from dataclasses import dataclass

import aiohttp

from .. import Backoff, CircuitBreaker, Client, Concurrency, RateLimit, Retry, Timeout
from .._text import render_table
from ..errors import CallError
from ..testbed import Faults, Latency, RateLimitConfig, Testbed, TestbedConfig

HELP = "run a workload against a faulty simulated API, naive vs Interlock"


@dataclass
class Phase:
    """What one contender did: calls sent, throttled, failed, retried, wall time, writes applied twice."""
    name: str
    sent: int = 0
    throttled: int = 0
    failures: int = 0
    retries: int = 0
    wall: float = 0.0
    double_applied: int = 0


def workload(seed: int, reads: int, writes: int) -> list[tuple[str, str]]:
    """The demo's calls, the same for every contender: ``reads`` GETs and ``writes`` PUTs, shuffled."""
    rng = random.Random(seed)
    calls = [("GET", f"/customers/{rng.randint(1, 1000)}") for _ in range(reads)]
    calls += [("PUT", f"/orders/{order}") for order in rng.sample(range(1, 1001), writes)]
    rng.shuffle(calls)
    return calls


async def outage_later(tb: Testbed, after: float, duration: float) -> None:
    """Start the testbed's outage after ``after`` seconds, for ``duration`` seconds."""
    await asyncio.sleep(after)
    tb.start_outage(duration)


async def run_naive(tb: Testbed, calls: list[tuple[str, str]]) -> Phase:
    """Send the calls one after another with plain aiohttp, counting what failed."""
    phase = Phase("naive aiohttp")
    async with aiohttp.ClientSession() as session:
        for method, path in calls:
            body = {"note": "demo"} if method == "PUT" else None
            try:
                async with session.request(method, tb.url + path, json=body) as resp:
                    await resp.read()
                    if resp.status >= 400:
                        phase.failures += 1
            except aiohttp.ClientError:
                phase.failures += 1
    return phase


async def run_interlock(tb: Testbed, calls: list[tuple[str, str]]) -> Phase:
    """Send the calls through ``interlock.Client`` and count what it saw."""
    phase = Phase("interlock.Client")
    client = Client(
        tb.url,
        name="demo-crm",
        concurrency=Concurrency(limit=8, writes=5),
        timeout=Timeout(connect=1.0, read=5.0, total=20.0),
        retry=Retry(attempts=8, backoff=Backoff(base=0.2, cap=2.0), circuit_open=True),
        breaker=CircuitBreaker(failure_ratio=0.5, min_calls=20, window=5.0, open_for=1.0),
        rate_limit=RateLimit(adaptive=True),  # learns the quota from the upstream's headers
    )

    async def one(method: str, path: str) -> None:
        try:
            body = {"note": "demo"} if method == "PUT" else None
            response = await client.request(method, path, json=body)
            if response.status >= 400:
                phase.failures += 1
        except CallError:
            phase.failures += 1

    async with client:
        await asyncio.gather(*(one(method, path) for method, path in calls))
        phase.retries = client.stats()["retries"]
    return phase


async def measure(
    tb: Testbed, runner: str, calls: list[tuple[str, str]], outage: tuple[float, float]
) -> Phase:
    """Run one contender against a testbed and return its phase."""
    tb.reset_counters()
    trigger = asyncio.create_task(outage_later(tb, *outage))
    start = time.perf_counter()
    phase = await (run_naive(tb, calls) if runner == "naive" else run_interlock(tb, calls))
    phase.wall = time.perf_counter() - start
    await trigger
    counters = tb.counters
    phase.sent = counters.requests
    phase.throttled = counters.rate_limited
    phase.double_applied = sum(1 for n in counters.applied_writes.values() if n > 1)
    return phase


def render(phases: list[Phase], calls: int) -> str:
    """The side-by-side table of the phases."""
    rows = [
        ("operations", *(calls for _ in phases)),
        ("requests sent upstream", *(p.sent for p in phases)),
        ("429s received", *(p.throttled for p in phases)),
        ("retries", *(p.retries for p in phases)),
        ("failures left", *(p.failures for p in phases)),
        ("writes applied twice", *(p.double_applied for p in phases)),
        ("wall time", *(f"{p.wall:.1f} s" for p in phases)),
    ]
    return render_table(["", *(p.name for p in phases)], rows)


async def main_async(args: argparse.Namespace) -> int:
    """Run both contenders and print what each left behind; the exit status."""
    config = TestbedConfig(
        seed=args.seed,
        records=1000,
        faults=Faults(
            latency=Latency("lognormal", median_ms=15, sigma=0.5),
            error_rates={503: args.error_rate},
        ),
        rate_limit=RateLimitConfig(
            algorithm="token_bucket", limit=args.rate_limit, window=1.0, dialect="x-ratelimit-delta"
        ),
    )
    calls = workload(args.seed, args.reads, args.writes)
    print(
        f"Simulated upstream: ~15 ms latency, {args.error_rate:.0%} 503s, a {args.outage:.1f} s outage "
        f"1 s in, {args.rate_limit} requests/s quota. Workload: {args.reads} GETs + {args.writes} PUTs.\n"
    )
    async with Testbed(config) as tb:
        phases = [await measure(tb, runner, calls, (1.0, args.outage)) for runner in ("naive", "interlock")]
    print(render(phases, len(calls)))
    naive, ours = phases
    print(
        f"\nInterlock completed {len(calls) - ours.failures}/{len(calls)} operations, the naive client "
        f"{len(calls) - naive.failures}/{len(calls)}; naive calls that fail return at once, which is "
        "all its shorter wall time buys."
    )
    return 0


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the demo's arguments to its parser."""
    parser.add_argument("--reads", type=int, default=300, help="GETs in the workload (default 300)")
    parser.add_argument("--writes", type=int, default=40, help="idempotent PUTs in the workload (default 40)")
    parser.add_argument("--error-rate", type=float, default=0.1, help="fraction of 503s (default 0.1)")
    parser.add_argument("--outage", type=float, default=1.5, help="outage length in seconds (default 1.5)")
    parser.add_argument("--rate-limit", type=int, default=100, help="upstream quota per second (default 100)")
    parser.add_argument("--seed", type=int, default=7)


def run(args: argparse.Namespace) -> int:
    """Run the demo; the exit status."""
    return asyncio.run(main_async(args))
