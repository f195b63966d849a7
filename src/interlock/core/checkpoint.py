"""Incremental-sync checkpoints: how far a poll may safely resume from. Pure.

A poll lists records ordered by ``(updated_at, id)`` and applies them in parallel, so they
finish out of order. The checkpoint is a *watermark*: the highest position below which every
record handed out (emitted) is done. A crash then loses nothing (every record above the
watermark is read again) and re-applies at most the records that were in flight.

Positions are ``(updated_at, id)`` pairs and the next poll asks for ``updated_at >= watermark``
-- inclusive, so records sharing the watermark's timestamp on the far side of a page boundary
are read again instead of skipped (the bug of exclusive ``>`` cursors, Airbyte #14732 and
#15427); the ledger drops those already applied.

``Watermark`` is the decision; ``FlushSchedule`` says when the driver should persist it (every
``every`` seconds or ``records`` completions, not on every record); ``ledger_decision`` says
whether a record version must be applied given what the ledger holds.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any, Generic, Literal, NamedTuple, TypeVar

from .._validate import check_count, check_seconds

__all__ = [
    "APPLIED",
    "DEAD",
    "FlushSchedule",
    "LedgerState",
    "Position",
    "Watermark",
    "ledger_decision",
]

APPLIED = "applied"
DEAD = "dead"


class Position(NamedTuple):
    """Where a record sits in a listing: ``updated_at`` in microseconds since the epoch, then
    its id. Integer ids sort as numbers (as APIs order them), text ids as text, integers first."""

    updated_at: int
    id_rank: int
    """0 for an integer id, 1 for a text id: keeps the two kinds of id from being compared."""
    id_number: int
    id_text: str

    @classmethod
    def of(cls, updated_at: int, record_id: int | str) -> Position:
        """The position of a record: an integer id, or a text id of plain digits (no leading
        zero, fewer than 19 digits), ranks as a number; any other id as text."""
        if isinstance(record_id, int) and not isinstance(record_id, bool):
            return cls(updated_at, 0, record_id, "")
        text = str(record_id)
        if text.isdigit() and len(text) < 19 and (text == "0" or text[0] != "0"):
            return cls(updated_at, 0, int(text), "")
        return cls(updated_at, 1, 0, text)

    @property
    def record_id(self) -> str:
        """The record's id as text, as the checkpoint stores it."""
        return str(self.id_number) if self.id_rank == 0 else self.id_text


K = TypeVar("K", bound=tuple[Any, ...])


class Watermark(Generic[K]):
    """Tracks emitted and completed keys; ``position`` is the highest key at or below which every
    emitted key is complete (or the start position while none is).

    ``emit(key)`` when a record is handed to a worker, ``complete(key)`` when its outcome is
    durable (applied, skipped or dead-lettered). Keys are expected in ascending order, as the
    listing returns them, but any order is correct: a key at or below the current position
    (read again by a lookback, or listed out of order) is *late*: it is processed, but cannot
    hold the position back (the position is never lowered once it may have been persisted).
    Keys emitted twice are tracked twice.
    """

    __slots__ = ("_done", "_in_flight", "_in_heap", "completed", "emitted", "late", "position")

    def __init__(self, start: K | None = None) -> None:
        self.position: K | None = start
        self._in_flight: dict[K, int] = {}
        self._in_heap: list[K] = []
        self._done: list[K] = []
        self.emitted = 0
        self.completed = 0
        self.late = 0

    def emit(self, key: K) -> bool:
        """Hand ``key`` out. Returns False for a late key (at or below the position), which
        ``complete`` will ignore."""
        self.emitted += 1
        if self.position is not None and key <= self.position:
            self.late += 1
            return False
        count = self._in_flight.get(key, 0)
        self._in_flight[key] = count + 1
        if count == 0:
            heapq.heappush(self._in_heap, key)
        return True

    def complete(self, key: K) -> bool:
        """``key`` is done. Returns True when the position moved."""
        count = self._in_flight.get(key)
        if count is None:
            return False  # late, or never emitted: nothing to release
        self.completed += 1
        if count > 1:
            self._in_flight[key] = count - 1
            return False
        del self._in_flight[key]
        heapq.heappush(self._done, key)
        return self._advance()

    def _advance(self) -> bool:
        in_heap, done, in_flight = self._in_heap, self._done, self._in_flight
        while in_heap and in_heap[0] not in in_flight:
            heapq.heappop(in_heap)  # lazily drop keys that completed
        lowest_pending = in_heap[0] if in_heap else None
        moved = False
        while done and (lowest_pending is None or done[0] < lowest_pending):
            key = heapq.heappop(done)
            if self.position is None or key > self.position:
                self.position = key
                moved = True
        return moved

    @property
    def in_flight(self) -> int:
        """Emitted keys not yet complete (late keys excluded)."""
        return sum(self._in_flight.values())

    def __repr__(self) -> str:
        return (
            f"Watermark(position={self.position!r}, in_flight={self.in_flight}, "
            f"emitted={self.emitted}, completed={self.completed}, late={self.late})"
        )


@dataclass(slots=True)
class FlushSchedule:
    """When to persist a moved watermark: at most every ``every`` seconds, or sooner once
    ``records`` completions piled up since the last save. Persisting on every record would
    put a store write on every record's path; persisting rarely widens what a crash re-reads
    (never what it loses: the ledger and idempotency keys absorb re-reads)."""

    every: float = 1.0
    records: int = 1000
    _last_at: float | None = None
    _since_last: int = 0
    _dirty: bool = False

    def __post_init__(self) -> None:
        check_seconds("FlushSchedule", "every", self.every)
        check_count("FlushSchedule", "records", self.records)

    def moved(self, completions: int = 1) -> None:
        """The watermark moved after ``completions`` more records completed."""
        self._dirty = True
        self._since_last += completions

    def due(self, now: float) -> bool:
        """Should the driver save now? ``saved(now)`` after it did."""
        if not self._dirty:
            return False
        if self._last_at is None or self._since_last >= self.records:
            return True
        return now - self._last_at >= self.every

    def next_at(self) -> float | None:
        """When a pending save becomes due by time (None: nothing to save, or never saved)."""
        if not self._dirty or self._last_at is None:
            return None
        return self._last_at + self.every

    def saved(self, now: float) -> None:
        """The driver saved the watermark at ``now``: the next save waits for a new move."""
        self._last_at = now
        self._since_last = 0
        self._dirty = False


class LedgerState(NamedTuple):
    """What the ledger holds for one record: the version of its last outcome, that outcome,
    and the highest version ever applied (None: never)."""

    version: int
    outcome: str
    applied_version: int | None


Decision = Literal["apply", "skip"]


def ledger_decision(state: LedgerState | None, version: int, *, replay: bool = False) -> Decision:
    """Apply ``version`` of a record, or skip it?

    Skipped: a version at or below one already applied (a poll re-reading its lookback window
    or the inclusive boundary; a webhook arriving after the poll brought the same change, or
    the reverse); and, outside a replay, a version at or below one already dead-lettered (it
    waits in the DLQ; re-reading it must not fail it again). A replay from the DLQ applies
    unless that version or a newer one was applied meanwhile: replaying twice applies once.
    """
    if state is None:
        return "apply"
    if state.applied_version is not None and state.applied_version >= version:
        return "skip"
    if not replay and state.outcome == DEAD and state.version >= version:
        return "skip"
    return "apply"
