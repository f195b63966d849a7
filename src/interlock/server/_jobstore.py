"""Where 202 jobs keep their status: the ``JobStore`` Protocol, ``JobStatus``, and the SQLite
and PostgreSQL stores. Private to ``interlock.server``; ``interlock.server.jobs`` re-exports the
public names.

The store keeps what the status resource shows (state, progress, result, error, attempts); the
work itself travels on a leased ``Queue`` (``interlock.stores``), so a job's retries, lease
expiry and dead letters are the queue's. Every write names the state it moves from, so a stale
worker (one whose lease expired and whose job another worker finished) cannot move a finished
job back to ``running``.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from .._clock import SYSTEM_CLOCK, Clock
from ..errors import ConfigError
from ..stores import connect_sqlite, sqlite_path_from_url

__all__ = [
    "TERMINAL",
    "JobState",
    "JobStatus",
    "JobStore",
    "PostgresJobStore",
    "SQLiteJobStore",
]

JobState = Literal["queued", "running", "succeeded", "failed"]
TERMINAL: frozenset[str] = frozenset({"succeeded", "failed"})
"""States a job never leaves (a DLQ replay of a failed job is the one way back to ``queued``)."""


@dataclass(frozen=True)
class JobStatus:
    """One job as the status resource shows it (``GET /jobs/{id}``)."""

    id: str
    task: str
    state: JobState
    created_at: float
    """Wall-clock seconds since the epoch, as are the other ``_at`` fields."""
    updated_at: float
    attempts: int = 0
    """Deliveries started so far (1 while the first runs; a retry or an expired lease adds one)."""
    progress: float | None = None
    """0.0 to 1.0, as the task last reported it (None: never reported)."""
    message: str | None = None
    """The task's last progress message."""
    result: Any = None
    """What the task returned (JSON), once ``succeeded``."""
    error: str | None = None
    """Why the last attempt failed (a retry is queued) or why the job ``failed``."""
    started_at: float | None = None
    finished_at: float | None = None
    callback_url: str | None = field(default=None, repr=False)
    """Where the completion callback goes (left out of the repr and of ``to_json``: it may
    carry a token in its query)."""

    @property
    def done(self) -> bool:
        """True once the job ``succeeded`` or ``failed``."""
        return self.state in TERMINAL

    def to_json(self) -> dict[str, Any]:
        """The status as the resource's JSON object (no callback URL)."""
        return {
            "id": self.id,
            "task": self.task,
            "status": self.state,
            "progress": self.progress,
            "message": self.message,
            "result": self.result,
            "error": self.error,
            "attempts": self.attempts,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }


@runtime_checkable
class JobStore(Protocol):
    """Job statuses, shared by the API processes that create jobs and the workers that run them."""

    async def open(self) -> None:
        """Connect and create the table if missing (idempotent)."""
        ...

    async def aclose(self) -> None:
        """Release the connection."""
        ...

    async def create(self, status: JobStatus) -> None:
        """Insert a new ``queued`` job."""
        ...

    async def get(self, job_id: str) -> JobStatus | None:
        """The job, or None for an unknown id."""
        ...

    async def start(self, job_id: str, attempt: int) -> bool:
        """Mark the job ``running`` for delivery ``attempt``; False if it already succeeded (a
        stale redelivery: do not run it again). A ``failed`` job starts again: only a replay
        from the dead-letter queue delivers it."""
        ...

    async def progress(self, job_id: str, progress: float | None, message: str | None) -> None:
        """Record the running job's progress."""
        ...

    async def finish(
        self, job_id: str, state: JobState, *, result: Any = None, error: str | None = None
    ) -> bool:
        """Move a job that is not finished to ``state``: ``succeeded`` with ``result``,
        ``failed`` with ``error``, or back to ``queued`` with the ``error`` of the attempt that
        will be retried; False if it was already finished."""
        ...

    async def prune(self, finished_before: float) -> int:
        """Delete jobs finished before that wall-clock time; how many."""
        ...


_COLUMNS = (
    "id, task, state, created_at, updated_at, attempts, progress, message, result, error,"
    " started_at, finished_at, callback_url"
)


def _row_status(row: Any) -> JobStatus:
    return JobStatus(
        id=row[0],
        task=row[1],
        state=row[2],
        created_at=float(row[3]),
        updated_at=float(row[4]),
        attempts=int(row[5]),
        progress=None if row[6] is None else float(row[6]),
        message=row[7],
        result=None if row[8] is None else json.loads(row[8]),
        error=row[9],
        started_at=None if row[10] is None else float(row[10]),
        finished_at=None if row[11] is None else float(row[11]),
        callback_url=row[12],
    )


