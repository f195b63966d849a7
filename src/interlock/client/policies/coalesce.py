"""Identical reads in flight share one upstream call (stampede protection).

Two calls are identical when method, URL, query and request headers match, ignoring the
headers that only identify a call (request id, trace context). Conditional headers are part of
the identity, so a revalidation (which may answer 304) is never shared with a plain read.

Singleflight: the first caller (the leader) makes the call itself, inline, and publishes the
outcome to the callers arriving meanwhile (followers), who each get a ``Response`` object of
their own. Coalescing is on by default, so the leader's path must cost next to nothing: no
task, no shield, no copy, and no future until a first follower comes. A follower that gives up leaves the call alone; a
leader that gives up (cancelled) takes its call with it, and its followers, rather than fail,
make the call again (one of them leading). An error reaches every caller.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from ..._metrics import work_stats
from ..._models import Request, Response
from .._pipeline import Send

COALESCED_METHODS = frozenset({"GET", "HEAD"})
DEFAULT_IGNORED_HEADERS = ("X-Request-ID", "Traceparent", "Tracestate", "Idempotency-Key")

Identity = tuple[str, str, tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]


class _LeaderCancelled(Exception):
    """Set on a flight whose leader was cancelled: its followers make the call again."""


class CoalescePolicy:
    """The coalescing stage of the pipeline: identical reads in flight share one call: same
    method, URL, sorted query and headers but the ignored ones (``identity``).

    ``handle`` is the stage as a ``Policy``; ``identity``, ``take_off``, ``follow`` and
    ``land`` are the same steps as plain calls, for a pipeline that runs them inline."""

    def __init__(self, upstream: str, ignored_headers: Iterable[str] = DEFAULT_IGNORED_HEADERS) -> None:
        self.upstream = upstream
        self._ignored = frozenset(h.lower() for h in ignored_headers)
        # key -> the futures of the flight's followers, each its own (so a follower that gives
        # up cancels nothing but itself); None until a first follower comes
        self._flights: dict[Identity, list[asyncio.Future[Response]] | None] = {}
        self._work = work_stats(upstream)
        self.coalesced = 0

    @property
    def in_flight(self) -> int:
        """Distinct reads in flight now."""
        return len(self._flights)

    def identity(self, request: Request) -> Identity | None:
        """The key ``request`` is shared under, or None for a request never shared (a write, or
        one with a body)."""
        if request.method not in COALESCED_METHODS or request.body:
            return None
        params = tuple(sorted(request.params.items())) if request.params else ()
        ignored, kept = self._ignored, []
        for name, value in request.headers.items():
            lower = name.lower()
            if lower not in ignored:
                kept.append((lower, value))
        if len(kept) > 1:
            kept.sort()
        return (request.method, request.url, params, tuple(kept))

    def take_off(self, key: Identity) -> bool:
        """Lead a new flight under ``key`` (True: the caller sends, then ``land``s it), or False
        when one is in the air already: then ``follow`` it."""
        if key in self._flights:
            return False
        self._flights[key] = None
        return True

    async def follow(self, key: Identity, request: Request) -> Response | None:
        """Wait for the flight in the air under ``key``: the caller's own copy of its answer, or
        None when there is no flight (any more) or its leader gave up: then ``take_off``."""
        if key not in self._flights:
            return None
        followers = self._flights[key]
        if followers is None:
            followers = self._flights[key] = []
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        followers.append(future)
        self.coalesced += 1
        counts = self._work.coalesced
        counts[request.route] = counts.get(request.route, 0) + 1
        try:
            response = await future
        except _LeaderCancelled:
            return None  # the leader gave up; lead or follow the next flight
        # Every caller its own object: callers may set fields, and json() caches per object.
        return response.copy_for(request.request_id)

    def land(self, key: Identity, response: Response | None, error: BaseException | None = None) -> None:
        """The leader's call under ``key`` ended: hand its answer or error to the followers. A
        cancelled leader hands them nothing: they make the call again."""
        followers = self._flights.pop(key)
        if followers is None:
            return
        if error is not None and isinstance(error, asyncio.CancelledError):
            error = _LeaderCancelled()
        for future in followers:
            if future.done():
                continue  # that follower gave up
            if error is None:
                future.set_result(response)  # type: ignore[arg-type]
            else:
                future.set_exception(error)
                future.exception()  # retrieved here: a follower cancelled meanwhile never reads it

    async def handle(self, request: Request, call_next: Send) -> Response:
        """Lead a new flight or follow the one in the air; writes and bodies pass through."""
        key = self.identity(request)
        if key is None:
            return await call_next(request)
        while not self.take_off(key):
            if (shared := await self.follow(key, request)) is not None:
                return shared
        try:
            response = await call_next(request)
        except BaseException as exc:
            self.land(key, None, exc)
            raise
        self.land(key, response)
        return response

    def __repr__(self) -> str:
        return f"<CoalescePolicy {self.upstream} in_flight={len(self._flights)} coalesced={self.coalesced}>"
