"""Rate limit: how much of a server-side quota Interlock uses, and how many 429s it collects.

A testbed (child process) allows ``--limit`` requests per second (token bucket, burst = limit)
and announces it in one header dialect. Contenders hammer it for ``--seconds``, each in its own
process(es), rotated over ``--rounds`` rounds (A B C D, B C D A, ...), medians with min-max:
  - interlock, one process (in-process quota);
  - interlock, ``--processes`` processes sharing one Redis quota;
  - the external contender: a plain aiohttp loop behind aiolimiter at the quota, and at 0.95 of
    it (configured with the rate; no retry, a 429 is counted and the loop goes on).
Dialects that announce their quota give Interlock no rate at all (``RateLimit()``: it learns
it); Retry-After-only dialects say nothing until a 429, so those runs are configured with the
rate. Default: one announced dialect, 5 s runs (about 2 minutes); ``--dialects all --seconds 20``
for the five.

"Quota" is what the server could have accepted over the run: ``limit x elapsed + burst``, where
elapsed runs from the common start to the last answer (calls already queued in the limiter when
``--seconds`` is up still run, so a run lasts a little longer than ``--seconds``).

    .venv/bin/python benchmarks/ratelimit.py [--seconds 5] [--rounds 3] [--dialects all] [--processes 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

from _common import Load, emit, med, rotations, spread, table

from interlock.testbed import RateLimitConfig, TestbedConfig, spawn_testbed

DIALECTS = ["x-ratelimit-epoch", "x-ratelimit-delta", "ietf", "retry-after-seconds", "retry-after-date"]
ANNOUNCED = {"x-ratelimit-epoch", "x-ratelimit-delta", "ietf"}


async def worker(args: argparse.Namespace) -> None:
    import interlock

    store = args.redis if args.shared else None
    per_second = None if args.dialect in ANNOUNCED else args.limit
    rate = interlock.RateLimit(per_second=per_second, store=store, namespace=args.namespace)
    counts: dict[int, int] = {}
    errors = 0
    async with interlock.Client(args.url, name="bench-upstream", rate_limit=rate, coalesce=False) as api:
        await asyncio.sleep(max(0.0, args.start_at - time.time()))
        late = time.time() - args.start_at  # > 0: this process was not ready at the common start
        stop = args.start_at + args.seconds

        async def loop(n: int) -> None:
            nonlocal errors
            i = n
            while time.time() < stop:
                i += args.concurrency
                try:
                    status = (await api.get(f"/customers/{i % 100 + 1}")).status
                except interlock.errors.CallError:
                    errors += 1
                    continue
                counts[status] = counts.get(status, 0) + 1

        await asyncio.gather(*[loop(n) for n in range(args.concurrency)])
        ended = time.time()  # calls queued in the limiter at `stop` still ran: the run ends here
        waited = api.rate_limit.waited if api.rate_limit else 0.0
    print(json.dumps({"counts": counts, "errors": errors, "waited": waited, "ended": ended, "late": late}))


async def plain_worker(args: argparse.Namespace) -> None:
    """The external contender: aiohttp loops behind one aiolimiter at ``fraction`` of the quota
    (configured: it reads no header), no retry; a 429 is counted and the loop goes on."""
    import aiohttp
    from aiolimiter import AsyncLimiter

    limiter = AsyncLimiter(args.limit * args.fraction, 1.0)
    counts: dict[int, int] = {}
    errors = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=args.concurrency)) as http:
        await asyncio.sleep(max(0.0, args.start_at - time.time()))
        late = time.time() - args.start_at  # > 0: this process was not ready at the common start
        stop = args.start_at + args.seconds

        async def loop(n: int) -> None:
            nonlocal errors
            i = n
            while time.time() < stop:
                i += args.concurrency
                async with limiter:
                    try:
                        async with http.get(f"{args.url}/customers/{i % 100 + 1}") as resp:
                            await resp.read()
                            status = resp.status
                    except aiohttp.ClientError:
                        errors += 1
                        continue
                counts[status] = counts.get(status, 0) + 1

        await asyncio.gather(*[loop(n) for n in range(args.concurrency)])
        ended = time.time()
    print(json.dumps({"counts": counts, "errors": errors, "waited": 0.0, "ended": ended, "late": late}))


@dataclass(frozen=True)
class Contender:
    label: str
    kind: str  # "interlock" or "aiolimiter"
    processes: int
    fraction: float = 1.0


def run_once(url: str, dialect: str, contender: Contender, args: argparse.Namespace) -> dict[str, Any]:
    start_at = time.time() + 2.0 + 0.5 * contender.processes  # every process imported and connected by then
    namespace = f"bench-quota-{uuid.uuid4().hex[:8]}:"
    command = [
        sys.executable,
        __file__,
        "--worker",
        contender.kind,
        "--url",
        url,
        "--dialect",
        dialect,
        "--limit",
        str(args.limit),
        "--fraction",
        repr(contender.fraction),
        "--seconds",
        str(args.seconds),
        "--start-at",
        repr(start_at),
        "--redis",
        args.redis,
        "--namespace",
        namespace,
        "--concurrency",
        str(args.concurrency),
    ]
    if contender.processes > 1:
        command.append("--shared")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, env=env) for _ in range(contender.processes)]
    outputs = [json.loads(p.communicate()[0].decode().strip().splitlines()[-1]) for p in procs]
    if contender.processes > 1:  # remove this run's shared quota keys
        import redis

        client = redis.Redis.from_url(args.redis)
        keys = list(client.scan_iter(match=f"{namespace}*"))
        if keys:
            client.delete(*keys)
        client.close()
    return {"workers": outputs, "start_at": start_at}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--dialects", default="x-ratelimit-epoch", help="comma-separated, or 'all'")
    parser.add_argument("--processes", type=int, default=4, help="processes sharing Redis in the shared run")
    parser.add_argument("--limit", type=int, default=50, help="server quota, requests per second")
    parser.add_argument("--concurrency", type=int, default=16, help="calls in flight per process")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    # worker mode (internal)
    parser.add_argument("--worker", choices=["interlock", "aiolimiter"], help=argparse.SUPPRESS)
    parser.add_argument("--shared", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--dialect", help=argparse.SUPPRESS)
    parser.add_argument("--fraction", type=float, default=1.0, help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--namespace", default="interlock:quota:", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "interlock":
        asyncio.run(worker(args))
        return
    if args.worker == "aiolimiter":
        asyncio.run(plain_worker(args))
        return
    load = Load()
    dialects = DIALECTS if args.dialects == "all" else args.dialects.split(",")
    contenders = [
        Contender("interlock x1 (memory)", "interlock", 1),
        Contender(f"interlock x{args.processes} (redis)", "interlock", args.processes),
        Contender("aiolimiter at the quota", "aiolimiter", 1, 1.0),
        Contender("aiolimiter at 0.95 quota", "aiolimiter", 1, 0.95),
    ]
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for dialect in dialects:
        quota = RateLimitConfig(limit=args.limit, window=1.0, dialect=dialect)  # type: ignore[arg-type]
        with spawn_testbed(TestbedConfig(records=100, rate_limit=quota)) as tb:
            for round_no, order in enumerate(rotations(contenders, args.rounds), 1):
                for contender in order:
                    tb.configure(rate_limit=quota)  # a full quota for each run
                    tb.reset_counters()
                    run = run_once(tb.url, dialect, contender, args)
                    counters = tb.counters()
                    accepted = counters.count(200)
                    elapsed = max(w["ended"] for w in run["workers"]) - run["start_at"]
                    ceiling = args.limit * elapsed + quota.capacity
                    r = {
                        "dialect": dialect,
                        "contender": contender.label,
                        "round": round_no,
                        "accepted": accepted,
                        "throttled": counters.rate_limited,
                        "errors": sum(w["errors"] for w in run["workers"]),
                        "quota": round(ceiling, 1),
                        "elapsed": round(elapsed, 3),
                        "used": round(accepted / ceiling, 4),
                        "late": round(max(w["late"] for w in run["workers"]), 3),
                    }
                    runs.setdefault((dialect, contender.label), []).append(r)
                    print(
                        f"  round {round_no} {dialect} {contender.label}: {accepted} accepted, "
                        f"{counters.rate_limited} x 429, {r['used']:.1%} of quota"
                        + (f" (a process started {r['late']:.2f}s late)" if r["late"] > 0.05 else ""),
                        flush=True,
                    )
    rows: list[list[object]] = []
    for (dialect, label), rs in runs.items():
        if label.startswith("interlock"):
            mode = "learned" if dialect in ANNOUNCED else "configured"
        else:
            mode = "configured"
        rows.append(
            [
                dialect,
                label,
                mode,
                spread([r["accepted"] for r in rs], "{:.0f}"),
                spread([r["throttled"] for r in rs], "{:.0f}"),
                spread([r["errors"] for r in rs], "{:.0f}"),
                spread([100 * r["used"] for r in rs], "{:.1f}", "%"),
            ]
        )
    print()
    print(
        f"{args.seconds:g} s per run x {args.rounds} rounds (contenders rotated), quota {args.limit}/s; "
        "'used' = accepted / (limit x elapsed + burst); median (min-max)"
    )
    print(table(["dialect", "contender", "rate", "accepted", "429s", "errors", "used"], rows))
    mine = [r for (_, label), rs in runs.items() if label.startswith("interlock") for r in rs]
    worst = min(
        med([r["used"] for r in rs]) for (_, label), rs in runs.items() if label.startswith("interlock")
    )
    throttled = sum(r["throttled"] for r in mine)
    print(
        f"interlock: lowest median share of quota used: {worst:.1%} (target >= 98%); 429s in all its runs: "
        f"{throttled} (target 0)"
    )
    for dialect in dialects:
        il = med([r["used"] for r in runs[(dialect, "interlock x1 (memory)")]])
        for label in ("aiolimiter at the quota", "aiolimiter at 0.95 quota"):
            rs = runs[(dialect, label)]
            print(
                f"{dialect}: interlock x1 used {il:.1%}; {label} used {med([r['used'] for r in rs]):.1%} "
                f"with {spread([r['throttled'] for r in rs], '{:.0f}')} x 429"
            )
    emit(
        "ratelimit",
        {
            "seconds": args.seconds,
            "limit": args.limit,
            "rounds": args.rounds,
            "runs": [r for rs in runs.values() for r in rs],
            "interlock_min_median_used": worst,
            "interlock_total_429": throttled,
            **load.end(),
        },
    )


if __name__ == "__main__":
    main()
