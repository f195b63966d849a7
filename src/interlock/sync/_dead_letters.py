"""A sync job's dead letters: the messages it puts on the DLQ (a record that failed after its
attempts, an item it cannot key) and how a replay reads them back.

Both sides of that format live here: the source ``sync:NAME``, the types ``record`` and
``invalid``, the message id ``{record id}@{version}`` (one letter per record version), the
body ``SyncRecord.to_json()``, and the ``x-interlock-replay: workers`` header on the letters of
a job with an inbox, whose workers apply them when ``interlock dlq replay`` sends them back.
A job without an inbox has no such workers: its letters are replayed by
``Sync.replay_dead_letters`` (``interlock sync replay``), and ``interlock dlq replay`` leaves
them where they are rather than strand them in a queue nobody consumes.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ..stores.queue import DeadLetterFilter, Failure, Message, Queue
from ._source import SyncRecord

__all__ = [
    "INVALID",
    "RECORD",
    "REPLAY_HEADER",
    "dlq_source",
    "put_invalid",
    "put_record",
    "replay_letters",
    "replayable_by_workers",
]

log = logging.getLogger("interlock.sync")

RECORD = "record"
"""Message type of a dead record: replayable."""
INVALID = "invalid"
"""Message type of an item without a usable id or timestamp: for a human, never replayed."""
REPLAY_HEADER = "x-interlock-replay"
"""Set to ``workers`` on the letters of a job with an inbox (its workers replay them)."""
_PREFIX = "sync:"


def dlq_source(job: str) -> str:
    """The DLQ source of a job's letters (what an Inbox routes replays by)."""
    return f"{_PREFIX}{job}"


def replayable_by_workers(message: Message) -> bool:
    """Whether sending a dead letter back to its queue gets it applied: true for every letter
    but a sync job's that has no inbox workers to apply it (see the module docstring)."""
    if not message.source.startswith(_PREFIX):
        return True
    return message.type == RECORD and message.headers.get(REPLAY_HEADER) == "workers"


async def put_record(
    queue: Queue,
    job: str,
    record: SyncRecord,
    failures: Sequence[Failure],
    tracking: str | None,
    now: float,
    *,
    by_workers: bool = False,
) -> None:
    """Dead-letter a record version with the failures of its attempts; ``tracking`` is the
    upstream's tracking id of the last call, to quote to its support; ``by_workers`` when an
    inbox's workers replay the job's letters."""
    headers = {"x-interlock-sync": job, "x-interlock-version": str(record.version)}
    if by_workers:
        headers[REPLAY_HEADER] = "workers"
    if tracking:
        headers["x-interlock-tracking-id"] = tracking
    message = Message(
        source=dlq_source(job),
        id=f"{record.key}@{record.version}",
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
