"""Open and configure SQLite, and share commits between concurrent writers (group commit).

Reused by every SQLite-backed store (inbox queue, sync checkpoints). One thread owns one
connection; callers submit small operations, and every operation that arrives while a commit
is in progress joins the next transaction. A burst of N requests therefore costs one fsync, not
N, while each caller still learns only after *its* data is durable (synchronous=FULL in WAL mode
fsyncs the WAL on every commit: https://www.sqlite.org/pragma.html#pragma_synchronous).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, Literal, TypeVar
from urllib.parse import unquote, urlparse

from ..errors import ConfigError

T = TypeVar("T")
log = logging.getLogger("interlock.stores")
Synchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]

__all__ = ["GroupCommitter", "SQLiteStore", "connect_sqlite", "sqlite_path_from_url"]


def sqlite_path_from_url(url: str) -> str:
    """``sqlite:///rel/path.db`` -> ``rel/path.db``; ``sqlite:////abs/path.db`` -> ``/abs/path.db``."""
    if not url.startswith("sqlite:"):
        return url
    parsed = urlparse(url)
    path = unquote(parsed.path)
    if parsed.netloc:
        raise ConfigError("sqlite", "url", f"expected sqlite:///relative or sqlite:////absolute, got {url!r}")
    if path.startswith("/"):
        path = path[1:]
    if not path:
        raise ConfigError("sqlite", "url", f"no file path in {url!r}")
    return path


def connect_sqlite(
    path: str, *, synchronous: Synchronous = "FULL", busy_timeout: float = 10.0
) -> sqlite3.Connection:
    """A connection in WAL mode with explicit transactions (``isolation_level=None``).

    WAL lets readers (other processes: the CLI, workers) run while one writer commits.
    """
    if synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
        raise ConfigError("sqlite", "synchronous", f"must be OFF, NORMAL, FULL or EXTRA, got {synchronous!r}")
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=busy_timeout)
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
    mode = _switch_to_wal(conn, path, busy_timeout)
    if str(mode).lower() != "wal" and path != ":memory:":
        raise ConfigError("sqlite", "path", f"could not switch {path!r} to WAL mode (got {mode})")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    return conn


