"""faults: how much work survives a sick upstream, and at what cost to it?

A closed-loop workload (N GETs over C workers) against a testbed in a child process, run
fault-free and then with 20 % 503s plus a 10 s outage starting 1 s in. Printed per contender:
the fraction of operations that ended in success, upstream requests per success (the load the
client put on a failing upstream), and wall time against the fault-free run of the same contender.
  - naive: aiohttp, no retry;
  - interlock.Client: retry with full-jitter backoff and budget, breaker, and callers waiting out
    the open breaker (``Retry(circuit_open=True)``) instead of hammering the dead upstream.

    .venv/bin/python benchmarks/faults.py [--operations 3000] [--concurrency 20] [--outage 10]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass

import _common
import aiohttp

import interlock
from interlock.testbed import Faults, Latency, Outage, TestbedConfig, spawn_testbed


@dataclass
class Run:
    successes: int
    operations: int
    upstream_requests: int
    wall: float


async def closed_loop(get, operations: int, concurrency: int) -> int:  # type: ignore[no-untyped-def]
    ids = iter(range(operations))
    successes = 0

    async def worker() -> None:
        nonlocal successes
        for i in ids:
            ok = await get(f"/customers/{i % 1000 + 1}")
            successes += ok  # not `successes += await ...`: that reads the total before awaiting

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return successes


async def naive(url: str, operations: int, concurrency: int) -> int:
    async with aiohttp.ClientSession() as session:

        async def get(path: str) -> bool:
            try:
                async with session.get(url + path) as resp:
                    await resp.read()
                    return resp.status == 200
            except aiohttp.ClientError:
                return False

        return await closed_loop(get, operations, concurrency)


async def with_interlock(url: str, operations: int, concurrency: int) -> int:
    async with interlock.Client(
        url,
        timeout=interlock.Timeout(connect=1.0, read=5.0, total=30.0),
        retry=interlock.Retry(attempts=12, backoff=interlock.Backoff(base=0.1, cap=4.0), circuit_open=True),
        breaker=interlock.CircuitBreaker(failure_ratio=0.5, min_calls=20, window=10.0, open_for=2.0),
        concurrency=concurrency,
    ) as client:

        async def get(path: str) -> bool:
            try:
                return (await client.get(path)).status == 200
            except interlock.errors.CallError:
                return False

        return await closed_loop(get, operations, concurrency)


def measure(testbed, runner, faults: Faults, operations: int, concurrency: int) -> Run:  # type: ignore[no-untyped-def]
    testbed.configure(faults=faults)  # outage times are re-based to now
    testbed.reset_counters()
    start = time.perf_counter()
    successes = asyncio.run(runner(testbed.url, operations, concurrency))
    wall = time.perf_counter() - start
    return Run(successes, operations, testbed.counters().requests, wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--operations", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--error-rate", type=float, default=0.2)
    parser.add_argument("--outage", type=float, default=10.0)
    args = parser.parse_args()
    latency = Latency("fixed", ms=5)
    clean = Faults(latency=latency)
    sick = Faults(
        latency=latency, error_rates={503: args.error_rate}, outages=[Outage(start=1.0, duration=args.outage)]
    )
    results: dict[str, dict[str, Run]] = {}
    with spawn_testbed(TestbedConfig(records=1000)) as testbed:
        for name, runner in (("naive aiohttp", naive), ("interlock.Client", with_interlock)):
            results[name] = {
                "fault-free": measure(testbed, runner, clean, args.operations, args.concurrency),
                "faulty": measure(testbed, runner, sick, args.operations, args.concurrency),
            }
            print(f"{name}: done", flush=True)
    rows = []
    summary = {}
    for name, runs in results.items():
        base, sick_run = runs["fault-free"], runs["faulty"]
        per_success = sick_run.upstream_requests / max(1, sick_run.successes)
        rows.append(
            (
                name,
                f"{sick_run.successes / sick_run.operations:.1%}",
                f"{per_success:.2f}",
                f"{base.wall:.2f} s",
                f"{sick_run.wall:.2f} s",
                f"{sick_run.wall / base.wall:.1f}x",
            )
        )
        summary[name] = {
            "success_fraction": round(sick_run.successes / sick_run.operations, 4),
            "upstream_requests_per_success": round(per_success, 3),
            "wall_fault_free_s": round(base.wall, 3),
            "wall_faulty_s": round(sick_run.wall, 3),
            "wall_ratio": round(sick_run.wall / base.wall, 2),
        }
    print()
    print(
        f"{args.operations} GETs over {args.concurrency} workers; faulty = {args.error_rate:.0%} 503s "
        f"+ {args.outage:.0f} s outage from t=1 s"
    )
    print(
        _common.table(
            ["contender", "success", "upstream req/success", "wall fault-free", "wall faulty", "ratio"], rows
        )
    )
    _common.emit(
        "faults", {"operations": args.operations, "concurrency": args.concurrency, "results": summary}
    )


if __name__ == "__main__":
    main()
