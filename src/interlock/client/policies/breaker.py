"""Drives a ``core.breaker.Breaker`` as a gate: refuses attempts while open, reports outcomes, and
wakes the callers waiting for it (``Retry(circuit_open=True)``) the moment it may admit again."""

from __future__ import annotations

import asyncio

from ..._clock import Clock
from ..._models import Request, Response
from ...core.breaker import ADMIT, Admit, BreakerState, CircuitBreaker, Reject
from ...core.retry_after import parse_retry_after
from ...errors import CircuitOpen, DeadlineExceeded, TimedOut, TransportError
from .._pipeline import Send

_ADMITTED = "interlock.breaker"
_CLOSED = BreakerState.CLOSED
_UNTIMED: tuple[Admit, float | None] = (ADMIT, None)
CUT_SHORT = "interlock.cut_short"
"""``Request.extensions`` key the Client sets on an attempt its call's deadline leaves less
than half the attempt timeout (a closed breaker admits without reading the clock)."""


class BreakerPolicy:
    """The breaker gate of the pipeline (see ``_pipeline.Gate``); ``breaker`` is its state.

    ``attempt_timeout``: the client's own limit on one attempt. An attempt its call's deadline
    left less than half of that, and which timed out, says the caller was out of time, not that
    the upstream failed (see ``exit``).
    """

    def __init__(
        self, config: CircuitBreaker, upstream: str, clock: Clock, *, attempt_timeout: float | None = None
    ) -> None:
        self.breaker = config.new_state(clock.monotonic())
        self._clock = clock
        self._upstream = upstream
        self._attempt_timeout = attempt_timeout
        self._changed: asyncio.Future[None] | None = None
        self.recoveries = 0
        """How many times the breaker has closed again after opening (see ``RetryPolicy``)."""
        # A closed breaker's plain admission needs no memo when slow calls are not judged and the
        # attempt has time enough: exit finds nothing and knows it was ADMIT, with no start
        # needed, so the common path stores and allocates nothing.
        self._timed = config.slow_call is not None

    def try_enter(self, request: Request) -> bool:
        """Admit the attempt, or raise ``CircuitOpen`` while the breaker is open."""
        if self.breaker.state is _CLOSED and not self._timed:
            return True  # what ``admit`` answers a closed breaker (ADMIT), without a clock reading
        now = self._clock.monotonic()
        admitted = self.breaker.admit(now)
        if not isinstance(admitted, Admit):
            raise _refused(request, admitted)
        if admitted is not ADMIT or self._timed or self._cut_short(request, now):
            request.extensions[_ADMITTED] = (admitted, now)
        return True

    async def enter(self, request: Request) -> None:  # pragma: no cover - try_enter never defers
        """Never awaited: ``try_enter`` admits or refuses at once."""
        self.try_enter(request)

    def exit(self, request: Request, response: Response | None, error: BaseException | None) -> None:
        """Record the attempt's verdict: a 5xx, a network error or a timeout is a failure; a
        429, a cancellation or a deadline spent before sending says nothing of health, and
        neither does a timeout of an attempt cut short by its call's deadline to less than half
        the client's attempt timeout. (Callers woken together when the breaker closes include
        some with a few milliseconds left; counting their timeouts reopened the breaker for
        everyone. A half-open probe cut short frees its slot for the next caller.)

        A failed answer's ``Retry-After`` tells the breaker how long to stay open, should this
        failure open it. Callers waiting on the breaker are woken whenever it changes state or a
        probe slot comes free."""
        admitted, start = request.extensions.pop(_ADMITTED, _UNTIMED)
        breaker = self.breaker
        before = (breaker.transitions, breaker.probes_in_flight)
        retry_after: float | None = None
        failed: bool | None = None  # None: no verdict on the upstream's health
        if response is not None and response.status != 429:
            failed = response.status >= 500
            if failed:
                retry_after = parse_retry_after(response.headers.get("Retry-After"), self._clock.time())
        elif isinstance(error, TransportError | TimedOut) and not isinstance(error, DeadlineExceeded):
            # No memo of a plain admission means the attempt had time enough (see try_enter).
            hasty = isinstance(error, TimedOut) and (
                CUT_SHORT in request.extensions or (start is not None and self._cut_short(request, start))
            )
            failed = None if hasty else True
        # else: a 429, a cancellation, or a deadline spent before sending says nothing about the
        # upstream's health.
        if failed is None:
            breaker.release(admitted)
        else:
            now = self._clock.monotonic()
            duration = 0.0 if start is None else now - start
            breaker.record(admitted, failed=failed, duration=duration, now=now, retry_after=retry_after)
        if (breaker.transitions, breaker.probes_in_flight) != before:
            if breaker.transitions != before[0] and breaker.state is BreakerState.CLOSED:
                self.recoveries += 1
            self._wake()

    def refuse_early(self, request: Request) -> None:
        """Raise the ``CircuitOpen`` that ``try_enter`` would raise now, without admitting
        anything (see ``BreakerFirst``)."""
        if self.breaker.state is _CLOSED:
            return
        refusal = self.breaker.refusal(self._clock.monotonic())
        if refusal is not None:
            raise _refused(request, refusal)

    def _cut_short(self, request: Request, start: float) -> bool:
        """Whether the call's deadline left the attempt less than half the client's attempt
        timeout: its timeout then says nothing about the upstream. (Without an attempt timeout
        every timeout is the deadline's, and each counts.)"""
        if request.deadline is None or self._attempt_timeout is None:
            return False
        return request.deadline - start < 0.5 * self._attempt_timeout

    def changed(self) -> asyncio.Future[None]:
        """A future resolved the next time the breaker changes state or frees a probe slot: what
        a caller refused with ``CircuitOpen`` waits on (with its own timeout) to try again at
        once, rather than sleeping out a backoff while the upstream is back."""
        waiter = self._changed
        if waiter is None or waiter.done():
            waiter = self._changed = asyncio.get_running_loop().create_future()
        return waiter

    def _wake(self) -> None:
        waiter, self._changed = self._changed, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def __repr__(self) -> str:
        return f"<BreakerPolicy {self._upstream} {self.breaker!r}>"


class BreakerFirst:
    """A pipeline stage ahead of the rate limit: an attempt the breaker would refuse anyway is
    refused before it waits for a quota turn, so failing fast costs no wait and no turn (and a
    caller that waits out the breaker does so before taking its turn, not holding it). The
    breaker gate still admits the attempt after its turn: the breaker may have opened meanwhile."""

    __slots__ = ("_gate",)

    def __init__(self, gate: BreakerPolicy) -> None:
        self._gate = gate

    async def handle(self, request: Request, call_next: Send) -> Response:
        """Refuse ``request`` now if the breaker would, else pass it on."""
        self._gate.refuse_early(request)
        return await call_next(request)


def _refused(request: Request, refusal: Reject) -> CircuitOpen:
    if refusal.probing:
        message = "circuit half-open, a probe call is in flight; failing fast"
    else:
        message = f"circuit open, failing fast (retry in {refusal.retry_in:.1f}s)"
    return CircuitOpen(message, retry_in=refusal.retry_in, **request.context())
