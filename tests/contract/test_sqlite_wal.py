"""The SQLite stores keep their write-ahead log bounded while they run (real files)."""

from __future__ import annotations

import asyncio
import os

import pytest

from interlock.errors import ConfigError
from interlock.stores import Message
from interlock.stores._sqlite import GroupCommitter, checkpoint_mode, connect_sqlite
from interlock.stores.queue_sqlite import SQLiteQueue

MB = 1024 * 1024


def decide(**state: object) -> str | None:
    base: dict[str, object] = {"committed": False, "wal_bytes": 0, "idle_for": 0.0, "truncated": False, "truncate_idle": 5.0}
    return checkpoint_mode(**{**base, **state})  # type: ignore[arg-type]


def test_which_checkpoint_runs_when() -> None:
    assert decide(committed=True, wal_bytes=1000) == "PASSIVE"  # writing: never block the writer
    assert decide(committed=True, wal_bytes=2 * MB) == "PASSIVE"  # the size limit is the writer's
    assert decide(wal_bytes=1000, idle_for=4.9) is None  # a pause, not yet idle
    assert decide(wal_bytes=1000, idle_for=5.0) == "TRUNCATE"  # idle: empty the log
    assert decide(wal_bytes=1000, idle_for=60.0, truncated=True) is None  # once per idle spell
    assert decide(wal_bytes=0, idle_for=60.0) is None  # nothing to truncate


def test_connections_carry_the_journal_size_limit(tmp_path: object) -> None:
    conn = connect_sqlite(os.path.join(str(tmp_path), "a.db"), journal_size_limit=123456)
    try:
        assert conn.execute("PRAGMA journal_size_limit").fetchone()[0] == 123456
    finally:
        conn.close()
    with pytest.raises(ConfigError, match="wal_truncate_idle"):
        GroupCommitter(os.path.join(str(tmp_path), "b.db"), wal_truncate_idle=0)


def event(i: int) -> Message:
    return Message(source="s", id=f"e{i}", type="t", body=os.urandom(1024))


async def next_truncation(writer: GroupCommitter, after: int) -> None:
    """Wait (30 s at most) until the writer has made more than ``after`` TRUNCATE checkpoints."""
    writer.truncated.clear()
    if writer.truncations > after:
        return
    assert await asyncio.to_thread(writer.truncated.wait, 30), "no TRUNCATE checkpoint came"


async def test_the_wal_is_emptied_once_the_writers_are_idle(sqlite_path: str) -> None:
    queue = SQLiteQueue(f"sqlite:///{sqlite_path}", wal_truncate_idle=0.2)
    async with queue:
        writer = queue.writer
        await asyncio.gather(*(queue.put(event(i)) for i in range(3000)))
        assert writer.wal_bytes() > 0
        await next_truncation(writer, writer.truncations)
        assert writer.wal_bytes() == 0
        assert (await queue.stats()).pending == 3000  # all in the database file now


async def test_the_wal_is_emptied_past_its_size_limit_under_steady_writes(sqlite_path: str) -> None:
    # Never idle long enough for the idle rule: only the size limit can truncate.
    queue = SQLiteQueue(f"sqlite:///{sqlite_path}", wal_size_limit=256 * 1024, wal_truncate_idle=3600.0)
    async with queue:
        writer = queue.writer
        rounds = 0
        while writer.truncations == 0:
            rounds += 1
            assert rounds < 2000, "the WAL was never truncated"
            await asyncio.gather(*(queue.put(event(rounds * 100 + i)) for i in range(100)))
        assert (await queue.stats()).pending == rounds * 100


async def test_a_cursor_an_operation_returns_is_closed_in_the_writer_thread(tmp_path: object) -> None:
    """A cursor handed back to the event loop's thread and dropped there resets the connection's
    cached statement from that thread while the writer may be running it (CPython issue 118172:
    a CI run failed on "bad parameter or other API misuse"). The writer closes it first."""
    import sqlite3

    writer = await asyncio.to_thread(GroupCommitter, os.path.join(str(tmp_path), "c.db"))
    returned: list[sqlite3.Cursor] = []

    def op(conn: sqlite3.Connection) -> sqlite3.Cursor:
        returned.append(conn.execute("SELECT 1"))
        return returned[-1]

    try:
        assert await writer.run(op) is None
    finally:
        await asyncio.to_thread(writer.close)
    with pytest.raises(sqlite3.ProgrammingError, match="closed cursor"):
        returned[0].fetchone()