def _switch_to_wal(conn: sqlite3.Connection, path: str, busy_timeout: float) -> str:
    """``PRAGMA journal_mode=WAL``, retried while the file is busy, for up to ``busy_timeout``.

    Switching a new file to WAL needs an exclusive lock, and SQLite answers SQLITE_BUSY at once,
    without calling the busy handler, when waiting could deadlock: another connection holding a
    write lock, or switching the same file at the same moment (two stores, or a worker and the
    ingress, opening one new file together). The other side finishes within milliseconds; once
    the file is in WAL mode (a property of the file) the switch is a no-op.
    """
    deadline = time.monotonic() + busy_timeout
    pause = 0.001
    while True:
        try:
            return str(conn.execute("PRAGMA journal_mode=WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() + pause > deadline:
                raise
            if pause == 0.001:
                log.debug("sqlite %s: busy switching to WAL mode, retrying for %.0f s", path, busy_timeout)
            time.sleep(pause)  # on the store's own thread (opener or writer), never the event loop
            pause = min(pause * 2, 0.05)


_Item = tuple[Callable[[sqlite3.Connection], Any], "asyncio.Future[Any]", asyncio.AbstractEventLoop]


class GroupCommitter:
    """One writer thread running submitted operations in shared transactions.

    An operation is a function of the connection, run inside ``BEGIN IMMEDIATE ... COMMIT``; it
    must leave the transaction usable if it raises (single statements do). Its future resolves
    after the commit, so a result is never reported for data that is not durable.
    """

    def __init__(
        self,
        path: str,
        *,
        synchronous: Synchronous = "FULL",
        max_batch: int = 4096,
        init: Callable[[sqlite3.Connection], None] | None = None,
        checkpoint_every: float = 0.5,
    ) -> None:
        self.path = path
        self.max_batch = max_batch
        self._conn = connect_sqlite(path, synchronous=synchronous)
        if init is not None:
            init(self._conn)
        self._pending: list[_Item] = []
        self._lock = threading.Lock()
        self._wakeup = threading.Event()
        self._closing = False
        self._stop_checkpoints = threading.Event()
        self.commits = 0
        self.operations = 0
        self._thread = threading.Thread(target=self._run, name=f"interlock-sqlite:{path}", daemon=True)
        self._thread.start()
        self._checkpointer: threading.Thread | None = None
        if checkpoint_every > 0 and path != ":memory:":
            # Checkpoint from a second connection so committers never pay for it: SQLite's
            # automatic checkpoint runs inside the COMMIT that crosses 1,000 WAL pages and,
            # with synchronous=FULL, fsyncs the database file there, which shows up as the
            # acknowledgement's tail latency. PASSIVE never blocks the writer.
            self._conn.execute("PRAGMA wal_autocheckpoint=0")
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop, args=(checkpoint_every, synchronous),
                name=f"interlock-sqlite-checkpoint:{path}", daemon=True,
            )
            self._checkpointer.start()

    def submit(self, op: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Queue ``op`` for the next transaction; the future resolves after its commit (with
        ``op``'s result or exception). Raises RuntimeError once the writer is closed."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        with self._lock:
            if self._closing:
                raise RuntimeError(f"the SQLite writer for {self.path!r} is closed")
            self._pending.append((op, fut, loop))
        self._wakeup.set()
        return fut

    async def run(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """``op``'s result, once the transaction that ran it is committed."""
        return await self.submit(op)

    def close(self) -> None:
        """Finish what was submitted, then close the connection."""
        with self._lock:
            self._closing = True
        self._wakeup.set()
        self._stop_checkpoints.set()
        self._thread.join()
        if self._checkpointer is not None:
            self._checkpointer.join()
        self._conn.close()

    def _checkpoint_loop(self, every: float, synchronous: Synchronous) -> None:
        conn = connect_sqlite(self.path, synchronous=synchronous)
        try:
            done = -1
            while not self._stop_checkpoints.wait(every):
                if self.commits != done:
                    done = self.commits
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            conn.close()

    def _run(self) -> None:
        while True:
            self._wakeup.wait()
            with self._lock:
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                if not self._pending:
                    self._wakeup.clear()
                closing = self._closing
            if not batch:
                if closing:
                    return
                continue
            self._execute(batch)

    def _execute(self, batch: list[_Item]) -> None:
        conn = self._conn
        outcomes: list[tuple[asyncio.Future[Any], asyncio.AbstractEventLoop, Any, BaseException | None]]
        outcomes = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for op, fut, loop in batch:
                try:
                    outcomes.append((fut, loop, op(conn), None))
                except Exception as exc:
                    outcomes.append((fut, loop, None, exc))
            conn.execute("COMMIT")
        except Exception as exc:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            outcomes = [(fut, loop, None, exc) for _, fut, loop in batch]
        self.commits += 1
        self.operations += len(batch)
        by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
        for outcome in outcomes:
            by_loop.setdefault(outcome[1], []).append(outcome)
        for loop, items in by_loop.items():
            # A closed loop raises RuntimeError: nobody is waiting there any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, items)

    def __repr__(self) -> str:
        return f"GroupCommitter(path={self.path!r}, commits={self.commits}, operations={self.operations})"


class SQLiteStore:
    """Base of the SQLite stores (queue, checkpoints, sink): the file ``url`` names and the
    ``GroupCommitter`` thread that writes to it while the store is open."""

    def __init__(self, url: str, *, synchronous: Synchronous) -> None:
        self.path = sqlite_path_from_url(url)
        self.synchronous: Synchronous = synchronous
        self._writer: GroupCommitter | None = None

    async def _open_writer(self, schema: str | None = None, *, max_batch: int = 4096) -> None:
        """Start the writer thread, creating ``schema`` (a script of ``IF NOT EXISTS``
        statements) first; does nothing when it runs already."""
        if self._writer is not None:
            return

        def init(conn: sqlite3.Connection) -> None:
            if schema:
                conn.executescript(schema)

        self._writer = await asyncio.to_thread(
            GroupCommitter, self.path, synchronous=self.synchronous, max_batch=max_batch, init=init
        )

    async def aclose(self) -> None:
        """Commit what was submitted, then stop the writer thread and close the file."""
        writer, self._writer = self._writer, None
        if writer is not None:
            await asyncio.to_thread(writer.close)

    def _run(self, op: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        if self._writer is None:
            raise RuntimeError(f"{type(self).__name__} is not open: await its open() first")
        return self._writer.submit(op)


def _settle(items: list[tuple[asyncio.Future[Any], Any, Any, BaseException | None]]) -> None:
    for fut, _, result, exc in items:
        if fut.done():
            continue
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(result)
