"""Sink benchmark: 100,000 rows (``--rows``) into PostgreSQL.

  raw COPY       one COPY of all rows into the table, no upsert: the floor of any load
  upsert floor   one COPY of all rows into a temporary stage, then one INSERT ... SELECT ...
                 ON CONFLICT DO UPDATE from it, in one transaction: the floor of an idempotent
                 upsert, which is what BatchWriter does; its bulk paths are judged against it
  write_many()   interlock.BatchWriter.write_many(rows): every row at once, awaited (bulk)
  add()          BatchWriter.add() for every row without awaiting each, then aclose() (bulk)
  write() x64    64 handlers each awaiting writer.write(row) for its share of the rows, as an
                 inbox handler does before acknowledging its event (method="auto": small
                 batches by one unnest() statement, large ones by COPY + upsert)
  write() x64 copy / executemany
                 the same with the method forced
  naive x64      one INSERT ... ON CONFLICT per row, each its own transaction (what a handler
                 writing its row directly does), from the same 64 writers, through the same
                 pool; on ``--naive-rows`` rows (it is slow), compared by rows/s

Every case uses one pool of ``--pool`` connections; the cases are rotated over ``--rounds``
rounds (A B C, B C A, ...) on a fresh table each time; medians with min-max. Each BatchWriter
case gets a fresh writer and sink (``max_rows`` per batch, the sink's default connections).

    python benchmarks/sink.py [--rows 100000] [--naive-rows 10000] [--max-rows 1000]
                              [--concurrency 64] [--pool 10] [--rounds 3] [--only a,b]
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


def writer_for(pool: Any, schema: str, method: Any, max_rows: int) -> Any:
    try:
        sink = PostgresSink("payments", COLUMNS, ["id"], pool=pool, schema=schema, method=method)
    except interlock.errors.ConfigError:  # an older build without that method: its default, to compare
        sink = PostgresSink("payments", COLUMNS, ["id"], pool=pool, schema=schema)
    return interlock.BatchWriter(sink, max_rows=max_rows, max_delay=0.01)


async def batched(
    pool: Any, schema: str, rows: list[tuple[Any, ...]], concurrency: int, method: Any, max_rows: int
) -> None:
    writer = writer_for(pool, schema, method, max_rows)

    async def handler(share: list[tuple[Any, ...]]) -> None:
        for row in share:
            await writer.write(row)

    await asyncio.gather(*(handler(rows[i::concurrency]) for i in range(concurrency)))
    await writer.aclose()


async def streamed(pool: Any, schema: str, rows: list[tuple[Any, ...]], max_rows: int) -> None:
    writer = writer_for(pool, schema, "auto", max_rows)
    for i, row in enumerate(rows):
        writer.add(row)
        if i % max_rows == 0:
            await asyncio.sleep(0)  # let full batches go out while rows keep coming
    await writer.aclose()


async def written_many(pool: Any, schema: str, rows: list[tuple[Any, ...]], max_rows: int) -> None:
    writer = writer_for(pool, schema, "auto", max_rows)
    await writer.write_many(rows)
    await writer.aclose()


async def raw_copy(pool: Any, schema: str, rows: list[tuple[Any, ...]]) -> None:
    async with pool.acquire() as conn:
        await conn.copy_records_to_table("payments", schema_name=schema, records=rows, columns=COLUMNS)


async def upsert_floor(pool: Any, schema: str, rows: list[tuple[Any, ...]]) -> None:
    """COPY every row into a stage, then one upsert from it: what an idempotent load costs."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            f'CREATE TEMP TABLE floor_stage (LIKE "{schema}".payments INCLUDING DEFAULTS) ON COMMIT DROP'
        )
        await conn.copy_records_to_table("floor_stage", records=rows, columns=COLUMNS)
        await conn.execute(
            f'INSERT INTO "{schema}".payments SELECT * FROM floor_stage ON CONFLICT (id) DO UPDATE SET '
            "customer = excluded.customer, amount = excluded.amount, status = excluded.status, "
            "payload = excluded.payload"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--naive-rows", type=int, default=10_000, help="rows for the naive case")
    parser.add_argument("--max-rows", type=int, default=1000)
    parser.add_argument(
        "--concurrency", type=int, default=64, help="writers, for the naive and write() cases"
    )
    parser.add_argument("--pool", type=int, default=10, help="connections in the one pool every case uses")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default="", help="comma-separated cases to run (names as printed)")
    args = parser.parse_args()
    load = _common.Load()
    rows = make_rows(args.rows)
    schema = f"bench_sink_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(DSN)
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    pool = await asyncpg.create_pool(DSN, min_size=args.pool, max_size=args.pool)
    c, m = args.concurrency, args.max_rows
    naive_key = f"naive x{c}"
    cases: dict[str, tuple[int, Any]] = {
        RAW: (args.rows, lambda: raw_copy(pool, schema, rows)),
        FLOOR: (args.rows, lambda: upsert_floor(pool, schema, rows)),
        "write_many()": (args.rows, lambda: written_many(pool, schema, rows, m)),
        "add()": (args.rows, lambda: streamed(pool, schema, rows, m)),
        f"write() x{c}": (args.rows, lambda: batched(pool, schema, rows, c, "auto", m)),
        f"write() x{c} copy": (args.rows, lambda: batched(pool, schema, rows, c, "copy", m)),
        f"write() x{c} executemany": (args.rows, lambda: batched(pool, schema, rows, c, "executemany", m)),
        naive_key: (args.naive_rows, lambda: naive(pool, schema, rows[: args.naive_rows], c)),
    }
    if args.only:
        cases = {k: v for k, v in cases.items() if k in args.only.split(",") or k in (RAW, FLOOR)}
    rates: dict[str, list[float]] = {name: [] for name in cases}
    try:
        for round_no, order in enumerate(_common.rotations(list(cases), args.rounds), 1):
            for name in order:
                n, run = cases[name]
                await fresh_table(admin, schema)
                start = time.perf_counter()
                await run()
                elapsed = time.perf_counter() - start
                stored = await count(admin, schema)
                assert stored == n, f"{name}: {stored} rows stored, expected {n}"
                rates[name].append(n / elapsed)
                print(
                    f"round {round_no} {name:28} {n:7} rows {elapsed:8.2f} s {n / elapsed:10.0f} rows/s",
                    flush=True,
                )
    finally:
        await pool.close()
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()
    med, spread = _common.med, _common.spread
    floor = med(rates[FLOOR])
    naive_rate = med(rates[naive_key]) if naive_key in rates else float("nan")
    rows_out = [
        (
            name,
            cases[name][0],
            spread(r, "{:.0f}"),
            f"{floor / med(r):.2f}x",
            f"{med(r) / naive_rate:.1f}x",
        )
        for name, r in rates.items()
    ]
    print()
    print(
        f"{args.rows} rows ({args.naive_rows} for naive) x {args.rounds} rounds (cases rotated); "
        f"max_rows={m}; {c} writers for write() and naive; one pool of {args.pool} connections; median (min-max)"
    )
    print(_common.table(["case", "rows", "rows/s", "time vs upsert floor", "rows/s vs naive"], rows_out))
    ratios = {name: round(floor / med(r), 3) for name, r in rates.items()}
    print("time over the upsert floor (target: bulk paths <= 1.2x):", ratios)
    _common.emit(
        "sink",
        {
            "rows": args.rows,
            "naive_rows": args.naive_rows,
            "max_rows": m,
            "concurrency": c,
            "pool": args.pool,
            "rounds": args.rounds,
            "rows_per_s": {name: [round(x) for x in r] for name, r in rates.items()},
            "median_rows_per_s": {name: round(med(r)) for name, r in rates.items()},
            "time_over_upsert_floor": ratios,
            **load.end(),
        },
    )


RAW = "raw COPY"
FLOOR = "upsert floor"

if __name__ == "__main__":
    asyncio.run(main())
