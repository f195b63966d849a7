"""Ingest benchmark: webhook acknowledgement latency at fixed arrival rates, open loop.

Every target runs in its own process (uvicorn, httptools, uvloop, one worker), all started
before the first measurement and kept up to the end. The load comes from this process: a small
open-loop generator (``_common.open_loop`` over a minimal HTTP/1.1 client on uvloop) that starts
each request at its scheduled time, whatever the earlier ones are doing, and measures latency
from that scheduled time, so a target that falls behind pays for its whole backlog (no
coordinated omission). Every request carries a valid GitHub-style signature (HMAC-SHA256 over
one of 256 bodies, verified by the server) and a fresh ``X-GitHub-Delivery`` id.

Targets:
  sqlite        interlock Inbox, SQLite WAL, synchronous=FULL, group commit   (the default)
  postgres      interlock Inbox, PostgreSQL on this machine, grouped INSERTs
  celery        baseline: FastAPI verifying the same HMAC, then ``task.delay()`` to Celery on
                Redis (Redis acknowledges from memory: a weaker durability promise)
  asgi-asyncpg  baseline: a raw ASGI app verifying the HMAC, then one asyncpg
                ``INSERT ... ON CONFLICT (delivery id) DO NOTHING`` per request (a pool of 16)
  asgi-redis    baseline: a raw ASGI app verifying the HMAC, then one Redis ``XADD`` (no dedupe,
                memory durability, like Celery's broker)
  rabbitmq      opt-in: interlock Inbox on RabbitMQ (publisher confirm before the 200), SQLite companion
  nats          opt-in: interlock Inbox on NATS JetStream (PubAck before the 200), SQLite companion

For each offered rate, the targets are rotated over ``--rounds`` rounds; medians with min-max.
Every p99 is printed beside the rate the target achieved (successful answers per second,
including the time it took to drain its backlog, as a share of the arrivals really scheduled:
Poisson arrivals scatter around the nominal rate); a p99 ratio is printed only where both
targets achieved >= 95 % of the offered rate, otherwise the ratio is dropped and the reason
printed. The generator's own lateness (p99 of how late it started requests) is printed too:
when it is large, the figures say more about this machine than about the targets.

    python benchmarks/ingest.py                                  # all targets at 1000 and 2000/s
    python benchmarks/ingest.py --targets sqlite celery --rates 500 1000 2000 4000 --duration 10

Fresh PostgreSQL schema, Redis keys and SQLite file per run, removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any

import _common

SECRET = b"bench-secret"
PG_DSN = os.environ.get("INTERLOCK_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("INTERLOCK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TARGETS = ["sqlite", "postgres", "celery", "asgi-asyncpg", "asgi-redis"]
BROKER_TARGETS = ["rabbitmq", "nats"]
"""Opt-in (``--targets rabbitmq nats``): the Inbox on the machine's brokers, SQLite companion."""
INTERLOCK_TARGETS = ["sqlite", "postgres", *BROKER_TARGETS]
AMQP_URL = os.environ.get("INTERLOCK_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
NATS_URL = os.environ.get("INTERLOCK_TEST_NATS_URL", "nats://127.0.0.1:4222")
ACCEPTED = b'{"status":"accepted"}'


# --------------------------------------------------------------------------------------------
# servers (each in a child process: ``ingest.py serve TARGET --port P --name N``)


def _uvicorn(app: Any, port: int, lifespan: str = "on") -> None:
    import uvicorn

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        http="httptools",
        loop="uvloop",
        access_log=False,
        log_level="warning",
        lifespan=lifespan,
        backlog=4096,
    )


def _verified(body: bytes, signature: str) -> bool:
    expected = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(signature, expected)


def serve_inbox(store: str, port: int, table: str = "") -> None:
    import interlock
    from interlock.stores import open_queue

    inbox = interlock.Inbox(store=open_queue(store, table=table or None))
    inbox.source("github", interlock.signatures.GitHub(SECRET.decode()))
    _uvicorn(inbox.asgi(), port)


