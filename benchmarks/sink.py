"""Sink benchmark: 20,000 rows (``--rows``) into PostgreSQL.

  naive        one INSERT ... ON CONFLICT per row, each its own transaction (what a handler
               writing its row directly does), from the same 64 writers as the batch/ cases,
               through the same pool
  batch/copy   interlock.BatchWriter over PostgresSink(method="copy"): handlers await
               writer.write(row); batches of max_rows go through COPY + one upsert
  batch/many   the same with method="executemany"
  stream/copy  BatchWriter.add() for every row without awaiting each (bulk loads), then
               aclose(): full batches of max_rows through COPY + upsert
  raw COPY     one COPY of all rows into the table, no upsert: the floor

Handlers are simulated by ``--concurrency`` tasks each writing its share of rows and awaiting
every write, as an inbox handler would before acknowledging its event. Every case uses one pool
of ``--pool`` connections; the cases are rotated over ``--rounds`` rounds (A B C, B C A, ...) on
a fresh table each time; medians with min-max.

    python benchmarks/sink.py [--rows 20000] [--max-rows 1000] [--concurrency 64] [--pool 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from typing import Any

import _common
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
    """``concurrency`` writers (the batched paths' handlers), each awaiting one INSERT per row
    through the same pool (``pool.execute`` takes a connection per statement)."""
    sql = (
        f'INSERT INTO "{schema}".payments (id, customer, amount, status, payload) VALUES ($1, $2, $3, $4, $5) '
        "ON CONFLICT (id) DO UPDATE SET customer = excluded.customer, amount = excluded.amount, "
        "status = excluded.status, payload = excluded.payload"
    )

    async def worker(share: list[tuple[Any, ...]]) -> None:
        for row in share:
            await pool.execute(sql, *row)

    await asyncio.gather(*(worker(rows[i::concurrency]) for i in range(concurrency)))


async def batched(
    pool: Any, schema: str, rows: list[tuple[Any, ...]], concurrency: int, method: Any, max_rows: int
) -> None:
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
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--max-rows", type=int, default=1000)
    parser.add_argument(
        "--concurrency", type=int, default=64, help="writers, for the naive and batch/ cases alike"
    )
    parser.add_argument("--pool", type=int, default=10, help="connections in the one pool every case uses")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    load = _common.Load()
    rows = make_rows(args.rows)
    schema = f"bench_sink_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(DSN)
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    pool = await asyncpg.create_pool(DSN, min_size=args.pool, max_size=args.pool)
    seconds: dict[str, list[float]] = {}
    naive_key = f"naive x{args.concurrency}"
    try:
        cases: dict[str, Any] = {
            "raw COPY": lambda: raw_copy(pool, schema, rows),
            "batch/copy": lambda: batched(pool, schema, rows, args.concurrency, "copy", args.max_rows),
            "batch/executemany": lambda: batched(
                pool, schema, rows, args.concurrency, "executemany", args.max_rows
            ),
            "stream/copy add()": lambda: streamed(pool, schema, rows, "copy", args.max_rows),
            naive_key: lambda: naive(pool, schema, rows, args.concurrency),
        }
        seconds = {name: [] for name in cases}
        for round_no, order in enumerate(_common.rotations(list(cases), args.rounds), 1):
            for name in order:
                await fresh_table(admin, schema)
                start = time.perf_counter()
                await cases[name]()
                elapsed = time.perf_counter() - start
                stored = await count(admin, schema)
                assert stored == args.rows, f"{name}: {stored} rows stored, expected {args.rows}"
                seconds[name].append(elapsed)
                print(
                    f"round {round_no} {name:20} {elapsed:8.2f} s  {args.rows / elapsed:10.0f} rows/s",
                    flush=True,
                )
    finally:
        await pool.close()
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()
    med, spread = _common.med, _common.spread
    naive_s = med(seconds[naive_key])
    rows_out = [
        (
            name,
            spread(s, "{:.2f}"),
            spread([args.rows / x for x in s], "{:.0f}"),
            f"{naive_s / med(s):.1f}x",
        )
        for name, s in seconds.items()
    ]
    print()
    print(
        f"{args.rows} rows x {args.rounds} rounds (cases rotated); {args.concurrency} writers for naive and batch/, "
        f"one pool of {args.pool} connections for all; median (min-max)"
    )
    print(_common.table(["case", "seconds", "rows/s", "vs naive (time)"], rows_out))
    ratios = {
        "batch_copy_vs_naive": round(naive_s / med(seconds["batch/copy"]), 1),
        "batch_executemany_vs_naive": round(naive_s / med(seconds["batch/executemany"]), 1),
        "stream_copy_vs_naive": round(naive_s / med(seconds["stream/copy add()"]), 1),
        "batch_copy_over_raw_copy": round(med(seconds["batch/copy"]) / med(seconds["raw COPY"]), 2),
    }
    print("ratios:", ratios)
    _common.emit(
        "sink",
        {
            "rows": args.rows,
            "max_rows": args.max_rows,
            "concurrency": args.concurrency,
            "pool": args.pool,
            "rounds": args.rounds,
            "seconds": {name: [round(x, 3) for x in s] for name, s in seconds.items()},
            "ratios": ratios,
            **load.end(),
        },
    )


if __name__ == "__main__":
    asyncio.run(main())
