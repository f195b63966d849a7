"""Ingest benchmark: webhook acknowledgement latency and accepted events/s.

The server runs in its own process (uvicorn, httptools, uvloop, one worker); the load comes
from ``wrk`` in another process over loopback, at fixed offered rates (paced with wrk's
``delay()`` hook) and flat out. Every request carries a valid GitHub-style signature
(HMAC-SHA256 over one of 256 bodies, verified by the server) and a fresh
``X-GitHub-Delivery`` id, so every request is verified, deduplicated and stored.

Targets, each measured in the same run:
  sqlite    interlock Inbox, SQLite WAL, synchronous=FULL, group commit   (the default)
  postgres  interlock Inbox, PostgreSQL on this machine, grouped INSERTs
  celery    baseline: a FastAPI endpoint verifying the same HMAC then ``task.delay()`` to
            Celery on Redis (Redis acknowledges from memory: a weaker durability promise)

    python benchmarks/ingest.py                       # all targets, rates 1000 2000 5000 max
    python benchmarks/ingest.py --targets sqlite --rates 2000 max --duration 10

Prints a table and one JSON line. Needs ``wrk`` (apt-get install wrk).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any

SECRET = b"bench-secret"
PG_DSN = os.environ.get("INTERLOCK_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("INTERLOCK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


# --------------------------------------------------------------------------------------------
# servers (run in child processes)


def serve_inbox(store: str, port: int) -> None:
    import uvicorn

    import interlock

    inbox = interlock.Inbox(store=store)
    inbox.source("github", interlock.signatures.GitHub(SECRET.decode()))
    uvicorn.run(
        inbox.asgi(), host="127.0.0.1", port=port, http="httptools", loop="uvloop",
        access_log=False, log_level="warning", lifespan="on", backlog=4096,
    )


def serve_celery(port: int) -> None:
    import uvicorn
    from celery import Celery
    from fastapi import FastAPI, HTTPException, Request

    celery_app = Celery("bench", broker=REDIS_URL)

    @celery_app.task(name="bench.handle")
    def handle(body: str, delivery: str) -> None:  # never run: the benchmark measures enqueueing
        return None

    app = FastAPI()

    async def hook(request: Request) -> dict[str, str]:
        body = await request.body()
        sig = request.headers.get("x-hub-signature-256", "")
        expected = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(sig, expected):
            raise HTTPException(401, "bad signature")
        handle.delay(body.decode(), request.headers.get("x-github-delivery", ""))
        return {"status": "accepted"}

    # This module uses postponed annotations; give FastAPI the real class to inject.
    hook.__annotations__["request"] = Request
    app.post("/hooks/github")(hook)

    uvicorn.run(
        app, host="127.0.0.1", port=port, http="httptools", loop="uvloop",
        access_log=False, log_level="warning", backlog=4096,
    )


# --------------------------------------------------------------------------------------------
# load (wrk + a generated Lua script)

LUA = r"""
local bodies = {%(bodies)s}
local sigs = {%(sigs)s}
local n = #bodies
local counter = 0
local threads = {}
local period = 0

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  local rate = tonumber(args[1]) or 0
  local conns = tonumber(args[2]) or 1
  prefix = args[3] or "run"
  if rate > 0 then period = conns * 1000 / rate end
  math.randomseed(os.time() + tid * 7919)
end

function delay()
  -- exponential gaps: the connections together make a Poisson arrival process
  if period == 0 then return 0 end
  return -math.log(1 - math.random()) * period
end

function request()
  counter = counter + 1
  local i = (counter %% n) + 1
  return wrk.format("POST", "/hooks/github", {
    ["Content-Type"] = "application/json",
    ["X-GitHub-Event"] = "push",
    ["X-GitHub-Delivery"] = prefix .. "-" .. tid .. "-" .. counter,
    ["X-Hub-Signature-256"] = sigs[i],
  }, bodies[i])
end

