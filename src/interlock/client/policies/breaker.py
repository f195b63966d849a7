"""Drives a ``core.breaker.Breaker`` as a gate: refuses attempts while open, reports outcomes."""

from __future__ import annotations

from ..._clock import Clock
from ..._models import Request, Response
from ...core.breaker import ADMIT, Admit, BreakerState, CircuitBreaker
from ...errors import CircuitOpen, DeadlineExceeded, TimedOut, TransportError

_ADMITTED = "interlock.breaker"
_CLOSED = BreakerState.CLOSED
_UNTIMED: tuple[Admit, float | None] = (ADMIT, None)


class BreakerPolicy:
    """The breaker gate of the pipeline (see ``_pipeline.Gate``); ``breaker`` is its state."""

    def __init__(self, config: CircuitBreaker, upstream: str, clock: Clock) -> None:
        self.breaker = config.new_state(clock.monotonic())
        self._clock = clock
        self._upstream = upstream
        # A closed breaker's plain admission needs no memo when slow calls are not judged: exit
        # finds nothing and knows it was ADMIT, so the common path stores and allocates nothing.
        self._timed = config.slow_call is not None

    def try_enter(self, request: Request) -> bool:
        """Admit the attempt, or raise ``CircuitOpen`` while the breaker is open."""
        if self.breaker.state is _CLOSED and not self._timed:
            return True  # what ``admit`` answers a closed breaker (ADMIT), without a clock reading
        now = self._clock.monotonic()
        admitted = self.breaker.admit(now)
        if not isinstance(admitted, Admit):
            message = f"circuit open, failing fast (retry in {admitted.retry_in:.1f}s)"
            raise CircuitOpen(message, retry_in=admitted.retry_in, **request.context())
        if admitted is not ADMIT or self._timed:
            request.extensions[_ADMITTED] = (admitted, now)
        return True

    async def enter(self, request: Request) -> None:  # pragma: no cover - try_enter never defers
        """Never awaited: ``try_enter`` admits or refuses at once."""
        self.try_enter(request)

    def exit(self, request: Request, response: Response | None, error: BaseException | None) -> None:
        """Record the attempt's verdict: a 5xx, a network error or a timeout is a failure; a
        429, a cancellation or a deadline spent before sending says nothing of health."""
        admitted, start = request.extensions.pop(_ADMITTED, _UNTIMED)
        if response is not None and response.status != 429:
            failed = response.status >= 500
        elif isinstance(error, TransportError | TimedOut) and not isinstance(error, DeadlineExceeded):
            failed = True
        else:
            # A 429, a cancellation, or a deadline spent before sending says nothing about the
            # upstream's health.
            self.breaker.release(admitted)
            return
        now = self._clock.monotonic()
        self.breaker.record(admitted, failed=failed, duration=0.0 if start is None else now - start, now=now)

    def __repr__(self) -> str:
        return f"<BreakerPolicy {self._upstream} {self.breaker!r}>"
