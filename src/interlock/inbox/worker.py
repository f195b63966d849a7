"""Workers: lease events, run their handlers, settle the outcome.

Each leased event gets a heartbeat that extends its lease every third of the visibility
timeout while the handler runs; if the process dies, the heartbeat stops, the lease expires
and another worker gets the event with ``attempt`` one higher. A failure is retried after the
``Redelivery`` schedule's delay; after the last attempt the event goes to the dead-letter queue
with its error history.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .._ids import correlation_id
from .._text import describe
from ..errors import ConfigError, PermanentFailure
from ..stores.queue import Lease
from ._event import Event

if TYPE_CHECKING:
    from ._inbox import Inbox

log = logging.getLogger("interlock.inbox")

Handler = Callable[[Event], Awaitable[None] | None]



class WorkerPool:
    """Runs up to ``concurrency`` handlers at once. Start with ``run()`` (until cancelled) or
    ``start()``; ``aclose()`` stops leasing and lets in-flight handlers finish (up to
    ``grace`` seconds; the rest are cancelled and their leases expire and redeliver)."""

    def __init__(
        self,
        inbox: Inbox,
        *,
        concurrency: int = 8,
        visibility: float = 30.0,
        grace: float = 10.0,
        stats_every: float = 5.0,
    ) -> None:
        if concurrency < 1:
            raise ConfigError("WorkerPool", "concurrency", f"must be >= 1, got {concurrency!r}")
        if visibility <= 0:
            raise ConfigError("WorkerPool", "visibility", f"must be > 0 seconds, got {visibility!r}")
        self.inbox = inbox
        self.concurrency = concurrency
        self.visibility = visibility
        self.grace = grace
        self.stats_every = stats_every
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.in_flight = 0

    def start(self) -> WorkerPool:
        if self._runner is None:
            self._runner = asyncio.create_task(self.run(), name="interlock-inbox-workers")
        return self

    async def run(self) -> None:
        inbox = self.inbox
        await inbox.open()
        queue = inbox.queue
        stats_at = 0.0
        try:
            while not self._stopping.is_set():
                now = time.monotonic()
                if now - stats_at >= self.stats_every:
                    stats_at = now
                    with contextlib.suppress(Exception):
                        await inbox.refresh_stats()
                free = self.concurrency - len(self._tasks)
                if free <= 0:
                    await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
                    continue
                try:
                    leases = await queue.lease(free, self.visibility)
                except Exception as exc:
                    log.error("leasing from %r failed, retrying in 1 s: %r", queue, exc)
                    await self._sleep(1.0)
                    continue
                if not leases:
                    waiter = asyncio.ensure_future(queue.wait(1.0))
                    stop = asyncio.ensure_future(self._stopping.wait())
                    await asyncio.wait({waiter, stop}, return_when=asyncio.FIRST_COMPLETED)
                    for f in (waiter, stop):
                        f.cancel()
                    continue
                for lease in leases:
                    task = asyncio.create_task(self._handle(lease))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
        finally:
            await self._drain()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _drain(self) -> None:
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=self.grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)

    async def aclose(self) -> None:
        self._stopping.set()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner

    async def _heartbeat(self, lease: Lease) -> None:
        queue = self.inbox.queue
        every = self.visibility / 3
        while True:
            await asyncio.sleep(every)
            try:
                if not await queue.extend(lease, self.visibility):
                    log.warning("lost the lease on %s/%s; another worker may run it", lease.message.source, lease.message.id)
                    return
            except Exception as exc:
                log.warning("heartbeat for %s failed: %r", lease.message.id, exc)

    async def _handle(self, lease: Lease) -> None:
        inbox = self.inbox
        queue = inbox.queue
        metrics = inbox.metrics
        event = Event.from_lease(lease)
        source = event.source
        redelivery = inbox.redelivery
        if redelivery.exhausted(lease.attempt):
            gave_up = (
                f"delivery {lease.attempt} is past the {redelivery.attempts} allowed: earlier "
                "leases expired without an outcome (the worker died or stalled)"
            )
            await queue.dead_letter(lease, error=gave_up)
            metrics.dead_lettered[source] += 1
            return
        handlers = inbox.handlers_for(source, event.type)
        if not handlers:
            metrics.unhandled[source] += 1
            log.warning("no handler for %s/%s (event %s); acknowledging it", source, event.type, event.id)
            await queue.ack(lease)
            return
        self.in_flight += 1
        heartbeat = asyncio.create_task(self._heartbeat(lease))
        loop = asyncio.get_running_loop()
        slow = loop.call_later(inbox.slow_after, self._warn_slow, event)
        started = time.perf_counter()
        error: str | None = None
        permanent = False
        try:
            with correlation_id(event.id):
                for handler in handlers:
                    await _call(handler, event)
        except asyncio.CancelledError:
            heartbeat.cancel()
            slow.cancel()
            self.in_flight -= 1
            raise
        except Exception as exc:
            error = describe(exc)
            permanent = isinstance(exc, PermanentFailure)
        finally:
            elapsed = time.perf_counter() - started
        heartbeat.cancel()
        slow.cancel()
        self.in_flight -= 1
        metrics.observe(elapsed)
        if elapsed > inbox.slow_after:
            metrics.slow[source] += 1
        try:
            if error is None:
                await queue.ack(lease)
                metrics.processed[source] += 1
                return
            delay = None if permanent else redelivery.next_delay(lease.attempt)
            if delay is None:
                await queue.dead_letter(lease, error=error)
                metrics.dead_lettered[source] += 1
                log.error("event %s/%s dead-lettered after %d attempts: %s", source, event.id, lease.attempt, error)
            else:
                await queue.nack(lease, delay=delay, error=error)
                metrics.retries[source] += 1
                log.warning(
                    "event %s/%s attempt %d failed, retrying in %.1f s: %s", source, event.id, lease.attempt, delay, error
                )
        except Exception as exc:
            # The outcome is lost with the store; the lease will expire and the event redeliver.
            log.error("could not settle event %s/%s: %r", source, event.id, exc)

    def _warn_slow(self, event: Event) -> None:
        log.warning(
            "handler for %s/%s (event %s, attempt %d) is still running after %.1f s",
            event.source, event.type, event.id, event.attempt, self.inbox.slow_after,
        )

    def __repr__(self) -> str:
        state = "running" if self._runner is not None and not self._stopping.is_set() else "stopped"
        return f"WorkerPool({state}, concurrency={self.concurrency}, in_flight={self.in_flight})"


async def _call(handler: Handler, event: Event) -> None:
    if inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(type(handler).__call__):
        await handler(event)  # type: ignore[misc]
        return
    # Sync handlers run in a thread; asyncio.to_thread copies the context, so the
    # correlation id set around the call is visible there too.
    result: Any = await asyncio.to_thread(handler, event)
    if inspect.isawaitable(result):
        await result
