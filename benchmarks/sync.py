"""Sync benchmark: 20,000 changed records on the testbed (20 ms latency on every request).

  write-back    interlock.Sync -> WriteBack (PUT /mirror/{id}, idempotency keys, concurrency 5,
                every call through the Client), ledger and checkpoint in SQLite. The ceiling is
                concurrency / latency = 5 / 0.020 s = 250 records/s; target >= 95 %.
  raw PUT loop  the same PUTs from 5 tasks looping over the Interlock Client, no sync, no
                ledger (measured in the same run): what this machine allows at 5 in flight
                (20 ms plus the loopback round trip and both event loops' work).
  postgres      interlock.Sync -> ToTable.postgres (BatchWriter, COPY + upsert), ledger and
                checkpoint in PostgreSQL; bounded by reading pages, not by writes.

The testbed runs in a child process (spawn_testbed), so its work does not share this event loop.

    python benchmarks/sync.py [--records 20000] [--latency-ms 20] [--page-size 500] [--uvloop]
                              [--skip-postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from typing import Any

from _common import emit, table

import interlock
from interlock.testbed import Faults, Latency, TestbedConfig, spawn_testbed

DSN = os.environ.get("INTERLOCK_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")


async def raw_puts(url: str, count: int, concurrency: int) -> float:
    """Records/s of ``concurrency`` tasks looping over PUTs (the machine's ceiling)."""
    async with interlock.Client(url) as client:
        ids = iter(range(1, count + 1))

        async def worker() -> None:
            for rid in ids:
                response = await client.put(
                    f"/mirror/{rid}", json={"name": f"raw {rid}"}, idempotency_key=f"raw-{rid}"
                )
                response.raise_for_status()

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return count / (time.perf_counter() - start)


async def write_back(url: str, store: str, page_size: int) -> tuple[float, interlock.sync.SyncReport]:
    async with interlock.Client(url) as client:
        sync = interlock.Sync(
            "bench-writeback",
            source=interlock.SyncSource(client, "/customers", page_size=page_size),
            destination=interlock.WriteBack(client, "/mirror/{id}"),
            store=store,
        )
        async with sync:
            start = time.perf_counter()
            report = await sync.run_once()
            elapsed = time.perf_counter() - start
    return report.applied / elapsed, report


async def into_postgres(url: str, page_size: int) -> tuple[float, interlock.sync.SyncReport]:
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
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--page-size", type=int, default=500)
    parser.add_argument("--raw", type=int, default=2000, help="PUTs in the raw baseline loop")
    parser.add_argument("--uvloop", action="store_true", help="run this side on uvloop")
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        uvloop.install()
    limit = 5 / (args.latency_ms / 1000)
    config = TestbedConfig(
        records=args.records,
        kinds=("customers", "mirror"),
        faults=Faults(latency=Latency.fixed(args.latency_ms)),
    )
    results: dict[str, Any] = {"records": args.records, "latency_ms": args.latency_ms, "limit_per_s": limit}
    rows: list[list[object]] = []
    with spawn_testbed(config) as tb, tempfile.TemporaryDirectory() as tmp:
        raw = asyncio.run(raw_puts(tb.url, args.raw, 5))
        rows.append(["raw PUT loop (5 tasks)", args.raw, f"{raw:.1f}", f"{raw / limit:.1%}", "-"])
        tb.reset_counters()
        rate, report = asyncio.run(write_back(tb.url, f"sqlite:///{tmp}/bench.db", args.page_size))
        counters = tb.counters()
        assert report.applied == args.records, report
        assert counters.writes_applied == args.records, counters.writes_applied
        rows.append(
            [
                "write-back (Sync, concurrency 5)",
                report.applied,
                f"{rate:.1f}",
                f"{rate / limit:.1%}",
                f"{rate / raw:.1%}",
            ]
        )
        results.update(
            raw_puts_per_s=round(raw, 1),
            write_back_per_s=round(rate, 1),
            write_back_vs_limit=round(rate / limit, 4),
            write_back_vs_raw=round(rate / raw, 4),
            write_back_max_concurrency=counters.max_concurrency,
        )
        if not args.skip_postgres:
            pg_rate, pg_report = asyncio.run(into_postgres(tb.url, args.page_size))
            rows.append(["postgres (Sync -> BatchWriter)", pg_report.applied, f"{pg_rate:.1f}", "-", "-"])
            results.update(postgres_per_s=round(pg_rate, 1), postgres_pages=pg_report.pages)
    print(
        f"sync: {args.records} changed records, testbed latency {args.latency_ms:g} ms, "
        f"limit 5 / {args.latency_ms / 1000:g} s = {limit:.0f} records/s{' (uvloop)' if args.uvloop else ''}"
    )
    print(table(["scenario", "records", "records/s", "vs limit", "vs raw loop"], rows))
    emit("sync", results)


if __name__ == "__main__":
    main()
