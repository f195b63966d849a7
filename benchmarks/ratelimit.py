"""Rate limit: how much of a server-side quota Interlock uses, and how many 429s it collects.

A testbed (child process) allows ``--limit`` requests per second (token bucket, burst = limit)
and announces it in one header dialect. Interlock workers hammer it for ``--seconds``: one
process (in-process quota), then ``--processes`` processes sharing one Redis quota. Dialects
that announce their quota are given no rate at all (``RateLimit()``: Interlock learns it);
Retry-After-only dialects say nothing until a 429, so those runs are configured with the rate.

"Quota" is what the server could have accepted over the run: ``limit x elapsed + burst``, where
elapsed runs from the common start to the last answer (calls already queued in the limiter when
``--seconds`` is up still run, so a run lasts a little longer than ``--seconds``).

    .venv/bin/python benchmarks/ratelimit.py [--seconds 60] [--dialects all] [--processes 4]
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
from typing import Any

from _common import emit, table

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
    print(json.dumps({"counts": counts, "errors": errors, "waited": waited, "ended": ended}))


def run_once(url: str, dialect: str, processes: int, args: argparse.Namespace) -> dict[str, Any]:
    start_at = time.time() + 2.0 + 0.5 * processes  # every process imported and connected by then
    namespace = f"bench-quota-{uuid.uuid4().hex[:8]}:"
    command = [
        sys.executable,
        __file__,
        "--worker",
        "--url",
        url,
        "--dialect",
        dialect,
        "--limit",
        str(args.limit),
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
    if processes > 1:
        command.append("--shared")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, env=env) for _ in range(processes)]
    outputs = [json.loads(p.communicate()[0].decode().strip().splitlines()[-1]) for p in procs]
    return {"workers": outputs, "start_at": start_at}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--dialects", default="all", help="comma-separated, or 'all'")
    parser.add_argument("--processes", type=int, default=4, help="processes sharing Redis in the second run")
    parser.add_argument("--limit", type=int, default=50, help="server quota, requests per second")
    parser.add_argument("--concurrency", type=int, default=16, help="calls in flight per process")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    # worker mode (internal)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--shared", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--dialect", help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--namespace", default="interlock:quota:", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        asyncio.run(worker(args))
        return
    dialects = DIALECTS if args.dialects == "all" else args.dialects.split(",")
    rows: list[list[object]] = []
    results: list[dict[str, Any]] = []
    for dialect in dialects:
        quota = RateLimitConfig(limit=args.limit, window=1.0, dialect=dialect)  # type: ignore[arg-type]
        with spawn_testbed(TestbedConfig(records=100, rate_limit=quota)) as tb:
            for processes in (1, args.processes):
                tb.configure(rate_limit=quota)  # a full quota for each run
                tb.reset_counters()
                run = run_once(tb.url, dialect, processes, args)
                counters = tb.counters()
                accepted = counters.count(200)
                elapsed = max(w["ended"] for w in run["workers"]) - run["start_at"]
                ceiling = args.limit * elapsed + quota.capacity
                used = accepted / ceiling
                errors = sum(w["errors"] for w in run["workers"])
                mode = "learned" if dialect in ANNOUNCED else "configured"
                store = "redis" if processes > 1 else "memory"
                rows.append(
                    [
                        dialect,
                        f"{processes} ({store})",
                        mode,
                        accepted,
                        counters.rate_limited,
                        errors,
                        f"{ceiling:.0f}",
                        f"{used:.1%}",
                    ]
                )
                results.append(
                    {
                        "dialect": dialect,
                        "processes": processes,
                        "rate": mode,
                        "accepted": accepted,
                        "throttled": counters.rate_limited,
                        "errors": errors,
                        "quota": round(ceiling, 1),
                        "elapsed": round(elapsed, 3),
                        "used": round(used, 4),
                    }
                )
                print(
                    f"  {dialect} x{processes}: {accepted} accepted, {counters.rate_limited} x 429, {used:.1%} of quota",
                    flush=True,
                )
    print(table(["dialect", "processes", "rate", "accepted", "429s", "errors", "quota", "used"], rows))
    worst = min(r["used"] for r in results)
    throttled = sum(r["throttled"] for r in results)
    print(f"lowest share of quota used: {worst:.1%} (target >= 98%); 429s in total: {throttled} (target 0)")
    emit(
        "ratelimit",
        {
            "seconds": args.seconds,
            "limit": args.limit,
            "runs": results,
            "min_used": worst,
            "total_429": throttled,
        },
    )


if __name__ == "__main__":
    main()
