"""``Sync``: an incremental sync job. It holds the job's configuration and what outlives one
poll (the checkpoint store, the DLQ, the ``RecordApplier`` that polls, webhooks and replays
share), runs one ``PollRun`` per poll, on demand (``run_once``) or on a schedule
(``run_forever``), and answers for its state.

One poll is in ``_poll.py``, one record through the ledger in ``_apply.py``, the job's dead
letters and their replay in ``_dead_letters.py``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._clock import SYSTEM_CLOCK, Clock
from .._jsonpath import JsonPath
from .._lifecycle import Resource, opens_once
from .._text import describe
from .._validate import check_count, check_seconds
from ..core.adaptive import AdaptiveInterval, PollBudget
from ..core.backoff import Backoff
from ..errors import ConfigError, PermanentFailure
from ..stores import open_checkpoint
from ..stores.checkpoint import CheckpointStore
from ..stores.queue import DeadLetterFilter, Queue
from ._apply import Outcome, RecordApplier
from ._dead_letters import RECORD, dlq_source, replay_letters
from ._destinations import Destination, as_destination
from ._poll import PollLimits, PollRun, SyncReport
from ._source import SyncRecord, SyncSource, checkpoint_json

if TYPE_CHECKING:
    from ..inbox import Event, Inbox

__all__ = ["Sync"]

log = logging.getLogger("interlock.sync")


class Sync(Resource):
    """An incremental sync job: polls ``source`` for changed records and applies each one to
    ``destination`` through a per-record ledger, saving a checkpoint that never skips a record.

    ::

        crm = interlock.Client("https://api.crm.example/v1")
        erp = interlock.Client("https://erp.internal/api")
        sync = interlock.Sync(
            "crm-customers",
            source=interlock.SyncSource(crm, "/customers", since_param="updated_since"),
            destination=interlock.WriteBack(erp, "/customers/{id}"),
            store="sqlite:///interlock.db",
            every=60,
        )
        async with sync:
            report = await sync.run_once()  # one poll now; returns its SyncReport
            await sync.run_forever()        # a poll every 60 s (sooner on sync.trigger()),
                                            # until cancelled: it never returns

    - ``store``: URL (``sqlite:///...`` or ``postgresql://...``) or a ``CheckpointStore``; holds
      the checkpoint and the ledger. Dead records go to the DLQ of ``inbox`` when given (and
      ``inbox`` workers then replay them through this job), else to a queue at ``dlq`` (a URL
      or ``Queue``; default: the ``store`` URL).
    - ``lookback``: seconds re-read below the checkpoint, for upstream clocks that stamp a change
      with a time earlier than changes already listed; the ledger skips what was applied.
    - ``concurrency``: records applied at once (default: the destination's, 5 for a write-back);
      ``window``: records read ahead and in flight (what a crash may re-apply at most).
    - ``attempts`` / ``backoff``: tries per record before the DLQ (default: 1 for a write-back,
      whose Client retries; 3 otherwise).
    - ``checkpoint_every``: seconds between checkpoint saves during a poll.
    - ``every``: seconds between the polls of ``run_forever``; with ``adaptive=True`` the
      starting interval, halved after a poll that found changes (down to ``min_every``) and
      doubled after one that found none (up to ``max_every``). Each poll is a conditional
      request (``If-None-Match`` with the listing's last ``ETag``), so an unchanged listing
      costs a 304; ``status()["budget"]`` compares the calls per hour now with the fixed
      interval's.
    - ``webhook_record``: JSON path of the record inside a webhook body (``""``: the body).
    """

    def __init__(
        self,
        name: str,
        *,
        source: SyncSource,
        destination: Destination | Callable[..., Any],
        store: str | CheckpointStore = "sqlite:///interlock.db",
        inbox: Inbox | None = None,
        dlq: str | Queue | None = None,
        every: float | None = None,
        adaptive: bool = False,
        min_every: float = 5.0,
        max_every: float = 900.0,
        lookback: float = 0.0,
        concurrency: int | None = None,
        window: int = 1000,
        attempts: int | None = None,
        backoff: Backoff | None = None,
        checkpoint_every: float = 1.0,
        webhook_record: str = "",
        min_trigger_interval: float = 1.0,
        clock: Clock | None = None,
    ) -> None:
        owner = "Sync"
        if not isinstance(name, str) or not name or any(c.isspace() for c in name):
            raise ConfigError(owner, "name", f"must be a non-empty name without spaces, got {name!r}")
        if not isinstance(source, SyncSource):
            raise ConfigError(owner, "source", f"must be an interlock.SyncSource, got {source!r}")
        check_seconds(owner, "every", every, positive=True, optional=True)
        self.adaptive: AdaptiveInterval | None = None
        """The adaptive interval (``adaptive=True``), its ``current`` value the next wait."""
        if adaptive:
            if every is None:
                raise ConfigError(owner, "every", "give every= (the starting interval) with adaptive=True")
            self.adaptive = AdaptiveInterval(every, min_every, max_every)
        self.budget = PollBudget(every) if every is not None else None
        """Calls the scheduled polls spent over the last hour (``status()["budget"]``)."""
        self._etag: tuple[str, str] | None = None
        check_seconds(owner, "lookback", lookback)
        check_count(owner, "window", window)
        check_seconds(owner, "min_trigger_interval", min_trigger_interval)
        check_seconds(owner, "checkpoint_every", checkpoint_every)
        self.name = name
        self.source = source
        self.destination: Destination = as_destination(destination)
        concurrency = concurrency if concurrency is not None else self.destination.default_concurrency
        check_count(owner, "concurrency", concurrency)
        attempts = attempts if attempts is not None else self.destination.default_attempts
        check_count(owner, "attempts", attempts)
        self.concurrency = concurrency
        self.window = max(window, concurrency)
        self.attempts = attempts
        self.backoff = backoff or Backoff(base=0.5, multiplier=2.0, cap=30.0)
        self.every = every
        self.lookback = lookback
        self.checkpoint_every = checkpoint_every
        self.min_trigger_interval = min_trigger_interval
        self.webhook_path = JsonPath.parse(webhook_record, owner=owner, field="webhook_record")
        self.dlq_source = dlq_source(name)
        self._clock = clock or SYSTEM_CLOCK
        self.store: CheckpointStore = (
            open_checkpoint(store, owner=owner, field="store") if isinstance(store, str) else store
        )
        self.inbox = inbox
        self._own_queue = False
        if inbox is None:
            if dlq is None and not isinstance(store, str):
                raise ConfigError(owner, "dlq", "give a DLQ URL or Queue (or inbox=) when store is not a URL")
            if dlq is None or isinstance(dlq, str):
                from ..stores import open_queue

                url = dlq if dlq is not None else store
                assert isinstance(url, str)
                self._queue, self._own_queue = open_queue(url), True
            else:
                self._queue = dlq
        else:
            self._queue = inbox.queue
            inbox.internal_source(self.dlq_source)
            inbox.add_handler(self.dlq_source, "*", self.replay_event)
        self._applier = RecordApplier(
            name,
            self.destination,
            self.store,
            self._queue,
            clock=self._clock,
            concurrency=concurrency,
            attempts=attempts,
            backoff=self.backoff,
            replayed_by_workers=inbox is not None,
        )
        self._opened = False
        self._run_lock: asyncio.Lock | None = None
        self._wake: asyncio.Event | None = None
        self.polls = 0
        """Polls this object ran (in this process; ``status()`` reads what the store holds)."""
        self.last_report: SyncReport | None = None
        """The ``SyncReport`` of this object's last poll."""

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def queue(self) -> Queue:
        """Where dead records go (the inbox's queue when the job has an inbox)."""
        return self._queue

    @opens_once
    async def open(self) -> None:
        """Open the store, the DLQ (or the inbox) and the destination; a no-op once open. Every
        method that needs them opens the job itself."""
        await self.store.open()
        if self.inbox is not None:
            await self.inbox.open()
        elif self._own_queue:
            await self.queue.open()
        await self.destination.open()
        self._opened = True

    async def aclose(self) -> None:
        """Wait for the ledger writes in flight, then close the destination, the store and the
        DLQ queue the job opened from a URL (an inbox, or a ``Queue`` given, stays open)."""
        if not self._opened:
            return
        self._opened = False
        await self._applier.drain()
        await self.destination.aclose()
        if self._own_queue:
            await self.queue.aclose()
        await self.store.aclose()

    # -- polls -----------------------------------------------------------------------------------

    async def run_once(
        self,
        *,
        full: bool = False,
        max_records: int | None = None,
        progress: Callable[[SyncReport], None] | None = None,
        progress_every: float = 0.2,
    ) -> SyncReport:
        """Poll once, now, and return what it did (a ``SyncReport``): everything changed since
        the checkpoint (``full``: since ``start``), until the listing ends or ``max_records``
        were read. Waits for every record read to finish, then saves the checkpoint.
        ``progress(report)`` is called every ``progress_every`` s. A listing that fails (its
        calls exhausted their retries) raises; what finished before stays checkpointed. To
        poll on a schedule, ``run_forever()``."""
        await self.open()
        if self._run_lock is None:
            self._run_lock = asyncio.Lock()
        async with self._run_lock:
            poll = PollRun(
                self.name,
                self.source,
                self._applier,
                self.store,
                clock=self._clock,
                resume=None if full else await self.store.load_checkpoint(self.name),
                limits=PollLimits(self.lookback, self.window, self.checkpoint_every, max_records),
                progress=progress,
                progress_every=progress_every,
                etag=None if full else self._etag,
            )
            report = await poll.run()
            self.polls += 1
            self.last_report = report
            if report.etag is not None and not full:
                self._etag = (report.since, report.etag)
            if self.budget is not None:
                self.budget.polled(self._clock.monotonic(), report.pages, not_modified=report.not_modified)
            return report

    def trigger(self) -> None:
        """Poll now (or as soon as the running poll ends) instead of at the next ``every``."""
        if self._wake is not None:
            self._wake.set()

    async def run_forever(self, *, every: float | None = None) -> None:
        """Poll every ``every`` seconds (default: the job's), forever: it returns only when
        cancelled (run it as a task, or as the last line of a worker process). ``trigger()`` (a
        webhook for the same resource) polls sooner, at most once per ``min_trigger_interval``.
        A failed poll is logged and the next one runs on time. With ``adaptive=True`` (and no
        ``every`` given here, which fixes the interval) each wait is the adaptive interval after
        the poll before. Waits are on the job's ``clock``. For one poll that returns its
        ``SyncReport``, ``run_once()``."""
        interval = every or self.every
        if interval is None or interval <= 0:
            raise ConfigError("Sync", "every", "give every= (seconds between polls) to run on a schedule")
        await self.open()
        self._wake = wake = asyncio.Event()
        clock = self._clock
        try:
            while True:
                wake.clear()
                polled_at = clock.monotonic()
                try:
                    report = await self.run_once()
                    if self.adaptive is not None and not every:
                        interval = self.adaptive.after_poll(report.changes)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.error(
                        "sync %s: poll failed, next one in %.1f s: %s", self.name, interval, describe(exc)
                    )
                await self._wait(wake, interval)
                rest = self.min_trigger_interval - (clock.monotonic() - polled_at)
                if rest > 0:
                    await clock.sleep(rest)
        finally:
            self._wake = None

    async def _wait(self, wake: asyncio.Event, seconds: float) -> None:
        """Sleep ``seconds`` on the job's clock, or until ``trigger()``."""
        sleep = asyncio.ensure_future(self._clock.sleep(seconds))
        woken = asyncio.ensure_future(wake.wait())
        try:
            await asyncio.wait([sleep, woken], return_when=asyncio.FIRST_COMPLETED)
            if sleep.done():
                sleep.result()  # a clock whose sleep failed (or was cancelled) stops the job
        finally:
            for task in (sleep, woken):
                task.cancel()
            await asyncio.gather(sleep, woken, return_exceptions=True)

    # -- single records: webhooks and replays ----------------------------------------------------

    async def on_webhook(self, event: Event) -> None:
        """An Inbox handler: apply the record a webhook carries through the same ledger as the
        poll (a version already applied by either path is skipped), then poll early.

        ``inbox.add_handler("crm", "customer.updated", sync.on_webhook)``. The record is at
        ``webhook_record`` in the body. A record that still fails after the job's attempts is
        dead-lettered as this job's record (source ``sync:NAME``), exactly as a polled one; an
        event without a usable id or timestamp raises ``PermanentFailure`` (straight to the DLQ).
        """
        item = self.webhook_path.find(event.json())
        try:
            record = self.source.record(self.name, item)
        except ValueError as exc:
            raise PermanentFailure(
                f"sync {self.name}: webhook {event.id} carries no usable record: {exc}"
            ) from exc
        await self.open()
        await self._applier.apply(record)
        self.trigger()

    async def apply(self, item: Any) -> Outcome:
        """Apply one item (as the source would list it) through the ledger now; returns
        ``"applied"``, ``"skipped"`` or ``"dead"``."""
        await self.open()
        return await self._applier.apply(self.source.record(self.name, item))

    async def replay_event(self, event: Event) -> None:
        """The Inbox handler for this job's dead letters (source ``sync:NAME``), run when
        ``interlock dlq replay`` sends one back: applied unless the same or a newer version was
        applied meanwhile, so replaying twice applies once."""
        if event.type != RECORD:
            raise PermanentFailure(
                f"dead letter {event.id} is not a record ({event.type}); fix the source and purge it"
            )
        await self.open()
        await self._applier.apply(SyncRecord.from_json(self.name, event.body), replay=True)

    async def replay_dead_letters(self, *, limit: int = 1000) -> dict[str, int]:
        """Re-apply this job's dead records directly (no inbox workers needed): each one
        applied (or found already applied) is purged from the DLQ; one failing again stays."""
        await self.open()
        return await replay_letters(
            self.queue, self.name, lambda record: self._applier.apply(record, replay=True), limit=limit
        )

    # -- state -----------------------------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        """What is stored about the job, for the CLI and dashboards: its checkpoint (as
        ``checkpoint_json`` writes it: when it was last saved says when a poll last made
        progress), ledger counts and dead letters waiting. All of it read from the store, so
        another process (``interlock sync status``) sees the same; ``polls`` and
        ``last_report`` are this process's own."""
        await self.open()
        checkpoint = await self.store.load_checkpoint(self.name)
        status: dict[str, Any] = {
            "job": self.name,
            "checkpoint": checkpoint_json(checkpoint),
            "ledger": await self.store.counts(self.name),
            "dead_letters": await self.queue.count_dead(DeadLetterFilter(source=self.dlq_source)),
        }
        if self.budget is not None:
            status["budget"] = self.budget_report()
        return status

    def budget_report(self) -> dict[str, Any] | None:
        """This process's poll budget: the interval now, calls per hour at it and at the fixed
        ``every``, the calls made in the last hour, the polls answered 304, and whether the
        interval adapts (None without ``every``)."""
        if self.budget is None:
            return None
        interval = self.adaptive.current if self.adaptive is not None else self.budget.every
        return {"adaptive": self.adaptive is not None, **self.budget.report(self._clock.monotonic(), interval)}

    async def reset(self) -> None:
        """Forget the checkpoint and the ledger: the next poll starts from ``start``."""
        await self.open()
        await self.store.reset(self.name)

    def __repr__(self) -> str:
        return (
            f"<Sync {self.name} {self.source.client.name}{self.source.path} -> {self.destination!r} "
            f"concurrency={self.concurrency} polls={self.polls}>"
        )
