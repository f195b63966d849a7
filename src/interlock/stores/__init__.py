"""Storage seams and their backends: ``<seam>.py`` holds a seam's Protocol, ``<seam>_<backend>.py``
each backend.

One table (``_backends.BACKENDS``) maps URL schemes to backends; the factories read it:
``open_queue``, ``open_cache``, ``open_quota``, ``open_checkpoint``, ``open_sink`` and
``open_interactions``, ``open_token_store`` take a URL
and plain settings and return a backend, not yet opened. Backend modules load on first use (the
factories, or attribute access such as ``interlock.stores.PostgresQueue``), so SQLite users never
import asyncpg and in-process caches never import redis.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._backends import (
    BACKENDS,
    open_cache,
    open_checkpoint,
    open_interactions,
    open_queue,
    open_quota,
    open_sink,
    open_token_store,
    redact_url,
)
from ._sqlite import connect_sqlite, sqlite_path_from_url
from .batch_writer import BatchWriter
from .cache import CacheStore
from .checkpoint import Checkpoint, CheckpointStore, LedgerEntry
from .interactions import Attempt, Interaction, InteractionFilter, InteractionRetention, InteractionStore
from .queue import DeadLetter, DeadLetterFilter, Failure, Lease, Message, Queue, QueueStats
from .quota import QuotaStore
from .sink import Row, Sink
from .token import Token, TokenStore

if TYPE_CHECKING:
    from .cache_memory import MemoryCacheStore
    from .cache_redis import RedisCacheStore
    from .checkpoint_postgres import PostgresCheckpointStore
    from .checkpoint_sqlite import SQLiteCheckpointStore
    from .interactions_postgres import PostgresInteractionStore
    from .interactions_sqlite import SQLiteInteractionStore
    from .queue_postgres import PostgresQueue
    from .queue_sqlite import SQLiteQueue
    from .quota_memory import MemoryQuotaStore
    from .quota_redis import RedisQuotaStore
    from .sink_postgres import PostgresSink
    from .sink_sqlite import SQLiteSink
    from .token_memory import MemoryTokenStore
    from .token_postgres import PostgresTokenStore
    from .token_redis import RedisTokenStore
    from .token_sqlite import SQLiteTokenStore

__all__ = [
    "Attempt",
    "BatchWriter",
    "CacheStore",
    "Checkpoint",
    "CheckpointStore",
    "DeadLetter",
    "DeadLetterFilter",
    "Failure",
    "Interaction",
    "InteractionFilter",
    "InteractionRetention",
    "InteractionStore",
    "Lease",
    "LedgerEntry",
    "MemoryCacheStore",
    "MemoryQuotaStore",
    "MemoryTokenStore",
    "Message",
    "PostgresCheckpointStore",
    "PostgresInteractionStore",
    "PostgresQueue",
    "PostgresSink",
    "PostgresTokenStore",
    "Queue",
    "QueueStats",
    "QuotaStore",
    "RedisCacheStore",
    "RedisQuotaStore",
    "RedisTokenStore",
    "Row",
    "SQLiteCheckpointStore",
    "SQLiteInteractionStore",
    "SQLiteQueue",
    "SQLiteSink",
    "SQLiteTokenStore",
    "Sink",
    "Token",
    "TokenStore",
    "connect_sqlite",
    "open_cache",
    "open_checkpoint",
    "open_interactions",
    "open_queue",
    "open_quota",
    "open_sink",
    "open_token_store",
    "redact_url",
    "sqlite_path_from_url",
]

_LAZY = {backend.name: backend for backend in BACKENDS}


def __getattr__(name: str) -> Any:
    backend = _LAZY.get(name)
    if backend is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return backend.load()


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
