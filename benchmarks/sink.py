"""Sink benchmark: 100,000 rows into PostgreSQL.

  naive        one INSERT ... ON CONFLICT per row, each its own transaction (what a handler
               writing its row directly does)
  batch/copy   interlock.BatchWriter over PostgresSink(method="copy"): handlers await
               writer.write(row); batches of max_rows go through COPY + one upsert
  batch/many   the same with method="executemany"
  stream/copy  BatchWriter.add() for every row without awaiting each (bulk loads), then
               aclose(): full batches of max_rows through COPY + upsert
  raw COPY     one COPY of all rows into the table, no upsert: the floor

Handlers are simulated by ``--concurrency`` tasks each writing its share of rows and awaiting
every write, as an inbox handler would before acknowledging its event.

    python benchmarks/sink.py [--rows 100000] [--max-rows 1000] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from typing import Any

import asyncpg

import interlock
from interlock.stores import PostgresSink

DSN = os.environ.get("INTERLOCK_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
COLUMNS = ["id", "customer", "amount", "status", "payload"]


def make_rows(n: int) -> list[tuple[Any, ...]]:
    return [
        (f"pay_{i}", f"cus_{i % 997}", i * 7 % 100_000, "paid" if i % 5 else "refunded", f'{{"n": {i}}}')
        for i in range(n)
    ]


async def fresh_table(conn: Any, schema: str) -> None:
    await conn.execute(f'DROP TABLE IF EXISTS "{schema}".payments')
    await conn.execute(
        f'CREATE TABLE "{schema}".payments (id TEXT PRIMARY KEY, customer TEXT NOT NULL, '
        "amount BIGINT NOT NULL, status TEXT NOT NULL, payload TEXT NOT NULL)"
    )


async def count(conn: Any, schema: str) -> int:
    return int(await conn.fetchval(f'SELECT count(*) FROM "{schema}".payments'))


async def naive(pool: Any, schema: str, rows: list[tuple[Any, ...]], concurrency: int) -> None:
    sql = (
        f'INSERT INTO "{schema}".payments (id, customer, amount, status, payload) VALUES ($1, $2, $3, $4, $5) '
        "ON CONFLICT (id) DO UPDATE SET customer = excluded.customer, amount = excluded.amount, "
        "status = excluded.status, payload = excluded.payload"
    )

    async def worker(share: list[tuple[Any, ...]]) -> None:
        async with pool.acquire() as conn:
            for row in share:
                await conn.execute(sql, *row)

    await asyncio.gather(*(worker(rows[i::concurrency]) for i in range(concurrency)))


async def batched(pool: Any, schema: str, rows: list[tuple[Any, ...]], concurrency: int, method: Any, max_rows: int) -> None:
    sink = PostgresSink("payments", COLUMNS, ["id"], pool=pool, schema=schema, method=method)
    writer = interlock.BatchWriter(sink, max_rows=max_rows, max_delay=0.01)

    async def handler(share: list[tuple[Any, ...]]) -> None:
        for row in share:
            await writer.write(row)

    await asyncio.gather(*(handler(rows[i::concurrency]) for i in range(concurrency)))
    await writer.aclose()


async def streamed(pool: Any, schema: str, rows: list[tuple[Any, ...]], method: Any, max_rows: int) -> None:
    sink = PostgresSink("payments", COLUMNS, ["id"], pool=pool, schema=schema, method=method)
    writer = interlock.BatchWriter(sink, max_rows=max_rows, max_delay=0.01)
    for i, row in enumerate(rows):
        writer.add(row)
        if i % max_rows == 0:
            await asyncio.sleep(0)  # let full batches go out while rows keep coming
    await writer.aclose()


async def raw_copy(pool: Any, schema: str, rows: list[tuple[Any, ...]]) -> None:
    async with pool.acquire() as conn:
        await conn.copy_records_to_table("payments", schema_name=schema, records=rows, columns=COLUMNS)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--max-rows", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--naive-concurrency", type=int, default=10, help="connections for the naive inserts")
    args = parser.parse_args()
    rows = make_rows(args.rows)
    schema = f"bench_sink_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(DSN)
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    pool = await asyncpg.create_pool(DSN, min_size=2, max_size=max(10, args.naive_concurrency))
    results: dict[str, dict[str, float]] = {}
    try:
        cases: list[tuple[str, Any]] = [
            ("raw COPY", lambda: raw_copy(pool, schema, rows)),
            ("batch/copy", lambda: batched(pool, schema, rows, args.concurrency, "copy", args.max_rows)),
            ("batch/executemany", lambda: batched(pool, schema, rows, args.concurrency, "executemany", args.max_rows)),
            ("stream/copy add()", lambda: streamed(pool, schema, rows, "copy", args.max_rows)),
            (f"naive x{args.naive_concurrency}", lambda: naive(pool, schema, rows, args.naive_concurrency)),
        ]
        for name, run in cases:
            await fresh_table(admin, schema)
            start = time.perf_counter()
            await run()
            elapsed = time.perf_counter() - start
            stored = await count(admin, schema)
            assert stored == args.rows, f"{name}: {stored} rows stored, expected {args.rows}"
            results[name] = {"seconds": round(elapsed, 3), "rows_per_s": round(args.rows / elapsed)}
            print(f"{name:20} {elapsed:8.2f} s  {args.rows / elapsed:10.0f} rows/s", flush=True)
    finally:
        await pool.close()
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()
    naive_key = f"naive x{args.naive_concurrency}"
    ratios = {
        "batch_copy_vs_naive": round(results[naive_key]["seconds"] / results["batch/copy"]["seconds"], 1),
        "batch_executemany_vs_naive": round(results[naive_key]["seconds"] / results["batch/executemany"]["seconds"], 1),
        "stream_copy_vs_naive": round(results[naive_key]["seconds"] / results["stream/copy add()"]["seconds"], 1),
        "raw_copy_vs_batch_copy": round(results["batch/copy"]["seconds"] / results["raw COPY"]["seconds"], 2),
    }
    print("ratios:", ratios)
    print(json.dumps({"benchmark": "sink", "rows": args.rows, "max_rows": args.max_rows,
                      "concurrency": args.concurrency, "results": results, "ratios": ratios}))


if __name__ == "__main__":
    asyncio.run(main())
