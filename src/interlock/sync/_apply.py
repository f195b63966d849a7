"""``RecordApplier``: one record through the ledger, the same way for a poll, a webhook and a
replay -- which is what merges webhooks and polls into one stream.

::

    wait for any other record of the same id --> ledger lookup (grouped) -> skip, or
    destination.apply (<= concurrency, up to ``attempts`` tries) -> ledger outcome (grouped,
    durable); after the last failed try: the DLQ, then "dead" in the ledger
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Literal

from .._clock import Clock
from .._group import GroupCall
from .._text import describe
from ..core.backoff import Backoff
from ..core.checkpoint import APPLIED, DEAD, ledger_decision
from ..errors import PermanentFailure
from ..stores.checkpoint import CheckpointStore, LedgerEntry
from ..stores.queue import Failure, Queue
from ._dead_letters import put_invalid, put_record
from ._destinations import Destination
from ._source import SyncRecord

__all__ = ["Outcome", "RecordApplier"]

log = logging.getLogger("interlock.sync")

Outcome = Literal["applied", "skipped", "dead"]


@dataclass(slots=True)
class _Tries:
    """What the tries of one record came to."""

    ok: bool = False
    calls: int = 0
    """Upstream calls made, counting the Client's own retries."""
    tracking: str | None = None
    failures: list[Failure] = field(default_factory=list)


class RecordApplier:
    """Applies records of job ``job`` to ``destination`` through the ledger in ``store``.

    One record at a time per id, across the poll, webhooks and replays: the second waits for
    the first and then finds its outcome in the ledger. At most ``concurrency`` destination
    calls run at once; a record gets ``attempts`` tries ``backoff`` apart, then goes to
    ``queue`` (the DLQ), where items without a usable id or timestamp go too; with
    ``replayed_by_workers`` (the job has an inbox) its letters say the inbox's workers replay
    them. Ledger reads and writes of concurrent records are grouped into one store call each.
    """

    def __init__(
        self,
        job: str,
        destination: Destination,
        store: CheckpointStore,
        queue: Queue,
        *,
        clock: Clock,
        concurrency: int,
        attempts: int,
        backoff: Backoff,
        replayed_by_workers: bool = False,
    ) -> None:
        self.job = job
        self._busy: dict[str, asyncio.Future[None]] = {}
        """The record ids being applied, each with a future set when it is done."""
        # The ledger, read and written in groups.
        self.store = store
        self._lookup: GroupCall[str, LedgerEntry | None] = GroupCall(self._lookup_batch)
        self._record: GroupCall[LedgerEntry, None] = GroupCall(self._record_batch)
        # The destination and its tries, then the DLQ.
        self.destination = destination
        self._slots = asyncio.Semaphore(concurrency)
        self.attempts = attempts
        self.backoff = backoff
        self._clock = clock
        self.queue = queue
        self._by_workers = replayed_by_workers

    async def apply(self, record: SyncRecord, *, replay: bool = False) -> Outcome:
        """Apply one record unless the ledger says it is done; returns its outcome once that is
        durable. With ``replay`` (a record back from the DLQ) a version dead-lettered before is
        applied again, and a failure raises ``PermanentFailure`` instead of dead-lettering (the
        inbox's redelivery, or the replay loop, takes over)."""
        rid = record.key
        while (other := self._busy.get(rid)) is not None:
            await asyncio.shield(other)
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._busy[rid] = mine
        try:
            entry = await self._lookup(rid)
            if ledger_decision(entry.state if entry else None, record.version, replay=replay) == "skip":
                return "skipped"
            tries = await self._try(record)
            return await self._settle(record, tries, replay=replay)
        finally:
            del self._busy[rid]
            mine.set_result(None)

    async def dead_letter_item(self, item: Any, error: str) -> None:
        """Put an item without a usable id or timestamp on the DLQ, for a human: it cannot go
        through the ledger, which is keyed by id."""
        await put_invalid(self.queue, self.job, item, error, self._clock.time())

    async def drain(self) -> None:
        """Wait until every outcome recorded so far is durable."""
        await self._record.drain()

    async def _try(self, record: SyncRecord) -> _Tries:
        tries = _Tries()
        for attempt in range(1, self.attempts + 1):
            try:
                async with self._slots:
                    tracking, used = await self.destination.apply(record)
            except Exception as exc:
                tries.calls += getattr(exc, "attempts", 0) or 1
                tries.tracking = getattr(exc, "tracking_id", None) or tries.tracking
                tries.failures.append(Failure(attempt, self._clock.time(), describe(exc)))
                if attempt < self.attempts:
                    await self._clock.sleep(self.backoff.delay(attempt))
                continue
            tries.ok, tries.tracking = True, tracking
            tries.calls += used
            break
        return tries

    async def _settle(self, record: SyncRecord, tries: _Tries, *, replay: bool) -> Outcome:
        rid, now = record.key, self._clock.time()
        if tries.ok:
            await self._record(
                LedgerEntry(rid, record.version, APPLIED, tries.calls, tries.tracking, None, now)
            )
            return "applied"
        error = tries.failures[-1].error
        dead = LedgerEntry(rid, record.version, DEAD, tries.calls, tries.tracking, error, now)
        if replay:
            await self._record(dead)
            # The job already spent its attempts (and the Client its retries): straight back
            # to the DLQ rather than through the inbox's redelivery schedule.
            raise PermanentFailure(
                f"sync {self.job}: record {rid} version {record.version} failed again: {error}"
            )
        await put_record(
            self.queue, self.job, record, tries.failures, tries.tracking, self._clock.time(),
            by_workers=self._by_workers,
        )  # fmt: skip
        await self._record(dead)
        log.error(
            "sync %s: record %s (version %s) dead-lettered after %d attempt(s): %s",
            self.job,
            rid,
            record.version,
            len(tries.failures),
            error,
            extra={"interlock": {"sync": self.job, "record": rid, "tracking_id": tries.tracking}},
        )
        return "dead"

    async def _lookup_batch(self, ids: list[str]) -> list[LedgerEntry | None]:
        found = await self.store.lookup(self.job, ids)
        return [found.get(i) for i in ids]

    async def _record_batch(self, entries: list[LedgerEntry]) -> list[None]:
        await self.store.record(self.job, entries)
        return [None] * len(entries)

    def __repr__(self) -> str:
        return (
            f"<RecordApplier {self.job} -> {self.destination!r} attempts={self.attempts} "
            f"in_progress={len(self._busy)}>"
        )
