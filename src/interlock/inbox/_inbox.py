"""``Inbox``: sources, handlers, the ASGI app, workers and the DLQ around one ``Queue``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, Unpack

from .._clock import SYSTEM_CLOCK, Clock
from .._ids import new_id
from .._lifecycle import Resource
from ..core.redelivery import Redelivery
from ..errors import ConfigError
from ..stores import open_queue
from ..stores.queue import Message, Queue, QueueStats
from ._asgi import BODY_TIMEOUT, PUT_TIMEOUT, InboxApp
from ._dlq import DeadLetters
from ._event import Handler
from ._forward import Forward, ForwardOptions
from ._metrics import SLOW_AFTER, InboxMetrics
from ._retention import DEAD_RETENTION, PRUNE_EVERY, RETENTION, Pruner, Retention
from ._serve import ServeSettings
from ._source import DEFAULT_MAX_BODY, MAX_JSON_DEPTH, SENSITIVE_HEADERS, Source
from ._source import ordering_key as queue_ordering_key
from ._worker import WorkerPool, WorkerSettings
from .signatures import SignatureScheme

if TYPE_CHECKING:
    from ..client import Client
    from ..stores.checkpoint import CheckpointStore
    from ..streams import EventStream, Subscription

H = TypeVar("H", bound=Handler)

__all__ = ["Inbox"]


class Inbox(Resource):
    """Receive webhooks durably, process them later.

    ::

        inbox = interlock.Inbox(store="sqlite:///interlock.db")
        inbox.source("stripe", interlock.signatures.Stripe(secrets=["whsec_..."]))

        @inbox.handler("stripe", "invoice.paid")
        async def on_paid(event: interlock.Event) -> None: ...

        app = inbox.asgi()                      # mount it, or serve it:
        await inbox.serve(port=8000)            # uvicorn with every connection bounded
        await inbox.run_workers(concurrency=8)  # in the same process or another one

    Bounds, each configurable: the ingress waits ``put_timeout`` s for the store to make an
    event durable before answering 503 with ``Retry-After``, and ``body_timeout`` s for a body
    before answering 408; ``serve()`` / ``uvicorn_config()`` bound each connection (see
    ``ServeSettings``). Acknowledged events are kept ``retention`` s (their ids keep dropping
    duplicates) and dead letters ``dead_retention`` s (``None``: for ever), pruned every
    ``prune_every`` s by whichever process does the Inbox's work, ingress or workers.

    Events also come from code: ``await inbox.submit("stripe", "invoice.paid", {...})`` (tests,
    replays of a provider's export), or from a source that never listens over HTTP,
    declared with ``inbox.internal_source("billing-jobs")`` (internal producers).
    """

    def __init__(
        self,
        store: str | Queue = "sqlite:///interlock.db",
        *,
        redelivery: Redelivery | None = None,
        visibility: float = 30.0,
        slow_after: float = SLOW_AFTER,
        retention: float | None = RETENTION,
        dead_retention: float | None = DEAD_RETENTION,
        prune_every: float = PRUNE_EVERY,
        put_timeout: float = PUT_TIMEOUT,
        body_timeout: float = BODY_TIMEOUT,
        path_prefix: str = "/hooks/",
        clock: Clock | None = None,
    ) -> None:
        self._store_url = store if isinstance(store, str) else None
        if isinstance(store, str):
            self.queue: Queue = open_queue(store, clock=clock, owner="Inbox", field="store")
        elif isinstance(store, Queue):
            self.queue = store
        else:
            raise ConfigError("Inbox", "store", f"expected a URL or a Queue, got {type(store).__name__}")
        if visibility <= 0:
            raise ConfigError("Inbox", "visibility", f"must be > 0 seconds, got {visibility!r}")
        if slow_after <= 0:
            raise ConfigError("Inbox", "slow_after", f"must be > 0 seconds, got {slow_after!r}")
        for name, value in (("put_timeout", put_timeout), ("body_timeout", body_timeout)):
            if not value > 0:
                raise ConfigError("Inbox", name, f"must be > 0 seconds, got {value!r}")
        kept = Retention(done=retention, dead=dead_retention, every=prune_every)
        self.clock = clock or SYSTEM_CLOCK
        """Receipt times, stats, pruning and the workers' timings; the queue it opens shares it."""
        self.redelivery = redelivery or Redelivery()
        self.redeliveries: dict[str, Redelivery] = {}
        """Per-source retry schedules (source name -> ``Redelivery``) replacing ``redelivery``
        for that source's events; the workers started after a change see it."""
        self.visibility = visibility
        self.slow_after = slow_after
        self.put_timeout = put_timeout
        self.body_timeout = body_timeout
        self.path_prefix = path_prefix
        self.sources: dict[str, Source] = {}
        """The webhook sources, served at ``POST {path_prefix}{name}``."""
        self.internal_sources: set[str] = set()
        """Sources whose events come only from code (``submit``), never over HTTP."""
        self._handlers: dict[tuple[str, str], list[Handler]] = {}
        self.metrics = InboxMetrics()
        self.dlq = DeadLetters(self.queue, self.open)
        self.pruner = Pruner(self.queue, kept, clock=self.clock, ready=self.open)
        """Prunes the queue as the retention settings say, in the background wherever the
        ingress or the workers run."""
        self._opened = False
        self._open_lock: asyncio.Lock | None = None
        self._pools: list[WorkerPool] = []
        self._app: InboxApp | None = None
        self.subscriptions: dict[str, Subscription] = {}
        """The upstream event streams (``subscribe``), by source name."""

    @property
    def retention(self) -> float | None:
        """Seconds an acknowledged event is kept (its id drops duplicates); ``None``: for ever."""
        return self.pruner.retention.done

    @property
    def dead_retention(self) -> float | None:
        """Seconds a dead letter is kept; ``None``: for ever."""
        return self.pruner.retention.dead

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
        max_depth: int = MAX_JSON_DEPTH,
        sensitive_headers: Collection[str] = SENSITIVE_HEADERS,
        keep_sensitive_headers: bool = False,
    ) -> Source:
        """Accept webhooks at ``POST /hooks/{name}``.

        ``dedupe`` / ``event_type`` / ``ordering_key``: a header name or a JSON path
        (``"$.data.object.customer"``); the first two default to the scheme's own. Bodies over
        ``max_body`` bytes or nesting JSON deeper than ``max_depth`` are refused (413, 400).
        The ``sensitive_headers`` (``Authorization``, ``Cookie``, ``X-API-Key``... by default)
        are not stored with the events unless ``keep_sensitive_headers``, and are redacted from
        logs either way.
        """
        if name in self.sources or name in self.internal_sources:
            raise ConfigError("Inbox", "source", f"a source named {name!r} is already configured")
        if isinstance(sensitive_headers, str):
            raise ConfigError("Inbox", "sensitive_headers", "must be a collection of header names, not one string")
        src = Source(
            name, signature, max_body=max_body, dedupe=dedupe, event_type=event_type,
            ordering_key=ordering_key, json=json, max_depth=max_depth,
            sensitive_headers=frozenset(sensitive_headers), keep_sensitive_headers=keep_sensitive_headers,
        )
        self.sources[name] = src
        return src

    def internal_source(self, name: str) -> None:
        """Declare a source whose events come only from code (``submit``): no HTTP endpoint,
        no signature; handlers, ordering, retries and the DLQ work as for a webhook source.
        Declaring it again does nothing (a ``Sync`` declares ``sync:NAME`` for its replays)."""
        if not isinstance(name, str) or not name or not name.isprintable():
            raise ConfigError("Inbox", "internal_source", f"must be a non-empty printable name, got {name!r}")
        if name in self.sources:
            raise ConfigError("Inbox", "internal_source", f"{name!r} is already a webhook source")
        self.internal_sources.add(name)

    def subscribe(
        self,
        name: str,
        stream: EventStream,
        *,
        checkpoint: str | CheckpointStore | None = None,
        reconcile: Any = None,
    ) -> Subscription:
        """Read an upstream's event stream into the inbox as source ``name``::

            inbox.subscribe("crm", interlock.EventStream.sse(crm, "/events"), reconcile=crm_sync)

        Each event is committed into the same queue as webhooks (dedupe by its id, ordering,
        handlers, retries, DLQ), and only then is the resume position saved, in
        ``checkpoint`` (a URL or ``CheckpointStore``; default: the inbox's store URL) under
        ``stream:{name}``: a restart resumes after the last committed event. ``reconcile``: a
        ``Sync`` (its ``trigger()``) or a function, called when the stream has been down longer
        than ``stream.policy.reconcile_after``. The stream runs with the workers
        (``start_workers``, ``run_workers``, ``serve(workers=...)``) or on its own
        (``subscription.start()``); ``aclose()`` stops it. Handlers register as for webhooks:
        ``@inbox.handler("crm", "customer.updated")``."""
        from ..stores import open_checkpoint
        from ..streams import EventStream, Subscription

        if not isinstance(stream, EventStream):
            raise ConfigError(
                "Inbox", "subscribe", f"expected an interlock.EventStream (.sse(...) or .websocket(...)), got {stream!r}"
            )
        if name in self.subscriptions:
            raise ConfigError("Inbox", "subscribe", f"a stream named {name!r} is already subscribed")
        self.internal_source(name)
        own = False
        if checkpoint is None:
            if self._store_url is None:
                raise ConfigError(
                    "Inbox", "subscribe", "give checkpoint= (a URL or CheckpointStore) when the inbox's store is not a URL"
                )
            checkpoint = self._store_url
        if isinstance(checkpoint, str):
            store = open_checkpoint(checkpoint, owner="Inbox.subscribe", field="checkpoint")
            own = True
        else:
            store = checkpoint
        hook = getattr(reconcile, "trigger", reconcile)
        if hook is not None and not callable(hook):
            raise ConfigError("Inbox", "reconcile", f"must be a Sync or a function, got {reconcile!r}")
        subscription = Subscription(
            name, stream, commit=self.put, store=store, reconcile=hook, ordering_key=queue_ordering_key,
            clock=self.clock, close_store=own,
        )
        self.subscriptions[name] = subscription
        return subscription

    def start_streams(self) -> None:
        """Start every subscribed stream in the background (the workers do it for you)."""
        for subscription in self.subscriptions.values():
            subscription.start()

    def _check_declared(self, source: str, what: str) -> None:
        if source in self.sources or source in self.internal_sources:
            return
        declared = sorted([*self.sources, *self.internal_sources])
        known = f"declared: {', '.join(declared)}" if declared else "none is declared yet"
        raise ConfigError(
            "Inbox",
            what,
            f"no source named {source!r} ({known}); declare it first with inbox.source({source!r}, "
            f"signature) for webhooks, or inbox.internal_source({source!r}) for events from code, "
            "otherwise its events are refused and the handler never runs",
        )
    def handler(self, source: str, type: str = "*") -> Callable[[H], H]:
        """Decorator: handle events of ``type`` ("*" for any) from ``source``."""

        def register(fn: H) -> H:
            self.add_handler(source, type, fn)
            return fn

        return register

    def add_handler(self, source: str, type: str, fn: Handler) -> None:
        """Handle events of ``type`` ("*" for any) from ``source`` with ``fn`` (the
        non-decorator form of ``handler``); several handlers of one event run in turn.
        ``source`` must be declared first (``source()`` or ``internal_source()``): a handler of
        an unknown source would never run, so it is a ``ConfigError``."""
        self._check_declared(source, "handler")
        if not callable(fn):
            raise ConfigError("Inbox", "handler", f"must be callable, got {fn!r}")
        self._handlers.setdefault((source, type), []).append(fn)

    def handlers_for(self, source: str, type: str) -> list[Handler]:
        """The handlers of an event: those registered for its type, else those for "*"."""
        return self._handlers.get((source, type)) or self._handlers.get((source, "*")) or []

    def forward(
        self, source: str, type: str = "*", *, url: str, client: Client | None = None, **options: Unpack[ForwardOptions]
    ) -> Forward:
        """Forward matching events to an internal URL through ``interlock.Client`` (rate
        limits, breaker and retries apply); a non-2xx answer fails the attempt. The options
        are ``Forward``'s (``headers``, ``forward_headers``, ``method``). ``source`` must be
        declared first, as for ``add_handler``."""
        self._check_declared(source, "forward")
        handler = Forward(url, client=client, **options)
        self.add_handler(source, type, handler)
        return handler

    # -- lifecycle -------------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the queue (once, however many callers race here); the faces call it for you."""
        if self._opened:
            return
        if self._open_lock is None:
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            if not self._opened:
                await self.queue.open()
                self._opened = True

    async def aclose(self) -> None:
        """Stop the worker pools (in-flight handlers get their grace) and the pruner, close the
        handlers that hold resources (a ``Forward``'s client), then the queue."""
        for subscription in self.subscriptions.values():
            await subscription.aclose()  # no new events, positions saved, before the queue closes
        pools, self._pools = self._pools, []
        for pool in pools:
            await pool.aclose()
        await self.pruner.aclose()
        for handlers in self._handlers.values():
            for h in handlers:
                close = getattr(h, "aclose", None)
                if close is not None:
                    await close()
        if self._open_lock is not None:
            async with self._open_lock:  # an opening in progress finishes first, then is closed
                opened, self._opened = self._opened, False
        else:
            opened, self._opened = self._opened, False
        if opened:
            await self.queue.aclose()

    async def put(self, message: Message) -> bool:
        """Store one event (what the ASGI app does after verifying); False for a duplicate."""
        if not self._opened:
            await self.open()
        return await self.queue.put(message)

    async def submit(
        self,
        source: str,
        type: str,
        payload: Any = None,
        *,
        id: str | None = None,
        headers: Mapping[str, str] | None = None,
        ordering_key: str | None = None,
    ) -> bool:
        """Put an event into the inbox from code, as if it had been received and verified: it
        is stored durably, then handled by the workers like any delivery. Returns False when an
        event with this ``id`` from ``source`` is already stored (a duplicate, dropped).

        ``payload``: bytes or text sent as the body as is, anything else as JSON (None: an
        empty JSON object). ``id``: the delivery id that drops duplicates (default: a new
        random one). ``ordering_key``: events sharing it are handled one at a time, in order
        (default: found at the source's own ``ordering_key`` path, for a webhook source).
        ``source`` must be declared (``source()`` or ``internal_source()``).

        ::

            await inbox.submit("stripe", "invoice.paid", {"id": "evt_1", "customer": "cus_9"})
        """
        self._check_declared(source, "submit")
        if not isinstance(type, str):
            raise ConfigError("Inbox.submit", "type", f"must be a string, got {type!r}")
        if isinstance(payload, bytes):
            body = payload
        elif isinstance(payload, str):
            body = payload.encode()
        else:
            body = json.dumps({} if payload is None else payload, separators=(",", ":")).encode()
        kept = {k.lower(): v for k, v in (headers or {}).items()}
        key: str | None = None
        if ordering_key is not None:
            key = queue_ordering_key(source, ordering_key)
        elif source in self.sources:
            src = self.sources[source]
            try:
                doc = json.loads(body) if src.json else None
            except ValueError:
                doc = None
            key = src.ordering_key_of(kept, doc)
        message = Message(
            source=source,
            id=id or new_id(),
            type=type,
            body=body,
            headers=kept,
            received_at=self.clock.time(),
            ordering_key=key,
        )
        return await self.put(message)

    # -- faces -----------------------------------------------------------------------------------

    def asgi(self) -> InboxApp:
        """The ASGI app receiving ``POST {path_prefix}{source}`` (one per inbox). Serving it
        also prunes the queue in that process (from the lifespan startup, or the first
        request when the server sends no lifespan events, as a mounted app gets none)."""
        if self._app is None:
            self._app = InboxApp(
                self.sources, self._ingress_put, metrics=self.metrics, prefix=self.path_prefix, clock=self.clock,
                startup=self._start_ingress, shutdown=self.aclose, body_timeout=self.body_timeout,
                put_timeout=self.put_timeout,
            )
        return self._app

    async def _start_ingress(self) -> None:
        await self.open()
        self.pruner.start()

    async def _ingress_put(self, message: Message) -> bool:
        if not self.pruner.running:
            self.pruner.start()
        return await self.put(message)

    def uvicorn_config(
        self,
        host: str = "127.0.0.1",
        port: int = 8000,
        *,
        settings: ServeSettings | None = None,
        log_level: str = "info",
    ) -> Any:
        """A ``uvicorn.Config`` serving ``asgi()`` with every connection bounded (``settings``,
        ``ServeSettings()`` by default) and the lifespan on; run it with
        ``uvicorn.Server(config).serve()``, or set more of uvicorn's options on it first."""
        import uvicorn

        options = (settings or ServeSettings()).uvicorn_options()
        return uvicorn.Config(self.asgi(), host=host, port=port, lifespan="on", log_level=log_level, **options)

    async def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 8000,
        *,
        settings: ServeSettings | None = None,
        workers: int = 0,
        log_level: str = "info",
    ) -> None:
        """Serve the ASGI app with uvicorn until it is stopped (SIGINT / SIGTERM), each
        connection bounded as ``settings`` says (``ServeSettings()`` by default); ``workers``
        > 0 also runs a worker pool of that concurrency in this process. Closes the inbox on
        the way out. Needs the ``inbox`` extra (uvicorn)."""
        import uvicorn

        server = uvicorn.Server(self.uvicorn_config(host, port, settings=settings, log_level=log_level))
        if workers:
            self.start_workers(concurrency=workers)
        try:
            await server.serve()
        finally:
            await self.aclose()

    def _pool(self, concurrency: int, visibility: float | None, grace: float | None = None) -> WorkerPool:
        # The pool gets the pieces it uses, not the inbox: the queue, the handler lookup, the
        # policy, the metrics, the clock; ``open`` makes sure the queue is open before it leases.
        settings = WorkerSettings(
            concurrency=concurrency, visibility=visibility or self.visibility, slow_after=self.slow_after,
            **({} if grace is None else {"grace": grace}),
        )
        return WorkerPool(
            self.queue, self.handlers_for, redelivery=self.redelivery, metrics=self.metrics, clock=self.clock,
            settings=settings, ready=self.open, redeliveries=self.redeliveries,
        )

    def start_workers(
        self, concurrency: int = 8, *, visibility: float | None = None, grace: float | None = None
    ) -> WorkerPool:
        """Process events in a background task; ``await pool.aclose()`` (or ``inbox.aclose()``)
        stops it, giving handlers in flight ``grace`` seconds (default ``WorkerSettings.grace``).
        The subscribed streams start too."""
        self.pruner.start()
        self.start_streams()
        pool = self._pool(concurrency, visibility, grace)
        self._pools.append(pool)
        return pool.start()

    async def run_workers(self, concurrency: int = 8, *, visibility: float | None = None) -> None:
        """Process events until cancelled (the subscribed streams run too)."""
        self.pruner.start()
        self.start_streams()
        pool = self._pool(concurrency, visibility)
        self._pools.append(pool)
        try:
            await pool.run()
        finally:
            if pool in self._pools:
                self._pools.remove(pool)

    # -- observability ---------------------------------------------------------------------------

    @property
    def workers_running(self) -> bool:
        """Whether this inbox has worker pools and every one of them is leasing."""
        return bool(self._pools) and all(pool.running for pool in self._pools)

    @property
    def last_stats(self) -> QueueStats | None:
        """The queue gauges of the latest refresh (by the workers or ``refresh_stats``)."""
        return self.metrics.queue_stats

    async def refresh_stats(self) -> QueueStats:
        """Read the queue gauges now (depth, in flight, DLQ size, oldest event) and keep them
        for the metrics; reads only, pruning is ``prune()``'s."""
        await self.open()
        stats = self.metrics.queue_stats = await self.queue.stats()
        return stats

    async def prune(self) -> int:
        """Forget events acknowledged more than ``retention`` seconds ago (their ids stop
        dropping duplicates) and dead letters older than ``dead_retention``; returns how many.
        The ingress and the workers do it every ``prune_every`` seconds."""
        return await self.pruner.prune()

    async def stats(self) -> dict[str, Any]:
        """Counters, processing percentiles, queue depth, oldest event age and DLQ size."""
        stats = await self.refresh_stats()
        return self.metrics.snapshot(stats, self.clock.time())

    def register_prometheus(self, registry: Any = None) -> None:
        """Expose the inbox metrics to prometheus-client (queue gauges refresh every 5 s
        while workers run)."""
        from prometheus_client import REGISTRY

        metrics, clock = self.metrics, self.clock

        class _Collector:
            def collect(self) -> Iterator[Any]:
                return metrics.prometheus_metrics(metrics.queue_stats, clock.time())

        (registry or REGISTRY).register(_Collector())

    def __repr__(self) -> str:
        return (
            f"Inbox(store={self.queue!r}, sources={sorted(self.sources)}, "
            f"handlers={len(self._handlers)}, workers={len(self._pools)})"
        )