def serve_celery(port: int, queue: str) -> None:
    from celery import Celery
    from fastapi import FastAPI, HTTPException, Request

    celery_app = Celery("bench", broker=REDIS_URL)
    celery_app.conf.task_default_queue = queue

    @celery_app.task(name="bench.handle")
    def handle(body: str, delivery: str) -> None:  # never run: the benchmark measures enqueueing
        return None

    app = FastAPI()

    async def hook(request: Request) -> dict[str, str]:
        body = await request.body()
        if not _verified(body, request.headers.get("x-hub-signature-256", "")):
            raise HTTPException(401, "bad signature")
        handle.delay(body.decode(), request.headers.get("x-github-delivery", ""))
        return {"status": "accepted"}

    # This module uses postponed annotations; give FastAPI the real class to inject.
    hook.__annotations__["request"] = Request
    app.post("/hooks/github")(hook)
    _uvicorn(app, port, lifespan="auto")


def raw_asgi(startup: Any, shutdown: Any, store: Any) -> Any:
    """A raw ASGI app: read the body, verify the signature, ``await store(delivery, body)``,
    answer 202 (401 on a bad signature)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await startup()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await shutdown()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = dict(scope["headers"])
        if _verified(body, headers.get(b"x-hub-signature-256", b"").decode()):
            await store(headers.get(b"x-github-delivery", b"").decode(), body)
            status, reply = 202, ACCEPTED
        else:
            status, reply = 401, b'{"error":"bad signature"}'
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(reply)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": reply})

    return app


def serve_asgi_asyncpg(port: int, schema: str) -> None:
    import asyncpg

    state: dict[str, Any] = {}
    sql = (
        f'INSERT INTO "{schema}".webhooks (delivery, body) VALUES ($1, $2) ON CONFLICT (delivery) DO NOTHING'
    )

    async def startup() -> None:
        state["pool"] = await asyncpg.create_pool(PG_DSN, min_size=4, max_size=16)

    async def shutdown() -> None:
        await state["pool"].close()

    async def store(delivery: str, body: bytes) -> None:
        await state["pool"].execute(sql, delivery, body)

    _uvicorn(raw_asgi(startup, shutdown, store), port)


def serve_asgi_redis(port: int, stream: str) -> None:
    import redis.asyncio as redis

    client = redis.Redis.from_url(REDIS_URL)

    async def startup() -> None:
        await client.ping()

    async def shutdown() -> None:
        await client.aclose()

    async def store(delivery: str, body: bytes) -> None:
        await client.xadd(stream, {"delivery": delivery, "body": body})

    _uvicorn(raw_asgi(startup, shutdown, store), port)


# --------------------------------------------------------------------------------------------
# the load: a minimal HTTP/1.1 client (keep-alive connections, one request in flight each)


def signed_requests(host: str) -> list[tuple[bytes, bytes]]:
    """256 (head template, body) pairs; the head has one ``%s`` for the delivery id."""
    out = []
    for i in range(256):
        body = json.dumps(
            {
                "action": "opened",
                "number": i,
                "repository": {"full_name": "acme/widgets", "id": 1296269},
                "sender": {"login": "octocat", "id": 1},
                "pull_request": {"title": f"Change {i}", "body": "x" * 300},
            }
        ).encode()
        sig = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
        head = (
            f"POST /hooks/github HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"X-GitHub-Event: push\r\nX-GitHub-Delivery: %s\r\nX-Hub-Signature-256: {sig}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        out.append((head, body))
    return out


class _Conn(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[int] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.waiter is None:
            return
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buf[:end]).lower()
        i = head.find(b"content-length:")
        if i >= 0:
            total = end + 4 + int(head[i + 15 : head.find(b"\r\n", i) if head.find(b"\r\n", i) > 0 else None])
        else:  # chunked: the last chunk ends the body
            last = self.buf.find(b"\r\n0\r\n\r\n", end)
            if last < 0:
                return
            total = last + 7
        if len(self.buf) < total:
            return
        status = int(self.buf[9:12])
        del self.buf[:total]
        waiter, self.waiter = self.waiter, None
        if not waiter.done():
            waiter.set_result(status)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection lost"))


class Loader:
    """POSTs signed webhooks to one port over up to ``max_conns`` keep-alive connections;
    a request with no free connection waits for one (that wait is part of its latency)."""

    def __init__(self, port: int, prefix: str, max_conns: int, timeout: float) -> None:
        self.port = port
        self.prefix = prefix
        self.max_conns = max_conns
        self.timeout = timeout
        self.requests = signed_requests(f"127.0.0.1:{port}")
        self.idle: list[_Conn] = []
        self.opened = 0
        self.waiting: list[asyncio.Future[_Conn]] = []
        self.statuses: dict[int, int] = {}

    async def _acquire(self) -> _Conn:
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed:
                return conn
            self.opened -= 1
        if self.opened < self.max_conns:
            self.opened += 1
            try:
                _, conn = await asyncio.get_running_loop().create_connection(_Conn, "127.0.0.1", self.port)
            except OSError:
                self.opened -= 1
                raise
            return conn
        future: asyncio.Future[_Conn] = asyncio.get_running_loop().create_future()
        self.waiting.append(future)
        return await future

    def _release(self, conn: _Conn) -> None:
        if conn.closed:
            self.opened -= 1
            return
        while self.waiting:
            future = self.waiting.pop(0)
            if not future.done():
                future.set_result(conn)
                return
        self.idle.append(conn)

    async def send(self, i: int) -> bool:
        head, body = self.requests[i % 256]
        conn = await self._acquire()
        ok = False
        try:
            conn.waiter = asyncio.get_running_loop().create_future()
            assert conn.transport is not None
            conn.transport.write(head % f"{self.prefix}-{i}".encode() + body)
            async with asyncio.timeout(self.timeout):
                status = await conn.waiter
            self.statuses[status] = self.statuses.get(status, 0) + 1
            ok = 200 <= status < 300
        except BaseException:
            conn.closed = True
            if conn.transport is not None:
                conn.transport.close()
            raise
        finally:
            self._release(conn)
        return ok

    def close(self) -> None:
        for conn in self.idle:
            if conn.transport is not None:
                conn.transport.close()
        self.idle.clear()


# --------------------------------------------------------------------------------------------
# orchestration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


async def _pg(sql: str) -> Any:
    import asyncpg

    conn = await asyncpg.connect(PG_DSN)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


class Target:
    """One server process and how to count what it stored."""

    def __init__(self, name: str, run_id: str, tmp: str) -> None:
        self.name = name
        self.port = free_port()
        self.schema = f"bench_ingest_{run_id}"
        self.key = f"bench-ingest-{run_id}-{name}"
        if name == "sqlite":
            self.store = f"sqlite:///{tmp}/ingest.db"
        elif name == "postgres":
            self.store = f"{PG_DSN}?schema={self.schema}"
        elif name == "rabbitmq":
            self.store = f"{AMQP_URL}?companion=sqlite:///{tmp}/ingest-{name}.db"
        elif name == "nats":
            self.store = f"{NATS_URL}?companion=sqlite:///{tmp}/ingest-{name}.db"
        else:
            self.store = ""
        self.table = f"bench_ingest_{run_id}_{name}" if name in BROKER_TARGETS else ""
        self.queue: Any = None
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [sys.executable, __file__, "serve", self.name, "--port", str(self.port)]
        args += ["--store", self.store, "--schema", self.schema, "--key", self.key, "--table", self.table]
        self.proc = subprocess.Popen(args)

    async def count(self) -> int:
        if self.name in INTERLOCK_TARGETS:
            if self.queue is None:
                from interlock.stores import open_queue

                self.queue = open_queue(self.store, table=self.table or None)
                await self.queue.open()
            return int((await self.queue.stats()).pending)  # no workers run: pending = stored
        if self.name == "asgi-asyncpg":
            return int(await _pg(f'SELECT count(*) FROM "{self.schema}".webhooks'))
        import redis.asyncio as redis

        client = redis.Redis.from_url(REDIS_URL)
        try:
            if self.name == "celery":
                return int(await client.llen(self.key))
            return int(await client.xlen(self.key))
        finally:
            await client.aclose()

    async def close(self) -> None:
        if self.queue is not None:
            await self.queue.aclose()
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.name == "rabbitmq":
            import aio_pika

            connection = await aio_pika.connect(AMQP_URL)
            for q in (self.table, f"{self.table}.dead"):
                channel = await connection.channel()
                await channel.queue_delete(q)
            channel = await connection.channel()
            await channel.exchange_delete(f"{self.table}.dlx")
            await connection.close()
        if self.name == "nats":
            import nats

            nc = await nats.connect(NATS_URL)
            for stream in (self.table, f"{self.table}_dead"):
                await nc.jetstream().delete_stream(stream)
            await nc.close()
        if self.name in ("celery", "asgi-redis"):
            import redis.asyncio as redis

            client = redis.Redis.from_url(REDIS_URL)
            try:
                await client.delete(self.key)
            finally:
                await client.aclose()


async def one_run(target: Target, rate: float, args: argparse.Namespace) -> dict[str, Any]:
    before = await target.count()
    loader = Loader(target.port, f"{target.key}-{uuid.uuid4().hex[:8]}", args.connections, args.timeout)
    try:
        result = await _common.open_loop(loader.send, rate, args.duration, drain=args.drain, poisson=True)
    finally:
        loader.close()
    await asyncio.sleep(0.2)
    stored = await target.count() - before
    return {
        "target": target.name,
        "offered": rate,
        "achieved": result.achieved_rate,
        "share": result.achieved_share,
        "p50": result.p(50),
        "p99": result.p(99),
        "ok": result.ok,
        "failed": result.failed + result.unfinished,
        "stored_per_s": stored / result.elapsed if result.elapsed else 0.0,
        "lag_p99": result.lag_p(99),
        "statuses": loader.statuses,
    }


async def bench(args: argparse.Namespace) -> list[dict[str, Any]]:
    run_id = uuid.uuid4().hex[:8]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP", "/var/tmp")) as tmp:
        targets = [Target(name, run_id, tmp) for name in args.targets]
        if any(t.name in ("postgres", "asgi-asyncpg") for t in targets):
            await _pg(f'CREATE SCHEMA "{targets[0].schema}"')
            await _pg(
                f'CREATE TABLE "{targets[0].schema}".webhooks (delivery TEXT PRIMARY KEY, body BYTEA NOT NULL, '
                "received_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
        try:
            for t in targets:
                t.start()
            for t in targets:
                assert t.proc is not None
                wait_port(t.port, t.proc)
            for t in targets:  # warm-up: connections, caches, tables
                await one_run(t, 200, argparse.Namespace(**{**vars(args), "duration": 1.0}))
            print("targets up and warmed", flush=True)
            for round_no, order in enumerate(_common.rotations(targets, args.rounds), 1):
                for rate in args.rates:
                    for t in order:
                        r = await one_run(t, rate, args)
                        r["round"] = round_no
                        rows.append(r)
                        print(
                            f"round {round_no} {t.name:12} offered {rate:6.0f}/s achieved {r['achieved']:6.0f}/s "
                            f"({r['share']:.0%})  p50 {_common.fmt_ms(r['p50'])} ms  p99 {_common.fmt_ms(r['p99'])} ms  "
                            f"stored {r['stored_per_s']:.0f}/s  failed {r['failed']}  generator lag p99 "
                            f"{_common.fmt_ms(r['lag_p99'])} ms",
                            flush=True,
                        )
                        await asyncio.sleep(0.3)
        finally:
            for t in targets:
                await t.close()
            if any(t.name in ("postgres", "asgi-asyncpg") for t in targets):
                await _pg(f'DROP SCHEMA IF EXISTS "{targets[0].schema}" CASCADE')
    return rows


def report(rows: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    spread, med = _common.spread, _common.med
    table_rows = []
    cells: dict[tuple[str, float], dict[str, float]] = {}
    for rate in args.rates:
        for name in args.targets:
            rs = [r for r in rows if r["target"] == name and r["offered"] == rate]
            if not rs:
                continue
            cells[(name, rate)] = {
                "achieved": med([r["achieved"] for r in rs]),
                "share": med([r["share"] for r in rs]),
                "p50": med([r["p50"] for r in rs]),
                "p99": med([r["p99"] for r in rs]),
                "stored_per_s": med([r["stored_per_s"] for r in rs]),
            }
            table_rows.append(
                (
                    name,
                    f"{rate:.0f}",
                    spread([r["achieved"] for r in rs], "{:.0f}"),
                    f"{med([r['share'] for r in rs]):.0%}",
                    spread([1000 * r["p50"] for r in rs], "{:.1f}"),
                    spread([1000 * r["p99"] for r in rs], "{:.1f}"),
                    spread([r["stored_per_s"] for r in rs], "{:.0f}"),
                    spread([r["failed"] for r in rs], "{:.0f}"),
                    spread([1000 * r["lag_p99"] for r in rs], "{:.1f}"),
                )
            )
    print()
    print(
        f"open loop (Poisson arrivals) for {args.duration:g}s per point, {args.rounds} rounds (targets rotated); "
        "latency from each request's scheduled time; median (min-max); 'inf' = requests unfinished at the drain's end"
    )
    print(
        _common.table(
            [
                "target",
                "offered/s",
                "achieved/s",
                "achieved",
                "p50 ms",
                "p99 ms",
                "stored/s",
                "failed",
                "generator lag p99 ms",
            ],
            table_rows,
        )
    )
    ratios: dict[str, Any] = {}
    for rate in args.rates:
        for mine in INTERLOCK_TARGETS:
            for base in args.targets:
                if base in INTERLOCK_TARGETS or (mine, rate) not in cells or (base, rate) not in cells:
                    continue
                a, b = cells[(mine, rate)], cells[(base, rate)]
                key = f"{base}_p99_over_{mine}_p99_at_{rate:.0f}"
                short = [n for n, c in ((mine, a), (base, b)) if c["share"] < 0.95]
                if short:
                    ratios[key] = None
                    why = ", ".join(f"{n} achieved {cells[(n, rate)]['share']:.0%}" for n in short)
                    print(f"p99 {base} / {mine} at {rate:.0f}/s: dropped ({why} of the offered rate)")
                    continue
                ratio = b["p99"] / a["p99"] if a["p99"] else float("nan")
                ratios[key] = round(ratio, 2)
                print(
                    f"p99 {base} / {mine} at {rate:.0f}/s: {1000 * b['p99']:.1f} / {1000 * a['p99']:.1f} ms = {ratio:.2f}x"
                )
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd")
    serve = sub.add_parser("serve", help=argparse.SUPPRESS)
    serve.add_argument("target", choices=TARGETS + BROKER_TARGETS)
    serve.add_argument("--port", type=int, required=True)
    serve.add_argument("--store", default="")
    serve.add_argument("--schema", default="")
    serve.add_argument("--key", default="")
    serve.add_argument("--table", default="")
    parser.add_argument("--targets", nargs="+", default=TARGETS, choices=TARGETS + BROKER_TARGETS)
    parser.add_argument("--rates", nargs="+", type=float, default=[1000.0, 2000.0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds of arrivals per point")
    parser.add_argument("--drain", type=float, default=2.0, help="seconds allowed after the last arrival")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=256, help="most connections per target")
    parser.add_argument(
        "--timeout", type=float, default=5.0, help="seconds before a request counts as failed"
    )
    args = parser.parse_args()
    if args.cmd == "serve":
        if args.target in INTERLOCK_TARGETS:
            serve_inbox(args.store, args.port, args.table)
        elif args.target == "celery":
            serve_celery(args.port, args.key)
        elif args.target == "asgi-asyncpg":
            serve_asgi_asyncpg(args.port, args.schema)
        else:
            serve_asgi_redis(args.port, args.key)
        return
    import uvloop

    load = _common.Load()
    rows = uvloop.run(bench(args))
    ratios = report(rows, args)
    _common.emit(
        "ingest",
        {
            "duration": args.duration,
            "rounds": args.rounds,
            "rates": args.rates,
            "rows": [{k: (round(v, 5) if isinstance(v, float) else v) for k, v in r.items()} for r in rows],
            "ratios": ratios,
            **load.end(),
        },
    )


if __name__ == "__main__":
    main()
