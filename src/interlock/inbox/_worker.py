"""Workers: lease events, run their handlers, settle the outcome.

Each leased event gets a watcher that extends its lease every third of the visibility
timeout while the handlers run; if the process dies, the watcher stops, the lease expires
and another worker gets the event with ``attempt`` one higher. What follows a delivery (ack,
retry after the ``Redelivery`` schedule's delay, dead-letter with the error history) is
decided by ``core.settle``; the pool only makes the queue call the decision names.

The pool receives what it uses (a queue, a handler lookup, the redelivery policy, the metrics
it counts into, a clock), not the ``Inbox`` that builds it with ``Inbox.start_workers()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._clock import SYSTEM_CLOCK, Clock
from .._ids import correlation_id
from .._text import describe
from ..core.redelivery import Redelivery
from ..core.settle import Ack, Outcome, RetryIn, Settlement, admit, settle
from ..errors import ConfigError, PermanentFailure
from ..stores.queue import Lease, Queue
from ._event import Event, Handler
from ._metrics import SLOW_AFTER, InboxMetrics

__all__ = ["WorkerPool", "WorkerSettings"]

log = logging.getLogger("interlock.inbox")

@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """How a ``WorkerPool`` runs; ``Inbox.start_workers()`` fills it from the inbox's own."""

    concurrency: int = 8
    """Handlers running at once (each leased event is one)."""
    visibility: float = 30.0
    """Seconds a lease hides an event from other workers; heartbeats extend it every third."""
    slow_after: float = SLOW_AFTER
    """Warn about, and count, a delivery whose handlers run longer than this."""
    grace: float = 10.0
    """On ``aclose()``, seconds in-flight handlers may finish in before they are cancelled."""
    stats_every: float = 5.0
    """Seconds between refreshes of the queue gauges in the metrics."""

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ConfigError("WorkerPool", "concurrency", f"must be >= 1, got {self.concurrency!r}")
        if self.visibility <= 0:
            raise ConfigError("WorkerPool", "visibility", f"must be > 0 seconds, got {self.visibility!r}")


