"""faults: how much work survives a sick upstream, at what cost to it, and how fast it recovers.

The testbed (child process, 5 ms latency) answers 20 % of requests with 503 throughout and has an
outage (every request 503, with ``Retry-After: --outage-retry-after`` seconds, default 1, as a
load balancer or maintenance page says when to come back). Two scenarios, each contender rotated
over ``--rounds`` rounds (A B C, B C A, ...), medians with min-max:

1. **Interactive, open loop**: ``--rate`` GETs per second for ``--seconds`` (default 100/s for
   10 s), each started at its scheduled time whatever the earlier ones are doing, outage from
   t=``--outage-start`` for ``--outage`` seconds (default 2 s + 5 s), so every contender meets
   the whole outage. A call succeeds if it has a 200 within ``--deadline`` seconds (default 3 s)
   of its scheduled time; each contender's own timeout is that deadline. Contenders:
     - naive: aiohttp, one attempt;
     - retrying baseline: aiohttp + tenacity (retry 429/5xx and network errors, Retry-After when
       given, else exponential backoff with full jitter, base 0.1 s, cap 4 s, until the
       deadline) + pybreaker (opens after 10 consecutive failures, half-opens after 2 s; calls
       refused by the open breaker are retried with the same backoff): what a careful team
       assembles;
     - interlock.Client: retry with full-jitter backoff (the same base and cap) and budget,
       breaker (50 % failures over >= 20 calls or 20 in a row, open for 2 s or the upstream's
       Retry-After), callers waiting out the open breaker (``Retry(circuit_open=True)``, woken
       when a probe succeeds), ``Timeout(total=deadline)``.
2. **Background batch, closed loop**: ``--batch`` GETs by ``--workers`` workers (a sync, a
   replay), a long ``--batch-deadline`` (default 120 s), outage from ``--batch-outage-start`` s
   after the batch starts for ``--batch-outage`` s (default 0.3 s + 10 s: every contender is in
   the middle of its batch when it begins). Each contender also runs the batch fault-free (no
   503s, no outage) in the same round. Printed: successes (target 100 %), wall time, and wall
   time / (fault-free time + outage) (target <= 1.25). Contenders: the retrying baseline with
   the long deadline, and ``interlock.Client(url, profile="background")`` as shipped (8
   attempts backing off to 30 s, callers waiting out the open breaker, a 300 s deadline, the
   default breaker: open 10 s, or the upstream's Retry-After).

Printed for the open loop: successes within the deadline (share of the calls offered), the same
for calls scheduled during the outage, upstream requests per success (the load put on a failing
upstream), and requests that hit the outage.

    .venv/bin/python benchmarks/faults.py [--rate 100] [--seconds 10] [--outage 5] [--rounds 3]
        [--batch 5000] [--workers 50] [--batch-outage 10] [--skip-open-loop | --skip-batch]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import _common
import aiohttp

import interlock
from interlock.testbed import Faults, Latency, Outage, TestbedConfig, spawn_testbed

RETRYABLE = (429, 502, 503, 504)
Get = Callable[[str], Awaitable[bool]]
Contender = Callable[[str, float, Callable[[Get], Awaitable[None]]], Awaitable[None]]


@dataclass
class Run:
    offered: int
    ok: int  # 200 within the deadline
    outage_offered: int
    outage_ok: int
    upstream_requests: int
    outage_hits: int
    p99_ok: float
    timeline: list[tuple[int, int]]  # per second of arrivals: (offered, ok)


async def naive(url: str, deadline: float, drive: Callable[[Get], Awaitable[None]]) -> None:
    timeout = aiohttp.ClientTimeout(total=deadline)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def get(path: str) -> bool:
            try:
                async with session.get(url + path) as resp:
                    await resp.read()
                    return resp.status == 200
            except (TimeoutError, aiohttp.ClientError):
                return False

        await drive(get)


class Retryable(Exception):
    def __init__(self, status: int, retry_after: str | None) -> None:
        super().__init__(f"HTTP {status}")
        self.retry_after = retry_after


async def retrying(url: str, deadline: float, drive: Callable[[Get], Awaitable[None]]) -> None:
    import pybreaker
    from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_random_exponential

    breaker = pybreaker.CircuitBreaker(fail_max=10, reset_timeout=2.0)
    backoff = wait_random_exponential(multiplier=0.1, max=4.0)

    def wait(state: Any) -> float:  # Retry-After when the upstream says, else backoff
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, Retryable) and exc.retry_after is not None:
            try:
                return float(exc.retry_after) + random.uniform(0, 0.05)
            except ValueError:
                pass
        return float(backoff(state))

    timeout = aiohttp.ClientTimeout(total=deadline)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def attempt(path: str) -> bool:
            with breaker.calling():  # raises CircuitBreakerError while open
                async with session.get(url + path) as resp:
                    await resp.read()
                    if resp.status in RETRYABLE:
                        raise Retryable(resp.status, resp.headers.get("Retry-After"))
                    return resp.status == 200

        async def get(path: str) -> bool:
            try:
                async with asyncio.timeout(deadline):
                    async for attempt_ in AsyncRetrying(
                        retry=retry_if_exception_type(
                            (
                                Retryable,
                                pybreaker.CircuitBreakerError,
                                aiohttp.ClientError,
                                asyncio.TimeoutError,
                            )
                        ),
                        wait=wait,
                        stop=stop_after_delay(deadline),
                        reraise=True,
                    ):
                        with attempt_:
                            return await attempt(path)
            except Exception:
                return False
            return False

        await drive(get)


async def with_interlock(url: str, deadline: float, drive: Callable[[Get], Awaitable[None]]) -> None:
    async with interlock.Client(
        url,
        timeout=interlock.Timeout(connect=1.0, read=deadline, total=deadline),
        retry=interlock.Retry(attempts=12, backoff=interlock.Backoff(base=0.1, cap=4.0), circuit_open=True),
        breaker=interlock.CircuitBreaker(failure_ratio=0.5, min_calls=20, window=10.0, open_for=2.0),
    ) as client:
        await drive(_getter(client))


BACKGROUND = 'Client(url, profile="background"): ' + interlock.client.PROFILES["background"].describe()


async def with_interlock_background(
    url: str, deadline: float, drive: Callable[[Get], Awaitable[None]]
) -> None:
    """A background job's client: the ``background`` profile as shipped, nothing else set."""
    async with interlock.Client(url, profile="background") as client:
        await drive(_getter(client))


