"""SIGKILL of the subscriber, twice, with forced disconnects: every event committed exactly once.

The testbed runs in its own process and changes records while the subscriber (a child
process) commits its SSE stream into a SQLite inbox; the stream is cut every 25 events
(mid-event). The subscriber is killed with SIGKILL (no cleanup) twice while events flow. At
each kill the resume position in the file must be covered by the queue: every event up to it
is committed (commit before resume). After a third run catches up, the queue holds each of the
changes once, and the handlers see each once.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import interlock
from interlock.testbed import SpawnedTestbed, TestbedConfig, spawn_testbed

from .conftest import Recorder, until

CHILD = os.path.join(os.path.dirname(__file__), "_child.py")
CHANGES = 300


def admin(tb: SpawnedTestbed, name: str, body: dict[str, object]) -> dict[str, object]:
    request = urllib.request.Request(
        f"{tb.url}/_testbed/{name}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def stored(db: str) -> tuple[int, list[str]]:
    """The resume position saved in the file, and the event ids the queue holds."""
    tables = ("interlock_sync_checkpoints", "interlock_events")
    with sqlite3.connect(db) as conn:
        present = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not set(tables) <= present:
            return 0, []  # the subscriber has not created them yet
        row = conn.execute(
            "SELECT record_id FROM interlock_sync_checkpoints WHERE job = 'stream:crm'"
        ).fetchone()
        ids = [r[0] for r in conn.execute("SELECT id FROM interlock_events WHERE source = 'crm'")]
    return (int(row[0]) if row else 0), ids


def start(url: str, db: str) -> subprocess.Popen[bytes]:
    child = subprocess.Popen(
        [sys.executable, CHILD, "--url", url, "--db", db], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert child.stdout is not None and child.stdout.readline().strip() == b"ready"
    return child


def kill_(child: subprocess.Popen[bytes]) -> None:
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    if child.stdout is not None:
        child.stdout.close()


def wait_until(predicate, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"not reached within {timeout}s"
        time.sleep(0.02)


@pytest.mark.slow
async def test_sigkill_and_drops_commit_every_event_exactly_once(tmp_path: Path) -> None:
    db = str(tmp_path / "inbox.db")
    with spawn_testbed(TestbedConfig(records=CHANGES)) as tb:
        admin(tb, "streams", {"drop_every": 25})
        child = start(tb.url, db)
        made = 0
        try:
            for kill in range(2):
                for _ in range(60):
                    made += 1
                    admin(tb, "touch", {"kind": "customers", "ids": [made]})
                # Kill while events flow: wait for some progress, then SIGKILL mid-stream.
                wait_until(lambda: os.path.exists(db) and stored(db)[0] >= made - 50)  # noqa: B023
                kill_(child)
                position, ids = stored(db)
                assert len(ids) == len(set(ids)), "an event was committed twice"
                # Commit before resume: everything up to the saved position is in the queue.
                assert {str(i) for i in range(1, position + 1)} <= set(ids), f"kill {kill}: position ahead of the queue"
                child = start(tb.url, db)
            for _ in range(CHANGES - made):
                made += 1
                admin(tb, "touch", {"kind": "customers", "ids": [made]})
            wait_until(lambda: stored(db)[0] == CHANGES)
        finally:
            kill_(child)
        streams = json.loads(urllib.request.urlopen(f"{tb.url}/_testbed/streams", timeout=10).read())
        assert streams["connections"] >= 2 + CHANGES // 25  # the kills and the forced drops
    position, ids = stored(db)
    assert sorted(map(int, ids)) == list(range(1, CHANGES + 1))  # every change, once
    # The handlers see each event once.
    inbox = interlock.Inbox(store=f"sqlite:///{db}")
    inbox.internal_source("crm")
    recorder = Recorder()
    inbox.add_handler("crm", "*", recorder)
    inbox.start_workers(concurrency=4)
    try:
        await until(lambda: len(recorder.seen) == CHANGES, timeout=60)
    finally:
        await inbox.aclose()
    assert sorted(map(int, recorder.ids)) == list(range(1, CHANGES + 1))
