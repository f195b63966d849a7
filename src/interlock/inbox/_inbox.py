"""``Inbox``: sources, handlers, the ASGI app, workers and the DLQ around one ``Queue``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from .._clock import SYSTEM_CLOCK, Clock
from ..core.redelivery import Redelivery
from ..errors import ConfigError
from ..stores import open_queue
from ..stores.queue import Message, Queue, QueueStats
from ._metrics import SLOW_AFTER, InboxMetrics
from ._source import DEFAULT_MAX_BODY, Source
from .asgi import InboxApp
from .dlq import DeadLetters
from .signatures import SignatureScheme
from .worker import Handler, WorkerPool

H = TypeVar("H", bound=Handler)

__all__ = ["Inbox"]


class Inbox:
    """Receive webhooks durably, process them later.

    ::

        inbox = interlock.Inbox(store="sqlite:///interlock.db")
        inbox.source("stripe", interlock.signatures.Stripe(secrets=["whsec_..."]))

        @inbox.handler("stripe", "invoice.paid")
        async def on_paid(event: interlock.Event) -> None: ...

        app = inbox.asgi()                      # uvicorn module:app, or mount it
        await inbox.run_workers(concurrency=8)  # in the same process or another one
    """

    def __init__(
        self,
        store: str | Queue = "sqlite:///interlock.db",
        *,
        redelivery: Redelivery | None = None,
        visibility: float = 30.0,
        slow_after: float = SLOW_AFTER,
        retention: float | None = 7 * 86400.0,
        path_prefix: str = "/hooks/",
        clock: Clock | None = None,
    ) -> None:
        if isinstance(store, str):
            self.queue: Queue = open_queue(store, clock=clock)
        elif isinstance(store, Queue):
            self.queue = store
        else:
            raise ConfigError("Inbox", "store", f"expected a URL or a Queue, got {type(store).__name__}")
        if visibility <= 0:
            raise ConfigError("Inbox", "visibility", f"must be > 0 seconds, got {visibility!r}")
        if slow_after <= 0:
            raise ConfigError("Inbox", "slow_after", f"must be > 0 seconds, got {slow_after!r}")
        if retention is not None and retention <= 0:
            raise ConfigError("Inbox", "retention", f"must be > 0 seconds or None, got {retention!r}")
        self.clock = clock or SYSTEM_CLOCK
        """Wall-clock readings for receipt times, stats and pruning; the queue it opens shares it."""
        self.redelivery = redelivery or Redelivery()
        self.visibility = visibility
        self.slow_after = slow_after
        self.retention = retention
        self.path_prefix = path_prefix
        self.sources: dict[str, Source] = {}
        self._handlers: dict[tuple[str, str], list[Handler]] = {}
        self.metrics = InboxMetrics()
        self.dlq = DeadLetters(lambda: self.queue, self.open)
        self.last_stats: QueueStats | None = None
        self._opened = False
        self._open_lock: asyncio.Lock | None = None
        self._pools: list[WorkerPool] = []
        self._app: InboxApp | None = None
        self._pruned_at = 0.0

    # -- configuration ---------------------------------------------------------------------------

    def source(
        self,
        name: str,
        signature: SignatureScheme,
        *,
        max_body: int = DEFAULT_MAX_BODY,
        dedupe: str | None = None,
        event_type: str | None = None,
        ordering_key: str | None = None,
        json: bool = True,
    ) -> Source:
        """Accept webhooks at ``POST /hooks/{name}``.

        ``dedupe`` / ``event_type`` / ``ordering_key``: a header name or a JSON path
        (``"$.data.object.customer"``); the first two default to the scheme's own.
        """
        if name in self.sources:
            raise ConfigError("Inbox", "source", f"a source named {name!r} is already configured")
        src = Source(
            name, signature, max_body=max_body, dedupe=dedupe, event_type=event_type,
            ordering_key=ordering_key, json=json,
        )
        self.sources[name] = src
        return src

    def handler(self, source: str, type: str = "*") -> Callable[[H], H]:
        """Decorator: handle events of ``type`` ("*" for any) from ``source``."""

        def register(fn: H) -> H:
            self.add_handler(source, type, fn)
            return fn

        return register

    def add_handler(self, source: str, type: str, fn: Handler) -> None:
        if not callable(fn):
            raise ConfigError("Inbox", "handler", f"must be callable, got {fn!r}")
        self._handlers.setdefault((source, type), []).append(fn)

    def handlers_for(self, source: str, type: str) -> list[Handler]:
        return self._handlers.get((source, type)) or self._handlers.get((source, "*")) or []

    def forward(self, source: str, type: str = "*", *, url: str, client: Any = None, **options: Any) -> Handler:
        """Forward matching events to an internal URL through ``interlock.Client`` (rate
        limits, breaker and retries apply); a non-2xx answer fails the attempt."""
        from .forward import Forward

        handler = Forward(url, client=client, **options)
        self.add_handler(source, type, handler)
        return handler

    # -- lifecycle -------------------------------------------------------------------------------

    async def open(self) -> None:
        if self._opened:
            return
        if self._open_lock is None:
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            if not self._opened:
                await self.queue.open()
                self._opened = True

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()
        self._pools.clear()
        for handlers in self._handlers.values():
            for h in handlers:
                close = getattr(h, "aclose", None)
                if close is not None:
                    await close()
        if self._opened:
            self._opened = False
            await self.queue.aclose()

    async def __aenter__(self) -> Inbox:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def put(self, message: Message) -> bool:
        """Store one event (what the ASGI app does after verifying); False for a duplicate."""
        if not self._opened:
            await self.open()
        return await self.queue.put(message)

    # -- faces -----------------------------------------------------------------------------------

    def asgi(self) -> InboxApp:
        if self._app is None:
            self._app = InboxApp(self, self.path_prefix)
        return self._app

    def start_workers(self, concurrency: int = 8, *, visibility: float | None = None) -> WorkerPool:
        pool = WorkerPool(self, concurrency=concurrency, visibility=visibility or self.visibility)
        self._pools.append(pool)
        return pool.start()

    async def run_workers(self, concurrency: int = 8, *, visibility: float | None = None) -> None:
        """Process events until cancelled."""
        pool = WorkerPool(self, concurrency=concurrency, visibility=visibility or self.visibility)
        self._pools.append(pool)
        try:
            await pool.run()
        finally:
            if pool in self._pools:
                self._pools.remove(pool)

    # -- observability ---------------------------------------------------------------------------

    async def refresh_stats(self) -> QueueStats:
        await self.open()
        self.last_stats = await self.queue.stats()
        now = self.clock.time()
        if self.retention is not None and now - self._pruned_at > 600:
            self._pruned_at = now
            await self.queue.prune(now - self.retention)
        return self.last_stats

    async def stats(self) -> dict[str, Any]:
        """Counters, processing percentiles, queue depth, oldest event age and DLQ size."""
        stats = await self.refresh_stats()
        return self.metrics.snapshot(stats, self.clock.time())

    def register_prometheus(self, registry: Any = None) -> None:
        """Expose the inbox metrics to prometheus-client (queue gauges refresh every 5 s
        while workers run)."""
        from prometheus_client import REGISTRY

        inbox = self

        class _Collector:
            def collect(self) -> Iterator[Any]:
                return inbox.metrics.prometheus_metrics(inbox.last_stats, inbox.clock.time())

        (registry or REGISTRY).register(_Collector())

    def __repr__(self) -> str:
        return (
            f"Inbox(store={self.queue!r}, sources={sorted(self.sources)}, "
            f"handlers={len(self._handlers)}, workers={len(self._pools)})"
        )
