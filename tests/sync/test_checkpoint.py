"""The job-level checkpoint, judged while a poll runs: records finish out of order (the test
decides the order), and every checkpoint the job stores must sit below every record still in
flight (else a crash would skip it) while staying close behind the finished ones (else a crash
re-reads everything, which the ledger would hide).

A real SQLite checkpoint store and the testbed over loopback; a ``FakeClock`` decides when a
save is due, events decide when each record finishes: no timing, no sleeps.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest

import interlock
from interlock.core.checkpoint import Position
from interlock.stores.checkpoint import Checkpoint, LedgerEntry
from interlock.stores.checkpoint_sqlite import SQLiteCheckpointStore
from interlock.sync import SyncRecord
from interlock.testbed import Testbed
from interlock.testing import FakeClock

MakeSync = Callable[..., interlock.Sync]
RECORDS = 120
CONCURRENCY = 5
STARVED = 4  # the oldest record in flight finishes after at most this many younger ones


class WatchedStore(SQLiteCheckpointStore):
    """The real store, noting at each checkpoint save which records had finished then, and
    telling the test when a record's outcome is durable in the ledger."""

    def __init__(self, url: str, finished: set[Position]) -> None:
        super().__init__(url)
        self.finished = finished
        self.saves: list[tuple[Position, frozenset[Position]]] = []
        self.stored: Position | None = None
        """The last checkpoint whose save returned: what a crash now would resume from."""
        self.durable: dict[str, asyncio.Event] = {}

    async def save_checkpoint(self, job: str, checkpoint: Checkpoint) -> None:
        position = Position.of(checkpoint.updated_at, checkpoint.record_id)
        self.saves.append((position, frozenset(self.finished)))
        await super().save_checkpoint(job, checkpoint)
        self.stored = position

    async def record(self, job: str, entries: list[LedgerEntry]) -> None:  # type: ignore[override]
        await super().record(job, entries)
        for entry in entries:
            self.durable.setdefault(entry.record_id, asyncio.Event()).set()


@pytest.mark.testbed(records=RECORDS, same_timestamp_every=3)
async def test_the_stored_checkpoint_stays_below_records_in_flight_and_close_behind_the_finished(
    tb: Testbed, make_sync: MakeSync, store_url: str
) -> None:
    finished: set[Position] = set()
    store = WatchedStore(store_url, finished)
    started: asyncio.Queue[SyncRecord] = asyncio.Queue()
    gates: dict[str, asyncio.Event] = {}

    async def held(record: SyncRecord) -> None:
        gate = gates[record.key] = asyncio.Event()
        started.put_nowait(record)
        await gate.wait()
        finished.add(record.position)

    clock = FakeClock()
    sync = make_sync(
        destination=held, store=store, dlq=store_url, concurrency=CONCURRENCY, checkpoint_every=1.0, clock=clock
    )
    order = random.Random(19)
    rereads: list[int] = []
    async with sync:
        poll = asyncio.ensure_future(sync.run_once())
        in_flight: list[SyncRecord] = []  # oldest first
        passed_over = 0
        for released in range(RECORDS):
            while len(in_flight) < min(CONCURRENCY, RECORDS - released):
                in_flight.append(await asyncio.wait_for(started.get(), 10))
            # What a crash now would re-read and skip: finished records above the stored checkpoint.
            rereads.append(sum(1 for p in finished if store.stored is None or p > store.stored))
            # Out of order: a random record of those in flight, the oldest at the latest after
            # STARVED younger ones, so the watermark is held back and then jumps.
            pick = 0 if passed_over >= STARVED else order.randrange(len(in_flight))
            passed_over = 0 if pick == 0 else passed_over + 1
            record = in_flight.pop(pick)
            clock.advance(1.0)  # a save is due at the next move of the watermark
            gates[record.key].set()
            await asyncio.wait_for(store.durable.setdefault(record.key, asyncio.Event()).wait(), 10)
        report = await asyncio.wait_for(poll, 10)

    assert report.applied == RECORDS and len(finished) == RECORDS
    mid_poll = store.saves[:-1]
    # Saved during the poll, not only at its end: about once per watermark move.
    assert len(mid_poll) >= RECORDS // (2 * CONCURRENCY), store.saves
    # Never above a record still in flight: every record at or below each saved position had
    # finished when that position was saved.
    listing = [Position.of(ts * 1000, rid) for ts, rid in tb.data.time_index("customers")]
    for position, done_then in store.saves:
        skipped = [p for p in listing if p <= position and p not in done_then]
        assert not skipped, f"checkpoint {position} passed records still in flight: {skipped}"
    # A crash at any moment re-reads (and the ledger skips) only what finished out of order
    # above the oldest record in flight, plus the records whose save was still under way
    # (observed: at most 11 of the 120); never the whole poll so far.
    assert max(rereads) <= 4 * CONCURRENCY, rereads
    # And the poll ends with the checkpoint at the last record listed.
    assert report.checkpoint is not None
    assert store.saves[-1][0] == Position.of(report.checkpoint.updated_at, report.checkpoint.record_id)
    assert store.saves[-1][0] == max(listing)
