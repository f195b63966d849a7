"""Bulk DLQ replay as a job with progress: the dashboard's progress bar and cancel button.

A replay by filter can touch thousands of dead letters; one ``replay_where`` call would give no
progress and no way to stop. ``ReplayJob`` replays them one id at a time, in pages, counting
what it did, and stops between two ids when cancelled. At most ``MAX_JOBS`` are remembered
(the oldest finished ones are forgotten first).
"""

from __future__ import annotations

import asyncio
import itertools
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ...inbox import DeadLetterMatch, DeadLetters

__all__ = ["ReplayJob", "ReplayJobs"]

MAX_JOBS = 50
PAGE = 100


@dataclass(slots=True)
class ReplayJob:
    """One bulk replay: its filter, how far it got, and how it ended."""

    id: str
    match: DeadLetterMatch
    total: int
    done: int = 0
    replayed: int = 0
    state: str = "running"
    """``running``, ``succeeded``, ``cancelled`` or ``failed``."""
    error: str = ""
    _cancel: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    def to_json(self) -> dict[str, Any]:
        """The job as the progress bar reads it."""
        return {
            "id": self.id,
            "match": dict(self.match),
            "total": self.total,
            "done": self.done,
            "replayed": self.replayed,
            "state": self.state,
            "error": self.error,
        }

    def cancel(self) -> None:
        """Stop after the dead letter being replayed now."""
        self._cancel.set()

    async def run(self, dlq: DeadLetters) -> None:
        """Replay every dead letter matching ``match``, one at a time."""
        try:
            # At most the letters counted at the start: one that fails again and comes back to
            # the DLQ meanwhile is not replayed a second time by the same job.
            while not self._cancel.is_set() and self.done < self.total:
                # Replayed letters leave the DLQ, so the first page is always the next one.
                page = await dlq.list(limit=PAGE, **self.match)
                if not page:
                    break
                for letter in page:
                    if self._cancel.is_set() or self.done >= self.total:
                        break
                    self.replayed += await dlq.replay(letter.message.id, source=letter.message.source)
                    self.done += 1
                if len(page) < PAGE and not self._cancel.is_set():
                    # A letter that did not leave (replayed by someone else meanwhile) would
                    # come back on the next page forever: one short page is the end.
                    break
            self.state = "cancelled" if self._cancel.is_set() else "succeeded"
        except Exception as exc:
            self.state, self.error = "failed", f"{type(exc).__name__}: {exc}"


@dataclass(slots=True)
class ReplayJobs:
    """The replay jobs of one dashboard."""

    dlq: DeadLetters
    _jobs: OrderedDict[str, ReplayJob] = field(default_factory=OrderedDict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def start(self, match: DeadLetterMatch) -> ReplayJob:
        """Count what ``match`` selects and start replaying it in the background."""
        total = await self.dlq.count(**match)
        job = ReplayJob(f"replay-{next(self._ids)}", match, total)
        self._forget_old()
        self._jobs[job.id] = job
        job._task = asyncio.get_running_loop().create_task(job.run(self.dlq))
        return job

    def get(self, job_id: str) -> ReplayJob | None:
        """The job with this id, if remembered."""
        return self._jobs.get(job_id)

    def all(self) -> list[ReplayJob]:
        """Every remembered job, newest first."""
        return list(reversed(self._jobs.values()))

    def _forget_old(self) -> None:
        while len(self._jobs) >= MAX_JOBS:
            finished = next((k for k, j in self._jobs.items() if j.state != "running"), None)
            if finished is None:
                break
            del self._jobs[finished]

    async def aclose(self) -> None:
        """Cancel running jobs and wait for them to stop."""
        for job in self._jobs.values():
            job.cancel()
        await asyncio.gather(*(j._task for j in self._jobs.values() if j._task), return_exceptions=True)
