"""``interlock demo``: one workload against a faulty simulated API, played by four contenders,
each facing the identical fault script on a fresh testbed: plain aiohttp one call at a time,
plain aiohttp with as many callers as Interlock gets, and ``interlock.Client`` with each of its
two profiles (``interactive``: fail fast; ``background``: wait it out).

The Interlock client is ``build_client`` below, printed as it runs; everything it does not set
is at the README's defaults, which the demo prints too. Every figure comes from the testbed's
counters (what the upstream saw) or the operations' own answers, and the requests each
Interlock contender sent are reconciled term by term: operations answered from the cache, by
an identical read in flight, by list calls, or by their own call, plus the retries.

Kept a plain script over public API: it is what a newcomer reads to see how Interlock is used.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import random
import textwrap
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp

import interlock

from .._text import render_table
from ..testbed import Faults, Latency, Outage, RateLimitConfig, Testbed, TestbedConfig
from ._argparse import UsageError, count, fraction, port, seconds

HELP = "run one workload against a faulty simulated API: plain aiohttp vs interlock.Client"

PAGE = 10
"""Operations per page of the workload: a page arrives every ``1 / PAGES_PER_SECOND`` s."""
PAGES_PER_SECOND = 10
HOT_PRODUCTS = 10
"""Reference data every page shows some of: the cache's case."""
RECORDS = 1000
"""Records per kind on the testbed (customer and order ids are 1..RECORDS)."""


def build_client(url: str, profile: str) -> interlock.Client:
    """The Interlock contender: the README's defaults, a profile, and the three work-avoiding
    policies this workload has a use for. Printed by the demo as it is written here."""
    return interlock.Client(
        url,
        name=f"demo-{profile}",
        profile=profile,  # "interactive" or "background"
        rate_limit=interlock.RateLimit(),  # learns the quota from the X-RateLimit-* headers
        cache=interlock.Cache(routes={"/products/{id}": 60}),  # reference data, fresh for 60 s
        batch=interlock.Batch("/customers/{id}", via="/customers", ids_param="ids"),  # ?ids=1,2,3
    )


@dataclass(frozen=True, slots=True)
class Call:
    """One operation of the workload: a call and when it arrives (seconds after the start)."""

    at: float
    method: str
    path: str