def _getter(client: interlock.Client) -> Get:
    async def get(path: str) -> bool:
        try:
            return (await client.get(path)).status == 200
        except interlock.errors.CallError:
            return False

    return get


CONTENDERS: dict[str, Contender] = {
    "naive aiohttp": naive,
    "aiohttp+tenacity+pybreaker": retrying,
    "interlock.Client": with_interlock,
}
BATCH_CONTENDERS: dict[str, Contender] = {
    "aiohttp+tenacity+pybreaker": retrying,
    "interlock.Client (background)": with_interlock_background,
}


@dataclass
class Batch:
    calls: int
    ok: int
    wall: float
    upstream_requests: int
    outage_hits: int


def run_batch(testbed: Any, contender: Contender, faults: Faults, args: argparse.Namespace) -> Batch:
    """``--batch`` GETs by ``--workers`` workers, timed from the first call to the last answer."""
    outcomes: list[bool] = []
    wall = 0.0

    async def main() -> None:
        nonlocal wall

        async def drive(get: Get) -> None:
            nonlocal wall
            testbed.configure(faults=faults)  # the outage is timed from this instant
            testbed.reset_counters()
            todo = iter(range(args.batch))
            start = time.perf_counter()

            async def worker() -> None:
                for i in todo:
                    outcomes.append(await get(f"/customers/{i % 1000 + 1}"))

            await asyncio.gather(*[worker() for _ in range(args.workers)])
            wall = time.perf_counter() - start

        await contender(testbed.url, args.batch_deadline, drive)

    asyncio.run(main())
    counters = testbed.counters()
    return Batch(len(outcomes), sum(outcomes), wall, counters.requests, counters.outage_rejections)


