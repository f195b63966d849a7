"""Soak benchmark: memory, disk and row counts stay flat under steady load for minutes.

Sections (``--only``; all by default):
  inbox   An Inbox served the documented way (``inbox.serve()``: uvicorn with bounded
          connections, workers in the same process, the default SQLite store) in a child
          process, fed signed GitHub-style deliveries at ``--rate`` events/s over loopback for
          ``--seconds``. Mixed in: 1 % redelivered duplicates, 1 % bad signatures, 1 % posts to
          made-up source names. Done events are kept ``--retention`` s, so pruning runs during
          the soak. Every ``--every`` s it samples the server's RSS, the WAL and database file
          sizes and the rows by state.

The baseline is the same run's first sample after ``--warmup`` s: RSS at the end is printed as a
ratio to it ("flat" when within 10 %).

    python benchmarks/soak.py                         # 180 s at 300 events/s
    python benchmarks/soak.py --seconds 60 --rate 300

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

SECTIONS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {"inbox": inbox_section}
"""One soak per face; a ``client`` section slots in here with its own options below."""


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
