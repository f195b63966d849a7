"""``Subscription``: one upstream event stream kept open and committed into the Inbox.

::

    connect (Last-Event-ID / resume message = the committed position)
      -> each event: put into the Inbox queue (durable; a duplicate id is dropped)
                     -> only then save the position in the checkpoint store
      -> drop, error or stall: wait (retry: hint, backoff, jitter), reconnect
      -> down longer than reconcile_after: trigger the matching Sync's poll, once per outage

The order is the guarantee: an event is durable in the queue before the position moves past
it, so a crash (SIGKILL included) between the two re-receives it after the restart, and the
queue's dedupe by id drops it; nothing committed is lost, nothing is committed twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp

from .._clock import SYSTEM_CLOCK, Clock
from .._jsonpath import JsonPath
from ..core.reconnect import StreamSupervisor
from ..core.sse import EventTooLarge
from ..stores.checkpoint import Checkpoint, CheckpointStore
from ..stores.queue import Message
from ._metrics import StreamStats, stream_stats
from ._stream import EventStream
from ._wire import Alive, Item, Opened, Received, RetryHint, StreamRefused, read_sse, read_websocket

__all__ = ["CHECKPOINT_PREFIX", "Subscription"]

log = logging.getLogger("interlock.streams")

CHECKPOINT_PREFIX = "stream:"
"""The checkpoint store keys a stream's resume position as ``stream:{name}``."""
_MAX_KEY = 512  # the Inbox's longest delivery id / ordering key

Commit = Callable[[Message], Awaitable[bool]]
"""Store one event durably; False for a duplicate (``Inbox.put``)."""


