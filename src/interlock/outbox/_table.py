"""The outbox table in the application's own database, and the statements on it per dialect.

One row per event added and not yet relayed. ``seq`` orders them (the relay moves them in that
order, so events sharing a key keep it); ``id`` is the event id, unique, which the queue also
dedupes on, so a relay that dies after its puts and before its delete moves nothing twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import ConfigError

__all__ = ["OutboxRow", "Statements", "statements"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One event waiting in the outbox table."""

    seq: int
    id: str
    type: str
    key: str | None
    body: bytes
    headers: str
    """JSON object of the event's headers."""


@dataclass(frozen=True, slots=True)
class Statements:
    """The SQL of one dialect (``postgres`` uses ``$n`` placeholders, ``sqlite`` ``?``)."""

    create: str
    insert: str
    select: str
    """The first rows in ``seq`` order; one parameter, the limit."""
    count: str
    delete: str
    """Deletes the rows of the given seqs: ``delete_sql(n)`` for SQLite, ``= ANY($1)`` for PostgreSQL."""


def statements(dialect: str, table: str, schema: str | None = None) -> Statements:
    """The statements on ``table`` (in ``schema``, PostgreSQL only) for ``dialect``."""
    for what, name in (("table", table), ("schema", schema)):
        if name is not None and not _NAME.fullmatch(name):
            raise ConfigError(
                "Outbox", what, f"must be a SQL name (letters, digits, _; at most 63), got {name!r}"
            )
    if dialect == "postgres":
        t = f'"{schema}"."{table}"' if schema else f'"{table}"'
        return Statements(
            create=(
                f"CREATE TABLE IF NOT EXISTS {t} (seq BIGSERIAL PRIMARY KEY, id TEXT NOT NULL UNIQUE,"
                " type TEXT NOT NULL, key TEXT, body BYTEA NOT NULL, headers TEXT NOT NULL,"
                " created_at DOUBLE PRECISION NOT NULL)"
            ),
            insert=(
                f"INSERT INTO {t} (id, type, key, body, headers, created_at) VALUES ($1, $2, $3, $4, $5, $6)"
                " ON CONFLICT (id) DO NOTHING"
            ),
            select=f"SELECT seq, id, type, key, body, headers FROM {t} ORDER BY seq LIMIT $1",
            count=f"SELECT count(*) FROM {t}",
            delete=f"DELETE FROM {t} WHERE seq = ANY($1::bigint[])",
        )
    t = f'"{table}"'
    return Statements(
        create=(
            f"CREATE TABLE IF NOT EXISTS {t} (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,"
            " type TEXT NOT NULL, key TEXT, body BLOB NOT NULL, headers TEXT NOT NULL, created_at REAL NOT NULL)"
        ),
        insert=f"INSERT OR IGNORE INTO {t} (id, type, key, body, headers, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        select=f"SELECT seq, id, type, key, body, headers FROM {t} ORDER BY seq LIMIT ?",
        count=f"SELECT count(*) FROM {t}",
        delete=f"DELETE FROM {t} WHERE seq IN ",
    )
