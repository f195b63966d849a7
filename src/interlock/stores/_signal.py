"""Waking idle workers: a queue signals new work; waiters also poll, so work put by another
process (SQLite) or a lost notification (PostgreSQL NOTIFY) is never missed for long."""

from __future__ import annotations

import asyncio
import contextlib


class WorkSignal:
    """Wakes the waiters of one queue; idle waiters look again every ``poll_interval`` s."""

    def __init__(self, poll_interval: float) -> None:
        self.poll_interval = poll_interval
        # Since Python 3.10 an Event binds to a loop on first use, not here: a wake before the
        # first wait is kept, not lost.
        self._event = asyncio.Event()

    def wake(self) -> None:
        """New work may be leasable: release the current waiters (or the next one)."""
        self._event.set()

    async def wait(self, timeout: float) -> None:
        """Return when woken, or after ``min(timeout, poll_interval)`` seconds."""
        event = self._event
        if not event.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), min(timeout, self.poll_interval))
        event.clear()

    def __repr__(self) -> str:
        return f"<WorkSignal poll_interval={self.poll_interval} pending={self._event.is_set()}>"
