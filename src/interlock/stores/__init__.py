"""Storage seams and their backends: ``<seam>.py`` holds a seam's Protocol, ``<seam>_<backend>.py``
each backend. ``open_queue(url)`` picks the ``Queue`` for a URL; the PostgreSQL backends are
imported only when asked for, so SQLite users never need asyncpg."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .batch_writer import BatchWriter
from .queue import DeadLetter, DeadLetterFilter, Failure, Lease, Message, Queue, QueueStats
from .sink import Row, Sink
from .sink_sqlite import SQLiteSink

if TYPE_CHECKING:
    from .queue_postgres import PostgresQueue
    from .queue_sqlite import SQLiteQueue
    from .sink_postgres import PostgresSink

__all__ = [
    "BatchWriter",
    "DeadLetter",
    "DeadLetterFilter",
    "Failure",
    "Lease",
    "Message",
    "PostgresQueue",
    "PostgresSink",
    "Queue",
    "QueueStats",
    "Row",
    "SQLiteQueue",
    "SQLiteSink",
    "Sink",
    "open_queue",
]


def open_queue(url: str, **options: Any) -> Queue:
    """A ``Queue`` for ``sqlite:///path.db`` (default backend) or ``postgresql://...``.

    The queue still has to be opened: ``await queue.open()``.
    """
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "sqlite" or (not scheme and url):
        from .queue_sqlite import SQLiteQueue

        return SQLiteQueue(url, **options)
    if scheme in ("postgres", "postgresql"):
        try:
            import asyncpg  # noqa: F401
        except ImportError as exc:
            raise ImportError(
                f"{url.split('@')[-1]!r} needs asyncpg for the PostgreSQL store: "
                "pip install 'interlock[postgres]'"
            ) from exc
        from .queue_postgres import PostgresQueue

        return PostgresQueue(url, **options)
    raise ConfigError("Inbox", "store", f"unsupported store URL scheme {scheme!r}: use sqlite:/// or postgresql://")


def __getattr__(name: str) -> Any:
    if name == "SQLiteQueue":
        from .queue_sqlite import SQLiteQueue

        return SQLiteQueue
    if name == "PostgresQueue":
        from .queue_postgres import PostgresQueue

        return PostgresQueue
    if name == "PostgresSink":
        from .sink_postgres import PostgresSink

        return PostgresSink
    raise AttributeError(name)
