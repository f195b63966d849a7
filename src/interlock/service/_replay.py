"""Bulk DLQ replay as a job: replays the matching dead letters a page at a time, reports its
progress, and can be cancelled between pages (what was replayed stays replayed).

Bounded: one page (``PAGE``) in memory at a time, at most ``MAX_RUNNING`` jobs at once, and the
``KEPT`` most recent jobs remembered for their status.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from ..inbox import DeadLetters

__all__ = ["KEPT", "MAX_RUNNING", "PAGE", "ReplayJob", "ReplayJobs"]

PAGE = 100
"""Dead letters replayed per step (one queue call each); cancellation takes effect between pages."""
MAX_RUNNING = 4
"""Replay jobs running at once; starting another is a 409."""
KEPT = 50
"""Finished jobs remembered (the oldest forgotten first)."""


@dataclass
class ReplayJob:
    """One bulk replay: its filter, how many matched when it started, how many it has replayed."""

    id: str
    match: dict[str, Any]
    total: int
    replayed: int = 0
    state: str = "running"
    """``running``, ``done``, ``cancelled`` or ``failed``."""
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    error: str | None = None
    _cancel: bool = field(default=False, repr=False)
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        """The job as the admin API shows it."""
        return {
            "id": self.id,
            "filter": self.match,
            "state": self.state,
            "total": self.total,
            "replayed": self.replayed,
            "progress": round(self.replayed / self.total, 4) if self.total else 1.0,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "error": self.error,
        }


class ReplayJobs:
    """The replay jobs of one DLQ (``dlq``)."""

    def __init__(self, dlq: DeadLetters) -> None:
        self._dlq = dlq
        self._jobs: OrderedDict[str, ReplayJob] = OrderedDict()

    @property
    def running(self) -> int:
        """Jobs still running."""
        return sum(1 for j in self._jobs.values() if j.state == "running")

    async def start(self, match: dict[str, Any]) -> ReplayJob:
        """Start replaying what ``match`` selects; raises ``RuntimeError`` past ``MAX_RUNNING``."""
        if self.running >= MAX_RUNNING:
            raise RuntimeError(f"{MAX_RUNNING} replay jobs are running already; wait for one or cancel it")
        total = await self._dlq.count(**match)
        job = ReplayJob(uuid.uuid4().hex[:16], dict(match), total)
        self._jobs[job.id] = job
        while len(self._jobs) > KEPT:
            oldest = next(iter(self._jobs.values()))
            if oldest.state == "running":
                break
            self._jobs.popitem(last=False)
        job._task = asyncio.create_task(self._run(job), name=f"interlock-replay-{job.id}")
        return job

    async def _run(self, job: ReplayJob) -> None:
        try:
            while not job._cancel:
                page = await self._dlq.list(limit=PAGE, **job.match)
                if not page:
                    break
                ids = [d.message.id for d in page]
                moved = await self._dlq.replay_where(**{**job.match, "ids": ids})
                job.replayed += moved
                if moved == 0:  # what is listed cannot be moved: stop rather than spin
                    break
                await asyncio.sleep(0)
            job.state = "cancelled" if job._cancel else "done"
        except Exception as exc:
            job.state, job.error = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            job.finished_at = time.time()

    def get(self, job_id: str) -> ReplayJob | None:
        """The job with this id, if remembered."""
        return self._jobs.get(job_id)

    def all(self) -> list[ReplayJob]:
        """Every remembered job, newest first."""
        return list(reversed(self._jobs.values()))

    async def cancel(self, job_id: str) -> ReplayJob | None:
        """Stop the job after its current page; the job (None if unknown)."""
        job = self._jobs.get(job_id)
        if job is not None and job.state == "running":
            job._cancel = True
            if job._task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await job._task
        return job

    async def aclose(self) -> None:
        """Cancel every running job (at its next page)."""
        for job in list(self._jobs.values()):
            await self.cancel(job.id)