def batch_section(testbed: Any, args: argparse.Namespace) -> dict[str, Any]:
    faulty = Faults(
        latency=Latency("fixed", ms=5),
        error_rates={503: args.error_rate},
        outages=[Outage(start=args.batch_outage_start, duration=args.batch_outage)],
        outage_retry_after=args.outage_retry_after,
    )
    clean = Faults(latency=Latency("fixed", ms=5))
    runs: dict[str, list[tuple[Batch, Batch]]] = {name: [] for name in BATCH_CONTENDERS}
    for round_no, order in enumerate(_common.rotations(list(BATCH_CONTENDERS), args.rounds), 1):
        for name in order:
            free = run_batch(testbed, BATCH_CONTENDERS[name], clean, args)
            sick = run_batch(testbed, BATCH_CONTENDERS[name], faulty, args)
            runs[name].append((free, sick))
            ratio = sick.wall / (free.wall + args.batch_outage)
            note = "" if free.wall > args.batch_outage_start else " (finished before the outage began!)"
            print(
                f"round {round_no} batch {name}: fault-free {free.ok}/{free.calls} in {free.wall:.2f}s{note}; "
                f"faulty {sick.ok}/{sick.calls} in {sick.wall:.2f}s = {ratio:.2f}x (fault-free + outage), "
                f"{sick.upstream_requests} upstream requests, {sick.outage_hits} into the outage",
                flush=True,
            )
    spread = _common.spread
    rows = []
    summary: dict[str, Any] = {}
    for name, pairs in runs.items():
        ratios = [sick.wall / (free.wall + args.batch_outage) for free, sick in pairs]
        rows.append(
            (
                name,
                spread([100 * sick.ok / sick.calls for _, sick in pairs], "{:.2f}", "%"),
                spread([free.wall for free, _ in pairs], "{:.2f}"),
                spread([sick.wall for _, sick in pairs], "{:.2f}"),
                spread(ratios, "{:.2f}", "x"),
                spread([sick.upstream_requests / max(1, sick.ok) for _, sick in pairs], "{:.2f}"),
                spread([sick.outage_hits for _, sick in pairs], "{:.0f}"),
            )
        )
        summary[name] = {
            "success_share": [round(sick.ok / sick.calls, 5) for _, sick in pairs],
            "fault_free_wall": [round(free.wall, 3) for free, _ in pairs],
            "wall": [round(sick.wall, 3) for _, sick in pairs],
            "ratio_to_fault_free_plus_outage": [round(r, 3) for r in ratios],
            "outage_hits": [sick.outage_hits for _, sick in pairs],
        }
    print()
    print(
        f"background batch: {args.batch} GETs by {args.workers} workers, deadline {args.batch_deadline:g}s, "
        f"{args.error_rate:.0%} 503s + outage {args.batch_outage_start:g}-"
        f"{args.batch_outage_start + args.batch_outage:g}s after the start (Retry-After: "
        f"{args.outage_retry_after:g}) x {args.rounds} rounds; median (min-max)"
    )
    print(f"interlock.Client (background): {BACKGROUND}")
    print(
        _common.table(
            [
                "contender",
                "success",
                "fault-free s",
                "with faults s",
                "/ (fault-free + outage)",
                "upstream req/success",
                "requests into outage",
            ],
            rows,
        )
    )
    print(
        "targets for interlock.Client (background): success 100 %, wall time <= 1.25x (fault-free + outage)"
    )
    return summary


