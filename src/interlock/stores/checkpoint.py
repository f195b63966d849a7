"""The ``CheckpointStore`` seam: a sync job's checkpoint and its per-record ledger.

One store holds both, so a record's outcome and the checkpoint that covers it live in the same
database. Every backend passes ``tests/contract/test_ledger_contract.py``.

Guarantees a backend must give:

- ``record`` returns only once the entries are durable.
- ``record`` is monotonic per record: an entry for an older version than the one stored does
  not replace it, and ``applied_version`` only ever grows (a late "dead" outcome for version 1
  cannot hide that version 2 was applied).
- ``save_checkpoint`` replaces the job's checkpoint; jobs are independent (keyed by name).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ..core.checkpoint import APPLIED, DEAD, LedgerState

__all__ = ["APPLIED", "DEAD", "Checkpoint", "CheckpointStore", "LedgerEntry"]


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where the next poll of a job resumes: ``updated_at >= updated_at - lookback``."""

    updated_at: int
    """Microseconds since the epoch."""
    record_id: str
    """The id of the last record covered (records sharing ``updated_at`` are re-read anyway)."""
    saved_at: float = 0.0
    """Wall-clock seconds since the epoch."""


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """The last outcome for one record of one job."""

    record_id: str
    version: int
    """The record version the outcome is about (its ``updated_at`` in microseconds, or its
    ``version`` field when the job reads one)."""
    outcome: str
    """``"applied"`` or ``"dead"`` (failed after its retries; waiting in the DLQ)."""
    attempts: int = 1
    tracking_id: str | None = None
    """The upstream's tracking id of the last call, to quote to its support."""
    error: str | None = None
    at: float = 0.0
    """Wall-clock seconds since the epoch."""
    applied_version: int | None = None
    """The highest version ever applied (filled in by the store on reads)."""

    @property
    def state(self) -> LedgerState:
        """What ``core.checkpoint.ledger_decision`` needs of the entry."""
        return LedgerState(self.version, self.outcome, self.applied_version)


@runtime_checkable
class CheckpointStore(Protocol):
    """A sync job's checkpoint and per-record ledger. See the module docstring for the contract."""

    async def open(self) -> None:
        """Connect and create the storage if missing; calling it on an open store does nothing."""
        ...

    async def aclose(self) -> None:
        """Finish the writes in flight, then release connections and threads the store opened."""
        ...

    async def load_checkpoint(self, job: str) -> Checkpoint | None:
        """The job's last saved checkpoint; None when it never saved one (or was reset)."""
        ...

    async def save_checkpoint(self, job: str, checkpoint: Checkpoint) -> None:
        """Replace the job's checkpoint, durably; a ``saved_at`` of 0 is stamped with now."""
        ...

    async def lookup(self, job: str, record_ids: Sequence[str]) -> dict[str, LedgerEntry]:
        """Ledger entries of these records, by record id (absent ids: never seen), each with
        its ``applied_version`` filled in."""
        ...

    async def record(self, job: str, entries: Sequence[LedgerEntry]) -> None:
        """Store outcomes durably, monotonically per record (see the module docstring); an
        entry whose ``at`` is 0 is stamped with now."""
        ...

    async def entries(
        self, job: str, *, outcome: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[LedgerEntry]:
        """The job's entries, most recent first, only those with ``outcome`` when given:
        ``limit`` of them after skipping ``offset``."""
        ...

    async def counts(self, job: str) -> dict[str, int]:
        """How many records of the job per outcome (outcomes with none are absent)."""
        ...

    async def reset(self, job: str) -> None:
        """Forget the job's checkpoint and ledger (the next poll starts from scratch)."""
        ...
