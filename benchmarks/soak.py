"""Soak benchmark: memory, disk and row counts stay flat under steady load for minutes.

Sections (``--only``; all by default):
  inbox   An Inbox served the documented way (``inbox.serve()``: uvicorn with bounded
          connections, workers in the same process, the default SQLite store) in a child
          process, fed signed GitHub-style deliveries at ``--rate`` events/s over loopback for
          ``--seconds``. Mixed in: 1 % redelivered duplicates, 1 % bad signatures, 1 % posts to
          made-up source names. Done events are kept ``--retention`` s, so pruning runs during
          the soak. Every ``--every`` s it samples the server's RSS, the WAL and database file
          sizes and the rows by state.
  client  One ``interlock.Client`` (every default policy on: retry and its budget, breaker,
          coalescing, concurrency, metrics) calls a testbed in a child process (``--error-rate``
          503s, default 2 %, so retries and the budget run too) from ``--concurrency`` workers
          for ``--seconds``: half the calls to distinct ids (``/customers/{n}``, one route), half
          to distinct slugs (``/users/user-{n}``: not ids, so each is a route of its own until
          the route bound folds them into ``(other)``). Every ``--every`` s it samples this
          process's RSS; at the end, the upstream's route labels and series on the ``/metrics``
          page and the page's size.

The baseline is the same run's first sample after ``--warmup`` s: RSS at the end is printed as a
ratio to it ("flat" when within 10 %).

    python benchmarks/soak.py                         # both, 180 s each (the Inbox at 300 events/s)
    python benchmarks/soak.py --seconds 60 --rate 300
    python benchmarks/soak.py --only client --concurrency 20

Prints a table of samples, a summary and one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

from _common import Load, OpenLoop, emit, fmt_ms, open_loop, percentile, table

SECRET = "soak-secret"


# --------------------------------------------------------------------------------------------
# the Inbox section


def serve_inbox(db: str, port: int, retention: float, workers: int, wal_size_limit: int | None) -> None:
    """The child process: the Inbox as a deployment runs it, ingress and workers together."""
    import interlock
    from interlock.stores.queue_sqlite import SQLiteQueue

    async def main() -> None:
        store: Any = f"sqlite:///{db}"
        if wal_size_limit is not None:
            store = SQLiteQueue(store, wal_size_limit=wal_size_limit)
        inbox = interlock.Inbox(store=store, retention=retention, prune_every=max(1.0, retention / 4))
        inbox.source("github", interlock.signatures.GitHub(SECRET))

        @inbox.handler("github")
        async def handle(event: interlock.Event) -> None:
            event.json()  # a handler that reads its event, as real ones do

        await inbox.serve(port=port, workers=workers, log_level="warning")

    # uvicorn raises the stopping signal again once it has shut down (and the inbox closed).
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def file_kib(path: str) -> int:
    try:
        return os.path.getsize(path) // 1024
    except OSError:
        return 0


def rows_by_state(db: str) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        counts = dict(conn.execute("SELECT state, count(*) FROM interlock_events GROUP BY state").fetchall())
    except sqlite3.Error:
        counts = {}
    finally:
        conn.close()
    return {"pending": counts.get(0, 0), "done": counts.get(1, 0), "dead": counts.get(2, 0)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit("the server did not start listening") from None
            await asyncio.sleep(0.1)


def delivery(body: bytes, delivery_id: str, *, secret: str = SECRET) -> dict[str, str]:
    return {
        "X-Hub-Signature-256": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
        "X-GitHub-Delivery": delivery_id,
        "X-GitHub-Event": "push",
        "Content-Type": "application/json",
    }


class Deliveries:
    """What the soak sends, one signed delivery per call, and what came back."""

    def __init__(self, session: Any, base: str, run: str) -> None:
        self.session = session
        self.base = base
        self.run = run
        self.statuses: dict[int, int] = {}
        self.errors = 0
        self.accepted = 0
        self.latencies: list[float] = []
        """Request latencies in completion order (the sampler reads the ones since its last look)."""

    async def send(self, i: int) -> bool:
        kind = i % 100
        body = json.dumps({"ref": "refs/heads/main", "n": i, "pad": "x" * 400}).encode()
        path, headers = "/hooks/github", delivery(body, f"{self.run}-{i}")
        if kind == 17 and i > 100:
            headers = delivery(body, f"{self.run}-{i - 100}")  # a redelivery: answered "duplicate"
        elif kind == 42:
            headers = delivery(body, f"{self.run}-{i}", secret="wrong")  # 401
        elif kind == 77:
            path = f"/hooks/made-up-{uuid.uuid4().hex}"  # 404, one metric label for all of them
        started = time.perf_counter()
        try:
            async with self.session.post(self.base + path, data=body, headers=headers) as reply:
                payload = await reply.read()
        except Exception:
            self.errors += 1
            raise
        self.latencies.append(time.perf_counter() - started)
        self.statuses[reply.status] = self.statuses.get(reply.status, 0) + 1
        if reply.status == 200 and b"accepted" in payload:
            self.accepted += 1
        return reply.status < 500


def inbox_section(args: argparse.Namespace) -> dict[str, Any]:
    tmp = tempfile.mkdtemp(prefix="interlock-soak-", dir=os.environ.get("BENCH_TMP", "/var/tmp"))
    db = os.path.join(tmp, "interlock.db")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, __file__, "serve-inbox", "--db", db, "--port", str(port),
         "--retention", str(args.retention), "--workers", str(args.workers),
         *(["--wal-size-limit", str(args.wal_size_limit)] if args.wal_size_limit is not None else [])],
    )
    samples: list[dict[str, Any]] = []
    sent: Deliveries | None = None
    seen = 0

    def sample(at: float) -> None:
        nonlocal seen
        assert sent is not None
        recent = sorted(sent.latencies[seen:])
        seen = len(sent.latencies)
        row = {
            "t": round(at), "rss_kib": rss_kib(proc.pid), "wal_kib": file_kib(db + "-wal"), "db_kib": file_kib(db),
            **rows_by_state(db), "answered": seen,
            "p50_ms": round(percentile(recent, 50) * 1000, 2) if recent else None,
            "p99_ms": round(percentile(recent, 99) * 1000, 2) if recent else None,
        }
        samples.append(row)
        print(
            f"  t={row['t']:>4}s rss={row['rss_kib'] / 1024:6.1f} MiB wal={row['wal_kib']:>6} KiB "
            f"db={row['db_kib']:>6} KiB rows p/d/x={row['pending']}/{row['done']}/{row['dead']} "
            f"answered={row['answered']} p50={row['p50_ms']} ms p99={row['p99_ms']} ms",
            flush=True,
        )

    async def main() -> OpenLoop:
        import aiohttp

        nonlocal sent
        await wait_port(port, proc)
        connector = aiohttp.TCPConnector(limit=64)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
            sent = Deliveries(session, f"http://127.0.0.1:{port}", uuid.uuid4().hex[:8])
            start = time.monotonic()

            async def sampler() -> None:
                while True:
                    await asyncio.sleep(args.every)
                    sample(time.monotonic() - start)

            sampling = asyncio.create_task(sampler())
            try:
                result = await open_loop(sent.send, args.rate, args.seconds)
            finally:
                sampling.cancel()
            sample(time.monotonic() - start)
            return result

    machine = Load()
    try:
        result = asyncio.run(main())
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert sent is not None
    final_rows = rows_by_state(db)
    shutil.rmtree(tmp, ignore_errors=True)
    warm = next((s for s in samples if s["t"] >= args.warmup), samples[0])
    end = samples[-1]
    rss_ratio = end["rss_kib"] / warm["rss_kib"] if warm["rss_kib"] else float("nan")
    print()
    print(table(
        ["t (s)", "RSS MiB", "WAL KiB", "DB KiB", "pending", "done", "dead", "p50 ms", "p99 ms"],
        [[s["t"], s["rss_kib"] / 1024, s["wal_kib"], s["db_kib"], s["pending"], s["done"], s["dead"],
          s["p50_ms"], s["p99_ms"]] for s in samples],
    ))
    server_errors = sum(n for status, n in sent.statuses.items() if status >= 500)
    print()
    print(
        f"inbox soak: {args.seconds:.0f} s at {args.rate:.0f} events/s offered, {result.scheduled} requests "
        f"({result.achieved_rate:.0f}/s answered without a 5xx), statuses {dict(sorted(sent.statuses.items()))}"
    )
    print(f"  RSS at {warm['t']} s {warm['rss_kib'] / 1024:.1f} MiB, at the end {end['rss_kib'] / 1024:.1f} MiB: "
          f"ratio {rss_ratio:.3f} ({'flat' if abs(rss_ratio - 1) <= 0.10 else 'NOT flat'} within 10 %)")
    print(f"  WAL at the end {end['wal_kib']} KiB (largest seen {max(s['wal_kib'] for s in samples)} KiB), "
          f"database {end['db_kib']} KiB; rows after shutdown {final_rows}")
    print(
        f"  5xx: {server_errors}, transport errors: {sent.errors}, unfinished: {result.unfinished}, "
        f"sender lag p99 {fmt_ms(result.lag_p(99))} ms"
    )
    return {
        "seconds": args.seconds, "rate": args.rate, "requests": result.scheduled, "accepted": sent.accepted,
        "unfinished": result.unfinished, **machine.end(),
        "statuses": {str(k): v for k, v in sorted(sent.statuses.items())}, "server_errors": server_errors,
        "client_errors": sent.errors, "rss_start_kib": warm["rss_kib"], "rss_end_kib": end["rss_kib"],
        "rss_ratio": round(rss_ratio, 3), "wal_end_kib": end["wal_kib"],
        "wal_max_kib": max(s["wal_kib"] for s in samples), "db_end_kib": end["db_kib"], "rows_end": final_rows,
        "samples": samples,
    }


# --------------------------------------------------------------------------------------------
# the Client section


def route_labels(upstream: str) -> tuple[int, int, int]:
    """(distinct route labels, series, bytes) of ``upstream`` on the metrics page."""
    import interlock

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
    import interlock
    from interlock.testbed import Faults, TestbedConfig, spawn_testbed

    name = "soak-client"
    faults = Faults(error_rates={503: args.error_rate}) if args.error_rate else Faults()
    samples: list[dict[str, Any]] = []
    with spawn_testbed(TestbedConfig(records=1000, faults=faults)) as testbed:
        async with interlock.Client(testbed.url, name=name, timeout=interlock.Timeout(total=10.0)) as api:
            calls = failed = 0
            stop = asyncio.Event()

            async def worker() -> None:
                nonlocal calls, failed
                while not stop.is_set():
                    calls += 1
                    n = calls
                    path = f"/customers/{n % 1000 + 1}?n={n}" if n % 2 else f"/users/user-{n}"
                    try:
                        await api.get(path)
                    except interlock.errors.CallError:
                        failed += 1

            workers = [asyncio.ensure_future(worker()) for _ in range(args.concurrency)]
            start = time.monotonic()
            end = start + args.seconds
            while (now := time.monotonic()) < end:
                await asyncio.sleep(min(args.every, end - now))
                row = {"t": round(time.monotonic() - start), "rss_kib": rss_kib(os.getpid()), "calls": calls}
                samples.append(row)
                print(f"  t={row['t']:>4}s rss={row['rss_kib'] / 1024:6.1f} MiB calls={calls:,}", flush=True)
            stop.set()
            await asyncio.gather(*workers)
            elapsed = time.monotonic() - start
            labels, series, page = route_labels(name)
            retries = api.stats()["retries"]
    return {
        "calls": calls, "failed": failed, "rate": calls / elapsed, "route_labels": labels, "series": series,
        "metrics_page_kib": page // 1024, "retries": retries, "samples": samples,
    }  # fmt: skip


def client_section(args: argparse.Namespace) -> dict[str, Any]:
    machine = Load()
    result = asyncio.run(soak_client(args))
    samples = result.pop("samples")
    warm = next((s for s in samples if s["t"] >= args.warmup), samples[0])
    end = samples[-1]
    rss_ratio = end["rss_kib"] / warm["rss_kib"] if warm["rss_kib"] else float("nan")
    print()
    print(table(["t (s)", "RSS MiB", "calls"], [[s["t"], s["rss_kib"] / 1024, s["calls"]] for s in samples]))
    print()
    print(
        f"client soak: {args.seconds:.0f} s, {result['calls']:,} calls ({result['rate']:.0f}/s, "
        f"{result['failed']} failed, {result['retries']} retries sent)"
    )
    print(f"  RSS at {warm['t']} s {warm['rss_kib'] / 1024:.1f} MiB, at the end {end['rss_kib'] / 1024:.1f} MiB: "
          f"ratio {rss_ratio:.3f} ({'flat' if abs(rss_ratio - 1) <= 0.10 else 'NOT flat'} within 10 %)")
    print(
        f"  route labels of the upstream {result['route_labels']}, its series {result['series']:,}, "
        f"the /metrics page {result['metrics_page_kib']:,} KiB"
    )
    return {
        "seconds": args.seconds, **result, **machine.end(), "rss_start_kib": warm["rss_kib"],
        "rss_end_kib": end["rss_kib"], "rss_ratio": round(rss_ratio, 3), "samples": samples,
    }  # fmt: skip


# --------------------------------------------------------------------------------------------

SECTIONS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "client": client_section,
    "inbox": inbox_section,
}
"""One soak per face, selected with ``--only``."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd")
    child = sub.add_parser("serve-inbox", help="(internal) the Inbox server process")
    child.add_argument("--db", required=True)
    child.add_argument("--port", type=int, required=True)
    child.add_argument("--retention", type=float, required=True)
    child.add_argument("--workers", type=int, required=True)
    child.add_argument("--wal-size-limit", type=int)
    parser.add_argument("--only", nargs="+", choices=sorted(SECTIONS), default=sorted(SECTIONS))
    parser.add_argument("--seconds", type=float, default=180.0, help="length of each soak (default 180)")
    parser.add_argument("--every", type=float, default=10.0, help="seconds between samples (default 10)")
    parser.add_argument("--warmup", type=float, default=10.0, help="the sample at this age is the baseline")
    inbox = parser.add_argument_group("inbox")
    inbox.add_argument("--rate", type=float, default=300.0, help="events/s sent to the Inbox (default 300)")
    inbox.add_argument("--retention", type=float, default=60.0, help="seconds done events are kept (default 60)")
    inbox.add_argument("--workers", type=int, default=8, help="worker concurrency in the server (default 8)")
    inbox.add_argument("--wal-size-limit", type=int, help="SQLiteQueue(wal_size_limit=...) in bytes (default: its own)")
    client = parser.add_argument_group("client")
    client.add_argument("--concurrency", type=int, default=20, help="client workers (default 20)")
    client.add_argument("--error-rate", type=float, default=0.02, help="share of 503s from the testbed (default 0.02)")
    args = parser.parse_args()
    if args.cmd == "serve-inbox":
        serve_inbox(args.db, args.port, args.retention, args.workers, args.wal_size_limit)
        return
    results = {}
    for name in args.only:
        print(f"== {name} ==", flush=True)
        results[name] = SECTIONS[name](args)
    emit("soak", results)


if __name__ == "__main__":
    main()
