"""One table from URL scheme to backend, for every seam; the factories in ``stores/__init__`` read it.

A row names the seam, the schemes it serves, the module and class that implement it, the
settings the class takes, and the client library it needs with the extra that installs it.
Modules are imported only when their row is picked, so a SQLite user never imports asyncpg or
redis. An unknown scheme is a ``ConfigError`` listing the accepted ones; a missing client
library an ``ImportError`` naming the extra.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from .._redact import redact_url
from ..errors import ConfigError

if TYPE_CHECKING:
    from .._clock import Clock
    from .cache import CacheStore
    from .checkpoint import CheckpointStore
    from .interactions import InteractionRetention, InteractionStore
    from .queue import Queue
    from .quota import QuotaStore
    from .sink import Sink
    from .token import TokenStore

__all__ = [
    "BACKENDS",
    "Backend",
    "open_backend",
    "open_cache",
    "open_checkpoint",
    "open_interactions",
    "open_queue",
    "open_quota",
    "open_sink",
    "open_token_store",
    "redact_url",
]


@dataclass(frozen=True, slots=True)
class Backend:
    """One backend of one seam, as the factories see it."""

    seam: str
    """``"queue"``, ``"cache"``, ``"quota"``, ``"checkpoint"``, ``"sink"``, ``"interactions"`` or
    ``"token"``."""
    schemes: tuple[str, ...]
    """URL schemes it serves; a scheme without ``:`` (``"memory"``) is also the whole URL."""
    module: str
    """Its module under ``interlock.stores``."""
    name: str
    """Its class in that module (also exported, lazily, by ``interlock.stores``)."""
    url_arg: str | None
    """The keyword its constructor takes the URL as; None: it takes none (in-process)."""
    options: frozenset[str] = frozenset()
    """The factory settings its constructor takes; the others do not apply to it."""
    library: str | None = None
    """The client library it imports, when not the standard library's."""
    extra: str | None = None
    """The ``interlock[...]`` extra that installs ``library``."""
    paths: bool = False
    """A URL without a scheme is a file path for it (SQLite)."""

    def load(self) -> Any:
        """The backend's class (imports its module; not its client library)."""
        return getattr(importlib.import_module(f"{__package__}.{self.module}"), self.name)

    def require(self, url: str) -> None:
        """Raise an ImportError naming the extra to install when the client library is missing."""
        if self.library is None:
            return
        try:
            importlib.import_module(self.library)
        except ImportError as exc:
            raise ImportError(
                f"{self.name} for {redact_url(url)!r} needs {self.library.split('.')[0]}:"
                f" pip install 'interlock[{self.extra}]'"
            ) from exc


_QUEUE = frozenset({"clock", "table", "poll_interval", "max_batch"})
_BROKER = frozenset({"clock", "table", "poll_interval"})
"""The brokers take ``table`` as the name of their queue / stream (and companion table)."""
_SQL = ("table", "columns", "key")

