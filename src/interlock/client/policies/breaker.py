"""Drives a ``core.breaker.Breaker``: refuses calls while open, reports outcomes."""

from __future__ import annotations

from ..._clock import Clock
from ..._metrics import CLIENT_BREAKER_STATE
from ..._models import Request, Response
from ...core.breaker import Admit, Breaker, CircuitBreaker
from ...errors import CircuitOpen, Timeout, TransportError
from .._pipeline import Handler


class BreakerPolicy:
    def __init__(self, config: CircuitBreaker, upstream: str, clock: Clock) -> None:
        self.breaker = config.new_state(clock.monotonic())
        self._clock = clock
        self._upstream = upstream
        self._gauge = CLIENT_BREAKER_STATE.labels(upstream)
        self._gauge.set(0)

    async def handle(self, request: Request, call_next: Handler) -> Response:
        breaker: Breaker = self.breaker
        start = self._clock.monotonic()
        admitted = breaker.admit(start)
        if not isinstance(admitted, Admit):
            self._gauge.set(breaker.state.gauge)
            raise CircuitOpen(
                f"circuit open, failing fast (retry in {admitted.retry_in:.1f}s)",
                retry_in=admitted.retry_in,
                upstream=request.upstream,
                method=request.method,
                route=request.route,
                request_id=request.request_id,
            )
        try:
            response = await call_next(request)
        except (TransportError, Timeout):
            self._record(admitted, failed=True, start=start)
            raise
        except BaseException:
            breaker.release(admitted)
            raise
        if response.status == 429:
            breaker.release(admitted)  # throttling says nothing about the upstream's health
        else:
            self._record(admitted, failed=response.status >= 500, start=start)
        return response

    def _record(self, admitted: Admit, *, failed: bool, start: float) -> None:
        now = self._clock.monotonic()
        self.breaker.record(admitted, failed=failed, duration=now - start, now=now)
        self._gauge.set(self.breaker.state.gauge)

    def __repr__(self) -> str:
        return f"<BreakerPolicy {self._upstream} {self.breaker!r}>"
