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

Two more sections (``--sections``, default all three):

- **fixed windows** (``fixed``): GitHub-style quotas, ``--fw-limit`` calls per window of 1 or 2
  s, in every announcing dialect, epoch resets rounded up or truncated, the server's clock
  skewed by up to +-2 s, called ``--fw-workers``-way (10) for ``--fw-windows`` windows (15). Contenders, in
  this process, alternated per round: ``interlock.Client(rate_limit=RateLimit())`` (told
  nothing: it learns the windows) and aiohttp behind aiolimiter configured with the quota
  (``AsyncLimiter(limit, window)``, the best a team does without reading headers). Quota =
  ``limit x`` the windows (on the server's clock) the run touched. Targets: 0 x 429, >= 90 %.
  (Windows up to an hour are covered by the tests, by a server clock set just before an
  hour's end.)
- **no quota headers** (``none``): ``--none-calls`` GETs, ``--none-concurrency`` in flight,
  against an upstream that sends no quota headers (20 ms latency): ``RateLimit()`` against
  no rate limit at all, same client otherwise; ratio of wall times (target: about 1.0x).

    .venv/bin/python benchmarks/ratelimit.py [--seconds 5] [--rounds 3] [--dialects all] [--processes 4]
        [--sections bucket,fixed,none] [--fw-windows 15]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
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


# -- fixed windows --------------------------------------------------------------------------
# (dialect, window seconds, reset rounding, server clock skew)
FIXED_SHAPES: list[tuple[str, float, str, float]] = [
    ("x-ratelimit-epoch", 2.0, "up", 2.0),
    ("x-ratelimit-epoch", 1.0, "down", -2.0),
    ("x-ratelimit-delta", 2.0, "down", 0.0),
    ("x-ratelimit-delta", 1.0, "up", -1.0),
    ("ietf", 1.0, "up", 1.5),
    ("ietf", 2.0, "down", -2.0),
]


async def _fixed_interlock(url: str, seconds: float, args: argparse.Namespace) -> tuple[float, float, int]:
    import interlock

    async with interlock.Client(
        url, rate_limit=interlock.RateLimit(), coalesce=False, profile="background"
    ) as api:
        return await _fixed_loop(args, lambda path: _status(api, path), seconds)


async def _status(api: Any, path: str) -> int:
    return int((await api.get(path)).status)


async def _fixed_aiolimiter(
    url: str, limit: int, window: float, args: argparse.Namespace
) -> tuple[float, float, int]:
    import aiohttp
    from aiolimiter import AsyncLimiter

    limiter = AsyncLimiter(limit, window)
    async with aiohttp.ClientSession() as http:

        async def get(path: str) -> int:
            async with limiter, http.get(url + path) as resp:
                await resp.read()
                return resp.status

        return await _fixed_loop(args, get, window * args.fw_windows)


async def _fixed_loop(args: argparse.Namespace, get: Any, seconds: float) -> tuple[float, float, int]:
    """``--fw-workers`` loops calling for ``seconds``: (start, end, errors)."""
    errors = 0
    start = time.time()
    stop = start + seconds

    async def loop(n: int) -> None:
        nonlocal errors
        i = n
        while time.time() < stop:
            i += args.fw_workers
            try:
                await get(f"/customers/{i % 100 + 1}")
            except Exception:
                errors += 1

    await asyncio.gather(*[loop(n) for n in range(args.fw_workers)])
    return start, time.time(), errors


def fixed_section(args: argparse.Namespace) -> dict[str, Any]:
    contenders = ["interlock RateLimit()", "aiolimiter at the quota"]
    rows: list[list[object]] = []
    out: dict[str, Any] = {}
    worst_used, total_429 = 1.0, 0
    with spawn_testbed(TestbedConfig(records=100)) as tb:
        for dialect, window, rounding, skew in FIXED_SHAPES:
            quota = RateLimitConfig(
                algorithm="fixed_window",
                limit=args.fw_limit,
                window=window,
                dialect=dialect,  # type: ignore[arg-type]
                reset_rounding=rounding,  # type: ignore[arg-type]
                clock_skew=skew,
            )
            shape = f"{dialect} {args.fw_limit}/{window:g}s {rounding} {skew:+g}s"
            runs: dict[str, list[dict[str, float]]] = {c: [] for c in contenders}
            for order in rotations(contenders, args.rounds):
                for name in order:
                    tb.configure(rate_limit=quota)  # a fresh quota for each run
                    tb.reset_counters()
                    if name.startswith("interlock"):
                        start, end, errors = asyncio.run(
                            _fixed_interlock(tb.url, window * args.fw_windows, args)
                        )
                    else:
                        start, end, errors = asyncio.run(
                            _fixed_aiolimiter(tb.url, args.fw_limit, window, args)
                        )
                    counters = tb.counters()
                    touched = math.floor((end + skew) / window) - math.floor((start + skew) / window) + 1
                    ceiling = args.fw_limit * touched
                    accepted = counters.count(200)
                    runs[name].append(
                        {
                            "accepted": accepted,
                            "throttled": counters.rate_limited,
                            "errors": errors,
                            "quota": ceiling,
                            "used": accepted / ceiling,
                        }
                    )
            for name, rs in runs.items():
                used = med([r["used"] for r in rs])
                if name.startswith("interlock"):
                    worst_used = min(worst_used, used)
                    total_429 += int(sum(r["throttled"] for r in rs))
                rows.append(
                    [
                        shape,
                        name,
                        spread([r["accepted"] for r in rs], "{:.0f}"),
                        spread([r["throttled"] for r in rs], "{:.0f}"),
                        spread([100 * r["used"] for r in rs], "{:.1f}", "%"),
                    ]
                )
                out[f"{shape} | {name}"] = rs
            il = med([r["used"] for r in runs[contenders[0]]])
            other = med([r["used"] for r in runs[contenders[1]]])
            print(
                f"  {shape}: interlock used {il:.1%}, aiolimiter {other:.1%} ({il / max(other, 1e-9):.2f}x)",
                flush=True,
            )
    print()
    print(
        f"fixed windows: {args.fw_workers}-way for {args.fw_windows} windows x {args.rounds} rounds (contenders "
        "alternated); 'used' = accepted / (limit x windows touched); median (min-max)"
    )
    print(table(["shape", "contender", "accepted", "429s", "used"], rows))
    print(
        f"interlock, fixed windows: lowest median share used {worst_used:.1%} (target >= 90%); 429s: {total_429} (target 0)"
    )
    print()
    return {"runs": out, "interlock_min_median_used": worst_used, "interlock_total_429": total_429}


# -- no quota headers -------------------------------------------------------------------------
async def _none_run(url: str, adaptive: bool, args: argparse.Namespace) -> float:
    import interlock

    rate = interlock.RateLimit() if adaptive else None
    async with interlock.Client(
        url, rate_limit=rate, concurrency=args.none_concurrency, coalesce=False, cache=None
    ) as api:
        await api.get("/customers/1")  # connected, first answer read
        start = time.perf_counter()
        await asyncio.gather(*[api.get(f"/customers/{i % 100 + 1}") for i in range(args.none_calls)])
        return time.perf_counter() - start


def none_section(args: argparse.Namespace) -> dict[str, Any]:
    from interlock.testbed import Faults, Latency

    contenders = ["no rate limit", "RateLimit() (adaptive)"]
    walls: dict[str, list[float]] = {c: [] for c in contenders}
    with spawn_testbed(TestbedConfig(records=100, faults=Faults(latency=Latency.fixed(20)))) as tb:
        for order in rotations(contenders, max(args.rounds, 3)):
            for name in order:
                walls[name].append(asyncio.run(_none_run(tb.url, name != "no rate limit", args)))
    base, mine = med(walls[contenders[0]]), med(walls[contenders[1]])
    print(
        f"no quota headers: {args.none_calls} GETs, {args.none_concurrency} in flight, 20 ms upstream latency; "
        "median (min-max)"
    )
    print(table(["client", "wall s"], [[c, spread(walls[c], "{:.3f}")] for c in contenders]))
    print(
        f"RateLimit() / no rate limit: {mine:.3f} / {base:.3f} = {mine / base:.2f}x (target about 1.0x; it was 38x)"
    )
    print()
    return {"walls": walls, "ratio": mine / base}


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
    parser.add_argument(
        "--sections", default="bucket,fixed,none", help="comma-separated: bucket, fixed, none"
    )
    parser.add_argument("--fw-windows", type=int, default=15, help="windows per fixed-window run")
    parser.add_argument("--fw-limit", type=int, default=10, help="calls per fixed window")
    parser.add_argument("--fw-workers", type=int, default=10, help="calls in flight, fixed windows")
    parser.add_argument("--none-calls", type=int, default=200)
    parser.add_argument("--none-concurrency", type=int, default=20)
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
    sections = set(args.sections.split(","))
    extra: dict[str, Any] = {}
    if "none" in sections:
        extra["no_quota_headers"] = none_section(args)
    if "fixed" in sections:
        extra["fixed_windows"] = fixed_section(args)
    if "bucket" not in sections:
        emit("ratelimit", {"rounds": args.rounds, **extra, **load.end()})
        return
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
            **extra,
            **load.end(),
        },
    )


if __name__ == "__main__":
    main()
