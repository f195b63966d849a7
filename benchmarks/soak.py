"""soak: does a long run hold its memory? One section per face, each run for ``--seconds``.

``--client``: one ``interlock.Client`` (every default policy on: retry and its budget, breaker,
coalescing, concurrency, metrics) calls a testbed in a child process with ``--concurrency``
workers, for ``--seconds`` (default 180), half the calls to distinct ids (``/customers/{n}``,
n counting up: one route) and half to distinct slugs (``/users/user-{n}``: not ids, so each is a
route of its own until the route bound collapses them into ``(other)``), with ``--error-rate``
503s (default 2 %) so retries and the retry budget run too. The process's RSS is sampled every
``--sample`` seconds; the baseline is the RSS after ``--warmup`` seconds of the same load (pools,
caches and the route bound filled), and the figure is the ratio of the last sample to it
(target: flat within 10 %). Printed beside it: calls per second, the route labels and series
of this upstream on the ``/metrics`` page and the page's size.

Sections of other faces (the Inbox at a steady event rate) join as ``--inbox``; with no section
flag, every section runs.

    .venv/bin/python benchmarks/soak.py [--client] [--seconds 180] [--concurrency 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import _common

import interlock
from interlock.testbed import Faults, TestbedConfig, spawn_testbed

MIB = 1024 * 1024


def rss_bytes() -> int:
    """This process's resident set size now (Linux ``/proc``; the peak elsewhere)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def route_labels(upstream: str) -> tuple[int, int, int]:
    """(distinct route labels, series, bytes) of ``upstream`` on the metrics page."""
    page = interlock.metrics.render()
    routes: set[str] = set()
    series = 0
    needle = f'upstream="{upstream}"'
    for line in page.decode().splitlines():
        if needle in line and 'route="' in line:
            series += 1
            routes.add(line.split('route="', 1)[1].split('"', 1)[0])
    return len(routes), series, len(page)


async def soak_client(args: argparse.Namespace) -> dict[str, Any]:
    name = "soak-client"
    faults = Faults(error_rates={503: args.error_rate}) if args.error_rate else Faults()
    config = TestbedConfig(records=1000, faults=faults)
    with spawn_testbed(config) as testbed:
        async with interlock.Client(testbed.url, name=name, timeout=interlock.Timeout(total=10.0)) as api:
            calls = failed = 0
            counter = 0

            async def worker() -> None:
                nonlocal calls, failed, counter
                while not stop.is_set():
                    counter += 1
                    n = counter
                    path = f"/customers/{n % 1000 + 1}?n={n}" if n % 2 else f"/users/user-{n}"
                    try:
                        await api.get(path)
                    except interlock.errors.CallError:
                        failed += 1
                    calls += 1

            stop = asyncio.Event()
            workers = [asyncio.ensure_future(worker()) for _ in range(args.concurrency)]
            started = time.perf_counter()
            samples: list[tuple[float, int]] = []
            baseline: int | None = None
            baseline_calls = 0
            end = started + args.warmup + args.seconds
            while (now := time.perf_counter()) < end:
                await asyncio.sleep(min(args.sample, end - now))
                at = time.perf_counter() - started
                rss = rss_bytes()
                if baseline is None and at >= args.warmup:
                    baseline, baseline_calls = rss, calls
                    print(
                        f"  {at:6.0f} s  RSS {rss / MIB:7.1f} MiB  (baseline, after warm-up)  calls {calls:,}",
                        flush=True,
                    )
                    continue
                samples.append((at, rss))
                ratio = f"{rss / baseline:.3f}x" if baseline else "warm-up"
                print(f"  {at:6.0f} s  RSS {rss / MIB:7.1f} MiB  {ratio:>8}  calls {calls:,}", flush=True)
            stop.set()
            await asyncio.gather(*workers)
            elapsed = time.perf_counter() - started
            labels, series, page = route_labels(name)
            stats = api.stats()
    assert baseline is not None
    final = samples[-1][1]
    ratio = final / baseline
    print()
    print(
        _common.table(
            ["client soak", "value"],
            [
                ["seconds measured (after warm-up)", f"{args.seconds:.0f}"],
                ["calls", f"{calls:,} ({calls / elapsed:,.0f}/s; {failed:,} failed)"],
                ["calls after the baseline", f"{calls - baseline_calls:,}"],
                ["RSS at baseline", f"{baseline / MIB:.1f} MiB"],
                ["RSS at end", f"{final / MIB:.1f} MiB"],
                ["end / baseline", f"{ratio:.3f}x ({'flat within 10 %' if ratio <= 1.10 else 'GREW'})"],
                ["max RSS sampled / baseline", f"{max(r for _, r in samples) / baseline:.3f}x"],
                ["route labels of this upstream", labels],
                ["its series on /metrics", series],
                ["/metrics page", f"{page / 1024:.0f} KiB"],
                ["retries sent", stats["retries"]],
            ],
        )
    )
    return {
        "client": {
            "seconds": args.seconds,
            "calls": calls,
            "failed": failed,
            "rss_baseline_mib": round(baseline / MIB, 1),
            "rss_end_mib": round(final / MIB, 1),
            "rss_ratio": round(ratio, 3),
            "route_labels": labels,
            "series": series,
            "metrics_page_kib": round(page / 1024),
        }
    }


SECTIONS: dict[str, Callable[[argparse.Namespace], Awaitable[dict[str, Any]]]] = {"client": soak_client}
"""Each face's soak, by the flag that selects it; a section returns its figures for the JSON line."""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    for section in SECTIONS:
        parser.add_argument(f"--{section}", action="store_true", help=f"run the {section} soak")
    parser.add_argument(
        "--seconds", type=float, default=180.0, help="measured time per section (after warm-up)"
    )
    parser.add_argument("--warmup", type=float, default=15.0, help="seconds of load before the baseline RSS")
    parser.add_argument("--sample", type=float, default=15.0, help="seconds between RSS samples")
    parser.add_argument("--concurrency", type=int, default=20, help="client workers")
    parser.add_argument("--error-rate", type=float, default=0.02, help="share of 503s from the testbed")
    args = parser.parse_args()
    chosen = [s for s in SECTIONS if getattr(args, s)] or list(SECTIONS)
    load = _common.Load()
    results: dict[str, Any] = {}
    for section in chosen:
        print(
            f"\n== {section} soak: {args.seconds:.0f} s after {args.warmup:.0f} s of warm-up ==", flush=True
        )
        results.update(asyncio.run(SECTIONS[section](args)))
    results.update(load.end())
    _common.emit("soak", results)


if __name__ == "__main__":
    main()
