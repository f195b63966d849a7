"""``PollRun``: one poll of a sync job, and ``SyncReport``, what it did.

::

    checkpoint --since--> client.paginate(...) --item--> Watermark.emit
                                               --task--> RecordApplier.apply (<= window in flight)
                                                         -> Watermark.complete -> checkpoint (every 1 s)

Records are applied as soon as they are read (the paginator fetches the next page meanwhile),
up to ``window`` records in flight. A record the applier dead-letters is complete for the
watermark, so it never holds back the checkpoint of the others. The checkpoint saved is always
the watermark: every record at or below it is done, so a crash loses nothing and re-applies at
most the window.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from .._clock import Clock
from ..core.checkpoint import FlushSchedule, Position, Watermark
from ..stores.checkpoint import Checkpoint, CheckpointStore
from ._apply import Outcome, RecordApplier
from ._source import SyncRecord, SyncSource, format_time
from ._tracing import PageSpans, poll_span, write_span

__all__ = ["PollLimits", "PollRun", "SyncReport"]

log = logging.getLogger("interlock.sync")


@dataclass(slots=True)
class SyncReport:
    """What one poll did. ``rate`` is records done per second."""

    job: str
    """The job's name."""
    since: str = ""
    """The ``since`` value sent upstream, as sent (the checkpoint less the lookback)."""
    read: int = 0
    """Items listed by the source so far."""
    applied: int = 0
    """Records the destination took."""
    skipped: int = 0
    """Records the ledger already had at this version (or a newer one)."""
    dead: int = 0
    """Records dead-lettered after their attempts."""
    late: int = 0
    """Records listed at or below the resume position (lookback, inclusive boundary)."""
    invalid: int = 0
    """Items without a usable id or timestamp, dead-lettered for a human."""
    pages: int = 0
    """Pages fetched."""
    elapsed: float = 0.0
    """Seconds since the poll started."""
    checkpoint: Checkpoint | None = None
    """The last checkpoint saved (or the one the poll resumed from)."""
    stop_reason: str | None = None
    """Why the listing ended, as the paginator says (``"end"``...), or ``"max_records"``."""
    in_flight: int = 0
    """Records read and not yet done (0 once the poll ended)."""
    not_modified: bool = False
    """The listing answered 304 to its conditional request: nothing changed, one cheap call."""
    etag: str | None = None
    """The first page's ``ETag``, sent as ``If-None-Match`` by the next poll of the same ``since``."""

    @property
    def changes(self) -> int:
        """Records this poll found changed: applied, dead-lettered or unusable (not those the
        ledger already had, nor those re-read below the checkpoint)."""
        return self.applied + self.dead + self.invalid

    @property
    def done(self) -> int:
        """Records whose outcome is durable: applied, skipped or dead."""
        return self.applied + self.skipped + self.dead

    @property
    def rate(self) -> float:
        """Records done per second of the poll so far."""
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    def count(self, outcome: Outcome) -> None:
        """Count one record's outcome."""
        if outcome == "applied":
            self.applied += 1
        elif outcome == "skipped":
            self.skipped += 1
        else:
            self.dead += 1

    def __str__(self) -> str:
        where = f" checkpoint={format_time(self.checkpoint.updated_at)}" if self.checkpoint else ""
        return (
            f"sync {self.job}: read {self.read}, applied {self.applied}, skipped {self.skipped}, "
            f"dead {self.dead} in {self.elapsed:.2f}s ({self.rate:.0f}/s){where}"
        )


class PollLimits(NamedTuple):
    """The bounds of one poll."""

    lookback: float
    """Seconds re-read below the checkpoint."""
    window: int
    """Records read ahead and in flight at most (what a crash may re-apply)."""
    checkpoint_every: float
    """Seconds between checkpoint saves."""
    max_records: int | None = None
    """Stop after reading this many items (None: at the end of the listing)."""