class Subscription:
    """Keeps ``stream`` open and commits its events with ``commit`` as source ``name``, the
    resume position in ``store``; ``reconcile()`` is called when the stream has been down
    longer than its policy's ``reconcile_after``. Built by ``Inbox.subscribe``; run it with
    ``start()`` (a background task) or ``await run()``; ``aclose()`` stops it cleanly."""

    def __init__(
        self,
        name: str,
        stream: EventStream,
        *,
        commit: Commit,
        store: CheckpointStore,
        reconcile: Callable[[], Any] | None = None,
        ordering_key: Callable[[str, str], str] | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        close_store: bool = False,
    ) -> None:
        self.name = name
        self.stream = stream
        self.job = CHECKPOINT_PREFIX + name
        self._commit = commit
        self.store = store
        self._close_store = close_store
        self._reconcile = reconcile
        self._ordering_key = ordering_key or (lambda source, key: f"{source}\x1f{key}")
        self._clock = clock or SYSTEM_CLOCK
        self.supervisor = StreamSupervisor(stream.policy, self._clock.monotonic(), rng)
        self.stats: StreamStats = stream_stats(name)
        self.stats.lag = lambda: self.supervisor.lag(self._clock.monotonic())
        self.position: str | None = None
        """The id of the last event committed (what the next connection resumes after)."""
        self.last_error: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._stopping = False
        self._opened = False

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Subscription:
        """Run in a background task (once); ``aclose()`` stops it."""
        if self._task is None or self._task.done():
            self._stopping = False
            self._task = asyncio.ensure_future(self.run())
        return self

    async def aclose(self) -> None:
        """Stop: close the connection (a WebSocket cleanly), then the checkpoint store if this
        subscription opened it. What was committed stays committed; the position is saved."""
        self._stopping = True
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._session is not None:
            await self._session.close()
            self._session = None
        self.stats.connected = False
        if self._close_store and self._opened:
            self._opened = False
            await self.store.aclose()

    async def open(self) -> None:
        """Open the checkpoint store and load the resume position (``run`` does it)."""
        if self._opened:
            return
        await self.store.open()
        self._opened = True
        checkpoint = await self.store.load_checkpoint(self.job)
        self.position = checkpoint.record_id if checkpoint is not None and checkpoint.record_id else None

    async def run(self) -> None:
        """Keep the stream open, commit its events, reconnect after drops and stalls, until
        cancelled or ``aclose()``."""
        await self.open()
        first = True
        sup, clock = self.supervisor, self._clock
        while not self._stopping:
            try:
                async for item in self._connect():
                    if isinstance(item, Opened):
                        sup.opened(clock.monotonic(), first=first)
                        self.stats.connected = True
                        if not first:
                            self.stats.reconnects += 1
                        first = False
                        log.info("stream %s: connected (resuming after %s)", self.name, self.position or "the start")
                    else:
                        await self._take(item)
                self._dropped("the upstream closed the stream")
            except asyncio.CancelledError:
                raise
            except TimeoutError:
                self.stats.stalls += 1
                self._dropped(f"stalled: nothing for {self.stream.policy.stall_timeout:g} s (keep-alives included)")
            except EventTooLarge as exc:
                self._dropped(str(exc))
            except (StreamRefused, aiohttp.ClientError, OSError, ValueError) as exc:
                self._dropped(_describe(exc))
            except Exception as exc:  # aiohttp's RuntimeError("Connection closed.") and kin:
                # whatever one connection does, the supervised task reconnects, never dies
                self._dropped(f"{type(exc).__name__}: {_describe(exc)}")
            await self._wait(sup.delay())

    # -- one connection --------------------------------------------------------------------------

    def _connect(self) -> AsyncIterator[Item]:
        session = self._session
        if session is None or session.closed:
            # One connection at a time, never pooled with the Client's calls: a stream holds
            # its connection for hours. aiohttp's own decompression handles gzip'd streams.
            session = self._session = aiohttp.ClientSession(raise_for_status=False)
        read = read_sse if self.stream.kind == "sse" else read_websocket
        return read(session, self.stream, self.position, self._remaining)

    def _remaining(self) -> float:
        deadline = self.supervisor.stall_deadline()
        if deadline is None:
            return self.stream.policy.stall_timeout
        return max(0.001, deadline - self._clock.monotonic())

    async def _take(self, item: Item) -> None:
        if isinstance(item, Alive):
            self.supervisor.activity(self._clock.monotonic())
        elif isinstance(item, RetryHint):
            self.supervisor.retry_hint(item.milliseconds)
        elif isinstance(item, Received):
            await self._commit_event(item)

    async def _commit_event(self, event: Received) -> None:
        key = event.key[:_MAX_KEY]
        message = Message(
            source=self.name,
            id=key,
            type=event.type[:_MAX_KEY],
            body=event.body,
            headers={"x-stream-event-id": key},
            received_at=self._clock.time(),
            ordering_key=self._order(event.body),
        )
        # First durable in the queue (dedupe by id), only then the resume position moves.
        if await self._commit(message):
            self.stats.events += 1
        else:
            self.stats.duplicates += 1
        if event.position is not None and event.position != self.position:
            await self.store.save_checkpoint(
                self.job, Checkpoint(round(self._clock.time() * 1_000_000), event.position, self._clock.time())
            )
            self.position = event.position

    def _order(self, body: bytes) -> str | None:
        path: JsonPath | None = self.stream.ordering_key
        if path is None:
            return None
        try:
            value = path.find(json.loads(body))
        except ValueError:
            return None
        if value is None or isinstance(value, dict | list):
            return None
        return self._ordering_key(self.name, str(value)[:_MAX_KEY])

    # -- between connections ---------------------------------------------------------------------

    def _dropped(self, why: str) -> None:
        why = self.stream.client.redaction.mask_text(why)  # aiohttp's messages quote the URL
        sup = self.supervisor
        was_connected = sup.connected
        sup.dropped(self._clock.monotonic())
        self.stats.connected = False
        self.stats.errors += 1
        self.last_error = why
        log.warning(
            "stream %s: %s %s; reconnecting in %.1f s",
            self.name, "disconnected:" if was_connected else "could not connect:", why, sup.delay(),
            extra={"interlock": {"stream": self.name, "error": why, "failures": sup.failures}},
        )

    async def _wait(self, delay: float) -> None:
        """Sleep ``delay`` seconds, triggering the reconciliation poll when the outage crosses
        ``reconcile_after`` meanwhile."""
        clock, sup = self._clock, self.supervisor
        end = clock.monotonic() + delay
        while True:
            self._maybe_reconcile()
            now = clock.monotonic()
            if now >= end or self._stopping:
                return
            step = end - now
            after = self.stream.policy.reconcile_after
            if after is not None:
                until = after - sup.down_for(now)
                if until > 0:
                    step = min(step, until + 0.001)
            await clock.sleep(step)

    def _maybe_reconcile(self) -> None:
        if self.supervisor.should_reconcile(self._clock.monotonic()):
            self.stats.reconciliations += 1
            log.warning(
                "stream %s: down for %.0f s; triggering the reconciliation poll",
                self.name, self.supervisor.down_for(self._clock.monotonic()),
            )
            if self._reconcile is not None:
                try:
                    self._reconcile()
                except Exception as exc:  # a failing hook must not stop the stream
                    log.error("stream %s: the reconciliation hook failed: %s", self.name, _describe(exc))

    # -- state -----------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Connected, position, reconnects, events, duplicates, errors, lag, last error."""
        now = self._clock.monotonic()
        s = self.stats
        return {
            "stream": self.name,
            "kind": self.stream.kind,
            "connected": self.supervisor.connected,
            "position": self.position,
            "reconnects": self.supervisor.reconnects,
            "events": s.events,
            "duplicates": s.duplicates,
            "errors": s.errors,
            "stalls": s.stalls,
            "reconciliations": s.reconciliations,
            "lag_seconds": round(self.supervisor.lag(now), 3),
            "down_seconds": round(self.supervisor.down_for(now), 3),
            "last_error": self.last_error,
        }

    def __repr__(self) -> str:
        state = "connected" if self.supervisor.connected else "down"
        return f"<Subscription {self.name} {self.stream!r} {state} position={self.position!r}>"


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 300 else text[:300] + "..."
