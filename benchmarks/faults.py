"""faults: how much work survives a sick upstream, and at what cost to it?

Every contender gets the same open-loop arrivals: ``--rate`` GETs per second for ``--seconds``
(default 100/s for 10 s), each started at its scheduled time whatever the earlier ones are
doing, against a testbed (child process, 5 ms latency) with 20 % 503s throughout and an outage
(every request 503) from t=``--outage-start`` for ``--outage`` seconds (default 2 s + 5 s), so
every contender meets the whole outage. A call succeeds if it has a 200 within ``--deadline``
seconds (default 3 s) of its scheduled time; each contender's own timeout is that deadline.

Contenders, rotated over ``--rounds`` rounds (A B C, B C A, ...), medians with min-max:
  - naive: aiohttp, one attempt;
  - retrying baseline: aiohttp + tenacity (retry 429/5xx and network errors, Retry-After when
    given, else exponential backoff with full jitter, base 0.1 s, cap 4 s, until the deadline)
    + pybreaker (opens after 10 consecutive failures, half-opens after 2 s; calls refused by the
    open breaker are retried with the same backoff): what a careful team assembles;
  - interlock.Client: retry with full-jitter backoff (the same base and cap) and budget, breaker
    (50 % failures over >= 20 calls, open for 2 s), callers waiting out the open breaker
    (``Retry(circuit_open=True)``), ``Timeout(total=deadline)``.

Printed per contender: successes within the deadline (share of the calls offered), the same for
calls scheduled during the outage, upstream requests per success (the load put on a failing
upstream), and requests that hit the outage.

    .venv/bin/python benchmarks/faults.py [--rate 100] [--seconds 10] [--outage 5] [--rounds 3]
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

        async def get(path: str) -> bool:
            try:
                return (await client.get(path)).status == 200
            except interlock.errors.CallError:
                return False

        await drive(get)


CONTENDERS: dict[str, Contender] = {
    "naive aiohttp": naive,
    "aiohttp+tenacity+pybreaker": retrying,
    "interlock.Client": with_interlock,
}


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
    args = parser.parse_args()
    if args.outage_start + args.outage > args.seconds:
        parser.error("the arrivals must cover the whole outage: --seconds >= --outage-start + --outage")
    load = _common.Load()
    sick = Faults(
        latency=Latency("fixed", ms=5),
        error_rates={503: args.error_rate},
        outages=[Outage(start=args.outage_start, duration=args.outage)],
    )
    runs: dict[str, list[Run]] = {name: [] for name in CONTENDERS}
    with spawn_testbed(TestbedConfig(records=1000)) as testbed:
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
        f"{args.error_rate:.0%} 503s + outage {args.outage_start:g}-{args.outage_start + args.outage:g}s; "
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
    _common.emit(
        "faults",
        {
            "rate": args.rate,
            "seconds": args.seconds,
            "deadline": args.deadline,
            "outage": [args.outage_start, args.outage],
            "rounds": args.rounds,
            "results": summary,
            **load.end(),
        },
    )


if __name__ == "__main__":
    main()