class PollRun:
    """One poll of job ``job``: list ``source`` since ``resume`` (less the lookback; the source's
    start when None), apply each record with ``applier`` (unusable items: its DLQ), keep at
    most ``limits.window`` records in flight, and save the watermark to ``store`` every
    ``limits.checkpoint_every`` s and at the end.

    Created by ``Sync.run_once`` for one poll, then ``await poll.run()``; ``report`` fills in as
    the poll goes (``progress(report)`` every ``progress_every`` s).
    """

    def __init__(
        self,
        job: str,
        source: SyncSource,
        applier: RecordApplier,
        store: CheckpointStore,
        *,
        clock: Clock,
        resume: Checkpoint | None,
        limits: PollLimits,
        progress: Callable[[SyncReport], None] | None = None,
        progress_every: float = 0.2,
        etag: tuple[str, str] | None = None,
    ) -> None:
        # The listing: what to read, from where.
        self.job = job
        self.source = source
        self.limits = limits
        self.start = Position.of(resume.updated_at, resume.record_id) if resume else None
        lookback = round(limits.lookback * 1_000_000)
        since = source.start_micros if resume is None else max(0, resume.updated_at - lookback)
        self.report = SyncReport(job, since=format_time(since, source.time_format), checkpoint=resume)
        # A conditional listing (RFC 9110 section 13.1.2): the ETag the last poll of the same
        # ``since`` got; an unchanged listing then costs a 304 without a body.
        self._if_none_match = etag[1] if etag is not None and etag[0] == self.report.since else None
        # The records: applied up to ``window`` at a time.
        self.applier = applier
        self._window = asyncio.Semaphore(limits.window)
        self._tasks: set[asyncio.Task[None]] = set()
        # The checkpoint: the watermark, saved on a schedule.
        self.watermark: Watermark[Position] = Watermark(self.start)
        self.store = store
        self.schedule = FlushSchedule(every=limits.checkpoint_every)
        self._saving: asyncio.Task[None] | None = None
        # The clock, and the ticker that reports progress and saves while no record completes.
        self._clock = clock
        self._started = clock.monotonic()
        self.progress = progress
        every = limits.checkpoint_every
        self._tick_every = min(progress_every, every) if progress else every
        self._failed: list[BaseException] = []
        """Why the poll must stop: the ledger, the DLQ or a checkpoint save failed."""

    async def run(self) -> SyncReport:
        """Poll to the end of the listing (or ``max_records``), wait for every record read, save
        the checkpoint, tell ``progress`` and the log, and return the report. When the source
        fails (or the poll is cancelled), what is in flight finishes and the checkpoint covers
        it before the error propagates. Call it once: a ``PollRun`` is one poll."""
        with poll_span(self.job) as span:
            report = await self._run()
            if span is not None:
                span.set_attributes(
                    {f"interlock.sync.{k}": getattr(report, k) for k in ("read", "applied", "skipped", "dead", "pages")}
                )
            return report

    async def _run(self) -> SyncReport:
        tick = asyncio.ensure_future(self._tick())
        try:
            await self._list()
            if self._tasks:
                await asyncio.gather(*self._tasks)
        except BaseException:
            with contextlib.suppress(BaseException):
                await asyncio.gather(*self._tasks)
            with contextlib.suppress(Exception):
                await self._saved()
                await self._save()
            raise
        finally:
            tick.cancel()
            with contextlib.suppress(BaseException):
                await tick
        await self._saved()
        if self._failed:
            raise self._failed[0]
        if self.watermark.position is not None and self.watermark.position != self.start:
            await self._save()
        report = self.report
        report.late = self.watermark.late
        report.in_flight = 0
        report.elapsed = self._clock.monotonic() - self._started
        if self.progress is not None:
            self.progress(report)
        log.info(
            "%s", report, extra={"interlock": {"sync": self.job, "read": report.read, "dead": report.dead}}
        )
        return report

    # -- listing and dispatch --------------------------------------------------------------------

    async def _list(self) -> None:
        source, report = self.source, self.report
        params = dict(source.params)
        params[source.since_param] = report.since
        # Nobody waits on a poll: the listing's calls wait out an open breaker and the rate
        # limit within the background profile's deadline (unless the client set its own).
        options: dict[str, Any] = {"id_field": source.id_field(), "profile": "background", **source.paginate}
        if self._if_none_match is not None:
            options["headers"] = {**options.get("headers", {}), "If-None-Match": self._if_none_match}
        paginator = source.client.paginate(
            source.path,
            params=params,
            style=source.style,
            items=source.items,
            page_size=source.page_size,
            **options,
        )
        pages = PageSpans(self.job)
        async with paginator:
            try:
                await self._read(paginator, pages)
            finally:
                pages.close()
            report.stop_reason = paginator.stop_reason or ("max_records" if self.limits.max_records else None)
            report.pages = paginator.pages
            report.not_modified = paginator.stop_reason == "not_modified"
            report.etag = paginator.first_etag

    async def _read(self, paginator: Any, pages: PageSpans) -> None:
        """Dispatch each item listed, in its page's span."""
        source, report = self.source, self.report
        async for item in paginator:
            if self._failed:
                break
            report.read += 1
            report.pages = paginator.pages
            try:
                record = source.record(self.job, item)
            except ValueError as exc:
                await self.applier.dead_letter_item(item, str(exc))
                report.invalid += 1
                continue
            with pages.enter(paginator.pages):
                await self._dispatch(record)
            if self.limits.max_records is not None and report.read >= self.limits.max_records:
                break

    async def _dispatch(self, record: SyncRecord) -> None:
        """Start applying ``record`` once the window has room."""
        await self._window.acquire()
        tracked = self.watermark.emit(record.position)
        task = asyncio.ensure_future(self._apply(record, tracked))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _apply(self, record: SyncRecord, tracked: bool) -> None:
        try:
            with write_span(self.job, record) as span:
                outcome = await self.applier.apply(record)
                if span is not None:
                    span.set_attribute("interlock.sync.outcome", outcome)
        except Exception as exc:  # the ledger or DLQ failed: stop, keep the checkpoint behind
            self._failed.append(exc)
            return
        finally:
            self._window.release()
        self.report.count(outcome)
        if tracked and self.watermark.complete(record.position):
            self.schedule.moved()
            self._maybe_save()

    # -- the checkpoint --------------------------------------------------------------------------

    async def _save(self) -> None:
        position = self.watermark.position
        if position is None:
            return
        self.schedule.saved(self._clock.monotonic())
        checkpoint = Checkpoint(position.updated_at, position.record_id, self._clock.time())
        await self.store.save_checkpoint(self.job, checkpoint)
        self.report.checkpoint = checkpoint

    def _maybe_save(self) -> None:
        """Start a save in the background when one is due and none is running."""
        if self._saving is None and self.schedule.due(self._clock.monotonic()):
            self._saving = asyncio.ensure_future(self._save())
            self._saving.add_done_callback(self._on_saved)

    def _on_saved(self, task: asyncio.Task[None]) -> None:
        if self._saving is not task:
            return  # settled already, by ``_saved``
        self._saving = None
        if not task.cancelled() and task.exception() is not None:
            self._failed.append(task.exception())  # type: ignore[arg-type]

    async def _saved(self) -> None:
        """Wait for the background save, if one is running (a failure lands in ``_failed``).

        A save that has just finished may not have had its done callback yet: awaiting a done
        task does not yield to the loop, so waiting until the callback clears ``_saving`` spun
        the event loop forever (a CI run hung here). The save is settled here instead."""
        while (saving := self._saving) is not None:
            if not saving.done():
                await asyncio.wait([saving])
            self._on_saved(saving)

    async def _tick(self) -> None:
        """Save when due even while no record completes, and report progress."""
        while True:
            await asyncio.sleep(self._tick_every)
            self.report.elapsed = self._clock.monotonic() - self._started
            self.report.in_flight = self.watermark.in_flight
            self._maybe_save()
            if self.progress is not None:
                self.progress(self.report)

    def __repr__(self) -> str:
        return f"<PollRun {self.job} since={self.report.since} {self.watermark!r}>"
