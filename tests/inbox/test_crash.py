"""Crash safety with real processes and SIGKILL: a killed worker's event is redelivered and
processed; a killed ingress loses none of the events it acknowledged."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from interlock.stores import Message
from interlock.stores.queue_sqlite import SQLiteQueue

from .conftest import github_headers

PROC = str(Path(__file__).with_name("_proc.py"))


def spawn(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, PROC, *args], stdout=subprocess.PIPE)


def kill(proc: subprocess.Popen[bytes]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    if proc.stdout is not None:  # a killed child's pipe is ours to close
        proc.stdout.close()


async def wait_for(predicate: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


async def test_worker_killed_mid_handler_has_its_event_redelivered(sqlite_path: str, tmp_path: Path) -> None:
    log = tmp_path / "handler.log"
    async with SQLiteQueue(f"sqlite:///{sqlite_path}") as queue:
        await queue.put(Message("github", "evt-kill", "push", b"{}", {}, time.time()))

    first = spawn("worker", "--db", sqlite_path, "--log", str(log), "--visibility", "1.0")
    try:
        await wait_for(lambda: "start evt-kill 1" in lines(log))
    finally:
        kill(first)  # SIGKILL: no cleanup, the lease is simply abandoned

    second = spawn("worker", "--db", sqlite_path, "--log", str(log), "--visibility", "1.0")
    try:
        await wait_for(lambda: "done evt-kill 2" in lines(log))
        # The handler logs "done" before the worker's ack commits: let the ack land first.
        async with SQLiteQueue(f"sqlite:///{sqlite_path}") as queue:
            for _ in range(500):
                if (await queue.stats()).pending == 0:
                    break
                await asyncio.sleep(0.02)
    finally:
        kill(second)
    assert lines(log) == ["start evt-kill 1", "start evt-kill 2", "done evt-kill 2"]
    async with SQLiteQueue(f"sqlite:///{sqlite_path}") as queue:
        stats = await queue.stats()
        assert (stats.pending, stats.dead) == (0, 0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_port(port: int) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


async def test_ingress_killed_under_load_loses_no_acknowledged_event(sqlite_path: str) -> None:
    port = free_port()
    ingress = spawn("ingress", "--db", sqlite_path, "--port", str(port))
    acked: set[str] = set()
    failed: set[str] = set()  # no answer: refused, or cut off by the kill
    in_flight: set[str] = set()  # sent, not yet answered
    sent = 0
    stop = asyncio.Event()
    body = json.dumps({"action": "opened"}).encode()

    async def sender(n: int, session: aiohttp.ClientSession) -> None:
        nonlocal sent
        i = 0
        while not stop.is_set():
            delivery = f"load-{n}-{i}"
            i += 1
            sent += 1
            in_flight.add(delivery)
            try:
                async with session.post(
                    f"http://127.0.0.1:{port}/hooks/github", data=body, headers=github_headers(body, delivery)
                ) as reply:
                    if reply.status == 200:
                        acked.add(delivery)
            except (aiohttp.ClientError, OSError):
                failed.add(delivery)
                await asyncio.sleep(0.01)  # the server is gone: pace the retries until told to stop
            finally:
                in_flight.discard(delivery)

    try:
        await wait_port(port)
        async with aiohttp.ClientSession() as session:
            senders = [asyncio.create_task(sender(n, session)) for n in range(16)]
            await wait_for(lambda: len(acked) >= 1500)
            # kill() blocks the loop: no sender moves between this snapshot and the SIGKILL.
            at_kill = set(in_flight)
            kill(ingress)  # mid-load: requests are in flight, commits are in progress
            # Answers already on the wire before the kill still count: wait for each of them.
            await wait_for(lambda: not at_kill & in_flight)
            stop.set()
            await asyncio.gather(*senders)
    finally:
        if ingress.poll() is None:
            kill(ingress)
    # The kill really happened under load: requests were in flight, and some were cut off.
    assert at_kill, "no request was in flight at the kill"
    assert at_kill & failed, f"all {len(at_kill)} requests in flight at the kill were answered"

    # Count after a restart: every acknowledged delivery id is in the store.
    restarted = spawn("ingress", "--db", sqlite_path, "--port", str(port))
    try:
        await wait_port(port)
        conn = sqlite3.connect(sqlite_path)
        stored = {row[0] for row in conn.execute("SELECT id FROM interlock_events")}
        conn.close()
        missing = acked - stored
        assert not missing, f"{len(missing)} acknowledged events lost, e.g. {sorted(missing)[:5]}"
        assert len(stored) >= len(acked)
        # The restarted ingress still knows them: re-sending one is a duplicate.
        again = next(iter(acked))
        async with aiohttp.ClientSession() as session, session.post(
            f"http://127.0.0.1:{port}/hooks/github", data=body, headers=github_headers(body, again)
        ) as reply:
            assert reply.status == 200
            assert (await reply.json())["status"] == "duplicate"
    finally:
        kill(restarted)
    print(
        f"sent {sent}, in flight at the kill {len(at_kill)} ({len(at_kill & failed)} cut off), "
        f"acknowledged {len(acked)}, stored {len(stored)}, lost 0"
    )
