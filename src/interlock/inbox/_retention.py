"""Retention: how long settled events stay in the queue, and the task that prunes them.

Done events are kept ``done`` seconds so their ids keep dropping redelivered duplicates; dead
letters ``dead`` seconds, for an operator to inspect, replay or purge. One ``Pruner`` per Inbox
runs wherever the Inbox does work, the ingress process as well as the workers', so a
deployment whose workers run elsewhere (or not at all for a while) still bounds its store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .._clock import SYSTEM_CLOCK, Clock
from ..errors import ConfigError
from ..stores.queue import Queue

__all__ = ["DEAD_RETENTION", "PRUNE_EVERY", "RETENTION", "Pruner", "Retention"]

log = logging.getLogger("interlock.inbox")

RETENTION = 7 * 86400.0
"""Seconds an acknowledged event is kept (its id keeps dropping duplicates) before pruning."""
DEAD_RETENTION = 30 * 86400.0
"""Seconds a dead letter is kept for inspection and replay before pruning."""
PRUNE_EVERY = 600.0
"""Seconds between two prunes."""


@dataclass(frozen=True, slots=True)
class Retention:
    """How long settled events are kept, and how often the queue is pruned of older ones.

    ``done``: seconds an acknowledged event is kept (its id drops duplicates meanwhile);
    ``dead``: seconds a dead letter is kept; ``None`` keeps that kind for ever. ``every``:
    seconds between prunes.
    """

    done: float | None = RETENTION
    dead: float | None = DEAD_RETENTION
    every: float = PRUNE_EVERY

    def __post_init__(self) -> None:
        # Named as the Inbox's keywords, which are how users set these.
        for keyword, value in (("retention", self.done), ("dead_retention", self.dead)):
            if value is not None and not value > 0:
                raise ConfigError("Inbox", keyword, f"must be > 0 seconds or None, got {value!r}")
        if not self.every > 0:
            raise ConfigError("Inbox", "prune_every", f"must be > 0 seconds, got {self.every!r}")

    @property
    def prunes(self) -> bool:
        """Whether anything is ever pruned."""
        return self.done is not None or self.dead is not None


class Pruner:
    """Prunes ``queue`` as ``retention`` says: once with ``prune()``, or every
    ``retention.every`` seconds in a background task from ``start()`` until ``aclose()``.

    ``clock`` gives the wall-clock time the cut-offs are measured from; ``ready`` is awaited
    before each prune (the Inbox passes its ``open``). ``runs`` counts the prunes made by the
    task and ``pruned`` the rows they removed.
    """

    def __init__(
        self,
        queue: Queue,
        retention: Retention,
        *,
        clock: Clock | None = None,
        ready: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self.queue = queue
        self.retention = retention
        self.clock = clock or SYSTEM_CLOCK
        self.runs = 0
        self.pruned = 0
        self._ready = ready
        self._task: asyncio.Task[None] | None = None
        self._changed: asyncio.Condition | None = None

    async def prune(self) -> int:
        """Prune now: done events past ``retention.done``, dead letters past
        ``retention.dead``; returns how many rows went."""
        retention = self.retention
        if not retention.prunes:
            return 0
        if self._ready is not None:
            # Shielded: a prune cancelled (aclose) while the queue opens must not leave it half
            # open; the opening finishes, and whoever closes the queue waits for it.
            await asyncio.shield(self._ready())
        now = self.clock.time()
        done_before = None if retention.done is None else now - retention.done
        if retention.dead is None:
            return await self.queue.prune(done_before)
        dead = await self.queue.prune(None, dead_before=now - retention.dead)
        if dead:
            log.warning(
                "pruned %d dead letters older than %.0f s (Inbox dead_retention): they can no longer be replayed",
                dead, retention.dead,
            )
        return dead + (await self.queue.prune(done_before) if done_before is not None else 0)

    @property
    def running(self) -> bool:
        """Whether the background task runs."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Prune now and then every ``retention.every`` s in a background task (once: later
        calls do nothing while it runs; nothing at all when nothing is ever pruned)."""
        if self.running or not self.retention.prunes:
            return
        self._task = asyncio.get_running_loop().create_task(self._run(), name="interlock-inbox-pruner")

    async def _run(self) -> None:
        while True:
            try:
                self.pruned += await self.prune()
            except Exception as exc:
                # Best effort: a store that fails here fails the ingress and the workers too,
                # which answer and log it; the next prune tries again.
                log.warning("pruning %r failed, trying again in %.0f s: %r", self.queue, self.retention.every, exc)
            self.runs += 1
            changed = self._condition()
            async with changed:
                changed.notify_all()
            # Real time, not the clock: on a fake clock, whose sleep returns at once, this loop
            # would spin.
            await asyncio.sleep(self.retention.every)

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    async def ran(self, runs: int = 1) -> None:
        """Return once the background task has made at least ``runs`` prunes."""
        changed = self._condition()
        async with changed:
            await changed.wait_for(lambda: self.runs >= runs)

    async def aclose(self) -> None:
        """Stop the background task (a prune in progress is cancelled; it is one statement at a
        time, so nothing is left half done)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def __repr__(self) -> str:
        r = self.retention
        return f"Pruner(done={r.done}, dead={r.dead}, every={r.every}, runs={self.runs}, pruned={self.pruned})"
