"""Put a record that failed after its retries on the inbox's dead-letter queue, so
``interlock dlq`` lists, inspects and replays it alongside dead webhooks.

The ``Queue`` Protocol only dead-letters a *leased* message, and leasing cannot pick a given
message (it hands out whatever is due, webhooks included). So a dead letter is written
directly, in one statement, in the queue's own table: a backend that offers
``put_dead(message, attempts=, failures=)`` is used as is; the two built-in backends get the
equivalent statement here. (Proposed for ``stores/protocols.py``: ``Queue.put_dead``.)
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from ..stores.protocols import Failure, Message, Queue

__all__ = ["put_dead_letter"]

DEAD = 2


def _row(message: Message, failures: Sequence[Failure]) -> tuple[Any, ...]:
    return (
        message.source,
        message.id,
        message.type,
        message.body,
        json.dumps(dict(message.headers), separators=(",", ":")),
        message.received_at or time.time(),
        json.dumps([f.to_json() for f in failures], separators=(",", ":")),
        time.time(),
        max((f.attempt for f in failures), default=1),
    )


async def put_dead_letter(queue: Queue, message: Message, failures: Sequence[Failure]) -> None:
    """Store ``message`` as dead (replacing an earlier dead letter with the same id)."""
    custom = getattr(queue, "put_dead", None)
    if custom is not None:
        await custom(message, failures=tuple(failures))
        return
    from ..stores.sqlite_queue import SQLiteQueue

    row = _row(message, failures)
    if isinstance(queue, SQLiteQueue):
        sql = (
            f"INSERT INTO {queue.table} (source, id, type, body, headers, received_at, errors,"
            f" finished_at, attempts, state, visible_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, {DEAD}, 0)"
            f" ON CONFLICT (source, id) DO UPDATE SET state = {DEAD}, type = excluded.type,"
            " body = excluded.body, headers = excluded.headers, errors = excluded.errors,"
            " finished_at = excluded.finished_at, attempts = excluded.attempts, lease_token = NULL"
        )
        await queue._run(lambda conn: conn.execute(sql, row))
        return
    if type(queue).__name__ == "PostgresQueue":
        table = queue._qualified  # type: ignore[attr-defined]
        await queue.pool.execute(  # type: ignore[attr-defined]
            f"INSERT INTO {table} (source, id, type, body, headers, received_at, errors, finished_at,"
            f" attempts, state, visible_at) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, {DEAD}, 0)"
            f" ON CONFLICT (source, id) DO UPDATE SET state = {DEAD}, type = excluded.type,"
            " body = excluded.body, headers = excluded.headers, errors = excluded.errors,"
            " finished_at = excluded.finished_at, attempts = excluded.attempts, lease_token = NULL",
            *row,
        )
        return
    raise TypeError(f"cannot dead-letter into {queue!r}: it has no put_dead(message, failures=...) method")
