"""``Service``: everything one config file declares, running in one process, as one ASGI app.

- ``/hooks/{source}``: the Inbox's own ASGI app (verify, dedupe, commit, 2xx);
- ``/proxy/{upstream}/{path...}``: ``_proxy.ProxyApp`` over one ``Client`` per upstream;
- ``/admin/...``: the admin API (``_admin``);
- ``/metrics`` (Prometheus text), ``/healthz`` (the process is up), ``/readyz`` (the store
  answers and the workers run; 503 otherwise).

The lifespan starts the inbox workers and the syncs' schedules (unless the config says this
process only serves) and stops them on shutdown: uvicorn stops accepting on SIGTERM and lets
requests in flight finish, then the workers get ``[server] grace`` seconds for the handlers in
flight; a handler still running after that is cancelled and its lease left to expire, so
another worker runs the event again (an acknowledged event is never lost, a SIGKILL included:
acknowledging is the last thing a delivery does).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import math
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from .._redact import redact_url
from ..client import Client, Concurrency
from ..inbox import Event, Forward, Inbox
from ..sync import Sync, SyncSource, ToHandler, WriteBack
from ._admin import admin_app
from ._config import LoadedConfig, client_options, policy_options, resolve_callable, signature_of
from ._events import EventLog
from ._leader import SyncLeader
from ._problem import problem
from ._proxy import ProxyApp, ProxyUpstream
from .dashboard import FailureFeed, Monitor, Notifier, ReplayJobs, dashboard_app

__all__ = ["PauseGate", "Service"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_log = logging.getLogger("interlock.service")
_FAILURE_LOGGERS = ("interlock.client", "interlock.inbox")
"""Where the failures the dashboard groups into issues are logged."""
READY_TIMEOUT = 2.0
"""Seconds ``/readyz`` waits for the store before answering 503."""


class PauseGate:
    """Which sources' processing is paused. A paused source's events are still received and
    stored; its handlers wait (their leases kept alive by the workers' heartbeats) until
    ``resume``. Up to ``[server] concurrency`` of its events wait in worker slots meanwhile."""

    def __init__(self) -> None:
        self._open: dict[str, asyncio.Event] = {}
        self._closed = False

    def _event(self, source: str) -> asyncio.Event:
        event = self._open.get(source)
        if event is None:
            event = self._open[source] = asyncio.Event()
            event.set()
        return event

    def paused(self, source: str) -> bool:
        """Whether ``source`` is paused."""
        return not self._event(source).is_set()

    def pause(self, source: str) -> None:
        """Hold ``source``'s handlers from now on."""
        self._event(source).clear()

    def resume(self, source: str) -> None:
        """Let ``source``'s handlers run again (those waiting start now)."""
        self._event(source).set()

    async def wait(self, source: str) -> None:
        """Return once ``source`` is not paused. After ``close()`` a paused source's waiters are
        cancelled: their events were not handled, their leases expire and they run later."""
        event = self._event(source)
        if not event.is_set():
            await event.wait()
            if self._closed:
                raise asyncio.CancelledError(f"shutting down while {source!r} is paused")

    def close(self) -> None:
        """Shutting down: release every waiter (as cancelled, see ``wait``)."""
        self._closed = True
        for event in self._open.values():
            event.set()


def _gated(gate: PauseGate, log: EventLog, source: str, fn: Callable[..., Any]) -> Callable[[Event], Awaitable[None]]:
    is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__)

    async def handle(event: Event) -> None:
        if gate.paused(source):
            log.started(event, paused=True)
        await gate.wait(source)
        log.started(event)
        try:
            if is_async:
                await fn(event)
            else:
                result = await asyncio.to_thread(fn, event)
                if inspect.isawaitable(result):
                    await result
        except Exception as exc:
            log.finished(event, exc)
            raise
        log.finished(event, None)

    handle.__qualname__ = handle.__name__ = getattr(fn, "__name__", "handler")
    return handle


