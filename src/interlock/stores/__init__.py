"""Storage backends. ``open_queue(url)`` picks the ``Queue`` for a URL; the PostgreSQL backend
is imported only when asked for, so SQLite users never need asyncpg."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .protocols import DeadLetter, DeadLetterFilter, Failure, Lease, Message, Queue, QueueStats

if TYPE_CHECKING:
    from .postgres_queue import PostgresQueue
    from .sqlite_queue import SQLiteQueue

__all__ = [
    "DeadLetter",
    "DeadLetterFilter",
    "Failure",
    "Lease",
    "Message",
    "PostgresQueue",
    "Queue",
    "QueueStats",
    "SQLiteQueue",
    "open_queue",
]


def open_queue(url: str, **options: Any) -> Queue:
    """A ``Queue`` for ``sqlite:///path.db`` (default backend) or ``postgresql://...``.

    The queue still has to be opened: ``await queue.open()``.
    """
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "sqlite" or (not scheme and url):
        from .sqlite_queue import SQLiteQueue

        return SQLiteQueue(url, **options)
    if scheme in ("postgres", "postgresql"):
        try:
            import asyncpg  # noqa: F401
        except ImportError as exc:
            raise ImportError(
                f"{url.split('@')[-1]!r} needs asyncpg for the PostgreSQL store: "
                "pip install 'interlock[postgres]'"
            ) from exc
        from .postgres_queue import PostgresQueue

        return PostgresQueue(url, **options)
    raise ConfigError("Inbox", "store", f"unsupported store URL scheme {scheme!r}: use sqlite:/// or postgresql://")


def __getattr__(name: str) -> Any:
    if name == "SQLiteQueue":
        from .sqlite_queue import SQLiteQueue

        return SQLiteQueue
    if name == "PostgresQueue":
        from .postgres_queue import PostgresQueue

        return PostgresQueue
    raise AttributeError(name)
