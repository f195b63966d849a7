"""The SQL both checkpoint stores share: tables ``{prefix}_checkpoints`` (one row per job) and
``{prefix}_ledger`` (one row per job and record), the monotonic ledger upsert, and the mapping
between ``LedgerEntry`` and a row. Each store passes its own placeholders (``?`` or ``$n``)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from ..core.checkpoint import APPLIED
from .checkpoint import LedgerEntry

ENTRY = "record_id, version, outcome, attempts, tracking_id, error, at, applied_version"
"""The ledger columns ``entry_of`` reads, in its order."""


def upsert_ledger_sql(table: str, placeholders: Sequence[str]) -> str:
    """Insert ``entry_row`` values (9 placeholders). Newer (or equal) versions replace the
    outcome; ``applied_version`` only grows, so a late "dead" cannot hide an applied version."""
    newer = "excluded.version >= l.version"
    columns = ("version", "outcome", "attempts", "tracking_id", "error", "at")
    sets = ", ".join(f"{c} = CASE WHEN {newer} THEN excluded.{c} ELSE l.{c} END" for c in columns)
    return (
        f"INSERT INTO {table} AS l (job, {ENTRY}) VALUES ({', '.join(placeholders)})"
        f" ON CONFLICT (job, record_id) DO UPDATE SET {sets}, applied_version = CASE"
        " WHEN l.applied_version IS NULL OR excluded.applied_version > l.applied_version"
        " THEN excluded.applied_version ELSE l.applied_version END"
    )


def save_checkpoint_sql(table: str, placeholders: Sequence[str]) -> str:
    """Insert or replace a job's checkpoint: job, updated_at, record_id, saved_at (4 placeholders)."""
    return (
        f"INSERT INTO {table} (job, updated_at, record_id, saved_at) VALUES ({', '.join(placeholders)})"
        " ON CONFLICT (job) DO UPDATE SET updated_at = excluded.updated_at,"
        " record_id = excluded.record_id, saved_at = excluded.saved_at"
    )


def entry_row(job: str, e: LedgerEntry) -> tuple[Any, ...]:
    """The values ``upsert_ledger_sql`` inserts for one entry (an applied one sets
    ``applied_version``; an entry without ``at`` is stamped now)."""
    applied = e.version if e.outcome == APPLIED else None
    at = e.at or time.time()
    return (job, e.record_id, e.version, e.outcome, e.attempts, e.tracking_id, e.error, at, applied)


def entry_of(row: Sequence[Any]) -> LedgerEntry:
    """The entry of a row selected as ``ENTRY``."""
    return LedgerEntry(
        record_id=row[0],
        version=int(row[1]),
        outcome=row[2],
        attempts=int(row[3]),
        tracking_id=row[4],
        error=row[5],
        at=float(row[6]),
        applied_version=None if row[7] is None else int(row[7]),
    )