def measure(testbed: Any, contender: Contender, faults: Faults, args: argparse.Namespace) -> Run:
    outage_from, outage_to = args.outage_start, args.outage_start + args.outage
    arrivals: dict[int, float] = {}  # call -> scheduled time relative to the outage's origin
    outcomes: dict[int, tuple[bool, float]] = {}

    async def main() -> None:
        loop = asyncio.get_running_loop()

        async def drive(get: Get) -> None:
            # Here, once the contender is set up: the outage is timed from this instant.
            testbed.configure(faults=faults)  # outage times are re-based to now
            testbed.reset_counters()
            origin = loop.time()

            async def send(i: int) -> bool:
                at = loop.time()
                arrivals[i] = at - origin
                ok = await get(f"/customers/{i % 1000 + 1}")
                outcomes[i] = (ok, loop.time() - at)
                return ok

            await _common.open_loop(send, args.rate, args.seconds, drain=args.deadline + 1.0)

        await contender(testbed.url, args.deadline, drive)

    asyncio.run(main())
    counters = testbed.counters()

    def good(i: int) -> bool:
        ok, latency = outcomes.get(i, (False, float("inf")))
        return ok and latency <= args.deadline

    in_outage = [i for i, at in arrivals.items() if outage_from <= at < outage_to]
    ok_latencies = [outcomes[i][1] for i in arrivals if good(i)]
    return Run(
        offered=len(arrivals),
        ok=sum(good(i) for i in arrivals),
        outage_offered=len(in_outage),
        outage_ok=sum(good(i) for i in in_outage),
        upstream_requests=counters.requests,
        outage_hits=counters.outage_rejections,
        p99_ok=_common.percentile(ok_latencies, 99),
        timeline=[
            (
                sum(1 for at in arrivals.values() if s <= at < s + 1),
                sum(good(i) for i, at in arrivals.items() if s <= at < s + 1),
            )
            for s in range(int(args.seconds + 0.999))
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0, help="arrivals per second (open loop)")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long arrivals go on")
    parser.add_argument("--deadline", type=float, default=3.0, help="seconds a call has to succeed")
    parser.add_argument("--error-rate", type=float, default=0.2)
    parser.add_argument("--outage-start", type=float, default=2.0)
    parser.add_argument("--outage", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeline", action="store_true", help="print successes per second of arrival")
    parser.add_argument(
        "--outage-retry-after", type=float, default=1.0, help="Retry-After seconds the outage's 503s carry"
    )
    parser.add_argument("--batch", type=int, default=5000, help="calls in the background batch")
    parser.add_argument("--workers", type=int, default=50, help="workers of the background batch")
    parser.add_argument("--batch-deadline", type=float, default=120.0)
    parser.add_argument("--batch-outage-start", type=float, default=0.3)
    parser.add_argument("--batch-outage", type=float, default=10.0)
    parser.add_argument("--skip-open-loop", action="store_true")
    parser.add_argument("--skip-batch", action="store_true")
    args = parser.parse_args()
    if args.outage_start + args.outage > args.seconds:
        parser.error("the arrivals must cover the whole outage: --seconds >= --outage-start + --outage")
    load = _common.Load()
    with spawn_testbed(TestbedConfig(records=1000)) as testbed:
        summary = {} if args.skip_open_loop else open_loop_section(testbed, args)
        batch = {} if args.skip_batch else batch_section(testbed, args)
    _common.emit(
        "faults",
        {
            "rate": args.rate,
            "seconds": args.seconds,
            "deadline": args.deadline,
            "outage": [args.outage_start, args.outage],
            "outage_retry_after": args.outage_retry_after,
            "rounds": args.rounds,
            "results": summary,
            "batch": {
                "calls": args.batch,
                "workers": args.workers,
                "deadline": args.batch_deadline,
                "outage": [args.batch_outage_start, args.batch_outage],
                "results": batch,
            },
            **load.end(),
        },
    )


def open_loop_section(testbed: Any, args: argparse.Namespace) -> dict[str, Any]:
    sick = Faults(
        latency=Latency("fixed", ms=5),
        error_rates={503: args.error_rate},
        outages=[Outage(start=args.outage_start, duration=args.outage)],
        outage_retry_after=args.outage_retry_after,
    )
    runs: dict[str, list[Run]] = {name: [] for name in CONTENDERS}
    for round_no, order in enumerate(_common.rotations(list(CONTENDERS), args.rounds), 1):
        for name in order:
            start = time.perf_counter()
            r = measure(testbed, CONTENDERS[name], sick, args)
            runs[name].append(r)
            print(
                f"round {round_no} {name}: {r.ok}/{r.offered} ok within {args.deadline:g}s, "
                f"during outage {r.outage_ok}/{r.outage_offered}, {r.upstream_requests} upstream requests, "
                f"{r.outage_hits} into the outage ({time.perf_counter() - start:.1f}s)",
                flush=True,
            )
            if args.timeline:
                print("    ok per second of arrival: " + " ".join(f"{ok}/{n}" for n, ok in r.timeline))
    spread = _common.spread
    rows = []
    summary: dict[str, Any] = {}
    for name, rs in runs.items():
        share = [r.ok / r.offered for r in rs]
        outage_share = [r.outage_ok / max(1, r.outage_offered) for r in rs]
        per_success = [r.upstream_requests / max(1, r.ok) for r in rs]
        rows.append(
            (
                name,
                spread([100 * s for s in share], "{:.1f}", "%"),
                spread([100 * s for s in outage_share], "{:.1f}", "%"),
                spread(per_success, "{:.2f}"),
                spread([r.outage_hits for r in rs], "{:.0f}"),
                spread([1000 * r.p99_ok for r in rs], "{:.0f}"),
            )
        )
        summary[name] = {
            "success_share": [round(s, 4) for s in share],
            "outage_success_share": [round(s, 4) for s in outage_share],
            "upstream_requests_per_success": [round(p, 3) for p in per_success],
            "outage_hits": [r.outage_hits for r in rs],
            "offered": [r.offered for r in rs],
        }
    print()
    print(
        f"open loop {args.rate:g}/s for {args.seconds:g}s x {args.rounds} rounds (contenders rotated); "
        f"{args.error_rate:.0%} 503s + outage {args.outage_start:g}-{args.outage_start + args.outage:g}s "
        f"(Retry-After: {args.outage_retry_after:g}); "
        f"success = 200 within {args.deadline:g}s of the scheduled time; median (min-max)"
    )
    print(
        _common.table(
            [
                "contender",
                "success",
                "success, arrivals in outage",
                "upstream req/success",
                "requests into outage",
                "p99 of successes ms",
            ],
            rows,
        )
    )
    med = _common.med
    il = med([r.ok for r in runs["interlock.Client"]])
    for name in CONTENDERS:
        if name != "interlock.Client":
            other = med([r.ok for r in runs[name]])
            print(f"successes, interlock.Client / {name}: {il:.0f} / {other:.0f} = {il / max(1, other):.2f}x")
    print()
    return summary


if __name__ == "__main__":
    main()