def workload(seed: int, reads: int, writes: int, stampede: int) -> list[Call]:
    """The operations, in arrival order: first ``stampede`` identical reads at once (a cold
    cache, every caller wanting the same record: the coalescing case), then pages of ``PAGE``
    operations, ``PAGES_PER_SECOND`` a second: distinct customers (the batching case), hot
    products (the cache's) and distinct order writes (idempotent PUTs), shuffled."""
    rng = random.Random(seed)
    stampede = min(stampede, reads)
    rest = reads - stampede
    products = rest // 3
    customers = rest - products
    ops = [("GET", f"/products/{rng.randint(1, HOT_PRODUCTS)}") for _ in range(products)]
    ops += [("GET", f"/customers/{cid}") for cid in rng.sample(range(1, RECORDS + 1), customers)]
    ops += [("PUT", f"/orders/{oid}") for oid in rng.sample(range(1, RECORDS + 1), writes)]
    rng.shuffle(ops)
    calls = [Call(0.0, "GET", "/products/1") for _ in range(stampede)]
    calls += [Call((1 + i // PAGE) / PAGES_PER_SECOND, method, path) for i, (method, path) in enumerate(ops)]
    return calls


def fault_script(args: argparse.Namespace) -> TestbedConfig:
    """What the simulated upstream does, the same for every contender: latency, 503s, lost
    write responses, an outage, and a quota announced in X-RateLimit headers."""
    outages = (Outage(start=args.outage_at, duration=args.outage),) if args.outage > 0 else ()
    return TestbedConfig(
        seed=args.seed,
        records=RECORDS,
        faults=Faults(
            latency=Latency("lognormal", median_ms=15, sigma=0.5),
            error_rates={503: args.error_rate},
            lost_response_rate=0.02,
            outages=outages,
        ),
        rate_limit=RateLimitConfig(
            algorithm="token_bucket", limit=args.rate_limit, window=1.0, dialect="x-ratelimit-delta"
        ),
    )


@dataclass
class Result:
    """What one contender's run left behind."""

    name: str
    operations: int = 0
    succeeded: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    wall: float = 0.0
    slowest: float = 0.0
    requests: int = 0
    throttled: int = 0
    applied_twice: int = 0
    applied_but_failed: int = 0
    replays: int = 0
    from_cache: int = 0
    by_list_call: int = 0
    coalesced: int = 0
    list_calls: int = 0
    """List calls the upstream received, first attempts only."""
    retries: int = 0
    list_retries: int = 0
    quota_wait: float = 0.0
    """Seconds the client's calls waited for their turn in the quota, added up."""
    failed_writes: list[int] = field(default_factory=list)


UPSTREAM_ERROR = "an error answer or a dropped connection"
KINDS = {
    interlock.errors.CircuitOpen: "the breaker was open (failed fast)",
    interlock.errors.RateLimited: "no quota turn within max_wait",
    interlock.errors.TimedOut: "out of time (the call's deadline)",
}
"""How an operation failed, by the error it raised (anything else: ``UPSTREAM_ERROR``)."""


def _kind_of_error(exc: BaseException) -> str:
    return next((kind for cls, kind in KINDS.items() if isinstance(exc, cls)), UPSTREAM_ERROR)


async def play(calls: list[Call], callers: int, one: Any, result: Result) -> None:
    """Run ``calls`` with ``callers`` at once, none before its arrival time, each through
    ``one(call)`` (which returns its Response or raises); fill ``result``'s operation figures."""
    queue: asyncio.Queue[Call] = asyncio.Queue()
    for call in calls:
        queue.put_nowait(call)
    start = time.perf_counter()

    async def caller() -> None:
        while not queue.empty():
            call = queue.get_nowait()
            delay = start + call.at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            began = time.perf_counter()
            try:
                answer = await one(call)
            except (interlock.errors.CallError, aiohttp.ClientError) as exc:
                answer = None
                result.failed[_kind_of_error(exc)] += 1
            result.slowest = max(result.slowest, time.perf_counter() - began)
            if answer is not None:
                result.from_cache += bool(getattr(answer, "from_cache", False))
                result.by_list_call += "X-Interlock-Batch" in answer.headers
                if answer.status < 400:
                    result.succeeded += 1
                else:
                    result.failed[UPSTREAM_ERROR] += 1
            if (answer is None or answer.status >= 400) and call.method == "PUT":
                result.failed_writes.append(int(call.path.rsplit("/", 1)[1]))

    await asyncio.gather(*(caller() for _ in range(callers)))
    result.operations = len(calls)
    result.wall = time.perf_counter() - start


async def naive(url: str, calls: list[Call], callers: int, result: Result) -> None:
    """Plain aiohttp: one request per operation, no retry, no pacing, nothing shared."""
    async with aiohttp.ClientSession() as session:

        async def one(call: Call) -> Any:
            body = {"note": "demo"} if call.method == "PUT" else None
            async with session.request(call.method, url + call.path, json=body) as resp:
                await resp.read()
                return resp

        await play(calls, callers, one, result)


async def with_interlock(url: str, calls: list[Call], callers: int, result: Result, profile: str) -> None:
    """``build_client``'s client, the same operations through it."""
    async with build_client(url, profile) as client:
        before = client.stats()

        def one(call: Call) -> Any:
            body = {"note": "demo"} if call.method == "PUT" else None
            return client.request(call.method, call.path, json=body)

        await play(calls, callers, one, result)
        after = client.stats()
        result.quota_wait = client.rate_limit.waited if client.rate_limit else 0.0
    via = "/customers"  # build_client's Batch: its list calls' retries are counted under this route
    result.retries = after["retries"] - before["retries"]
    result.list_retries = after["retries_by_route"].get(via, 0) - before["retries_by_route"].get(via, 0)
    result.coalesced = after["coalesced"] - before["coalesced"]


async def contend(config: TestbedConfig, name: str, run: Any) -> Result:
    """One contender on a testbed of its own, the fault script starting with its first call."""
    result = Result(name)
    async with Testbed(config) as tb:
        tb.configure(faults=config.faults)  # the outage's clock starts now, for every contender
        await run(tb.url, result)
        counters = tb.counters
    result.requests = counters.requests
    # Every attempt of a list call the upstream answered, whatever the answer (this script drops
    # no connection of a read), less the client's retries of them: the list calls made.
    result.list_calls = sum(counters.route("GET /customers").values()) - result.list_retries
    result.throttled = counters.rate_limited
    result.replays = counters.idempotent_replays
    applied = {rid: n for (kind, rid), n in counters.applied_writes.items() if kind == "orders"}
    result.applied_twice = sum(1 for n in applied.values() if n > 1)
    result.applied_but_failed = sum(1 for rid in result.failed_writes if applied.get(rid, 0) > 0)
    return result


def describe_setup(args: argparse.Namespace, calls: list[Call], config: TestbedConfig) -> str:
    """The fault script, the workload and Interlock's configuration, in words and code."""
    faults = config.faults
    outage = (
        f"an outage (every call answered 503) from {args.outage_at:g} s to {args.outage_at + args.outage:g} s"
        if args.outage > 0
        else "no outage"
    )
    reads = sum(1 for c in calls if c.method == "GET")
    stampede = sum(1 for c in calls if c.at == 0)
    duration = max((c.at for c in calls), default=0.0)
    breaker = interlock.CircuitBreaker()
    concurrency = interlock.Concurrency()
    profiles = interlock.client.PROFILES
    source = inspect.getsource(build_client)
    first, *rest = source[source.index("return ") :].removeprefix("return ").rstrip().splitlines()
    code = [first, *textwrap.dedent("\n".join(rest)).splitlines()]

    def para(text: str, indent: str = "") -> str:
        return textwrap.fill(text, 100, initial_indent=indent, subsequent_indent=indent + "  ")

    return "\n".join(
        [
            para(
                "The upstream, the same script for every contender, each on a fresh testbed: "
                f"~15 ms latency (lognormal), {args.error_rate:.0%} 503s, "
                f"{faults.lost_response_rate:.0%} of write responses lost after the write applied, "
                f"{outage}, a quota of {args.rate_limit} requests/s announced in X-RateLimit headers "
                "(429 past it)."
            ),
            para(
                f"The workload: {len(calls)} operations over {duration:.1f} s, {args.callers} callers at once: "
                f"{stampede} identical GETs at the start (a cold cache), then pages of {PAGE} operations "
                f"every {1000 // PAGES_PER_SECOND} ms: distinct customers, {HOT_PRODUCTS} hot products "
                f"and order writes; {reads} GETs and {len(calls) - reads} PUTs in all."
            ),
            "",
            "Interlock, as this demo builds it; everything it does not set is at the README's defaults:",
            *(f"    {line}" for line in code),
            *(para(f"profile={name!r}: {p.describe()}", "  ") for name, p in profiles.items()),
            para(
                f"defaults: CircuitBreaker opens at {breaker.failure_ratio:.0%} failures of >= "
                f"{breaker.min_calls} calls in {breaker.window:g} s, for {breaker.open_for:g} s; Concurrency "
                f"{concurrency.limit} in flight, {concurrency.writes} writes; coalescing on",
                "  ",
            ),
        ]
    )


def render(results: list[Result]) -> str:
    """The side-by-side table."""
    kinds = [UPSTREAM_ERROR, *KINDS.values()]
    rows: list[tuple[object, ...]] = [
        ("operations", *(r.operations for r in results)),
        ("succeeded", *(r.succeeded for r in results)),
        *((f"failed: {k}", *(r.failed[k] for r in results)) for k in kinds if any(r.failed[k] for r in results)),
        ("requests the upstream received", *(r.requests for r in results)),
        ("429s received", *(r.throttled for r in results)),
        ("retries", *(r.retries for r in results)),
        ("waiting for a quota turn (sum)", *(f"{r.quota_wait:.1f} s" for r in results)),
        ("writes applied twice", *(r.applied_twice for r in results)),
        ("writes applied, reported failed", *(r.applied_but_failed for r in results)),
        ("slowest operation", *(f"{r.slowest:.2f} s" for r in results)),
        ("wall time", *(f"{r.wall:.1f} s" for r in results)),
    ]
    return render_table(["", *(r.name for r in results)], rows)


def reconcile(result: Result) -> str:
    """How one Interlock contender's operations became the requests the upstream counted: the
    first attempts the upstream saw (its count less the client's retries), split into list
    calls and operations sent as their own call; the operations answered without one (cache,
    an identical read in flight, a list call); and the rest, which failed before sending."""
    own = result.requests - result.list_calls - result.retries
    refused = result.operations - result.from_cache - result.coalesced - result.by_list_call - own
    failures = sum(result.failed.values())
    text = (
        f"{result.name}: {result.operations} operations = {result.from_cache} answered from the cache"
        f" + {result.coalesced} shared an identical read in flight + {result.by_list_call} answered by"
        f" {result.list_calls} list calls + {own} sent as their own call + {refused} failed before"
        f" sending anything (of its {failures} failures). The {result.requests} requests the upstream"
        f" received = {own} own calls + {result.list_calls} list calls + {result.retries} retries."
    )
    if not 0 <= refused <= failures:
        text += " These figures do not reconcile: please report it."
    return textwrap.fill(text, 100, subsequent_indent="  ")


async def main_async(args: argparse.Namespace) -> int:
    """Play every contender in turn and print what each left behind."""
    calls = workload(args.seed, args.reads, args.writes, stampede=args.callers)
    config = fault_script(args)
    print(describe_setup(args, calls, config), end="\n\n", flush=True)

    def naive_with(callers: int) -> Any:
        return lambda url, result: naive(url, calls, callers, result)

    def interlock_with(profile: str) -> Any:
        return lambda url, result: with_interlock(url, calls, args.callers, result, profile)

    contenders = [
        ("aiohttp, 1 at a time", naive_with(1)),
        (f"aiohttp, {args.callers} at a time", naive_with(args.callers)),
        ("interactive", interlock_with("interactive")),
        ("background", interlock_with("background")),
    ]
    print(f"Running the {len(contenders)} contenders at once, each against its own testbed...", flush=True)
    results = await asyncio.gather(*(contend(config, name, run) for name, run in contenders))
    print()
    print(render(results))
    print()
    for result in results[2:]:
        print(reconcile(result))
    print()
    naive_one, naive_many, fast, patient = results
    refused = fast.failed[KINDS[interlock.errors.CircuitOpen]]
    words = [
        f"Plain aiohttp completed {naive_one.succeeded} and {naive_many.succeeded} of {len(calls)} "
        f"operations with one request each, no retries, and {naive_one.throttled} and "
        f"{naive_many.throttled} 429s.",
        f"Interlock sent {fast.requests} and {patient.requests} requests for the same operations.",
        f"The interactive profile completed {fast.succeeded}"
        + (f" and failed {sum(fast.failed.values())}" if fast.failed else "")
        + (f", {refused} of them at once, refused by the open breaker" if refused else "")
        + f"; its slowest operation took {fast.slowest:.2f} s.",
        f"The background profile completed {patient.succeeded}"
        + (" by waiting out what the interactive one failed fast" if refused and patient.succeeded > fast.succeeded else "")
        + f"; its slowest operation took {patient.slowest:.2f} s.",
    ]
    if naive_one.applied_twice or naive_many.applied_twice:
        words.append(
            "Plain aiohttp applied writes twice: it re-sends an idempotent request once by itself "
            "when a kept-alive connection drops, without an idempotency key."
        )
    print(textwrap.fill(" ".join(words), 100))
    if getattr(args, "serve", False):
        import tempfile

        from ._demo_serve import serve_demo

        with tempfile.TemporaryDirectory(prefix="interlock-demo-") as scratch:
            return await serve_demo(config, calls, port=args.port, db=f"{scratch}/demo.db")
    return 0


def configure(parser: argparse.ArgumentParser) -> None:
    """The workload's and the fault script's knobs, each validated."""
    parser.add_argument("--reads", type=count(0, 1500), default=300, help="GETs in the workload (default 300)")
    parser.add_argument(
        "--writes", type=count(0, RECORDS), default=40, help=f"idempotent PUTs, at most {RECORDS} (default 40)"
    )
    parser.add_argument("--callers", type=count(1, 200), default=20, help="operations at once (default 20)")
    parser.add_argument("--error-rate", type=fraction(0.9), default=0.1, help="share of 503s (default 0.1)")
    parser.add_argument(
        "--outage", type=seconds(60), default=1.5, help="outage length in seconds, 0 for none (default 1.5)"
    )
    parser.add_argument(
        "--outage-at", type=seconds(60), default=1.0, help="when the outage starts, in seconds (default 1)"
    )
    parser.add_argument(
        "--rate-limit", type=count(1, 100_000), default=40, help="upstream quota per second (default 40)"
    )
    parser.add_argument("--seed", type=int, default=7, help="seed of the workload and the faults (default 7)")
    parser.add_argument(
        "--serve", action="store_true",
        help="then keep interlock serve and its dashboard up, the traffic flowing through its proxy (Ctrl-C stops)",
    )  # fmt: skip
    parser.add_argument("--port", type=port, default=0, help="with --serve: the port (default: a free one)")


def run(args: argparse.Namespace) -> int:
    """Run the demo; the exit status."""
    if args.reads + args.writes == 0:
        raise UsageError("nothing to run: give --reads or --writes above 0")
    return asyncio.run(main_async(args))
