"""The row model both SQL queues share: one table, rows never move between tables.

``state`` says pending (0), done (1) or dead (2). A lease is a hidden row: ``visible_at`` pushed
into the future plus a fresh ``lease_token`` (``"<seq>:<random>"``); when a worker dies its lease
simply expires and the row becomes leasable again. ``errors`` is the JSON array of the message's
failed attempts. Done rows stay until ``prune`` so their ids keep deduping redeliveries.

What differs between SQLite and PostgreSQL (placeholders, array parameters, JSON functions) is a
``Dialect``; the statements' shape and the decoding of rows are written once, here.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

from .._clock import SYSTEM_CLOCK, Clock
from ..errors import ConfigError
from ._signal import WorkSignal
from .queue import DeadLetter, DeadLetterFilter, Failure, Lease, Message

PENDING, DONE, DEAD = 0, 1, 2
COLUMNS = "seq, source, id, type, body, headers, received_at, ordering_key, attempts, errors"
"""What a lease or a dead-letter read selects, in the order ``message_of`` and friends index."""
DEAD_COLUMNS = f"{COLUMNS}, finished_at"


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one database spells the few things the queue statements do differently."""

    numbered: bool
    """Placeholders are ``$1, $2...`` (PostgreSQL) rather than ``?`` (SQLite)."""
    id_array: bool
    """A list of ids is one array parameter (``= ANY($n::text[])``) rather than one each."""
    errors_contain: str
    """The test that the ``errors`` column contains the text of parameter ``{}``."""
    json_param: str
    """How a JSON text parameter ``{}`` is cast for the ``errors`` column."""


SQLITE = Dialect(numbered=False, id_array=False, errors_contain="instr(errors, {}) > 0", json_param="{}")
POSTGRES = Dialect(
    numbered=True, id_array=True, errors_contain="strpos(errors::text, {}) > 0", json_param="{}::jsonb"
)


class SQLQueue:
    """What the SQL queues do alike around their SQL: settings, the clock, waking consumers."""

    def __init__(
        self, owner: str, *, table: str, poll_interval: float, max_batch: int, clock: Clock | None
    ) -> None:
        if poll_interval <= 0:
            raise ConfigError(owner, "poll_interval", f"must be > 0 seconds, got {poll_interval!r}")
        self.table = table
        self.poll_interval = poll_interval
        self.max_batch = max_batch
        self._clock = clock or SYSTEM_CLOCK
        """Wall-clock readings for received, visible, leased and dead-lettered times."""
        self._signal = WorkSignal(poll_interval)

    async def open(self) -> None:
        """Connect and create the table if missing (each backend its own way)."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release what ``open`` acquired (each backend its own way)."""
        raise NotImplementedError

    async def wait(self, timeout: float) -> None:
        """Return when woken (a put, a settle that unblocks an ordering key, a replay), or
        after ``min(timeout, poll_interval)`` s, to see work other processes put."""
        await self._signal.wait(timeout)

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def placeholders(dialect: Dialect, count: int, first: int = 1) -> list[str]:
    """``count`` parameter placeholders, numbered from ``first`` where the dialect numbers them."""
    return [f"${first + i}" for i in range(count)] if dialect.numbered else ["?"] * count


def dead_letter_where(where: DeadLetterFilter, dialect: Dialect, first: int = 1) -> tuple[str, list[Any]]:
    """The WHERE clause selecting the dead letters ``where`` matches, and its parameters
    (numbered from ``first``, for statements with parameters of their own before it)."""
    params: list[Any] = []

    def arg(value: Any) -> str:
        params.append(value)
        return f"${first + len(params) - 1}" if dialect.numbered else "?"

    clauses = [f"state = {DEAD}"]
    tests = (
        ("source = {}", where.source),
        ("type = {}", where.type),
        ("finished_at >= {}", where.since),
        ("finished_at < {}", where.until),
        (dialect.errors_contain, where.error_contains or None),
    )
    clauses.extend(sql.format(arg(value)) for sql, value in tests if value is not None)
    if where.ids:
        if dialect.id_array:
            clauses.append(f"id = ANY({arg(list(where.ids))}::text[])")
        else:
            clauses.append(f"id IN ({','.join(arg(i) for i in where.ids)})")
    return " AND ".join(clauses), params


