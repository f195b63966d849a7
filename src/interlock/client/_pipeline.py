"""The pipeline: policies wrap a handler, each deciding to answer, pass on, or fail.

A call runs the call-level policies (cache, coalesce, batch) once, then the retry loop, which
runs the attempt-level policies (rate limit, concurrency, breaker) and the transport once per
attempt. This is DESIGN.md's order, with retry placed so that each attempt draws from the quota,
takes a concurrency slot only while it is on the wire (not while it backs off) and is judged by
the breaker.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Protocol

from .._models import Request, Response

Handler = Callable[[Request], Awaitable[Response]]


class Policy(Protocol):
    async def handle(self, request: Request, call_next: Handler) -> Response: ...


def compose(policies: Sequence[Policy], terminal: Handler) -> Handler:
    """Chain policies so the first one listed runs first."""
    handler = terminal
    for policy in reversed(policies):
        handler = partial(policy.handle, call_next=handler)
    return handler
