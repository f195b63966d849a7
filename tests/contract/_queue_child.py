"""A child process for the contract tests that SIGKILL processes (run as a script).

    python _queue_child.py ingress STORE_URL TABLE COUNT
        puts messages m0, m1 ... one at a time; prints ``acked ID`` once each put returned
        (the event is acknowledged: a webhook would now be answered 2xx), then waits.
    python _queue_child.py worker STORE_URL TABLE LEDGER
        runs an Inbox worker pool on the queue; each event's handler records the call (with
        this process's pid) and its effect (once per event id) in the SQLite file LEDGER.

TABLE is ``-`` for the backend's default.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import time

from interlock import Inbox, Redelivery
from interlock.core.backoff import Backoff
from interlock.stores import Message, open_queue

VISIBILITY = 3.0


def ledger(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE IF NOT EXISTS calls (id TEXT, pid INTEGER, at REAL)")
    conn.execute("CREATE TABLE IF NOT EXISTS effects (id TEXT PRIMARY KEY)")
    return conn


async def ingress(url: str, table: str | None, count: int) -> None:
    queue = open_queue(url, table=table, poll_interval=0.05)
    await queue.open()
    for i in range(count):
        m = Message("src", f"m{i}", "t", f"body {i}".encode(), received_at=time.time())
        if await queue.put(m):
            print(f"acked m{i}", flush=True)
    print("done", flush=True)
    await asyncio.Event().wait()


async def worker(url: str, table: str | None, path: str) -> None:
    conn = ledger(path)
    queue = open_queue(url, table=table, poll_interval=0.05)
    inbox = Inbox(
        store=queue,
        visibility=VISIBILITY,
        redelivery=Redelivery(attempts=50, backoff=Backoff(delays=[0.05], jitter="none")),
    )
    inbox.internal_source("src")
    pid = os.getpid()

    @inbox.handler("src")
    async def handle(event: object) -> None:
        event_id = event.id  # type: ignore[attr-defined]
        await asyncio.sleep(0.01)  # some work, so a kill lands while events are in flight
        # The effect is idempotent on the event id (what makes at-least-once delivery
        # "effects exactly once"); every call is recorded, so the test sees redeliveries.
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO calls VALUES (?, ?, ?)", (event_id, pid, time.time()))
        conn.execute("INSERT OR IGNORE INTO effects VALUES (?)", (event_id,))
        conn.execute("COMMIT")

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    pool = inbox.start_workers(concurrency=4)
    print("ready", flush=True)
    await stop.wait()
    await pool.aclose()
    await inbox.aclose()


def main() -> None:
    mode, url, table = sys.argv[1], sys.argv[2], sys.argv[3]
    name = None if table == "-" else table
    if mode == "ingress":
        asyncio.run(ingress(url, name, int(sys.argv[4])))
    else:
        asyncio.run(worker(url, name, sys.argv[4]))


if __name__ == "__main__":
    main()