function done(summary, latency, requests)
  io.write(string.format(
    'WRKJSON {"requests":%%d,"duration_us":%%d,"p50_us":%%d,"p90_us":%%d,"p99_us":%%d,"max_us":%%d,' ..
    '"status_errors":%%d,"connect_errors":%%d,"read_errors":%%d,"write_errors":%%d,"timeouts":%%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, summary.errors.status, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.timeout))
end
"""


def lua_script(path: str) -> None:
    bodies, sigs = [], []
    for i in range(256):
        body = json.dumps({
            "action": "opened", "number": i, "repository": {"full_name": "acme/widgets", "id": 1296269},
            "sender": {"login": "octocat", "id": 1}, "pull_request": {"title": f"Change {i}", "body": "x" * 300},
        }).encode()
        bodies.append("[==[" + body.decode() + "]==]")
        sigs.append('"sha256=' + hmac.new(SECRET, body, hashlib.sha256).hexdigest() + '"')
    with open(path, "w") as f:
        f.write(LUA % {"bodies": ",".join(bodies), "sigs": ",".join(sigs)})


def run_wrk(port: int, script: str, rate: int, duration: float, conns: int, prefix: str) -> dict[str, Any]:
    cmd = [
        "wrk", "-t1", f"-c{conns}", f"-d{int(duration)}s", "--latency", "--timeout", "5s",
        "-s", script, f"http://127.0.0.1:{port}", "--", str(rate), str(conns), prefix,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("WRKJSON "))
    result: dict[str, Any] = json.loads(line[len("WRKJSON "):])
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


# --------------------------------------------------------------------------------------------
# orchestration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
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


def count_stored(target: str, store: str) -> int:
    if target == "sqlite":
        import sqlite3

        from interlock.stores._sqlite import sqlite_path_from_url

        conn = sqlite3.connect(sqlite_path_from_url(store))
        try:
            return int(conn.execute("SELECT count(*) FROM interlock_events").fetchone()[0])
        finally:
            conn.close()
    if target == "postgres":
        import asyncpg

        async def q() -> int:
            conn = await asyncpg.connect(PG_DSN)
            try:
                schema = store.split("schema=")[1]
                return int(await conn.fetchval(f'SELECT count(*) FROM "{schema}".interlock_events'))
            finally:
                await conn.close()

        return asyncio.run(q())
    import redis

    return int(redis.Redis.from_url(REDIS_URL).llen("celery"))


def bench_target(target: str, rates: list[str], duration: float, conns: int, script: str, tmp: str) -> list[dict[str, Any]]:
    port = free_port()
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    if target == "sqlite":
        store = f"sqlite:///{tmp}/ingest.db"
        args = ["serve-inbox", "--store", store]
    elif target == "postgres":
        store = f"{PG_DSN}?schema={schema}"
        asyncio.run(_pg(f'CREATE SCHEMA "{schema}"'))
        args = ["serve-inbox", "--store", store]
    else:
        store = ""
        import redis

        redis.Redis.from_url(REDIS_URL).delete("celery")
        args = ["serve-celery"]
    proc = subprocess.Popen([sys.executable, __file__, *args, "--port", str(port)])
    rows = []
    try:
        wait_port(port, proc)
        run_wrk(port, script, 500, 2, conns, f"warm{uuid.uuid4().hex[:6]}")  # warm up
        for rate in rates:
            offered = 0 if rate == "max" else int(rate)
            if offered:
                # wrk waits for each response before the next delay, so the achieved rate falls
                # short of the pacing rate by the latency; calibrate the pacing on a short run.
                probe = run_wrk(port, script, offered, 2, conns, uuid.uuid4().hex[:8])
                offered = int(offered * offered / max(probe["rps"], 1.0))
            before = count_stored(target, store)
            r = run_wrk(port, script, offered, duration, conns, uuid.uuid4().hex[:8])
            time.sleep(0.2)
            stored = count_stored(target, store) - before
            r.update(target=target, offered=rate, stored=stored, stored_per_s=stored / (r["duration_us"] / 1e6))
            rows.append(r)
            print(
                f"{target:9} {rate:>5}  achieved {r['rps']:8.0f}/s  p50 {r['p50_us'] / 1000:6.2f} ms  "
                f"p99 {r['p99_us'] / 1000:7.2f} ms  stored {stored} ({r['stored_per_s']:.0f}/s)  "
                f"errors {r['status_errors'] + r['connect_errors'] + r['read_errors'] + r['timeouts']}",
                flush=True,
            )
            time.sleep(1.0)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        if target == "postgres":
            asyncio.run(_pg(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    return rows


async def _pg(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd")
    s1 = sub.add_parser("serve-inbox")
    s1.add_argument("--store", required=True)
    s1.add_argument("--port", type=int, required=True)
    s2 = sub.add_parser("serve-celery")
    s2.add_argument("--port", type=int, required=True)
    parser.add_argument("--targets", nargs="+", default=["sqlite", "postgres", "celery"])
    parser.add_argument("--rates", nargs="+", default=["1000", "2000", "5000", "max"])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=20)
    args = parser.parse_args()
    if args.cmd == "serve-inbox":
        serve_inbox(args.store, args.port)
        return
    if args.cmd == "serve-celery":
        serve_celery(args.port)
        return
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install -y wrk")
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP", "/var/tmp")) as tmp:
        script = os.path.join(tmp, "signed.lua")
        lua_script(script)
        rows: list[dict[str, Any]] = []
        for target in args.targets:
            rows += bench_target(target, args.rates, args.duration, args.connections, script, tmp)
    print()
    print(f"{'target':9} {'offered':>7} {'achieved/s':>10} {'p50 ms':>7} {'p99 ms':>7} {'stored/s':>9}")
    for r in rows:
        print(
            f"{r['target']:9} {r['offered']:>7} {r['rps']:10.0f} {r['p50_us'] / 1000:7.2f} "
            f"{r['p99_us'] / 1000:7.2f} {r['stored_per_s']:9.0f}"
        )
    by = {(r["target"], r["offered"]): r for r in rows}
    ratios = {}
    for target in ("sqlite", "postgres"):
        a, b = by.get((target, "max")), by.get(("celery", "max"))
        if a and b and b["stored_per_s"]:
            ratios[f"{target}_vs_celery_max_throughput"] = round(a["stored_per_s"] / b["stored_per_s"], 2)
        a2, b2 = by.get((target, "2000")), by.get(("celery", "2000"))
        if a2 and b2 and a2["p99_us"]:
            ratios[f"celery_vs_{target}_p99_at_2000"] = round(b2["p99_us"] / a2["p99_us"], 2)
    print("ratios:", ratios)
    print(json.dumps({"benchmark": "ingest", "rows": rows, "ratios": ratios}))


if __name__ == "__main__":
    main()