def _check_table(owner: str, table: str) -> None:
    if not table.replace("_", "").isalnum() or not table[:1].isalpha():
        raise ConfigError(owner, "table", f"must be a letter then letters, digits and _, got {table!r}")


class SQLiteJobStore:
    """Job statuses in a SQLite file (WAL mode, so API processes read while workers write).
    ``url`` is ``sqlite:///relative.db``, ``sqlite:////abs.db`` or a path; ``table`` names the
    table. Each call runs in a thread on one connection."""

    def __init__(
        self,
        url: str = "sqlite:///interlock.db",
        *,
        table: str = "interlock_jobs",
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        _check_table("SQLiteJobStore", table)
        self.path = sqlite_path_from_url(url)
        self.table = table
        self._clock = clock
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    async def open(self) -> None:
        """Open the file and create the table if missing."""
        if self._conn is not None:
            return
        t = self.table

        def connect() -> sqlite3.Connection:
            conn = connect_sqlite(self.path)
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {t} (id TEXT PRIMARY KEY, task TEXT NOT NULL,"
                " state TEXT NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL,"
                " attempts INTEGER NOT NULL DEFAULT 0, progress REAL, message TEXT, result TEXT,"
                " error TEXT, started_at REAL, finished_at REAL, callback_url TEXT)"
            )
            conn.execute(f"CREATE INDEX IF NOT EXISTS {t}_finished ON {t} (finished_at)")
            return conn

        self._conn = await asyncio.to_thread(connect)

    async def aclose(self) -> None:
        """Close the connection."""
        conn, self._conn = self._conn, None
        if conn is not None:
            await asyncio.to_thread(conn.close)

    async def _run(self, sql: str, params: tuple[Any, ...]) -> tuple[list[Any], int]:
        """The statement's rows and rowcount, read in the worker thread under the lock: a cursor
        handed back to the event loop's thread would reset the connection's cached statement
        from there while another thread runs it (CPython issue 118172: "bad parameter or other
        API misuse")."""
        conn = self._conn
        if conn is None:
            raise RuntimeError(f"{self!r} is not open: await store.open() first")

        def op() -> tuple[list[Any], int]:
            with self._lock:
                cursor = conn.execute(sql, params)
                try:
                    return cursor.fetchall(), cursor.rowcount
                finally:
                    cursor.close()

        return await asyncio.to_thread(op)

    async def create(self, status: JobStatus) -> None:
        """Insert the job."""
        await self._run(
            f"INSERT INTO {self.table} ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                status.id, status.task, status.state, status.created_at, status.updated_at,
                status.attempts, status.progress, status.message,
                None if status.result is None else json.dumps(status.result), status.error,
                status.started_at, status.finished_at, status.callback_url,
            ),
        )  # fmt: skip

    async def get(self, job_id: str) -> JobStatus | None:
        """One job by id."""
        rows, _ = await self._run(f"SELECT {_COLUMNS} FROM {self.table} WHERE id = ?", (job_id,))
        return _row_status(rows[0]) if rows else None

    async def start(self, job_id: str, attempt: int) -> bool:
        """``running`` for this attempt, unless finished."""
        now = self._clock.time()
        _, changed = await self._run(
            f"UPDATE {self.table} SET state = 'running', attempts = ?, updated_at = ?,"
            " finished_at = NULL, started_at = coalesce(started_at, ?)"
            " WHERE id = ? AND state IN ('queued', 'running', 'failed')",
            (attempt, now, now, job_id),
        )
        return changed == 1

    async def progress(self, job_id: str, progress: float | None, message: str | None) -> None:
        """Progress of a running job."""
        await self._run(
            f"UPDATE {self.table} SET progress = ?, message = ?, updated_at = ? WHERE id = ? AND state = 'running'",
            (progress, message, self._clock.time(), job_id),
        )

    async def finish(
        self, job_id: str, state: JobState, *, result: Any = None, error: str | None = None
    ) -> bool:
        """Settle a job that is not finished."""
        now = self._clock.time()
        finished = now if state in TERMINAL else None
        encoded = None if result is None else json.dumps(result)
        _, changed = await self._run(
            f"UPDATE {self.table} SET state = ?, result = ?, error = ?, updated_at = ?, finished_at = ?"
            " WHERE id = ? AND state IN ('queued', 'running')",
            (state, encoded, error, now, finished, job_id),
        )
        return changed == 1

    async def prune(self, finished_before: float) -> int:
        """Forget old finished jobs."""
        _, deleted = await self._run(
            f"DELETE FROM {self.table} WHERE finished_at IS NOT NULL AND finished_at < ?", (finished_before,)
        )
        return deleted

    def __repr__(self) -> str:
        state = "open" if self._conn is not None else "closed"
        return f"SQLiteJobStore(path={self.path!r}, table={self.table!r}, {state})"