BACKENDS: tuple[Backend, ...] = (
    Backend("queue", ("sqlite",), "queue_sqlite", "SQLiteQueue", "url", _QUEUE, paths=True),
    Backend("queue", ("postgresql", "postgres"), "queue_postgres", "PostgresQueue", "dsn", _QUEUE,
            library="asyncpg", extra="postgres"),
    Backend("queue", ("amqp", "amqps"), "queue_rabbitmq", "RabbitMQQueue", "url", _BROKER,
            library="aio_pika", extra="rabbitmq"),
    Backend("queue", ("nats",), "queue_nats", "NATSQueue", "url", _BROKER,
            library="nats", extra="nats"),
    Backend("cache", ("memory",), "cache_memory", "MemoryCacheStore", None,
            frozenset({"max_entries", "max_bytes", "clock"})),
    Backend("cache", ("redis", "rediss", "unix"), "cache_redis", "RedisCacheStore", "url",
            frozenset({"namespace"}), library="redis.asyncio", extra="redis"),
    Backend("quota", ("memory",), "quota_memory", "MemoryQuotaStore", None, frozenset({"clock"})),
    Backend("quota", ("redis", "rediss", "unix"), "quota_redis", "RedisQuotaStore", "url",
            frozenset({"namespace"}), library="redis.asyncio", extra="redis"),
    Backend("checkpoint", ("sqlite",), "checkpoint_sqlite", "SQLiteCheckpointStore", "url",
            frozenset({"prefix"}), paths=True),
    Backend("checkpoint", ("postgresql", "postgres"), "checkpoint_postgres", "PostgresCheckpointStore",
            "dsn", frozenset({"prefix"}), library="asyncpg", extra="postgres"),
    Backend("token", ("memory",), "token_memory", "MemoryTokenStore", None, frozenset({"clock"})),
    Backend("token", ("redis", "rediss", "unix"), "token_redis", "RedisTokenStore", "url",
            frozenset({"namespace"}), library="redis.asyncio", extra="redis"),
    Backend("token", ("sqlite",), "token_sqlite", "SQLiteTokenStore", "url", frozenset({"prefix"}), paths=True),
    Backend("token", ("postgresql", "postgres"), "token_postgres", "PostgresTokenStore", "dsn",
            frozenset({"prefix"}), library="asyncpg", extra="postgres"),
    Backend("sink", ("sqlite",), "sink_sqlite", "SQLiteSink", "url", frozenset(_SQL), paths=True),
    Backend("sink", ("postgresql", "postgres"), "sink_postgres", "PostgresSink", "dsn", frozenset(_SQL),
            library="asyncpg", extra="postgres"),
    Backend("interactions", ("sqlite",), "interactions_sqlite", "SQLiteInteractionStore", "url",
            frozenset({"table", "retention"}), paths=True),
    Backend("interactions", ("postgresql", "postgres"), "interactions_postgres", "PostgresInteractionStore",
            "dsn", frozenset({"table", "retention"}), library="asyncpg", extra="postgres"),
)


def _scheme(url: str) -> str:
    head, colon, _ = url.partition(":")
    return head.lower() if colon else ""


def _serves(backend: Backend, url: str) -> bool:
    scheme = _scheme(url)
    if scheme:
        return scheme in backend.schemes
    # No scheme: a bare word naming one (``memory``), or a file path for a file backend.
    return url.lower() in backend.schemes or (backend.paths and bool(url))


def accepted(seam: str) -> str:
    """The URLs a seam accepts, for error messages: ``sqlite:///... (or a file path), ...``."""
    shown: list[str] = []
    for backend in BACKENDS:
        if backend.seam == seam:
            shown.extend(s if backend.url_arg is None else f"{s}://..." for s in backend.schemes)
            if backend.paths:
                shown.append("a file path")
    return ", ".join(shown)


def backend_for(seam: str, url: str, *, owner: str, field: str) -> Backend:
    """The row serving ``url`` for ``seam``, or a ConfigError ``owner.field`` listing the accepted URLs."""
    for backend in BACKENDS:
        if backend.seam == seam and _serves(backend, url):
            return backend
    what = f"unsupported URL scheme {_scheme(url)!r} in {redact_url(url)!r}" if url else "no URL given"
    raise ConfigError(owner, field, f"{what}: accepted {accepted(seam)}")


def open_backend(seam: str, url: str, settings: Mapping[str, Any], *, owner: str, field: str) -> Any:
    """A new (not yet opened) backend of ``seam`` for ``url``, given the settings it takes.

    Settings left at None keep the backend's own default; settings the backend does not take
    (a cache size for Redis, a namespace for the in-process cache) do not apply to it.
    """
    backend = backend_for(seam, url, owner=owner, field=field)
    backend.require(url)
    kwargs = {k: v for k, v in settings.items() if v is not None and k in backend.options}
    if backend.url_arg is not None:
        kwargs[backend.url_arg] = url
    return backend.load()(**kwargs)


def open_queue(
    url: str,
    *,
    clock: Clock | None = None,
    table: str | None = None,
    poll_interval: float | None = None,
    max_batch: int | None = None,
    owner: str = "open_queue",
    field: str = "url",
) -> Queue:
    """A ``Queue`` for ``sqlite:///path.db`` (or a plain file path) or ``postgresql://...``.

    ``clock`` gives the wall-clock readings (received, visible, leased, dead-lettered);
    ``table``, ``poll_interval`` (how often idle consumers look for work put by other
    processes) and ``max_batch`` (puts per commit) keep the backend's defaults when None.
    A bad URL is a ``ConfigError`` named ``owner.field``. Open it with ``await queue.open()``.
    """
    settings = {"clock": clock, "table": table, "poll_interval": poll_interval, "max_batch": max_batch}
    return cast("Queue", open_backend("queue", url, settings, owner=owner, field=field))