def put_dead_sql(table: str, dialect: Dialect) -> str:
    """Insert a dead letter from ``dead_letter_row``, replacing one with the same (source, id)."""
    marks = placeholders(dialect, 10)
    marks[7] = dialect.json_param.format(marks[7])
    return (
        f"INSERT INTO {table} (source, id, type, body, headers, received_at, ordering_key, errors,"
        f" finished_at, attempts, state, visible_at) VALUES ({', '.join(marks)}, {DEAD}, 0)"
        f" ON CONFLICT (source, id) DO UPDATE SET state = {DEAD}, type = excluded.type, body = excluded.body,"
        " headers = excluded.headers, errors = excluded.errors, finished_at = excluded.finished_at,"
        " attempts = excluded.attempts, lease_token = NULL"
    )


PRUNE_CHUNK = 10_000
"""Rows one prune statement deletes at most: a large prune runs as several short transactions,
so puts are not held behind one long delete."""


async def prune_in_chunks(
    delete: Callable[[str, float], Awaitable[int]],
    table: str,
    dialect: Dialect,
    done_before: float | None,
    dead_before: float | None,
) -> int:
    """``Queue.prune`` for both SQL queues: done rows finished before ``done_before``, dead
    rows dead before ``dead_before``, ``PRUNE_CHUNK`` at a time; ``delete(sql, before)`` runs
    one statement in a transaction of its own and says how many rows it deleted."""
    mark = "$1" if dialect.numbered else "?"
    removed = 0
    for state, before in ((DONE, done_before), (DEAD, dead_before)):
        if before is None:
            continue
        sql = (
            f"DELETE FROM {table} WHERE seq IN (SELECT seq FROM {table} WHERE state = {state}"
            f" AND finished_at < {mark} LIMIT {PRUNE_CHUNK})"
        )
        while True:
            n = await delete(sql, before)
            removed += n
            if n < PRUNE_CHUNK:
                break
    return removed

_TEXT_FIELDS = ("source", "id", "type", "ordering_key")


def check_storable(message: Message) -> None:
    """Raise ``ValueError`` naming the field when the message's text cannot be stored.

    Text columns take valid UTF-8 without NUL (PostgreSQL refuses NUL in ``text``; a lone
    surrogate has no UTF-8 form for either database), so such a message is refused before it
    joins a group commit, where it would fail every message committed with it.
    """
    for name in _TEXT_FIELDS:
        value = getattr(message, name)
        if value is None:
            continue
        if "\x00" in value:
            raise ValueError(f"the message's {name} holds a NUL character, which the queue cannot store")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(
                f"the message's {name} holds a lone surrogate (not valid UTF-8), which the queue cannot store"
            ) from None


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def put_row(message: Message, now: float) -> tuple[Any, ...]:
    """Column values for ``put``: source, id, type, body, headers, received_at, ordering_key."""
    return (
        message.source,
        message.id,
        message.type,
        message.body,
        _json(dict(message.headers)),
        message.received_at or now,
        message.ordering_key,
    )


def dead_letter_row(message: Message, failures: Sequence[Failure], now: float) -> tuple[Any, ...]:
    """Column values for ``put_dead``, in the order of ``put_dead_sql``."""
    return (
        *put_row(message, now),
        _json([f.to_json() for f in failures]),
        now,
        max((f.attempt for f in failures), default=1),
    )


def failure_json(attempt: int, at: float, error: str) -> str:
    """One failed attempt as the JSON object appended to the ``errors`` column."""
    return json.dumps(Failure(attempt, at, error).to_json())


def failures_of(raw: Any) -> tuple[Failure, ...]:
    """The ``errors`` column (JSON text, or already decoded by the driver) as failures."""
    if not raw:
        return ()
    items = json.loads(raw) if isinstance(raw, str | bytes) else raw
    return tuple(Failure.from_json(item) for item in items)


def message_of(row: Sequence[Any]) -> Message:
    """The message of a row selected as ``COLUMNS`` (a tuple or an asyncpg record)."""
    headers: Mapping[str, str] = json.loads(row[5])
    return Message(
        source=row[1],
        id=row[2],
        type=row[3],
        body=bytes(row[4]),
        headers=headers,
        received_at=row[6],
        ordering_key=row[7],
    )


def dead_letter_of(row: Sequence[Any]) -> DeadLetter:
    """The dead letter of a row selected as ``DEAD_COLUMNS``."""
    return DeadLetter(message_of(row), row[8], failures_of(row[9]), row[10])


def lease_seq(lease: Lease) -> int:
    """The row a lease token names (the token is ``"<seq>:<random>"``)."""
    return int(lease.token.partition(":")[0])
