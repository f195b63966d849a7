"""Sync benchmark: 1,500 changed records (``--records``) on the testbed (20 ms latency on every
request), scenarios rotated over ``--rounds`` rounds (A B C, B C A, ...), medians with min-max.

  write-back    interlock.Sync -> WriteBack (PUT /mirror/{id}, idempotency keys, concurrency 5,
                every call through the Client), ledger and checkpoint in SQLite. The ceiling is
                concurrency / latency = 5 / 0.020 s = 250 records/s; target >= 95 %.
  raw PUT loop  the same PUTs from 5 tasks looping over the Interlock Client, no sync, no
                ledger (measured in the same run): what this machine allows at 5 in flight
                (20 ms plus the loopback round trip and both event loops' work).
  plain loop    the external contender: aiohttp reading the same cursor pages and PUTting each
                record from 5 tasks (idempotency keys, no ledger, no checkpoint); also paced by
                aiolimiter at the limit (250/s) and at 0.95 of it.
  postgres      interlock.Sync -> ToTable.postgres (BatchWriter, COPY + upsert), ledger and
                checkpoint in PostgreSQL; bounded by reading pages, not by writes.

The testbed runs in a child process (spawn_testbed), so its work does not share this event loop.

    python benchmarks/sync.py [--records 1500] [--latency-ms 20] [--page-size 500] [--rounds 3]
                              [--uvloop] [--skip-postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

from _common import Load, emit, med, rotations, spread, table

import interlock
from interlock.testbed import Faults, Latency, TestbedConfig, spawn_testbed

DSN = os.environ.get("INTERLOCK_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")


async def raw_puts(url: str, count: int, concurrency: int, tag: str) -> float:
    """Records/s of ``concurrency`` tasks looping over PUTs through the Interlock Client."""
    async with interlock.Client(url) as client:
        ids = iter(range(1, count + 1))

        async def worker() -> None:
            for rid in ids:
                response = await client.put(
                    f"/mirror/{rid}", json={"name": f"raw {rid}"}, idempotency_key=f"raw-{tag}-{rid}"
                )
                response.raise_for_status()

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return count / (time.perf_counter() - start)


async def plain_loop(
    url: str, page_size: int, concurrency: int, tag: str, per_second: float | None
) -> tuple[float, int]:
    """The external contender: aiohttp, the same listing the Sync reads (cursor pages of
    ``page_size``), ``concurrency`` tasks PUTting each record with an idempotency key, paced by
    aiolimiter at ``per_second`` when given. No ledger, no checkpoint, no retry. Returns
    (records/s, records written)."""
    import aiohttp
    from aiolimiter import AsyncLimiter

    limiter = AsyncLimiter(per_second, 1.0) if per_second else None
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=2 * page_size)
    written = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency + 2)) as http:

        async def pages() -> None:
            cursor = ""
            while True:
                params = {"limit": str(page_size), **({"cursor": cursor} if cursor else {})}
                async with http.get(f"{url}/customers", params=params) as resp:
                    resp.raise_for_status()
                    page = await resp.json()
                for item in page["data"]:
                    await queue.put(item)
                cursor = page.get("next_cursor") or ""
                if not cursor:
                    break
            for _ in range(concurrency):
                await queue.put(None)

        async def writer() -> None:
            nonlocal written
            while (item := await queue.get()) is not None:
                if limiter is not None:
                    await limiter.acquire()
                headers = {"Idempotency-Key": f"plain-{tag}-{item['id']}"}
                async with http.put(f"{url}/mirror/{item['id']}", json=item, headers=headers) as resp:
                    resp.raise_for_status()
                    await resp.read()
                written += 1

        start = time.perf_counter()
        await asyncio.gather(pages(), *(writer() for _ in range(concurrency)))
        return written / (time.perf_counter() - start), written


async def write_back(url: str, store: str, page_size: int, tag: str) -> tuple[float, Any]:
    async with interlock.Client(url) as client:
        sync = interlock.Sync(
            f"bench-writeback-{tag}",  # the job names the idempotency keys: fresh ones per run
            source=interlock.SyncSource(client, "/customers", page_size=page_size),
            destination=interlock.WriteBack(client, "/mirror/{id}"),
            store=store,
        )
        async with sync:
            start = time.perf_counter()
            report = await sync.run_once()
            elapsed = time.perf_counter() - start
    return report.applied / elapsed, report


async def into_postgres(url: str, page_size: int) -> tuple[float, Any]:
    import asyncpg

    schema = f"bench_sync_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(DSN)
    await conn.execute(f'CREATE SCHEMA "{schema}"')
    await conn.execute(
        f'CREATE TABLE "{schema}".customers (id BIGINT PRIMARY KEY, name TEXT, email TEXT, country TEXT,'
        " tier TEXT, balance_cents BIGINT, version BIGINT, updated_at TEXT)"
    )
    try:
        async with interlock.Client(url) as client:
            columns = ["id", "name", "email", "country", "tier", "balance_cents", "version", "updated_at"]
            sync = interlock.Sync(
                "bench-postgres",
                source=interlock.SyncSource(client, "/customers", page_size=page_size),
                destination=interlock.ToTable.postgres(DSN, "customers", columns, ["id"], schema=schema),
                store=f"{DSN}?schema={schema}",
            )
            async with sync:
                start = time.perf_counter()
                report = await sync.run_once()
                elapsed = time.perf_counter() - start
        rows = await conn.fetchval(f'SELECT count(*) FROM "{schema}".customers')
        assert rows == report.applied, (rows, report.applied)
        return report.applied / elapsed, report
    finally:
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1500)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--page-size", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--uvloop", action="store_true", help="run this side on uvloop")
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        uvloop.install()
    load = Load()
    limit = 5 / (args.latency_ms / 1000)
    config = TestbedConfig(
        records=args.records,
        kinds=("customers", "mirror"),
        faults=Faults(latency=Latency.fixed(args.latency_ms)),
    )
    n = args.records
    scenarios: dict[str, Callable[[str, str, str], float]] = {}
    applied: dict[str, list[int]] = {}
    peaks: list[int] = []
    postgres_pages: list[int] = []

    def wb(url: str, tmp: str, tag: str) -> float:
        rate, report = asyncio.run(write_back(url, f"sqlite:///{tmp}/bench-{tag}.db", args.page_size, tag))
        assert report.applied == n, report
        return rate

    scenarios["write-back (Sync, concurrency 5)"] = wb
    scenarios["raw PUT loop (interlock Client, 5 tasks)"] = lambda url, tmp, tag: asyncio.run(
        raw_puts(url, n, 5, tag)
    )

    def plain(per_second: float | None) -> Callable[[str, str, str], float]:
        def run(url: str, tmp: str, tag: str) -> float:
            rate, written = asyncio.run(plain_loop(url, args.page_size, 5, tag, per_second))
            assert written == n, written
            return rate

        return run

    scenarios["plain loop (aiohttp, 5 tasks)"] = plain(None)
    scenarios[f"plain loop + aiolimiter {limit:g}/s"] = plain(limit)
    scenarios[f"plain loop + aiolimiter {0.95 * limit:g}/s (0.95)"] = plain(0.95 * limit)
    if not args.skip_postgres:

        def pg(url: str, tmp: str, tag: str) -> float:
            rate, report = asyncio.run(into_postgres(url, args.page_size))
            postgres_pages.append(report.pages)
            return rate

        scenarios["postgres (Sync -> BatchWriter)"] = pg
    rates: dict[str, list[float]] = {name: [] for name in scenarios}
    with spawn_testbed(config) as tb, tempfile.TemporaryDirectory() as tmp:
        for round_no, order in enumerate(rotations(list(scenarios), args.rounds), 1):
            for name in order:
                tb.reset_counters()
                rate = scenarios[name](tb.url, tmp, f"r{round_no}")
                counters = tb.counters()
                rates[name].append(rate)
                applied.setdefault(name, []).append(counters.writes_applied)
                if name.startswith("write-back"):
                    assert counters.writes_applied == n, counters.writes_applied
                    peaks.append(counters.max_concurrency)
                print(f"round {round_no} {name}: {rate:.1f} records/s", flush=True)
    wb_rate = med(rates["write-back (Sync, concurrency 5)"])
    plain_rate = med(rates["plain loop (aiohttp, 5 tasks)"])
    rows: list[list[object]] = []
    for name, values in rates.items():
        writes = not name.startswith("postgres")
        rows.append(
            [
                name,
                spread(values, "{:.1f}"),
                f"{med(values) / limit:.1%}" if writes else "-",
                f"{wb_rate / med(values):.2f}" if writes else "-",
            ]
        )
    print(
        f"sync: {n} changed records x {args.rounds} rounds (scenarios rotated), testbed latency "
        f"{args.latency_ms:g} ms, limit 5 / {args.latency_ms / 1000:g} s = {limit:.0f} records/s"
        f"{' (uvloop)' if args.uvloop else ''}; median (min-max)"
    )
    print(table(["scenario", "records/s", "vs limit", "write-back / it"], rows))
    print(
        f"write-back / plain aiohttp loop: {wb_rate:.1f} / {plain_rate:.1f} = {wb_rate / plain_rate:.1%} "
        f"(the cost of ledger, checkpoint and the Client's policies)"
    )
    results: dict[str, Any] = {
        "records": n,
        "latency_ms": args.latency_ms,
        "limit_per_s": limit,
        "rounds": args.rounds,
        "records_per_s": {name: [round(v, 1) for v in values] for name, values in rates.items()},
        "median_records_per_s": {name: round(med(values), 1) for name, values in rates.items()},
        "write_back_vs_limit": round(wb_rate / limit, 4),
        "write_back_vs_plain_loop": round(wb_rate / plain_rate, 4),
        "write_back_max_concurrency": peaks,
        "postgres_pages": postgres_pages,
        **load.end(),
    }
    emit("sync", results)


if __name__ == "__main__":
    main()
