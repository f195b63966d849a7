"""Identical reads in flight share one upstream call (stampede protection).

Two calls are identical when method, URL, query and request headers match, ignoring the
headers that only identify a call (request id, trace context). Conditional headers are part of
the identity, so a revalidation (which may answer 304) is never shared with a plain read.

Singleflight: the first caller (the leader) makes the call itself, inline, and publishes the
outcome on one future; callers arriving meanwhile (followers) wait on it and each get a
``Response`` object of their own. Coalescing is on by default, so the leader's path must cost
next to nothing: no task, no shield, no copy. A follower that gives up leaves the call alone; a
leader that gives up (cancelled) takes its call with it, and its followers, rather than fail,
make the call again (one of them leading). An error reaches every caller.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import replace

from ..._metrics import work_stats
from ..._models import Request, Response
from .._pipeline import Send

COALESCED_METHODS = frozenset({"GET", "HEAD"})
DEFAULT_IGNORED_HEADERS = ("X-Request-ID", "Traceparent", "Tracestate", "Idempotency-Key")

Identity = tuple[str, str, tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]


class _LeaderCancelled(Exception):
    """Set on a flight whose leader was cancelled: its followers make the call again."""


def request_identity(request: Request, ignored: frozenset[str]) -> Identity:
    """What makes two reads the same: method, URL, sorted query and headers but ``ignored``."""
    params = tuple(sorted(request.params.items())) if request.params else ()
    headers = tuple(sorted((k.lower(), v) for k, v in request.headers.items() if k.lower() not in ignored))
    return (request.method, request.url, params, headers)


def _fail(flight: asyncio.Future[Response], error: BaseException) -> None:
    flight.set_exception(error)
    flight.exception()  # retrieved here: with no followers, asyncio would warn it never was


class CoalescePolicy:
    """The coalescing stage of the pipeline: identical reads in flight share one call."""

    def __init__(self, upstream: str, ignored_headers: Iterable[str] = DEFAULT_IGNORED_HEADERS) -> None:
        self.upstream = upstream
        self._ignored = frozenset(h.lower() for h in ignored_headers)
        self._flights: dict[Identity, asyncio.Future[Response]] = {}
        self._work = work_stats(upstream)
        self.coalesced = 0

    @property
    def in_flight(self) -> int:
        """Distinct reads in flight now."""
        return len(self._flights)

    async def handle(self, request: Request, call_next: Send) -> Response:
        """Lead a new flight or follow the one in the air; writes and bodies pass through."""
        if request.method not in COALESCED_METHODS or request.body:
            return await call_next(request)
        key = request_identity(request, self._ignored)
        while (flight := self._flights.get(key)) is not None:
            self.coalesced += 1
            counts = self._work.coalesced
            counts[request.route] = counts.get(request.route, 0) + 1
            try:
                # shield: a follower that gives up must not cancel the leader's call.
                response = await asyncio.shield(flight)
            except _LeaderCancelled:
                continue  # the leader gave up; lead or follow the next flight
            # Every caller its own object: callers may set fields, and json() caches per object.
            return replace(response, request_id=request.request_id, _json=None)
        flight = self._flights[key] = asyncio.get_running_loop().create_future()
        try:
            response = await call_next(request)
        except asyncio.CancelledError:
            _fail(flight, _LeaderCancelled())
            raise
        except BaseException as exc:
            _fail(flight, exc)
            raise
        else:
            flight.set_result(response)
            return response
        finally:
            del self._flights[key]

    def __repr__(self) -> str:
        return f"<CoalescePolicy {self.upstream} in_flight={len(self._flights)} coalesced={self.coalesced}>"
