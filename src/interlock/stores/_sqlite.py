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
import os
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

__all__ = [
    "WAL_SIZE_LIMIT",
    "WAL_TRUNCATE_IDLE",
    "GroupCommitter",
    "SQLiteStore",
    "checkpoint_mode",
    "connect_sqlite",
    "sqlite_path_from_url",
]


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


BUSY_TIMEOUT = 10.0
"""Seconds a connection waits for another process's lock before failing with 'database is locked'."""
WAL_SIZE_LIMIT = 32 * 1024 * 1024
"""Bytes the write-ahead log may grow to before the writer empties it (a TRUNCATE checkpoint
between two transactions), and the ``journal_size_limit`` SQLite cuts it back to when it
restarts it."""
WAL_TRUNCATE_IDLE = 5.0
"""Seconds without a commit after which the write-ahead log is truncated to zero bytes."""
_TRUNCATE_BUSY = 0.05
"""How long a TRUNCATE checkpoint waits for other processes' readers before giving up (and
trying again ``_TRUNCATE_BACKOFF`` s later): it must not hold the writer back."""
_TRUNCATE_BACKOFF = 2.0
"""Seconds before a TRUNCATE checkpoint that readers held off is tried again."""


def connect_sqlite(
    path: str,
    *,
    synchronous: Synchronous = "FULL",
    busy_timeout: float = BUSY_TIMEOUT,
    journal_size_limit: int = WAL_SIZE_LIMIT,
) -> sqlite3.Connection:
    """A connection in WAL mode with explicit transactions (``isolation_level=None``).

    WAL lets readers (other processes: the CLI, workers) run while one writer commits.
    ``journal_size_limit`` (bytes) is what SQLite cuts the WAL file back to when it restarts
    it; without one the file keeps its largest size for ever
    (https://www.sqlite.org/pragma.html#pragma_journal_size_limit).
    """
    if synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
        raise ConfigError("sqlite", "synchronous", f"must be OFF, NORMAL, FULL or EXTRA, got {synchronous!r}")
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=busy_timeout)
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
    mode = _switch_to_wal(conn, path, busy_timeout)
    if str(mode).lower() != "wal" and path != ":memory:":
        raise ConfigError("sqlite", "path", f"could not switch {path!r} to WAL mode (got {mode})")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute(f"PRAGMA journal_size_limit={int(journal_size_limit)}")
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


CheckpointMode = Literal["PASSIVE", "TRUNCATE"]


def checkpoint_mode(
    *, committed: bool, wal_bytes: int, idle_for: float, truncated: bool, truncate_idle: float
) -> CheckpointMode | None:
    """Which checkpoint the checkpointer thread runs now, if any.

    ``committed``: commits were made since the last look; ``wal_bytes``: the WAL file's size;
    ``idle_for``: seconds since the last commit; ``truncated``: the WAL was truncated since then.
    While commits come, a PASSIVE checkpoint copies the log into the database without blocking
    anyone; once the writer has been idle ``truncate_idle`` s, a TRUNCATE checkpoint empties the
    log file (https://www.sqlite.org/c3ref/wal_checkpoint_v2.html). The size limit under steady
    writes is the writer's own to enforce (``GroupCommitter``).
    """
    if committed:
        return "PASSIVE"
    if not truncated and wal_bytes > 0 and idle_for >= truncate_idle:
        return "TRUNCATE"
    return None


_Item = tuple[Callable[[sqlite3.Connection], Any], "asyncio.Future[Any]", asyncio.AbstractEventLoop]


