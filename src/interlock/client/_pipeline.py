"""The pipeline's parts: ``Policy`` (wraps the rest of the pipeline), ``Gate`` (admits an
attempt and hears how it ended), and ``compose_pipeline``, the one place that puts them in the
order ``interlock.client``'s docstring states.

Attempt-level policies that only admit and observe are ``Gate``s rather than wrappers: every
suspension inside the transport resumes through each coroutine frame above it, so gates run as
plain calls before and after the one frame that awaits the transport. On loopback this is the
difference between a pipeline that costs a few microseconds and one that halves throughput.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Protocol

from .._clock import Clock
from .._models import Request, Response
from ..core.redirect import REDIRECT_STATUSES
from ..errors import DeadlineExceeded

__all__ = ["Follow", "Gate", "GatedSend", "Policy", "Send", "chain", "compose_pipeline"]

Send = Callable[[Request], Awaitable[Response]]
"""What each stage calls to pass a request on: the rest of the pipeline, or the transport."""
Follow = Callable[[Request, Response], Awaitable[Response]]
"""What an attempt's redirect answer is handed to: the answer of the hops that follow it."""


class Policy(Protocol):
    """A stage that wraps the rest of the pipeline: it may answer itself (a cache hit), pass the
    request on (``call_next``), or call on several times (retry)."""

    async def handle(self, request: Request, call_next: Send) -> Response:
        """Answer ``request``, calling ``call_next`` for whatever lies further down."""
        ...


class Gate(Protocol):
    """Admits an attempt before it is sent and hears how it ended.

    ``try_enter`` is the fast path: admit now (True), or say the caller must wait (False), after
    which ``enter`` is awaited; either may raise to refuse. ``exit`` is called exactly once for
    every admitted attempt, with the response or the exception.
    """

    def try_enter(self, request: Request) -> bool:
        """Admit ``request`` now (True), or ask the caller to await ``enter`` (False)."""
        ...

    async def enter(self, request: Request) -> None:
        """Wait until ``request`` may be admitted."""
        ...

    def exit(self, request: Request, response: Response | None, error: BaseException | None) -> None:
        """Hear how an admitted attempt ended: its response, or the exception it raised."""
        ...


def chain(policies: Sequence[Policy], terminal: Send) -> Send:
    """Chain policies so the first one listed runs first and the last one calls ``terminal``."""
    send = terminal
    for policy in reversed(policies):
        send = partial(policy.handle, call_next=send)
    return send


class GatedSend:
    """The end of the attempt chain: pass every gate in order, send one attempt, tell the gates
    (in reverse order) how it ended. A gate that makes the attempt wait never holds it past the
    call's deadline. ``on_resend`` hears each retry that is actually sent; ``follow`` (when
    given) turns a redirect answer into the answer of the hops that follow it, within the
    same attempt and its gates."""

    __slots__ = ("_clock", "_follow", "_gates", "_on_resend", "_send")

    def __init__(
        self,
        gates: Sequence[Gate],
        send: Send,
        clock: Clock,
        on_resend: Callable[[Request], None],
        follow: Follow | None = None,
    ) -> None:
        self._gates = tuple(gates)
        self._send = send
        self._clock = clock
        self._on_resend = on_resend
        self._follow = follow

    async def send(self, request: Request) -> Response:
        """Send one attempt through the gates."""
        gates = self._gates
        entered = 0
        try:
            for gate in gates:
                if not gate.try_enter(request):
                    await self._enter_by_deadline(gate, request)
                entered += 1
            if request.attempt > 1:  # counted when sent: waiting out an open breaker sends nothing
                self._on_resend(request)
            response = await self._send(request)
            if self._follow is not None and response.status in REDIRECT_STATUSES:
                response = await self._follow(request, response)
        except BaseException as exc:
            for gate in reversed(gates[:entered]):
                gate.exit(request, None, exc)
            raise
        for gate in reversed(gates):
            gate.exit(request, response, None)
        return response

    async def _enter_by_deadline(self, gate: Gate, request: Request) -> None:
        if request.deadline is None:
            await gate.enter(request)
            return
        remaining = request.deadline - self._clock.monotonic()
        try:
            async with asyncio.timeout(max(0.0, remaining)):
                await gate.enter(request)
        except TimeoutError:
            raise DeadlineExceeded("deadline reached while waiting for a concurrency slot") from None


def compose_pipeline(
    *,
    cache: Policy | None,
    coalesce: Policy | None,
    batch: Policy | None,
    retry: Policy,
    rate_limit: Policy | None,
    concurrency: Gate | None,
    breaker: Gate | None,
    transport: Send,
    clock: Clock,
    on_resend: Callable[[Request], None],
    follow: Follow | None = None,
    auth: Policy | None = None,
) -> Send:
    """The whole pipeline of one client, in the order stated by ``interlock.client`` (and set
    here only). Absent policies (None) are left out; ``transport`` sends one attempt within
    the call's deadline, ``follow`` follows its redirects. ``auth`` (credentials) runs first in
    each attempt, so the one send it repeats after a 401 passes the rate limit and gates too."""
    gates = [g for g in (concurrency, breaker) if g is not None]
    gated = GatedSend(gates, transport, clock, on_resend, follow)
    attempt = chain([p for p in (auth, rate_limit) if p is not None], gated.send)
    return chain([p for p in (cache, coalesce, batch, retry) if p is not None], attempt)