def open_cache(
    url: str | None = None,
    *,
    max_entries: int | None = None,
    max_bytes: int | None = None,
    namespace: str | None = None,
    clock: Clock | None = None,
    owner: str = "open_cache",
    field: str = "url",
) -> CacheStore:
    """A ``CacheStore``: in this process for None or ``"memory"`` (an LRU bounded by
    ``max_entries`` and ``max_bytes``, expiring by ``clock``), or shared through
    ``redis://`` / ``rediss://`` / ``unix://`` (keys under ``namespace``).

    A bad URL is a ``ConfigError`` named ``owner.field``.
    """
    settings = {"max_entries": max_entries, "max_bytes": max_bytes, "namespace": namespace, "clock": clock}
    return cast("CacheStore", open_backend("cache", url or "memory", settings, owner=owner, field=field))


def open_quota(
    url: str | None = None,
    *,
    namespace: str | None = None,
    clock: Clock | None = None,
    owner: str = "open_quota",
    field: str = "url",
) -> QuotaStore:
    """A ``QuotaStore``: this process's buckets for None or ``"memory"`` (timed by ``clock``),
    or buckets shared through ``redis://`` / ``rediss://`` / ``unix://`` (keys under
    ``namespace``, timed by the Redis server's clock).

    A bad URL is a ``ConfigError`` named ``owner.field``.
    """
    settings = {"namespace": namespace, "clock": clock}
    return cast("QuotaStore", open_backend("quota", url or "memory", settings, owner=owner, field=field))


def open_checkpoint(
    url: str, *, prefix: str | None = None, owner: str = "open_checkpoint", field: str = "url"
) -> CheckpointStore:
    """A ``CheckpointStore`` for ``sqlite:///path.db`` (or a plain file path) or
    ``postgresql://...``; its tables are named ``{prefix}_checkpoints`` and ``{prefix}_ledger``.

    A bad URL is a ``ConfigError`` named ``owner.field``. Open it with ``await store.open()``.
    """
    return cast(
        "CheckpointStore", open_backend("checkpoint", url, {"prefix": prefix}, owner=owner, field=field)
    )


def open_sink(
    url: str,
    *,
    table: str,
    columns: Sequence[str],
    key: Sequence[str],
    owner: str = "open_sink",
    field: str = "url",
) -> Sink:
    """A ``Sink`` upserting ``columns`` into ``table`` (which must exist, unique on ``key``) of
    ``sqlite:///path.db`` (or a plain file path) or ``postgresql://...``.

    A bad URL is a ``ConfigError`` named ``owner.field``.
    """
    settings = {"table": table, "columns": columns, "key": key}
    return cast("Sink", open_backend("sink", url, settings, owner=owner, field=field))


def open_interactions(
    url: str,
    *,
    table: str | None = None,
    retention: InteractionRetention | None = None,
    owner: str = "open_interactions",
    field: str = "url",
) -> InteractionStore:
    """An ``InteractionStore`` (the interaction log) for ``sqlite:///path.db`` (or a plain file
    path) or ``postgresql://...``, in ``table`` (default ``interlock_interactions``), bounded by
    ``retention`` (default ``InteractionRetention()``: 7 days, 100,000 rows).

    A bad URL is a ``ConfigError`` named ``owner.field``. Open it with ``await store.open()``.
    """
    settings = {"table": table, "retention": retention}
    return cast("InteractionStore", open_backend("interactions", url, settings, owner=owner, field=field))
def open_token_store(
    url: str | None = None,
    *,
    namespace: str | None = None,
    prefix: str | None = None,
    owner: str = "open_token_store",
    field: str = "url",
) -> TokenStore:
    """A ``TokenStore``: this process only for None or ``"memory"``, or shared by every process
    through ``redis://`` (keys under ``namespace``), ``sqlite:///path.db`` (or a plain file path)
    or ``postgresql://...`` (tables named ``{prefix}_tokens`` and ``{prefix}_token_locks``).

    A bad URL is a ``ConfigError`` named ``owner.field``. Open it with ``await store.open()``.
    """
    settings = {"namespace": namespace, "prefix": prefix}
    return cast("TokenStore", open_backend("token", url or "memory", settings, owner=owner, field=field))
