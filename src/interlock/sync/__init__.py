"""Incremental sync: poll an upstream for changed records with a persisted checkpoint, apply them
in parallel through a per-record ledger, dead-letter what keeps failing, and merge webhooks into
the same stream.

The checkpoint's decision logic (``Watermark``, ``Position``, ``ledger_decision``) is in
``interlock.core.checkpoint``. Importing this package does not import asyncpg; the PostgreSQL
store is loaded on use.
"""

from __future__ import annotations

from ..stores.checkpoint import Checkpoint, CheckpointStore, LedgerEntry
from ._dead_letters import replayable_by_workers
from ._destinations import Destination, ToHandler, ToTable, WriteBack
from ._job import Sync
from ._poll import SyncReport
from ._source import SyncRecord, SyncSource, checkpoint_json, format_time, parse_time

__all__ = [
    "Checkpoint",
    "CheckpointStore",
    "Destination",
    "LedgerEntry",
    "Sync",
    "SyncRecord",
    "SyncReport",
    "SyncSource",
    "ToHandler",
    "ToTable",
    "WriteBack",
    "checkpoint_json",
    "format_time",
    "parse_time",
    "replayable_by_workers",
]
