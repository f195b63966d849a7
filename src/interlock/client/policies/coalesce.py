"""Identical reads in flight share one upstream call (stampede protection).

Two calls are identical when method, URL, query and request headers match, ignoring the
headers that only identify a call (request id, trace context). Conditional headers are part of
the identity, so a revalidation (which may answer 304) is never shared with a plain read. The
shared call runs in a task of its own: a caller that gives up (cancelled) does not cancel it for
the others, and only when every caller has left is it cancelled. Each caller gets its own
``Response`` object; an error reaches every caller.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import replace

from ..._metrics import work_stats
from ..._models import Request, Response
from .._pipeline import Handler

COALESCED_METHODS = frozenset({"GET", "HEAD"})
DEFAULT_IGNORED_HEADERS = ("X-Request-ID", "Traceparent", "Tracestate", "Idempotency-Key")


class _Flight:
    __slots__ = ("task", "waiters")

    def __init__(self, task: asyncio.Task[Response]) -> None:
        self.task = task
        self.waiters = 0


def request_identity(request: Request, ignored: frozenset[str]) -> str:
    query = "&".join(f"{k}={v}" for k, v in sorted(request.params.items()))
    headers = "\n".join(
        f"{k.lower()}:{v}"
        for k, v in sorted(request.headers.items(), key=lambda kv: kv[0].lower())
        if k.lower() not in ignored
    )
    return f"{request.method} {request.url}?{query}\n{headers}"


class CoalescePolicy:
    def __init__(self, upstream: str, ignored_headers: Iterable[str] = DEFAULT_IGNORED_HEADERS) -> None:
        self.upstream = upstream
        self._ignored = frozenset(h.lower() for h in ignored_headers)
        self._flights: dict[str, _Flight] = {}
        self._work = work_stats(upstream)
        self.coalesced = 0

    @property
    def in_flight(self) -> int:
        return len(self._flights)

    async def handle(self, request: Request, call_next: Handler) -> Response:
        if request.method not in COALESCED_METHODS or request.body:
            return await call_next(request)
        key = request_identity(request, self._ignored)
        flight = self._flights.get(key)
        if flight is None:
            flight = self._flights[key] = _Flight(asyncio.ensure_future(self._lead(key, request, call_next)))
        else:
            self.coalesced += 1
            counts = self._work.coalesced
            counts[request.route] = counts.get(request.route, 0) + 1
        flight.waiters += 1
        try:
            response = await asyncio.shield(flight.task)
        except asyncio.CancelledError:
            if not flight.task.done():
                flight.waiters -= 1
                if flight.waiters == 0:
                    flight.task.cancel()
            raise
        # Every caller its own object: callers may set fields, and json() caches per object.
        return replace(response, request_id=request.request_id, _json=None)

    async def _lead(self, key: str, request: Request, call_next: Handler) -> Response:
        try:
            return await call_next(request)
        finally:
            if self._flights.get(key) is not None and self._flights[key].task is asyncio.current_task():
                del self._flights[key]

    def __repr__(self) -> str:
        return f"<CoalescePolicy {self.upstream} in_flight={len(self._flights)} coalesced={self.coalesced}>"
