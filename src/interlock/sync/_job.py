"""``Sync``: poll an upstream for changed records, apply them in parallel, checkpoint safely, and
merge webhooks into the same stream.

One poll (``run_once``)::

    checkpoint --since--> client.paginate(...) --item--> Watermark.emit
                                               --task--> ledger lookup (grouped)
                                                         -> skip, or destination.apply (<= concurrency)
                                                         -> ledger outcome (grouped, durable)
                                                         -> Watermark.complete -> checkpoint (every 1 s)

Records are applied as soon as they are read (the paginator fetches the next page meanwhile),
up to ``window`` records in flight. A record that still fails after its attempts is put on the
DLQ and marked dead in the ledger; it is complete for the watermark, so it never holds back the
checkpoint of the others. Webhooks (``on_webhook``) go through the same ledger: a version
already applied, by either path, is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._clock import SYSTEM_CLOCK, Clock
from .._group import GroupCall
from .._jsonpath import JsonPath
from .._text import describe
from ..core.backoff import Backoff
from ..core.checkpoint import APPLIED, DEAD, FlushSchedule, Position, Watermark, ledger_decision
from ..errors import ConfigError, PermanentFailure
from ..stores.checkpoint import Checkpoint, CheckpointStore, LedgerEntry
from ..stores.queue import Failure, Message, Queue
from ._destinations import Destination, as_destination
from ._source import SyncRecord, SyncSource, format_time

if TYPE_CHECKING:
    from ..inbox import Event, Inbox

__all__ = ["Sync", "SyncReport"]

log = logging.getLogger("interlock.sync")



@dataclass(slots=True)
class SyncReport:
    """What one poll did. ``rate`` is records read per second."""

    job: str
    since: str = ""
    read: int = 0
    applied: int = 0
    skipped: int = 0
    dead: int = 0
    late: int = 0
    invalid: int = 0
    pages: int = 0
    elapsed: float = 0.0
    checkpoint: Checkpoint | None = None
    stop_reason: str | None = None
    in_flight: int = 0

    @property
    def done(self) -> int:
        return self.applied + self.skipped + self.dead

    @property
    def rate(self) -> float:
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    def __str__(self) -> str:
        where = f" checkpoint={format_time(self.checkpoint.updated_at)}" if self.checkpoint else ""
        return (
            f"sync {self.job}: read {self.read}, applied {self.applied}, skipped {self.skipped}, "
            f"dead {self.dead} in {self.elapsed:.2f}s ({self.rate:.0f}/s){where}"
        )


class Sync:
    """An incremental sync job. See the module docstring for one poll's pipeline.

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
            await sync.run()          # every 60 s, sooner when sync.trigger() is called

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
        if every is not None and not every > 0:
            raise ConfigError(owner, "every", f"must be > 0 seconds or None, got {every!r}")
        if not lookback >= 0:
            raise ConfigError(owner, "lookback", f"must be >= 0 seconds, got {lookback!r}")
        if not isinstance(window, int) or window < 1:
            raise ConfigError(owner, "window", f"must be an integer >= 1, got {window!r}")
        if not min_trigger_interval >= 0:
            raise ConfigError(
                owner, "min_trigger_interval", f"must be >= 0 seconds, got {min_trigger_interval!r}"
            )
        self.name = name
        self.source = source
        self.destination: Destination = as_destination(destination)
        concurrency = concurrency if concurrency is not None else self.destination.default_concurrency
        if not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigError(owner, "concurrency", f"must be an integer >= 1, got {concurrency!r}")
        attempts = attempts if attempts is not None else self.destination.default_attempts
        if not isinstance(attempts, int) or attempts < 1:
            raise ConfigError(owner, "attempts", f"must be an integer >= 1, got {attempts!r}")
        self.concurrency = concurrency
        self.window = max(window, concurrency)
        self.attempts = attempts
        self.backoff = backoff or Backoff(base=0.5, multiplier=2.0, cap=30.0)
        self.every = every
        self.lookback = lookback
        self.checkpoint_every = checkpoint_every
        self.min_trigger_interval = min_trigger_interval
        self.webhook_path = JsonPath.parse(webhook_record, owner=owner, field="webhook_record")
        self.dlq_source = f"sync:{name}"
        self._clock = clock or SYSTEM_CLOCK
        self.store: CheckpointStore = _open_store(store) if isinstance(store, str) else store
        self.inbox = inbox
        self._queue: Queue | None = None
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
            inbox.add_handler(self.dlq_source, "*", self.replay_event)
        self._lookup: GroupCall[str, LedgerEntry | None] = GroupCall(self._lookup_batch)
        self._record: GroupCall[LedgerEntry, None] = GroupCall(self._record_batch)
        self._slots = asyncio.Semaphore(concurrency)
        self._busy: dict[str, asyncio.Future[None]] = {}
        self._opened = False
        self._run_lock: asyncio.Lock | None = None
        self._wake: asyncio.Event | None = None
        self.polls = 0
        self.last_report: SyncReport | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def queue(self) -> Queue:
        """Where dead records go (the inbox's queue when the job has an inbox)."""
        if self.inbox is not None:
            return self.inbox.queue
        assert self._queue is not None
        return self._queue

    async def open(self) -> None:
        if self._opened:
            return
        await self.store.open()
        if self.inbox is not None:
            await self.inbox.open()
        elif self._own_queue:
            await self.queue.open()
        await self.destination.open()
        self._opened = True

    async def aclose(self) -> None:
        if not self._opened:
            return
        self._opened = False
        await self._record.drain()
        await self.destination.aclose()
        if self._own_queue:
            await self.queue.aclose()
        await self.store.aclose()

    async def __aenter__(self) -> Sync:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- ledger (grouped) ------------------------------------------------------------------------

    async def _lookup_batch(self, ids: list[str]) -> list[LedgerEntry | None]:
        found = await self.store.lookup(self.name, ids)
        return [found.get(i) for i in ids]

    async def _record_batch(self, entries: list[LedgerEntry]) -> list[None]:
        await self.store.record(self.name, entries)
        return [None] * len(entries)

    # -- one record ------------------------------------------------------------------------------

    async def _process(self, record: SyncRecord, report: SyncReport | None, *, replay: bool = False) -> str:
        """Apply one record through the ledger. Returns "applied", "skipped" or "dead"; raises
        instead of dead-lettering when ``replay`` (the inbox's redelivery takes over)."""
        rid = record.id
        # One record at a time per id, across the poll, webhooks and replays: the second
        # waits and then finds the first one's outcome in the ledger.
        while (other := self._busy.get(rid)) is not None:
            await asyncio.shield(other)
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._busy[rid] = mine
        try:
            entry = await self._lookup(rid)
            if ledger_decision(entry.state if entry else None, record.version, replay=replay) == "skip":
                if report is not None:
                    report.skipped += 1
                return "skipped"
            failures: list[Failure] = []
            tracking: str | None = None
            calls = 0
            attempt = 0
            ok = False
            while not ok:
                attempt += 1
                try:
                    async with self._slots:
                        tracking, used = await self.destination.apply(record)
                    calls += used
                    ok = True
                except Exception as exc:
                    calls += getattr(exc, "attempts", 0) or 1
                    tracking = getattr(exc, "tracking_id", None) or tracking
                    failures.append(Failure(attempt, self._clock.time(), describe(exc)))
                    if attempt >= self.attempts:
                        break
                    await self._clock.sleep(self.backoff.delay(attempt))
            now = self._clock.time()
            if ok:
                await self._record(LedgerEntry(rid, record.version, APPLIED, calls, tracking, None, now))
                if report is not None:
                    report.applied += 1
                return "applied"
            error = failures[-1].error
            if replay:
                await self._record(LedgerEntry(rid, record.version, DEAD, calls, tracking, error, now))
                # The job already spent its attempts (and the Client its retries): straight back
                # to the DLQ rather than through the inbox's redelivery schedule.
                raise PermanentFailure(
                    f"sync {self.name}: record {rid} version {record.version} failed again: {error}"
                )
            await self._dead_letter(record, failures, tracking)
            await self._record(LedgerEntry(rid, record.version, DEAD, calls, tracking, error, now))
            if report is not None:
                report.dead += 1
            log.error(
                "sync %s: record %s (version %s) dead-lettered after %d attempt(s): %s",
                self.name,
                rid,
                record.version,
                attempt,
                error,
                extra={"interlock": {"sync": self.name, "record": rid, "tracking_id": tracking}},
            )
            return "dead"
        finally:
            del self._busy[rid]
            mine.set_result(None)

    async def _dead_letter(
        self, record: SyncRecord, failures: Sequence[Failure], tracking: str | None
    ) -> None:
        headers = {"x-interlock-sync": self.name, "x-interlock-version": str(record.version)}
        if tracking:
            headers["x-interlock-tracking-id"] = tracking
        message = Message(
            source=self.dlq_source,
            id=f"{record.id}@{record.version}",
            type="record",
            body=record.to_json(),
            headers=headers,
            received_at=self._clock.time(),
        )
        await self.queue.put_dead(message, failures=failures)

    async def _dead_letter_item(self, item: Any, error: str, report: SyncReport) -> None:
        """An item the job cannot key (no id or timestamp): to the DLQ, for a human."""
        body = json.dumps(item, separators=(",", ":"), default=str).encode()
        message = Message(
            source=self.dlq_source,
            id=f"invalid:{hashlib.sha256(body).hexdigest()[:16]}",
            type="invalid",
            body=body,
            headers={"x-interlock-sync": self.name},
            received_at=self._clock.time(),
        )
        await self.queue.put_dead(message, failures=[Failure(1, self._clock.time(), error)])
        report.invalid += 1
        log.error("sync %s: unusable item dead-lettered: %s", self.name, error)

    # -- one poll --------------------------------------------------------------------------------

    async def run_once(
        self,
        *,
        full: bool = False,
        max_records: int | None = None,
        progress: Callable[[SyncReport], None] | None = None,
        progress_every: float = 0.2,
    ) -> SyncReport:
        """Poll once: everything changed since the checkpoint (``full``: since ``start``), until
        the listing ends or ``max_records`` were read. Waits for every record read to finish,
        then saves the checkpoint. ``progress(report)`` is called every ``progress_every`` s."""
        await self.open()
        if self._run_lock is None:
            self._run_lock = asyncio.Lock()
        async with self._run_lock:
            return await self._poll(full, max_records, progress, progress_every)

    async def _poll(
        self,
        full: bool,
        max_records: int | None,
        progress: Callable[[SyncReport], None] | None,
        progress_every: float,
    ) -> SyncReport:
        clock, source = self._clock, self.source
        started = clock.monotonic()
        saved = None if full else await self.store.load_checkpoint(self.name)
        start_position = Position.of(saved.updated_at, saved.record_id) if saved else None
        if saved is None:
            since = source.start_micros
        else:
            since = max(0, saved.updated_at - round(self.lookback * 1_000_000))
        report = SyncReport(self.name, since=format_time(since, source.time_format), checkpoint=saved)
        watermark: Watermark[Position] = Watermark(start_position)
        schedule = FlushSchedule(every=self.checkpoint_every)
        params = dict(source.params)
        params[source.since_param] = report.since
        options: dict[str, Any] = {"id_field": source.id_field(), **source.paginate}
        paginator = source.client.paginate(
            source.path,
            params=params,
            style=source.style,
            items=source.items,
            page_size=source.page_size,
            **options,
        )
        window = asyncio.Semaphore(self.window)
        tasks: set[asyncio.Task[None]] = set()
        saving: asyncio.Task[None] | None = None
        failed: list[BaseException] = []

        async def save() -> None:
            position = watermark.position
            if position is None:
                return
            schedule.saved(clock.monotonic())
            checkpoint = Checkpoint(position.updated_at, position.record_id, clock.time())
            await self.store.save_checkpoint(self.name, checkpoint)
            report.checkpoint = checkpoint

        def maybe_save() -> None:
            nonlocal saving
            if saving is None and schedule.due(clock.monotonic()):
                saving = asyncio.ensure_future(save())

                def saved_callback(task: asyncio.Task[None]) -> None:
                    nonlocal saving
                    saving = None
                    if not task.cancelled() and task.exception() is not None:
                        failed.append(task.exception())  # type: ignore[arg-type]

                saving.add_done_callback(saved_callback)

        async def one(record: SyncRecord, tracked: bool) -> None:
            try:
                await self._process(record, report)
            except Exception as exc:  # the ledger or DLQ failed: stop, keep the checkpoint behind
                failed.append(exc)
                return
            finally:
                window.release()
            if tracked and watermark.complete(record.position):
                schedule.moved()
                maybe_save()

        async def ticker() -> None:
            while True:
                await asyncio.sleep(
                    min(progress_every, self.checkpoint_every) if progress else self.checkpoint_every
                )
                report.elapsed = clock.monotonic() - started
                report.in_flight = watermark.in_flight
                maybe_save()
                if progress is not None:
                    progress(report)

        tick = asyncio.ensure_future(ticker())
        try:
            async with paginator:
                async for item in paginator:
                    if failed:
                        break
                    report.read += 1
                    report.pages = paginator.pages
                    try:
                        record = source.record(self.name, item)
                    except ValueError as exc:
                        await self._dead_letter_item(item, str(exc), report)
                        continue
                    await window.acquire()
                    tracked = watermark.emit(record.position)
                    task = asyncio.ensure_future(one(record, tracked))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                    if max_records is not None and report.read >= max_records:
                        break
                report.stop_reason = paginator.stop_reason or ("max_records" if max_records else None)
                report.pages = paginator.pages
            if tasks:
                await asyncio.gather(*tasks)
        except BaseException:
            # The source failed (or we were cancelled): let what is in flight finish, save how
            # far every record is done, then re-raise.
            with contextlib.suppress(BaseException):
                await asyncio.gather(*tasks)
            with contextlib.suppress(Exception):
                while saving is not None:
                    await asyncio.shield(saving)
                await save()
            raise
        finally:
            tick.cancel()
            with contextlib.suppress(BaseException):
                await tick
        while saving is not None:
            await asyncio.shield(saving)
        if failed:
            raise failed[0]
        if watermark.position is not None and watermark.position != start_position:
            await save()
        report.late = watermark.late
        report.in_flight = 0
        report.elapsed = clock.monotonic() - started
        self.polls += 1
        self.last_report = report
        if progress is not None:
            progress(report)
        log.info(
            "%s", report, extra={"interlock": {"sync": self.name, "read": report.read, "dead": report.dead}}
        )
        return report

    # -- scheduling ------------------------------------------------------------------------------

    def trigger(self) -> None:
        """Poll now (or as soon as the running poll ends) instead of at the next ``every``."""
        if self._wake is not None:
            self._wake.set()

    async def run(self, *, every: float | None = None) -> None:
        """Poll every ``every`` seconds (default: the job's) until cancelled; ``trigger()`` (a
        webhook for the same resource) polls sooner, at most once per ``min_trigger_interval``."""
        interval = every or self.every
        if interval is None or interval <= 0:
            raise ConfigError("Sync", "every", "give every= (seconds between polls) to run on a schedule")
        await self.open()
        self._wake = wake = asyncio.Event()
        try:
            while True:
                wake.clear()
                polled_at = self._clock.monotonic()
                try:
                    await self.run_once()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.error(
                        "sync %s: poll failed, next one in %.1f s: %s", self.name, interval, describe(exc)
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), interval)
                rest = self.min_trigger_interval - (self._clock.monotonic() - polled_at)
                if rest > 0:
                    await asyncio.sleep(rest)
        finally:
            self._wake = None

    # -- webhooks and replays --------------------------------------------------------------------

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
        await self._process(record, None)
        self.trigger()

    async def apply(self, item: Any) -> str:
        """Apply one item (as the source would list it) through the ledger now; returns
        ``"applied"``, ``"skipped"`` or ``"dead"``."""
        await self.open()
        return await self._process(self.source.record(self.name, item), None)

    async def replay_event(self, event: Event) -> None:
        """The Inbox handler for this job's dead letters (source ``sync:NAME``), run when
        ``interlock dlq replay`` sends one back: applied unless the same or a newer version was
        applied meanwhile, so replaying twice applies once."""
        if event.type != "record":
            raise PermanentFailure(
                f"dead letter {event.id} is not a record ({event.type}); fix the source and purge it"
            )
        await self.open()
        await self._process(SyncRecord.from_json(self.name, event.body), None, replay=True)

    async def replay_dead_letters(self, *, limit: int = 1000) -> dict[str, int]:
        """Re-apply this job's dead records directly (no inbox workers needed): each one
        applied (or found already applied) is purged from the DLQ; one failing again stays."""
        from ..stores.queue import DeadLetterFilter

        await self.open()
        queue = self.queue
        letters = await queue.dead_letters(
            DeadLetterFilter(source=self.dlq_source, type="record"), limit=limit
        )
        outcome = {"applied": 0, "skipped": 0, "failed": 0}
        for letter in letters:
            record = SyncRecord.from_json(self.name, letter.message.body)
            try:
                result = await self._process(record, None, replay=True)
            except Exception as exc:
                outcome["failed"] += 1
                log.warning("sync %s: replay of %s failed again: %s", self.name, letter.message.id, exc)
                continue
            outcome[result] += 1
            await queue.purge(DeadLetterFilter(source=self.dlq_source, ids=[letter.message.id]))
        return outcome

    # -- observability ---------------------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        """Checkpoint, ledger counts and dead letters waiting, for the CLI and dashboards."""
        from ..stores.queue import DeadLetterFilter

        await self.open()
        checkpoint = await self.store.load_checkpoint(self.name)
        return {
            "job": self.name,
            "checkpoint": None
            if checkpoint is None
            else {
                "updated_at": format_time(checkpoint.updated_at),
                "record_id": checkpoint.record_id,
                "saved_at": checkpoint.saved_at,
            },
            "ledger": await self.store.counts(self.name),
            "dead_letters": await self.queue.count_dead(DeadLetterFilter(source=self.dlq_source)),
            "polls": self.polls,
        }

    async def reset(self) -> None:
        """Forget the checkpoint and the ledger: the next poll starts from ``start``."""
        await self.open()
        await self.store.reset(self.name)

    def __repr__(self) -> str:
        return (
            f"<Sync {self.name} {self.source.client.name}{self.source.path} -> {self.destination!r} "
            f"concurrency={self.concurrency} polls={self.polls}>"
        )


def _open_store(url: str) -> CheckpointStore:
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "sqlite" or not scheme:
        from ..stores.checkpoint_sqlite import SQLiteCheckpointStore

        return SQLiteCheckpointStore(url)
    if scheme in ("postgres", "postgresql"):
        from ..stores.checkpoint_postgres import PostgresCheckpointStore

        return PostgresCheckpointStore(url)
    raise ConfigError(
        "Sync", "store", f"unsupported store URL scheme {scheme!r}: use sqlite:/// or postgresql://"
    )
