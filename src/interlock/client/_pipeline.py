"""The pipeline's parts: ``Policy`` (wraps the rest of the pipeline), ``Gate`` (admits an
attempt and hears how it ended), and ``compose_pipeline``, the one place that puts them in the
order ``interlock.client``'s docstring states.

Attempt-level policies that only admit and observe are ``Gate``s rather than wrappers: every
suspension inside the transport resumes through each coroutine frame above it, so gates run as
plain calls before and after the one frame that awaits the transport. On loopback this is the
difference between a pipeline that costs a few microseconds and one that halves throughput.

For the same reason the common pipeline (no cache, batch or rate limit: the default) is one
coroutine, ``DirectPipeline``: coalescing, the retry loop, the gates and the call's metrics run
inline in it, as plain calls to the steps their policies expose (``CoalescePolicy.take_off``...
and ``RetryPolicy.begin``...), in the same order; the decisions stay in the policies. With a
cache, a batch or a rate limit, the stages are chained as ``Policy`` wrappers under ``Observed``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from .._clock import Clock
from .._models import Request, Response
from ..core.redirect import REDIRECT_STATUSES
from ..errors import CallError, DeadlineExceeded

if TYPE_CHECKING:
    from .policies.coalesce import CoalescePolicy
    from .policies.retry import RetryCallState, RetryPolicy

__all__ = [
    "DirectPipeline",
    "Follow",
    "Gate",
    "GatedSend",
    "Observed",
    "Observer",
    "Policy",
    "Send",
    "chain",
    "compose_pipeline",
]

Send = Callable[[Request], Coroutine[Any, Any, Response]]
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


class Observer(Protocol):
    """Hears how each call through the pipeline ended (the Client's metrics and logs): called
    once per call, with the clock reading taken as the call entered the pipeline."""

    def answered(self, request: Request, response: Response, start: float) -> None:
        """The call was answered (from the cache, a shared flight or the upstream)."""
        ...

    def failed(self, request: Request, error: CallError, start: float) -> None:
        """The call ended with ``error``."""
        ...


class Observed:
    """The top of a chained pipeline: times the call and tells the ``Observer`` how it ended."""

    __slots__ = ("_clock", "_observer", "_send")

    def __init__(self, observer: Observer, send: Send, clock: Clock) -> None:
        self._observer = observer
        self._send = send
        self._clock = clock

    async def send(self, request: Request) -> Response:
        """Send ``request`` down the pipeline and report how it ended."""
        start = self._clock.monotonic()
        try:
            response = await self._send(request)
        except CallError as exc:
            self._observer.failed(request, exc, start)
            raise
        self._observer.answered(request, response, start)
        return response


def chain(policies: Sequence[Policy], terminal: Send) -> Send:
    """Chain policies so the first one listed runs first and the last one calls ``terminal``."""
    send = terminal
    for policy in reversed(policies):
        send = partial(policy.handle, call_next=send)
    return send


async def enter_within_deadline(gate: Gate, request: Request, clock: Clock) -> None:
    """Wait for ``gate`` to admit ``request`` (its ``try_enter`` said to wait), never past the
    call's deadline."""
    if request.deadline is None:
        await gate.enter(request)
        return
    remaining = request.deadline - clock.monotonic()
    try:
        async with asyncio.timeout(max(0.0, remaining)):
            await gate.enter(request)
    except TimeoutError:
        raise DeadlineExceeded("deadline reached while waiting for a concurrency slot") from None


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
                    await enter_within_deadline(gate, request, self._clock)
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


class DirectPipeline:
    """The whole pipeline as one coroutine, for clients without a cache, a batch or a rate limit
    (the default): coalesce, then retry running attempts through the gates to the transport,
    the call timed and reported to the ``Observer``. The same steps, in the same order, as the
    chained stages, run as plain calls: each suspension in the transport then resumes one frame
    here instead of one per stage."""

    __slots__ = (
        "_clock", "_coalesce", "_follow", "_gates", "_observer", "_on_resend", "_refused", "_retried",
        "_retry", "_rgates", "_send",
    )  # fmt: skip

    def __init__(
        self,
        coalesce: CoalescePolicy | None,
        retry: RetryPolicy,
        gates: Sequence[Gate],
        send: Send,
        clock: Clock,
        on_resend: Callable[[Request], None],
        observer: Observer,
        follow: Follow | None = None,
    ) -> None:
        self._coalesce = coalesce
        self._retry = retry
        self._retried = retry.retried_errors
        self._refused = retry.refused_errors
        self._follow = follow
        self._gates = tuple(gates)
        self._rgates = self._gates[::-1]
        self._send = send
        self._clock = clock
        self._on_resend = on_resend
        self._observer = observer

    async def send(self, request: Request) -> Response:
        """Answer ``request``: share an identical read in the air, or run its attempts."""
        coalesce, policy, gates = self._coalesce, self._retry, self._gates
        start = self._clock.monotonic()
        key = None  # set while this call leads a flight
        try:
            if coalesce is not None and (shared_as := coalesce.identity(request)) is not None:
                while not coalesce.take_off(shared_as):
                    if (shared := await coalesce.follow(shared_as, request)) is not None:
                        self._observer.answered(request, shared, start)
                        return shared
                key = shared_as
            retry = policy.begin()
            state: RetryCallState | None = None
            attempt = 1
            while True:
                request.attempt = attempt
                entered = 0
                try:
                    for gate in gates:
                        if not gate.try_enter(request):
                            await enter_within_deadline(gate, request, self._clock)
                        entered += 1
                    if attempt > 1:  # counted when sent: waiting out an open breaker sends nothing
                        self._on_resend(request)
                    response = await self._send(request)
                    if self._follow is not None and response.status in REDIRECT_STATUSES:
                        response = await self._follow(request, response)
                except BaseException as exc:
                    for gate in reversed(gates[:entered]):
                        gate.exit(request, None, exc)
                    if isinstance(exc, self._refused):
                        raise policy.refused(state, request, attempt, exc) from exc.__cause__
                    if not isinstance(exc, self._retried):
                        raise
                    state = policy.raised(state, request, attempt, exc)
                else:
                    for gate in self._rgates:
                        gate.exit(request, response, None)
                    state = policy.answered(retry, state, request, attempt, response)
                    if state is None:
                        break
                final = policy.after_failure(retry, state)
                if final is not None:
                    response = final
                    break
                await policy.wait(state)
                attempt = state.attempt + 1
        except BaseException as exc:
            if key is not None:
                coalesce.land(key, None, exc)  # type: ignore[union-attr]
            if isinstance(exc, CallError):
                self._observer.failed(request, exc, start)
            raise
        if key is not None:
            coalesce.land(key, response)  # type: ignore[union-attr]
        self._observer.answered(request, response, start)
        return response


def compose_pipeline(
    *,
    cache: Policy | None,
    coalesce: CoalescePolicy | None,
    batch: Policy | None,
    retry: RetryPolicy,
    rate_limit: Policy | None,
    concurrency: Gate | None,
    breaker: Gate | None,
    transport: Send,
    clock: Clock,
    on_resend: Callable[[Request], None],
    observer: Observer,
    follow: Follow | None = None,
    auth: Policy | None = None,
    breaker_first: Policy | None = None,
) -> Send:
    """The whole pipeline of one client, in the order stated by ``interlock.client`` (and set
    here only), every call reported to ``observer``. Absent policies (None) are left out;
    ``transport`` sends one attempt within the call's deadline, ``follow`` follows its
    redirects. ``auth`` (credentials) runs first in each attempt, so the one send it repeats
    after a 401 passes the rate limit and gates too; ``breaker_first`` (the breaker's early
    refusal) runs before both, so an attempt the open breaker refuses waits for no quota turn."""
    gates = [g for g in (concurrency, breaker) if g is not None]
    if cache is None and batch is None and rate_limit is None and auth is None:
        return DirectPipeline(coalesce, retry, gates, transport, clock, on_resend, observer, follow).send
    gated = GatedSend(gates, transport, clock, on_resend, follow)
    before_gates = [p for p in (auth, rate_limit) if p is not None]
    if breaker_first is not None and before_gates:  # with nothing to wait for, the gate refuses as soon
        before_gates.insert(0, breaker_first)
    attempt = chain(before_gates, gated.send)
    stages = chain([p for p in (cache, coalesce, batch, retry) if p is not None], attempt)
    return Observed(observer, stages, clock).send
