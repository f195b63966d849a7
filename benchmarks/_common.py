"""Shared by the benchmark scripts, written once here rather than in every script:

- ``rotations``: the order of contenders in each round (A B C, B C A, C A B, ...), so machine
  noise and warm-up effects fall on every contender alike;
- ``med`` / ``spread``: medians with their min-max, the only figures the scripts print;
- ``Load``: the machine's load average at start and end (``os.getloadavg()``);
- ``open_loop``: an open-loop load generator (arrivals on a fixed schedule, latency measured
  from each request's *scheduled* time, so a slow target cannot slow down its own load:
  no coordinated omission);
- ``table`` and ``emit``: a plain text table and the final JSON line;
- ``drive``: a closed-loop GET driver, requests per second over a number of workers.

Only the public API of interlock is used by the scripts; nothing here imports interlock.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import platform
import random
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


# --------------------------------------------------------------------------------------------
# rounds, medians, spreads


def rotations(names: Sequence[T], rounds: int) -> list[list[T]]:
    """The order of contenders in each round: round r starts at contender r (mod n)."""
    items = list(names)
    n = len(items)
    return [items[r % n :] + items[: r % n] for r in range(rounds)] if n else [[] for _ in range(rounds)]


def med(values: Sequence[float]) -> float:
    """The median, NaN for no values."""
    clean = [v for v in values if not math.isnan(v)]
    return statistics.median(clean) if clean else float("nan")


def median(values: Sequence[float]) -> float:  # the name the older scripts used
    return med(values)


def spread(values: Sequence[float], fmt: str = "{:.1f}", unit: str = "") -> str:
    """``median (min-max)``, e.g. ``1.2 s (1.1-1.4)``; one value prints alone."""
    clean = [v for v in values if not math.isnan(v)]
    if not clean:
        return "n/a"
    mid = fmt.format(statistics.median(clean)) + unit
    if len(clean) == 1 or min(clean) == max(clean):
        return mid
    return f"{mid} ({fmt.format(min(clean))}-{fmt.format(max(clean))})"


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), nearest-rank on sorted values; +inf values count (a
    request that never completed is slower than any that did)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


# --------------------------------------------------------------------------------------------
# a closed-loop GET driver (the overhead scripts)

Getter = Callable[[str], Awaitable[int]]
"""One GET of a path, returning its status (each contender's own client behind it)."""


async def drive(get: Getter, requests: int, concurrency: int, records: int) -> float:
    """Run ``requests`` GETs over ``concurrency`` workers; return requests per second."""
    counter = iter(range(requests))
    failures = 0

    async def worker() -> None:
        nonlocal failures
        for i in counter:
            if await get(f"/customers/{i % records + 1}") != 200:
                failures += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    if failures:
        raise RuntimeError(f"{failures} requests failed: the comparison would be meaningless")
    return requests / elapsed


# --------------------------------------------------------------------------------------------
# the machine's load


class Load:
    """``os.getloadavg()`` at start (on construction) and at end (``end()``), printed both times:
    the scripts run on a shared 2-core machine, and a figure means little without the load it
    was measured under."""

    def __init__(self) -> None:
        self.start = os.getloadavg()
        print(f"load average at start: {self._fmt(self.start)} ({os.cpu_count()} CPUs)", flush=True)
        self.finish: tuple[float, float, float] | None = None

    @staticmethod
    def _fmt(values: tuple[float, float, float]) -> str:
        return " ".join(f"{v:.2f}" for v in values) + " (1, 5, 15 min)"

    def end(self) -> dict[str, list[float]]:
        self.finish = os.getloadavg()
        print(f"load average at end:   {self._fmt(self.finish)}", flush=True)
        return self.as_dict()

    def as_dict(self) -> dict[str, list[float]]:
        out = {"load_start": [round(v, 2) for v in self.start]}
        if self.finish is not None:
            out["load_end"] = [round(v, 2) for v in self.finish]
        return out


# --------------------------------------------------------------------------------------------
# an open-loop load generator


@dataclass
class OpenLoop:
    """What one open-loop run saw. Latencies are from each request's scheduled time to its
    completion; a request still pending when the drain ran out has latency +inf."""

    offered_rate: float
    duration: float
    scheduled: int = 0
    ok: int = 0
    failed: int = 0
    unfinished: int = 0
    latencies: list[float] = field(default_factory=list)  # every scheduled request, ok or not
    ok_latencies: list[float] = field(default_factory=list)
    send_lag: list[float] = field(default_factory=list)  # generator's own lateness per request
    elapsed: float = 0.0  # first scheduled arrival to last completion (or to the drain's end)

    @property
    def achieved_rate(self) -> float:
        """Successful completions per second over the run (schedule plus the time it took the
        target to finish what it was sent)."""
        return self.ok / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def offered_actual(self) -> float:
        """Arrivals per second really scheduled (Poisson arrivals scatter around the rate)."""
        return self.scheduled / self.duration if self.duration else 0.0

    @property
    def achieved_share(self) -> float:
        """Achieved over what was really offered."""
        return self.achieved_rate / self.offered_actual if self.offered_actual else float("nan")

    def p(self, q: float) -> float:
        return percentile(self.latencies, q)

    def lag_p(self, q: float) -> float:
        return percentile(self.send_lag, q)


async def open_loop(
    send: Callable[[int], Awaitable[bool]],
    rate: float,
    duration: float,
    *,
    drain: float = 5.0,
    poisson: bool = False,
    seed: int = 1,
) -> OpenLoop:
    """Call ``send(i)`` for i = 0, 1, ... at ``rate`` per second for ``duration`` seconds, each in
    its own task started at its scheduled time, whatever the earlier ones are doing (open loop).

    ``poisson``: exponential gaps (a Poisson arrival process) instead of a fixed interval.
    ``drain``: seconds to wait after the last arrival for requests still in flight; those
    still pending then are cancelled and counted as ``unfinished`` with latency +inf.
    ``send`` returns True for a success; an exception counts as a failure.
    """
    result = OpenLoop(offered_rate=rate, duration=duration)
    rng = random.Random(seed)
    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task[None]] = []
    last_done = 0.0

    async def one(i: int, at: float) -> None:
        nonlocal last_done
        result.send_lag.append(loop.time() - at)
        try:
            ok = await send(i)
        except asyncio.CancelledError:
            raise
        except Exception:
            ok = False
        done = loop.time()
        last_done = max(last_done, done)
        result.latencies.append(done - at)
        if ok:
            result.ok += 1
            result.ok_latencies.append(done - at)
        else:
            result.failed += 1

    start = loop.time() + 0.01
    at = start
    i = 0
    end = start + duration
    while at < end:
        now = loop.time()
        if at > now:
            await asyncio.sleep(at - now)
        # every arrival that is due now starts now (the sleep may have overslept a few)
        while at <= loop.time() and at < end:
            tasks.append(asyncio.create_task(one(i, at)))
            i += 1
            at += rng.expovariate(rate) if poisson else 1.0 / rate
    result.scheduled = i
    pending = [t for t in tasks if not t.done()]
    if pending:
        _, still = await asyncio.wait(pending, timeout=max(0.0, end + drain - loop.time()))
        for task in still:
            task.cancel()
        await asyncio.gather(*still, return_exceptions=True)
        result.unfinished = len(still)
        result.latencies.extend([math.inf] * len(still))
        if still:
            last_done = end + drain
    result.elapsed = max(last_done, end) - start
    return result


def fmt_ms(seconds: float) -> str:
    if math.isnan(seconds):
        return "n/a"
    if math.isinf(seconds):
        return "unfinished"
    return f"{seconds * 1000:.1f}"


# --------------------------------------------------------------------------------------------
# output


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return str(value)


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain text table: first column left-aligned, the others right-aligned."""
    cells = [[str(c) for c in header], *[[_cell(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )

    return "\n".join([line(cells[0]), "  ".join("-" * w for w in widths), *(line(r) for r in cells[1:])])


def emit(name: str, results: dict[str, Any]) -> None:
    """The last line of every benchmark: one JSON object for machines to read."""
    payload = {"benchmark": name, "python": platform.python_version(), "cpus": os.cpu_count(), **results}
    print(json.dumps(_finite(payload), sort_keys=True, default=str))


def _finite(value: Any) -> Any:
    """JSON has no infinity or NaN: those become null."""
    if isinstance(value, float) and (math.isinf(value) or math.isnan(value)):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def now() -> float:
    return time.perf_counter()