class PostgresJobStore:
    """Job statuses in PostgreSQL (``postgresql://...``; extra ``interlock[postgres]``), in
    ``table`` (in ``schema`` when given, else the connection's search path), through a small
    asyncpg pool."""

    def __init__(
        self,
        dsn: str,
        *,
        table: str = "interlock_jobs",
        schema: str | None = None,
        pool_size: int = 4,
        command_timeout: float = 10.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        _check_table("PostgresJobStore", table)
        self.dsn = dsn
        if schema is not None:
            _check_table("PostgresJobStore", schema)
        self.table = table if schema is None else f'"{schema}".{table}'
        self.pool_size = pool_size
        self.command_timeout = command_timeout
        self._clock = clock
        self._pool: Any = None

    async def open(self) -> None:
        """Connect and create the table if missing."""
        if self._pool is not None:
            return
        try:
            import asyncpg
        except ImportError as exc:  # pragma: no cover - the extra is in the test install
            raise ImportError("PostgresJobStore needs asyncpg: pip install 'interlock[postgres]'") from exc
        pool = await asyncpg.create_pool(
            self.dsn, min_size=1, max_size=self.pool_size, command_timeout=self.command_timeout
        )
        t = self.table
        index = self.table.rsplit(".", 1)[-1] + "_finished"
        try:
            await pool.execute(
                f"CREATE TABLE IF NOT EXISTS {t} (id TEXT PRIMARY KEY, task TEXT NOT NULL,"
                " state TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,"
                " updated_at DOUBLE PRECISION NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
                " progress DOUBLE PRECISION, message TEXT, result TEXT, error TEXT,"
                " started_at DOUBLE PRECISION, finished_at DOUBLE PRECISION, callback_url TEXT);"
                f" CREATE INDEX IF NOT EXISTS {index} ON {t} (finished_at)"
            )
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    async def aclose(self) -> None:
        """Close the pool."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    def _p(self) -> Any:
        if self._pool is None:
            raise RuntimeError(f"{self!r} is not open: await store.open() first")
        return self._pool

    async def create(self, status: JobStatus) -> None:
        """Insert the job."""
        await self._p().execute(
            f"INSERT INTO {self.table} ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            status.id, status.task, status.state, status.created_at, status.updated_at,
            status.attempts, status.progress, status.message,
            None if status.result is None else json.dumps(status.result), status.error,
            status.started_at, status.finished_at, status.callback_url,
        )  # fmt: skip

    async def get(self, job_id: str) -> JobStatus | None:
        """One job by id."""
        row = await self._p().fetchrow(f"SELECT {_COLUMNS} FROM {self.table} WHERE id = $1", job_id)
        return None if row is None else _row_status(tuple(row))

    async def start(self, job_id: str, attempt: int) -> bool:
        """``running`` for this attempt, unless finished."""
        now = self._clock.time()
        done = await self._p().execute(
            f"UPDATE {self.table} SET state = 'running', attempts = $1, updated_at = $2,"
            " finished_at = NULL, started_at = coalesce(started_at, $2)"
            " WHERE id = $3 AND state IN ('queued', 'running', 'failed')",
            attempt, now, job_id,
        )  # fmt: skip
        return bool(done.endswith(" 1"))

    async def progress(self, job_id: str, progress: float | None, message: str | None) -> None:
        """Progress of a running job."""
        await self._p().execute(
            f"UPDATE {self.table} SET progress = $1, message = $2, updated_at = $3 WHERE id = $4 AND state = 'running'",
            progress, message, self._clock.time(), job_id,
        )  # fmt: skip

    async def finish(
        self, job_id: str, state: JobState, *, result: Any = None, error: str | None = None
    ) -> bool:
        """Settle a job that is not finished."""
        now = self._clock.time()
        done = await self._p().execute(
            f"UPDATE {self.table} SET state = $1, result = $2, error = $3, updated_at = $4, finished_at = $5"
            " WHERE id = $6 AND state IN ('queued', 'running')",
            state, None if result is None else json.dumps(result), error, now,
            now if state in TERMINAL else None, job_id,
        )  # fmt: skip
        return bool(done.endswith(" 1"))

    async def prune(self, finished_before: float) -> int:
        """Forget old finished jobs."""
        done = await self._p().execute(
            f"DELETE FROM {self.table} WHERE finished_at IS NOT NULL AND finished_at < $1", finished_before
        )
        return int(done.rsplit(" ", 1)[-1])

    def __repr__(self) -> str:
        state = "open" if self._pool is not None else "closed"
        return f"PostgresJobStore(table={self.table!r}, {state})"
