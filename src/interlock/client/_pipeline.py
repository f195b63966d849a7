"""The pipeline: policies wrap a handler, each deciding to answer, pass on, or fail.

A call runs the call-level policies (cache, coalesce, batch) once, then the retry loop, which
runs the attempt-level policies (rate limit, concurrency, breaker) and the transport once per
attempt. This is DESIGN.md's order, with retry placed so that each attempt draws from the quota,
takes a concurrency slot only while it is on the wire (not while it backs off) and is judged by
the breaker.

Attempt-level policies that only admit and observe are ``Gate``s rather than wrappers: every
suspension inside the transport resumes through each coroutine frame above it, so gates run as
plain calls before and after the one frame that awaits the transport. On loopback this is the
difference between a pipeline that costs a few microseconds and one that halves throughput.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Protocol

from .._models import Request, Response

Send = Callable[[Request], Awaitable[Response]]


class Policy(Protocol):
    async def handle(self, request: Request, call_next: Send) -> Response: ...


class Gate(Protocol):
    """Admits an attempt before it is sent and hears how it ended.

    ``try_enter`` is the fast path: admit now (True), or say the caller must wait (False), after
    which ``enter`` is awaited; either may raise to refuse. ``exit`` is called exactly once for
    every admitted attempt, with the response or the exception.
    """

    def try_enter(self, request: Request) -> bool: ...

    async def enter(self, request: Request) -> None: ...

    def exit(self, request: Request, response: Response | None, error: BaseException | None) -> None: ...


def compose(policies: Sequence[Policy], terminal: Send) -> Send:
    """Chain policies so the first one listed runs first."""
    handler = terminal
    for policy in reversed(policies):
        handler = partial(policy.handle, call_next=handler)
    return handler
