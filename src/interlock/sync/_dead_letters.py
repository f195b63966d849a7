"""A sync job's dead letters: the messages it puts on the DLQ (a record that failed after its
attempts, an item it cannot key) and how a replay reads them back.

Both sides of that format live here: the source ``sync:NAME``, the types ``record`` and
``invalid``, the message id ``{record id}@{version}`` (one letter per record version) and the
body ``SyncRecord.to_json()``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ..stores.queue import DeadLetterFilter, Failure, Message, Queue
from ._source import SyncRecord

__all__ = ["INVALID", "RECORD", "dlq_source", "put_invalid", "put_record", "replay_letters"]

log = logging.getLogger("interlock.sync")

RECORD = "record"
"""Message type of a dead record: replayable."""
INVALID = "invalid"
"""Message type of an item without a usable id or timestamp: for a human, never replayed."""


def dlq_source(job: str) -> str:
    """The DLQ source of a job's letters (what an Inbox routes replays by)."""
    return f"sync:{job}"


async def put_record(
    queue: Queue, job: str, record: SyncRecord, failures: Sequence[Failure], tracking: str | None, now: float
) -> None:
    """Dead-letter a record version with the failures of its attempts; ``tracking`` is the
    upstream's tracking id of the last call, to quote to its support."""
    headers = {"x-interlock-sync": job, "x-interlock-version": str(record.version)}
    if tracking:
        headers["x-interlock-tracking-id"] = tracking
    message = Message(
        source=dlq_source(job),
        id=f"{record.id}@{record.version}",
        type=RECORD,
        body=record.to_json(),
        headers=headers,
        received_at=now,
    )
    await queue.put_dead(message, failures=failures)


async def put_invalid(queue: Queue, job: str, item: Any, error: str, now: float) -> None:
    """Dead-letter a listed item the job cannot key, with ``error`` as its one failure. The
    letter's id is a digest of the item: the same item listed again is the same letter."""
    body = json.dumps(item, separators=(",", ":"), default=str).encode()
    message = Message(
        source=dlq_source(job),
        id=f"invalid:{hashlib.sha256(body).hexdigest()[:16]}",
        type=INVALID,
        body=body,
        headers={"x-interlock-sync": job},
        received_at=now,
    )
    await queue.put_dead(message, failures=[Failure(1, now, error)])
    log.error("sync %s: unusable item dead-lettered: %s", job, error)


async def replay_letters(
    queue: Queue, job: str, apply: Callable[[SyncRecord], Awaitable[str]], *, limit: int
) -> dict[str, int]:
    """Re-apply up to ``limit`` of the job's dead records with ``apply`` (which raises when a
    record fails again): each one applied, or found already applied, is purged from the DLQ;
    one failing again stays. Returns how many were applied, skipped and failed."""
    source = dlq_source(job)
    letters = await queue.dead_letters(DeadLetterFilter(source=source, type=RECORD), limit=limit)
    outcome = {"applied": 0, "skipped": 0, "failed": 0}
    for letter in letters:
        record = SyncRecord.from_json(job, letter.message.body)
        try:
            result = await apply(record)
        except Exception as exc:
            outcome["failed"] += 1
            log.warning("sync %s: replay of %s failed again: %s", job, letter.message.id, exc)
            continue
        outcome[result] += 1
        await queue.purge(DeadLetterFilter(source=source, ids=[letter.message.id]))
    return outcome