class WorkerPool:
    """Runs up to ``settings.concurrency`` handlers at once. Start with ``run()`` (until
    cancelled) or ``start()``; ``aclose()`` stops leasing and lets in-flight handlers finish
    (up to ``settings.grace`` seconds; the rest are cancelled and their leases expire and
    redeliver).

    ``handlers(source, type)`` returns the handlers of an event (none: it is acknowledged and
    counted as unhandled). The pool counts into ``metrics`` and refreshes its queue gauges on
    the schedule ``settings`` gives (pruning is the Inbox's ``Pruner``'s). ``ready`` is awaited
    once before the first lease (the Inbox passes its ``open``, which opens the queue once for
    all its users).
    """

    def __init__(
        self,
        queue: Queue,
        handlers: Callable[[str, str], Sequence[Handler]],
        *,
        redelivery: Redelivery | None = None,
        metrics: InboxMetrics | None = None,
        clock: Clock | None = None,
        settings: WorkerSettings | None = None,
        ready: Callable[[], Awaitable[object]] | None = None,
        redeliveries: Mapping[str, Redelivery] | None = None,
    ) -> None:
        self.queue = queue
        self.handlers = handlers
        self.redelivery = redelivery or Redelivery()
        self.redeliveries: Mapping[str, Redelivery] = redeliveries if redeliveries is not None else {}
        """Per-source schedules replacing ``redelivery`` for their source's events."""
        self.metrics = metrics or InboxMetrics()
        self.clock = clock or SYSTEM_CLOCK
        """Times the heartbeats, the slow-handler warning, handler durations and housekeeping."""
        self.settings = settings or WorkerSettings()
        self._ready = ready
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._stats_at = -math.inf
        self.in_flight = 0

    @property
    def running(self) -> bool:
        """Whether the pool is leasing (started and neither stopped nor crashed)."""
        runner = self._runner
        return runner is not None and not runner.done() and not self._stopping.is_set()

    def start(self) -> WorkerPool:
        """Run the pool in a background task (``aclose()`` stops it); returns the pool."""
        if self._runner is None:
            self._runner = asyncio.create_task(self.run(), name="interlock-inbox-workers")
        return self

    async def run(self) -> None:
        """Lease and handle events until ``aclose()`` or cancellation, then drain in-flight handlers."""
        if self._ready is not None:
            await self._ready()
        queue = self.queue
        try:
            while not self._stopping.is_set():
                await self._housekeeping()
                free = self.settings.concurrency - len(self._tasks)
                if free <= 0:
                    await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
                    continue
                try:
                    leases = await queue.lease(free, self.settings.visibility)
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

    async def _housekeeping(self) -> None:
        # Best effort: a store that fails here fails the next lease too, which logs it.
        settings, now = self.settings, self.clock.monotonic()
        if now - self._stats_at >= settings.stats_every:
            self._stats_at = now
            with contextlib.suppress(Exception):
                self.metrics.queue_stats = await self.queue.stats()

    async def _sleep(self, seconds: float) -> None:
        # Real time, not the clock: this pause races the stop event, and on a fake clock (whose
        # sleep returns at once) a store that keeps failing would spin the loop.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _drain(self) -> None:
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=self.settings.grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)

    async def aclose(self) -> None:
        """Stop leasing and wait for the pool to drain (in-flight handlers get ``settings.grace`` s)."""
        self._stopping.set()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner

    async def _watch(self, lease: Lease, event: Event, started: float) -> None:
        """While the handlers run: extend the lease every third of the visibility timeout, so it
        neither expires nor redelivers, and warn once when they run past ``slow_after``."""
        clock = self.clock
        every = self.settings.visibility / 3
        beat_at = started + every
        warn_at = started + self.settings.slow_after
        while beat_at < math.inf or warn_at < math.inf:
            await clock.sleep(min(beat_at, warn_at) - clock.monotonic())
            now = clock.monotonic()
            if now >= warn_at:
                warn_at = math.inf
                self._warn_slow(event)
            if now >= beat_at:
                beat_at = now + every if await self._extend(lease) else math.inf

    async def _extend(self, lease: Lease) -> bool:
        """One heartbeat; False once the lease is lost (another worker may have the event)."""
        try:
            if await self.queue.extend(lease, self.settings.visibility):
                return True
        except Exception as exc:
            log.warning("heartbeat for %s failed: %r", lease.message.id, exc)
            return True  # try again at the next beat: the lease may well still be ours
        log.warning("lost the lease on %s/%s; another worker may run it", lease.message.source, lease.message.id)
        return False

    async def _handle(self, lease: Lease) -> None:
        event = Event.from_lease(lease)
        redelivery = self.redeliveries.get(event.source, self.redelivery)
        refused = admit(lease.attempt, redelivery)
        if refused is not None:
            await self._apply(lease, event, refused)
            return
        handlers = self.handlers(event.source, event.type)
        if not handlers:
            log.warning("no handler for %s/%s (event %s); acknowledging it", event.source, event.type, event.id)
            unhandled = Outcome.UNHANDLED
            await self._apply(lease, event, settle(lease.attempt, unhandled, redelivery), outcome=unhandled)
            return
        clock = self.clock
        self.in_flight += 1
        started = clock.monotonic()
        watcher = asyncio.create_task(self._watch(lease, event, started))
        outcome, error = Outcome.SUCCEEDED, ""
        try:
            with correlation_id(event.id):
                for handler in handlers:
                    await _call(handler, event)
        except PermanentFailure as exc:
            outcome, error = Outcome.PERMANENT, describe(exc)
        except Exception as exc:
            outcome, error = Outcome.FAILED, describe(exc)
        finally:
            # Also on cancellation (the pool's grace ran out): the lease is left to expire.
            watcher.cancel()
            self.in_flight -= 1
        elapsed = clock.monotonic() - started
        self.metrics.observe(elapsed)
        if elapsed > self.settings.slow_after:
            self.metrics.slow[self.metrics.label(event.source)] += 1
        decision = settle(lease.attempt, outcome, redelivery, error=error)
        await self._apply(lease, event, decision, outcome=outcome, error=error)

    async def _apply(
        self, lease: Lease, event: Event, decision: Settlement, *, outcome: Outcome | None = None, error: str = ""
    ) -> None:
        """Make the queue call ``decision`` names and count it (``outcome`` is ``None`` when the
        handlers did not run)."""
        queue, metrics, source = self.queue, self.metrics, event.source
        label = metrics.label(source)
        try:
            if isinstance(decision, Ack):
                await queue.ack(lease)
                counted = metrics.processed if outcome is Outcome.SUCCEEDED else metrics.unhandled
                counted[label] += 1
            elif isinstance(decision, RetryIn):
                await queue.nack(lease, delay=decision.delay, error=error)
                metrics.retries[label] += 1
                log.warning(
                    "event %s/%s attempt %d failed, retrying in %.1f s: %s",
                    source, event.id, lease.attempt, decision.delay, error,
                    extra={"interlock": _failure_fields(event, lease.attempt, error)},
                )
            else:
                await queue.dead_letter(lease, error=decision.error)
                metrics.dead_lettered[label] += 1
                log.error(
                    "event %s/%s dead-lettered after %d attempts: %s", source, event.id, lease.attempt, decision.error,
                    extra={"interlock": _failure_fields(event, lease.attempt, decision.error)},
                )
        except Exception as exc:
            # The outcome is lost with the store; the lease will expire and the event redeliver.
            log.error("could not settle event %s/%s: %r", source, event.id, exc)

    def _warn_slow(self, event: Event) -> None:
        log.warning(
            "handler for %s/%s (event %s, attempt %d) is still running after %.1f s",
            event.source, event.type, event.id, event.attempt, self.settings.slow_after,
        )

    def __repr__(self) -> str:
        state = "running" if self._runner is not None and not self._stopping.is_set() else "stopped"
        return f"WorkerPool({state}, concurrency={self.settings.concurrency}, in_flight={self.in_flight})"


def _failure_fields(event: Event, attempt: int, error: str) -> dict[str, object]:
    """A failed delivery's log fields: what the dashboard groups failures by (the error's
    class: ``describe`` writes ``Class: message``)."""
    kind = error.partition(":")[0].strip() or "error"
    return {"source": event.source, "event_type": event.type, "event_id": event.id, "attempt": attempt, "error": kind}


async def _call(handler: Handler, event: Event) -> None:
    if inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(type(handler).__call__):
        await handler(event)  # type: ignore[misc]
        return
    # Sync handlers run in a thread; asyncio.to_thread copies the context, so the
    # correlation id set around the call is visible there too.
    result: Any = await asyncio.to_thread(handler, event)
    if inspect.isawaitable(result):
        await result
