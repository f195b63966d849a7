"""Incremental sync: poll an upstream for changed records with a persisted checkpoint, apply them
in parallel through a per-record ledger, dead-letter what keeps failing, and merge webhooks into
the same stream.

Importing this package does not import asyncpg; the PostgreSQL store is loaded on use.
"""

from __future__ import annotations

from ..core.checkpoint import FlushSchedule, Position, Watermark, ledger_decision
from ..stores.checkpoint import Checkpoint, CheckpointStore, LedgerEntry
from ._destinations import Destination, ToHandler, ToTable, WriteBack
from ._job import Sync, SyncReport
from ._source import SyncRecord, SyncSource, format_time, parse_time

__all__ = [
    "Checkpoint",
    "CheckpointStore",
    "Destination",
    "FlushSchedule",
    "LedgerEntry",
    "Position",
    "Sync",
    "SyncRecord",
    "SyncReport",
    "SyncSource",
    "ToHandler",
    "ToTable",
    "Watermark",
    "WriteBack",
    "format_time",
    "ledger_decision",
    "parse_time",
]