class GroupCommitter:
    """One writer thread running submitted operations in shared transactions.

    An operation is a function of the connection, run inside ``BEGIN IMMEDIATE ... COMMIT``; it
    must leave the transaction usable if it raises (single statements do). Its future resolves
    after the commit, so a result is never reported for data that is not durable.

    The write-ahead log stays bounded. A checkpoint thread copies it into the database while
    commits come (PASSIVE, on its own connection, so committers never wait for it) and empties
    it once the writer is idle ``wal_truncate_idle`` s. Under steady writes that is not enough:
    a checkpoint running beside the writer never reaches the log's end, so SQLite never
    restarts the log and the file grows without bound. So when the file passes
    ``wal_size_limit`` bytes, the writer thread itself empties it between two transactions
    (TRUNCATE; with no writer beside it, it finishes, after copying only what the checkpoint
    thread had not yet copied).
    """

    def __init__(
        self,
        path: str,
        *,
        synchronous: Synchronous = "FULL",
        max_batch: int = 4096,
        init: Callable[[sqlite3.Connection], None] | None = None,
        checkpoint_every: float = 0.5,
        wal_size_limit: int = WAL_SIZE_LIMIT,
        wal_truncate_idle: float = WAL_TRUNCATE_IDLE,
    ) -> None:
        if wal_size_limit < 1:
            raise ConfigError("sqlite", "wal_size_limit", f"must be >= 1 byte, got {wal_size_limit!r}")
        if wal_truncate_idle <= 0:
            raise ConfigError("sqlite", "wal_truncate_idle", f"must be > 0 seconds, got {wal_truncate_idle!r}")
        self.path = path
        self.max_batch = max_batch
        self.wal_size_limit = wal_size_limit
        self.wal_truncate_idle = wal_truncate_idle
        self.truncations = 0
        """TRUNCATE checkpoints that emptied the WAL (by the writer past the size limit, or by
        the checkpoint thread when idle)."""
        self.truncated = threading.Event()
        """Set each time a TRUNCATE checkpoint empties the WAL (clear it to wait for the next)."""
        self._conn = connect_sqlite(path, synchronous=synchronous, journal_size_limit=wal_size_limit)
        self._busy_ms = int(BUSY_TIMEOUT * 1000)  # restored after a TRUNCATE, which shortens it
        self._checkpoint_lock = threading.Lock()  # one checkpoint at a time, from either thread
        self._truncate_after = 0.0
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
        self._thread.start()  # last: the writer reads what is set above

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
        self._stop_checkpoints.set()
        # Wake the writer until it has gone: a CI run caught close() joining a writer idle in
        # its wait with the closing flag set, a lost wakeup (interleaving not found); setting
        # the event again cannot lose one.
        while self._thread.is_alive():
            self._wakeup.set()
            self._thread.join(0.1)
        if self._checkpointer is not None:
            self._checkpointer.join()
        self._conn.close()

    def wal_bytes(self) -> int:
        """The size of the write-ahead log file now (0 when there is none)."""
        try:
            return os.path.getsize(self.path + "-wal")
        except OSError:
            return 0

    def _checkpoint_loop(self, every: float, synchronous: Synchronous) -> None:
        # A short busy timeout: an idle TRUNCATE waiting for other processes' readers gives up
        # soon (and tries again later) rather than hold up a writer that wakes meanwhile.
        conn = connect_sqlite(
            self.path, synchronous=synchronous, busy_timeout=_TRUNCATE_BUSY, journal_size_limit=self.wal_size_limit
        )
        try:
            seen, last_commit, truncated, retry_at = -1, time.monotonic(), False, 0.0
            while not self._stop_checkpoints.wait(every):
                now, commits = time.monotonic(), self.commits
                committed = commits != seen
                if committed:
                    seen, last_commit, truncated = commits, now, False
                mode = checkpoint_mode(
                    committed=committed, wal_bytes=self.wal_bytes(), idle_for=now - last_commit,
                    truncated=truncated, truncate_idle=self.wal_truncate_idle,
                )
                if mode is None or (mode == "TRUNCATE" and now < retry_at):
                    continue
                with self._checkpoint_lock:
                    done = self._checkpoint(conn, mode)
                if mode == "TRUNCATE":
                    truncated, retry_at = done, (now if done else now + _TRUNCATE_BACKOFF)
            with self._checkpoint_lock:
                self._checkpoint(conn, "PASSIVE")
        finally:
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection, mode: CheckpointMode) -> bool:
        """Run one checkpoint; whether it finished (a busy TRUNCATE is tried again later)."""
        try:
            busy = conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()[0]
        except sqlite3.Error:
            return False
        if busy:
            return False
        if mode == "TRUNCATE":
            self.truncations += 1
            self.truncated.set()
        return True

    def _truncate_if_over(self) -> None:
        """In the writer thread, between transactions: empty the WAL once it is over the limit
        (unless the checkpoint thread is at work, or readers held the last try off)."""
        now = time.monotonic()
        if now < self._truncate_after or self.wal_bytes() <= self.wal_size_limit:
            return
        if not self._checkpoint_lock.acquire(blocking=False):
            return  # the checkpoint thread is copying: after the next transaction, then
        conn = self._conn
        try:
            conn.execute(f"PRAGMA busy_timeout={int(_TRUNCATE_BUSY * 1000)}")
            try:
                done = self._checkpoint(conn, "TRUNCATE")
            finally:
                conn.execute(f"PRAGMA busy_timeout={self._busy_ms}")
        finally:
            self._checkpoint_lock.release()
        if not done:
            self._truncate_after = now + _TRUNCATE_BACKOFF

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
            if self._checkpointer is not None:
                self._truncate_if_over()

    def _execute(self, batch: list[_Item]) -> None:
        conn = self._conn
        outcomes: list[tuple[asyncio.Future[Any], asyncio.AbstractEventLoop, Any, BaseException | None]]
        outcomes = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for op, fut, loop in batch:
                try:
                    result = op(conn)
                    if isinstance(result, sqlite3.Cursor):
                        # Closed here, in the writer thread: a cursor dropped in the event loop's
                        # thread resets the connection's cached statement from there, while this
                        # thread may be running it (CPython issue 118172; a CI run failed on
                        # "bad parameter or other API misuse").
                        result.close()
                        result = None
                    outcomes.append((fut, loop, result, None))
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

    def __init__(
        self,
        url: str,
        *,
        synchronous: Synchronous,
        wal_size_limit: int = WAL_SIZE_LIMIT,
        wal_truncate_idle: float = WAL_TRUNCATE_IDLE,
    ) -> None:
        self.path = sqlite_path_from_url(url)
        self.synchronous: Synchronous = synchronous
        self.wal_size_limit = wal_size_limit
        """Bytes the WAL may grow to before a TRUNCATE checkpoint empties it."""
        self.wal_truncate_idle = wal_truncate_idle
        """Seconds without a commit after which the WAL is truncated to zero bytes."""
        self._writer: GroupCommitter | None = None
        # Concurrent first uses (a BatchWriter's parallel batches) start one writer thread, not
        # one each: the extra writers were never closed, and shared the file unsupervised.
        self._opening = asyncio.Lock()

    async def _open_writer(self, schema: str | None = None, *, max_batch: int = 4096) -> None:
        """Start the writer thread, creating ``schema`` (a script of ``IF NOT EXISTS``
        statements) first; does nothing when it runs already."""
        if self._writer is not None:
            return

        def init(conn: sqlite3.Connection) -> None:
            if schema:
                conn.executescript(schema)

        async with self._opening:
            if self._writer is None:
                self._writer = await asyncio.to_thread(
                    GroupCommitter, self.path, synchronous=self.synchronous, max_batch=max_batch, init=init,
                    wal_size_limit=self.wal_size_limit, wal_truncate_idle=self.wal_truncate_idle,
                )

    async def aclose(self) -> None:
        """Commit what was submitted, then stop the writer thread and close the file."""
        writer, self._writer = self._writer, None
        if writer is not None:
            await asyncio.to_thread(writer.close)

    @property
    def writer(self) -> GroupCommitter:
        """The writer thread (commit counts, WAL size and truncations); raises when not open."""
        if self._writer is None:
            raise RuntimeError(f"{type(self).__name__} is not open: await its open() first")
        return self._writer

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
