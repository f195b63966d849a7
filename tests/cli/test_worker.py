"""``interlock worker``: N real worker processes on one shared backend, one SIGKILLed mid-run:
every event handled, effects exactly once; the supervisor restarts the dead process and stops
the others cleanly; mistakes are one line and exit 2."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from interlock.cli import main
from interlock.stores import Message, open_queue

APP = """
import asyncio, os, sqlite3, time
from interlock import Inbox

inbox = Inbox(store=os.environ["TEST_STORE"], visibility=2.0)
inbox.internal_source("jobs")
ledger = sqlite3.connect(os.environ["TEST_LEDGER"], timeout=30.0, isolation_level=None)
ledger.execute("PRAGMA journal_mode=WAL")

@inbox.handler("jobs")
async def handle(event):
    await asyncio.sleep(0.01)  # work in flight when the kill lands
    # The effect is idempotent on the event id: at-least-once delivery, effects exactly once.
    ledger.execute("BEGIN IMMEDIATE")
    ledger.execute("INSERT INTO calls VALUES (?, ?)", (event.id, os.getpid()))
    ledger.execute("INSERT OR IGNORE INTO effects VALUES (?)", (event.id,))
    ledger.execute("COMMIT")
"""


class Lines:
    """The supervisor's stderr, read in a thread, kept as lines."""

    def __init__(self, stream: object) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.lines.append(line.strip())

    def pids(self) -> list[int]:
        return [int(line.rsplit("pid ", 1)[1].rstrip(")")) for line in self.lines if " started (pid " in line]


async def until(check: object, deadline: float = 60.0) -> None:
    end = time.monotonic() + deadline
    while not check():  # type: ignore[operator]
        if time.monotonic() > end:
            raise AssertionError("not reached in time")
        await asyncio.sleep(0.05)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/queue.db"
    else:
        dsn = request.getfixturevalue("postgres_dsn")
        schema = request.getfixturevalue("postgres_schema")
        yield f"{dsn}?schema={schema}"


@pytest.mark.slow
async def test_three_processes_one_killed_every_event_handled_effects_once(
    store: str, tmp_path: Path
) -> None:
    (tmp_path / "workerapp.py").write_text(APP)
    ledger_path = str(tmp_path / "ledger.db")
    ledger = sqlite3.connect(ledger_path, isolation_level=None)
    ledger.execute("PRAGMA journal_mode=WAL")
    ledger.execute("CREATE TABLE calls (id TEXT, pid INTEGER)")
    ledger.execute("CREATE TABLE effects (id TEXT PRIMARY KEY)")
    total = 300
    queue = open_queue(store)
    async with queue:
        for i in range(total):
            await queue.put(Message("jobs", f"e{i}", "t", b"{}", received_at=time.time()))
    env = {**os.environ, "TEST_STORE": store, "TEST_LEDGER": ledger_path}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "interlock",
            "worker",
            "workerapp:inbox",
            "--processes",
            "3",
            "--concurrency",
            "4",
            "--grace",
            "20",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    out = Lines(proc.stderr)
    try:
        await until(lambda: len(out.pids()) == 3)
        await until(lambda: ledger.execute("SELECT count(*) FROM calls").fetchone()[0] >= 50)
        victim = out.pids()[0]
        os.kill(victim, signal.SIGKILL)  # mid-run, with events leased to it
        await until(lambda: any(f"(pid {victim}) exited with -9" in line for line in out.lines))
        await until(lambda: len(out.pids()) == 4)  # restarted in its slot
        await until(
            lambda: ledger.execute("SELECT count(*) FROM effects").fetchone()[0] == total, deadline=90.0
        )
        effects = {row[0] for row in ledger.execute("SELECT id FROM effects")}
        assert effects == {f"e{i}" for i in range(total)}
        calls = ledger.execute("SELECT id, pid FROM calls").fetchall()
        by_pid = {pid for _, pid in calls}
        assert len(by_pid) >= 2  # the work was shared (a process slow to start may get none)
        # No double processing, except the events the killed process held when it died.
        twice = {row[0] for row in ledger.execute("SELECT id FROM calls GROUP BY id HAVING count(*) > 1")}
        assert twice <= {event for event, pid in calls if pid == victim}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert any("process(es) stopped" in line for line in out.lines)
    finally:
        if proc.poll() is None:  # a failed check: the supervisor stops its processes itself
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
        ledger.close()
    async with open_queue(store) as queue:
        stats = await queue.stats()
        assert (stats.pending, stats.dead) == (0, 0)


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["worker", "nocolon"], "expected module:attribute"),
        (["worker", "no_such_module_xyz:inbox"], "no module named 'no_such_module_xyz'"),
        (["worker", "os:no_such_thing"], "'os' has no attribute 'no_such_thing'"),
        (["worker", "os:sep"], "expected an interlock Inbox or Outbox"),
        (["worker", "os:sep", "--processes", "0"], "--processes: expected an integer from 1 to 256, got 0"),
        (["worker", "os:sep", "--concurrency", "x"], "--concurrency: expected an integer"),
    ],
)
def test_mistakes_are_one_line_and_exit_2(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse's own errors
        status = int(exc.code or 0)
    err = capsys.readouterr().err
    assert status == 2
    assert says in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
