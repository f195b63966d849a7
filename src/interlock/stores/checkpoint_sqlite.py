"""``CheckpointStore`` on a SQLite file (WAL, group commit: concurrent ledger writes share one
fsync). Usually the same file as the inbox's queue."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from typing import Any, TypeVar

from ..errors import ConfigError
from ._ledger_sql import ENTRY, entry_of, entry_row, save_checkpoint_sql, upsert_ledger_sql
from ._sqlite import SQLiteStore, Synchronous
from .checkpoint import Checkpoint, LedgerEntry

__all__ = ["SQLiteCheckpointStore"]

T = TypeVar("T")
# SQLite limits bound parameters per statement (32766 since 3.32); stay well below.
_CHUNK = 900


class SQLiteCheckpointStore(SQLiteStore):
    """Tables ``{prefix}_checkpoints`` and ``{prefix}_ledger`` in a SQLite file."""

    def __init__(
        self,
        url: str = "sqlite:///interlock.db",
        *,
        prefix: str = "interlock_sync",
        synchronous: Synchronous = "FULL",
    ) -> None:
        if not prefix.replace("_", "").isalnum():
            raise ConfigError(
                "SQLiteCheckpointStore", "prefix", f"must be letters, digits and _, got {prefix!r}"
            )
        super().__init__(url, synchronous=synchronous)
        self._cp = f"{prefix}_checkpoints"
        self._ledger = f"{prefix}_ledger"
        self._upsert = upsert_ledger_sql(self._ledger, ["?"] * 9)

    async def open(self) -> None:
        """Create the file and the tables if missing and start the writer thread (idempotent)."""
        await self._open_writer(f"""
        CREATE TABLE IF NOT EXISTS {self._cp} (
            job TEXT PRIMARY KEY,
            updated_at INTEGER NOT NULL,
            record_id TEXT NOT NULL,
            saved_at REAL NOT NULL
        );
        CREATE TABLE IF NOT EXISTS {self._ledger} (
            job TEXT NOT NULL,
            record_id TEXT NOT NULL,
            version INTEGER NOT NULL,
            outcome TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            tracking_id TEXT,
            error TEXT,
            at REAL NOT NULL,
            applied_version INTEGER,
            PRIMARY KEY (job, record_id)
        );
        CREATE INDEX IF NOT EXISTS {self._ledger}_outcome ON {self._ledger} (job, outcome, at);
        """)

    async def load_checkpoint(self, job: str) -> Checkpoint | None:
        """The job's checkpoint row, if any."""
        sql = f"SELECT updated_at, record_id, saved_at FROM {self._cp} WHERE job = ?"
        row = await self._run(lambda conn: conn.execute(sql, (job,)).fetchone())
        return None if row is None else Checkpoint(int(row[0]), row[1], float(row[2]))

    async def save_checkpoint(self, job: str, checkpoint: Checkpoint) -> None:
        """Upsert the job's checkpoint row."""
        sql = save_checkpoint_sql(self._cp, ["?"] * 4)
        row = (job, checkpoint.updated_at, checkpoint.record_id, checkpoint.saved_at or time.time())
        await self._run(lambda conn: conn.execute(sql, row))

    async def lookup(self, job: str, record_ids: Sequence[str]) -> dict[str, LedgerEntry]:
        """Read the records' ledger rows, ``_CHUNK`` ids per query (SQLite's parameter limit)."""
        ids = list(dict.fromkeys(record_ids))
        table = self._ledger

        def op(conn: sqlite3.Connection) -> dict[str, LedgerEntry]:
            found: dict[str, LedgerEntry] = {}
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                sql = f"SELECT {ENTRY} FROM {table} WHERE job = ? AND record_id IN ({','.join('?' * len(chunk))})"
                for row in conn.execute(sql, (job, *chunk)):
                    found[row[0]] = entry_of(row)
            return found

        return await self._run(op) if ids else {}

    async def record(self, job: str, entries: Sequence[LedgerEntry]) -> None:
        """Upsert the entries (monotonic per record) in one shared transaction."""
        if not entries:
            return
        rows = [entry_row(job, e) for e in entries]
        sql = self._upsert
        await self._run(lambda conn: conn.executemany(sql, rows))

    async def entries(
        self, job: str, *, outcome: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[LedgerEntry]:
        """The job's ledger rows by ``at`` descending (then record id)."""
        where = "job = ?" + (" AND outcome = ?" if outcome else "")
        params: tuple[Any, ...] = (job, outcome) if outcome else (job,)
        sql = (
            f"SELECT {ENTRY} FROM {self._ledger} WHERE {where} ORDER BY at DESC, record_id LIMIT ? OFFSET ?"
        )
        rows = await self._run(lambda conn: conn.execute(sql, (*params, limit, offset)).fetchall())
        return [entry_of(r) for r in rows]

    async def counts(self, job: str) -> dict[str, int]:
        """One ``GROUP BY outcome`` over the job's ledger rows."""
        sql = f"SELECT outcome, count(*) FROM {self._ledger} WHERE job = ? GROUP BY outcome"
        rows = await self._run(lambda conn: conn.execute(sql, (job,)).fetchall())
        return {str(r[0]): int(r[1]) for r in rows}

    async def reset(self, job: str) -> None:
        """Delete the job's checkpoint and ledger rows in one transaction."""
        cp, ledger = self._cp, self._ledger

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(f"DELETE FROM {cp} WHERE job = ?", (job,))
            conn.execute(f"DELETE FROM {ledger} WHERE job = ?", (job,))

        await self._run(op)

    def __repr__(self) -> str:
        state = "open" if self._writer is not None else "closed"
        return f"SQLiteCheckpointStore(path={self.path!r}, {state})"