class Service:
    """Every upstream, source and sync of ``loaded`` (a ``LoadedConfig``), served by ``asgi()``.

    ``run_workers`` (default: ``[server] run_workers``) runs the inbox workers and sync
    schedules in this process. Handlers named ``"module:function"`` are imported here: a
    missing module or function is a ``ValueError`` naming the key path.
    """

    def __init__(self, loaded: LoadedConfig, *, run_workers: bool | None = None) -> None:
        self.loaded = loaded
        cfg = self.config = loaded.config
        self.run_workers = cfg.server.run_workers if run_workers is None else run_workers
        token = cfg.server.admin_token
        self.admin_token: bytes | None = token.get_secret_value().encode() if token else None
        self.concurrency = cfg.server.concurrency
        """Events the inbox workers of this process handle at once."""
        self.gate = PauseGate()
        self.events = EventLog()
        """The events this process's workers handled (bounded; the admin API's ``events``)."""
        self.clients: dict[str, Client] = {}
        self._forwarders: list[Client] = []
        self.syncs: dict[str, Sync] = {}
        self.leaders: dict[str, SyncLeader] = {}
        """On a PostgreSQL store, who runs each sync's schedule (``_leader``)."""
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False
        self._build()  # clients open their connections on first use: a failed build leaks none
        self.proxy = ProxyApp(
            {
                name: ProxyUpstream(
                    self.clients[name],
                    tokens=tuple(t.get_secret_value().encode() for t in up.callers),
                    configured_headers=frozenset(h.lower() for h in up.headers),
                )
                for name, up in cfg.upstreams.items()
            },
            max_body=cfg.server.max_body,
        )
        self.hooks = self.inbox.asgi()
        self.replay_jobs = ReplayJobs(self.inbox.dlq)
        """Bulk DLQ replays running in the background (the admin API's ``replay-jobs``)."""
        self.admin = admin_app(self)
        self.monitor = Monitor(
            self.clients, inbox=self.inbox, syncs=self.syncs, thresholds=cfg.alerts.thresholds(), events=self.events
        )
        """Reads the figures the dashboard shows, every few seconds while the service runs."""
        self.notifier = Notifier(cfg.alerts.webhook_url) if cfg.alerts.webhook_url else None
        if self.notifier is not None:
            self.monitor.on_transition, self.monitor.on_alert = self.notifier.issue, self.notifier.alert
        self.dashboard = (
            dashboard_app(self.monitor, admin_token=token.get_secret_value(), prefix="/ui", jobs=self.replay_jobs)
            if token is not None
            else None
        )
        """The dashboard at ``/ui`` (None without an admin token: it logs in with it)."""
        self._feed = FailureFeed(self.monitor)
        self._stop = asyncio.Event()
        from prometheus_client import CollectorRegistry

        self.registry = CollectorRegistry(auto_describe=True)
        self.inbox.register_prometheus(self.registry)

    # -- building -------------------------------------------------------------------------------
    def _build(self) -> None:
        cfg, loaded = self.config, self.loaded
        for name, up in cfg.upstreams.items():
            self.clients[name] = Client(up.base_url, name=name, **client_options(loaded, name))
        self.inbox = Inbox(store=cfg.store.url, redelivery=cfg.inbox.build())
        for name, src in cfg.sources.items():
            self.inbox.source(
                name, signature_of(loaded, name), max_body=src.max_body, dedupe=src.dedupe,
                event_type=src.event_type, ordering_key=src.ordering_key,
            )
            if src.retry is not None:
                self.inbox.redeliveries[name] = src.retry.build()
            if src.handler is not None:
                try:
                    fn = resolve_callable(src.handler)
                except ValueError as exc:
                    raise loaded.error(("sources", name, "handler"), str(exc)) from None
                self.inbox.add_handler(name, "*", _gated(self.gate, self.events, name, fn))
            else:
                assert src.forward is not None
                parts = urlsplit(src.forward)
                options: dict[str, Any] = (
                    policy_options(loaded, src.delivery, ("sources", name, "delivery"), default_profile="background")
                    if src.delivery is not None
                    else {"profile": "background"}
                )
                options.setdefault("concurrency", Concurrency(limit=5, writes=5))
                client = Client(f"{parts.scheme}://{parts.netloc}", name=f"forward:{name}", **options)
                self._forwarders.append(client)
                forward = Forward(
                    src.forward, client=client, headers=dict(src.headers), forward_headers=tuple(src.forward_headers)
                )
                self.inbox.add_handler(name, "*", _gated(self.gate, self.events, name, forward))
        for name, job in cfg.syncs.items():
            where = ("syncs", name)
            if job.handler is not None:
                try:
                    destination: Any = ToHandler(resolve_callable(job.handler))
                except ValueError as exc:
                    raise loaded.error((*where, "handler"), str(exc)) from None
            else:
                assert job.write_back is not None
                destination = WriteBack(self.clients[job.write_back.upstream], job.write_back.path, method=job.write_back.method)
            self.syncs[name] = Sync(
                name,
                source=SyncSource(
                    self.clients[job.upstream], job.path, since_param=job.since_param, time_format=job.time_format,
                    id=job.id, updated_at=job.updated_at, items=job.items, page_size=job.page_size,
                ),
                destination=destination,
                store=cfg.store.url,
                inbox=self.inbox,
                every=job.every,
                lookback=job.lookback,
                concurrency=job.concurrency,
                attempts=job.attempts,
            )

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Open the store; start the workers and the syncs' schedules when this process runs them."""
        if self._started:
            return
        self._started = True
        await self.inbox.open()
        self.inbox.pruner.start()
        self._stop = asyncio.Event()
        self._tasks.append(asyncio.create_task(self.monitor.run(self._stop), name="interlock-monitor"))
        if self.notifier is not None:
            self._tasks.append(asyncio.create_task(self.notifier.run(self._stop), name="interlock-notifier"))
        for logger in _FAILURE_LOGGERS:
            logging.getLogger(logger).addHandler(self._feed)
        if self.run_workers:
            self.inbox.start_workers(concurrency=self.concurrency, grace=self.config.server.grace)
            shared = self.config.store.url.startswith(("postgresql://", "postgres://"))
            for name, sync in self.syncs.items():
                await sync.open()
                if sync.every is None:
                    continue
                if shared:  # one process of all those sharing the store runs the schedule
                    leader = self.leaders[name] = SyncLeader(self.config.store.url, name, sync.run_forever)
                    self._tasks.append(asyncio.create_task(leader.serve(), name=f"interlock-sync-leader-{name}"))
                else:
                    self._tasks.append(asyncio.create_task(sync.run_forever(), name=f"interlock-sync-{name}"))

    async def aclose(self) -> None:
        """Stop the schedules and workers (handlers in flight get ``[server] grace`` s), close
        every client and the store."""
        self._stop.set()
        for logger in _FAILURE_LOGGERS:
            logging.getLogger(logger).removeHandler(self._feed)
        await self.replay_jobs.aclose()
        self.gate.close()
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for sync in self.syncs.values():
            await sync.aclose()
        await self.inbox.aclose()
        for client in [*self.clients.values(), *self._forwarders]:
            await client.aclose()
        self._started = False

    async def __aenter__(self) -> Service:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- status for the admin API ---------------------------------------------------------------
    def upstream_status(self, name: str) -> dict[str, Any]:
        """One upstream's live figures (the admin API's ``Upstream``)."""
        client = self.clients[name]
        stats = client.stats()
        limit = client.rate_limit.stats() if client.rate_limit is not None else None
        if limit is not None:
            shares = [
                k["remaining"] / k["capacity"]
                for k in limit["keys"].values()
                if k.get("capacity") and k.get("remaining") is not None
            ]
            limit["headroom"] = min(shares) if shares else None
        status: dict[str, Any] = _finite({
            "name": name,
            "base_url": redact_url(client.base_url),
            "breaker": stats["breaker"],
            "in_flight": stats["in_flight"],
            "retries": stats["retries"],
            "latency": stats["latency"],
            "calls": stats["calls"],
            "rate_limit": _jsonable(limit),
            "cache": _jsonable(client.cache.stats()) if client.cache is not None else None,
            "proxied": self.proxy.proxied.get(name, 0),
        })
        return status

    async def source_status(self, name: str) -> dict[str, Any]:
        """One source's configuration and counters (the admin API's ``Source``)."""
        src = self.config.sources[name]
        metrics = self.inbox.metrics
        label = metrics.label(name)
        return {
            "name": name,
            "scheme": src.scheme,
            "paused": self.gate.paused(name),
            "handler": src.handler,
            "forward": redact_url(src.forward) if src.forward else None,
            "received": metrics.received[label],
            "duplicates": metrics.duplicates[label],
            "processed": metrics.processed[label],
            "retries": metrics.retries[label],
            "dead_lettered": metrics.dead_lettered[label],
            "dead_letters": await self.inbox.dlq.count(source=name),
        }

    async def sync_status(self, name: str) -> dict[str, Any]:
        """One sync job's stored status and this process's polls (the admin API's ``Sync``)."""
        sync = self.syncs[name]
        job = self.config.syncs[name]
        stored = await sync.status()
        report = sync.last_report
        return {
            "name": name,
            "upstream": job.upstream,
            "path": job.path,
            "every": job.every,
            "running": self._schedule_running(name),
            "checkpoint": _jsonable(stored.get("checkpoint")),
            "ledger": _jsonable(stored.get("ledger")),
            "dead_letters": stored.get("dead_letters", 0),
            "polls": sync.polls,
            "last_report": _jsonable(getattr(report, "__dict__", None) or (repr(report) if report else None)),
        }

    def _schedule_running(self, name: str) -> bool:
        leader = self.leaders.get(name)
        if leader is not None:
            return leader.leading
        return any(t.get_name() == f"interlock-sync-{name}" and not t.done() for t in self._tasks)

    def trigger_sync(self, name: str) -> None:
        """Poll ``name`` now: wake its schedule, or run one poll in the background."""
        sync = self.syncs[name]
        if self._schedule_running(name):
            sync.trigger()
            return

        async def once() -> None:
            try:
                await sync.run_once()
            except Exception as exc:
                _log.warning("sync %s: triggered poll failed: %s", name, exc)

        self._tasks.append(asyncio.create_task(once(), name=f"interlock-sync-once-{name}"))

    # -- readiness ------------------------------------------------------------------------------
    async def ready(self) -> tuple[bool, dict[str, Any]]:
        """Whether this process can do its work: the store answers, the workers run."""
        checks: dict[str, Any] = {}
        try:
            await asyncio.wait_for(self.inbox.refresh_stats(), READY_TIMEOUT)
            checks["store"] = "ok"
        except Exception as exc:
            checks["store"] = f"unreachable: {type(exc).__name__}"
        if self.run_workers:
            running = self.inbox.workers_running
            checks["workers"] = "running" if running else "stopped"
        else:
            checks["workers"] = "elsewhere"
        ok = checks["store"] == "ok" and checks["workers"] != "stopped"
        return ok, checks

    # -- ASGI -----------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The service's ASGI app: dispatch by path prefix."""
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if kind != "http":
            return
        path: str = scope["path"]
        if path.startswith("/proxy/"):
            await self.proxy(scope, receive, send)
        elif path.startswith("/hooks/"):
            await self.hooks(scope, receive, send)
        elif path.startswith("/admin/"):
            child = dict(scope)
            child["root_path"] = scope.get("root_path", "") + "/admin"
            child["path"] = path[len("/admin") :]
            raw = scope.get("raw_path")
            if raw:
                child["raw_path"] = raw[len(b"/admin") :]
            await self.admin(child, receive, send)
        elif path == "/ui" or path.startswith("/ui/"):
            if self.dashboard is None:
                status, headers, body = problem(
                    503, "dashboard-disabled", "Dashboard disabled",
                    "set [server] admin_token: the dashboard logs in with it",
                )
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": body})
            else:
                await self.dashboard(scope, receive, send)
        elif path == "/healthz":
            await _send_json(send, 200, {"status": "ok", "pid": os.getpid()})
        elif path == "/readyz":
            ok, checks = await self.ready()
            await _send_json(send, 200 if ok else 503, {"status": "ready" if ok else "not ready", **checks})
        elif path == "/metrics":
            await self._metrics(send)
        else:
            status, headers, body = problem(
                404, "not-found", "Not found", "the service serves /proxy/, /hooks/, /admin/, /ui/, /metrics, /healthz, /readyz"
            )
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})

    async def _metrics(self, send: Send) -> None:
        from prometheus_client import generate_latest

        from .. import metrics

        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.inbox.refresh_stats(), READY_TIMEOUT)
        body = metrics.render().encode() + generate_latest(self.registry)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", metrics.CONTENT_TYPE.encode()), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.start()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await self.aclose()
                finally:
                    await send({"type": "lifespan.shutdown.complete"})
                return

    def __repr__(self) -> str:
        return (
            f"<Service {self.loaded.file} upstreams={sorted(self.clients)} sources={sorted(self.config.sources)} "
            f"syncs={sorted(self.syncs)} workers={'here' if self.run_workers else 'elsewhere'}>"
        )


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities (a latency quantile before any call) as None: JSON has
    neither."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _jsonable(value: Any) -> Any:
    return _finite(json.loads(json.dumps(value, default=str))) if value is not None else None


async def _send_json(send: Send, status: int, doc: Any) -> None:
    body = json.dumps(doc, separators=(",", ":")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
