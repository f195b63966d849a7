"""Drives ``core.retry.Retry``: runs each attempt down the rest of the pipeline, records how it
ended in a ``RetryCallState``, asks the core what follows (``RetryIn(s)`` or ``GiveUp``) and
does it: wait, or end the call with the answer or the right error.

The loop is tenacity's (``Retrying.iter`` deciding over a ``RetryCallState``), the decisions
are the core's: this module classifies outcomes, sleeps and raises, and decides nothing.

A call refused by the open breaker and willing to wait (``Retry(circuit_open=True)``) waits
for the breaker itself: it is woken the moment the breaker closes, frees a probe slot or opens
again, instead of sleeping out a backoff while the upstream is already back. Such a call
backing off after a failed attempt is woken the same way, and once the breaker has closed
again its backoff starts over: attempts before the recovery no longer grow it.

Testing mode (``interlock.testing.set_testing``, stamina's idea) caps attempts and skips every
wait, so code under test that retries finishes at once.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any, Protocol

from ..._clock import Clock
from ..._models import Request, Response
from ...core.backoff import Backoff
from ...core.retry import BudgetLedger, FailureKind, GiveUp, Retry, RetryIn
from ...core.retry_after import parse_retry_after
from ...errors import (
    CallError,
    CircuitOpen,
    ConfigError,
    ConnectError,
    DeadlineExceeded,
    RateLimited,
    RetriesExhausted,
    TimedOut,
    TransportError,
)
from .._pipeline import Send

__all__ = [
    "REFUSED_ERRORS",
    "RETRIED_ERRORS",
    "BreakerWatch",
    "RetryCallState",
    "RetryPolicy",
    "is_testing",
    "set_testing",
]

# The errors an attempt may end with that retrying can help; anything else propagates as is.
# ConnectError before TransportError, its base: nothing was sent, so it is safe to repeat.
_KIND_OF_ERROR: tuple[tuple[type[CallError], FailureKind], ...] = (
    (ConnectError, FailureKind.CONNECT),
    (TransportError, FailureKind.NETWORK),
    (TimedOut, FailureKind.TIMEOUT),
    (CircuitOpen, FailureKind.CIRCUIT_OPEN),
)
RETRIED_ERRORS = tuple(error for error, _ in _KIND_OF_ERROR)
"""The errors an attempt may raise that retrying may help (the rest propagate as they are)."""
REFUSED_ERRORS = (RateLimited, DeadlineExceeded)
"""Refusals before anything was sent, where retrying cannot help: the local rate limit has no
turn in time (or fails closed), or the deadline came before the attempt could start. Not an
attempt, not retried, no retry budget spent (``RetryPolicy.refused``)."""
_NOT_RETRYABLE = GiveUp("not_retryable")


@dataclass(slots=True)
class RetryCallState:
    """One call's progress through its attempts, as tenacity's ``RetryCallState``: what the last
    attempt ended with, what the core decided, and how long the call has waited so far. Made
    at a call's first failed attempt: a call that succeeds at once needs none."""

    request: Request
    attempt: int = 0
    """Attempts sent so far; a refusal by the open breaker sent nothing and is not one."""
    response: Response | None = None
    """The last attempt's answer, when it answered."""
    error: CallError | None = None
    """The last attempt's error, when it raised one."""
    failure: FailureKind | None = None
    """How the last attempt failed, as far as retrying is concerned (None: it succeeded)."""
    retry_after: float | None = None
    """Seconds the upstream (``Retry-After``) or the breaker asked to wait."""
    idle_for: float = 0.0
    """Seconds spent waiting between attempts."""
    next_wait: float | None = None
    """The wait the core chose before the next attempt."""
    waits: bool = True
    """False in testing mode: the next attempt follows at once."""
    recoveries: int = 0
    """The breaker's ``recoveries`` when this call last failed."""
    backoff_from: int = 0
    """Attempts sent before the breaker last recovered: they no longer grow the backoff."""

    def answered(self, response: Response, failure: FailureKind, now_wall: float) -> None:
        """The attempt was answered with a status worth retrying."""
        self.response, self.error, self.failure = response, None, failure
        # RFC 9110 section 10.2.3: on 429 and 503 (and any answer) Retry-After says when to come back.
        self.retry_after = parse_retry_after(response.headers.get("Retry-After"), now_wall)

    def raised(self, error: CallError) -> None:
        """The attempt ended with one of the errors retrying may help."""
        self.response, self.error, self.retry_after = None, error, None
        self.failure = next(kind for cls, kind in _KIND_OF_ERROR if isinstance(error, cls))
        if isinstance(error, CircuitOpen):
            self.retry_after = error.retry_in
            self.attempt -= 1  # refused before sending: not an attempt

    @property
    def outcome(self) -> Response | CallError | None:
        """The last attempt's answer or error."""
        return self.response if self.response is not None else self.error


@dataclass(frozen=True, slots=True)
class _TestingMode:
    """What ``set_testing`` switched on: at most ``attempts`` attempts per call, no waits."""

    attempts: int

    def applied_to(self, retry: Retry) -> Retry:
        """``retry`` as testing mode runs it: attempts capped, every backoff zero, Retry-After
        not waited for."""
        return replace(
            retry,
            attempts=min(retry.attempts, self.attempts),
            backoff=_NO_BACKOFF,
            respect_retry_after=False,
        )


_NO_BACKOFF = Backoff(base=0.0, cap=0.0, jitter="none")
_testing: _TestingMode | None = None


class _TestingSwitch:
    """Returned by ``set_testing``: as a context manager, restores the previous mode on exit."""

    def __init__(self, previous: _TestingMode | None) -> None:
        self._previous = previous

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        global _testing
        _testing = self._previous


def set_testing(enabled: bool = True, *, attempts: int = 1) -> _TestingSwitch:
    """Switch testing mode on (or off) for every ``Client`` and ``SyncClient`` in the process.

    In testing mode a call makes at most ``attempts`` attempts (1, the default: no retries)
    and never waits between them: the backoff is zero and a ``Retry-After`` is neither waited
    for nor refused as too long. So code under test that retries finishes at once, while the
    other policies (breaker, cache, rate limit...) behave as usual. The mode is process-wide
    (a SyncClient's loop runs in a thread of its own) and read as each call starts.

    Returns a context manager that puts the previous mode back on exit::

        with set_testing(True, attempts=2):
            ...  # every call here is tried at most twice, without waiting
        # back to normal here

    or call ``set_testing(False)`` to switch it off (in a pytest fixture's teardown, say).
    """
    global _testing
    if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 1:
        raise ConfigError("set_testing", "attempts", f"must be an integer >= 1, got {attempts!r}")
    previous = _testing
    _testing = _TestingMode(attempts) if enabled else None
    return _TestingSwitch(previous)


def is_testing() -> bool:
    """True while testing mode (``set_testing``) is on."""
    return _testing is not None


class BreakerWatch(Protocol):
    """What the retry stage needs of the breaker gate: a wake-up when it may admit again."""

    def changed(self) -> Awaitable[None]:
        """Resolves the next time the breaker changes state or frees a probe slot."""
        ...

    @property
    def recoveries(self) -> int:
        """How many times the breaker has closed again after opening."""
        ...


class RetryPolicy:
    """The retry stage of the pipeline (see ``interlock.client``). ``config`` None: one attempt,
    errors raised with the call's context, every answer returned."""

    retried_errors = RETRIED_ERRORS
    """The errors ``raised`` records (``RETRIED_ERRORS``); any other ends the call as it is."""
    refused_errors = REFUSED_ERRORS
    """The refusals ``refused`` turns into the error ending the call (``REFUSED_ERRORS``)."""

    def __init__(
        self,
        config: Retry | None,
        clock: Clock,
        rng: random.Random | None = None,
        *,
        breaker: BreakerWatch | None = None,
    ) -> None:
        self.config = config
        self._clock = clock
        self._rng = rng
        self._breaker = breaker
        self._budget = BudgetLedger(config.budget) if config and config.budget else None

    # -- the steps of one call, as plain calls (a pipeline may run them inline) ----------------
    def begin(self) -> Retry | None:
        """A call starts: count it for the budget. Returns the ``Retry`` its attempts run by
        (testing mode applied), None for a single attempt."""
        if self._budget is not None:
            self._budget.record_call(self._clock.monotonic())
        retry = self.config
        if retry is not None and _testing is not None:
            retry = _testing.applied_to(retry)
        return retry

    def answered(
        self,
        retry: Retry | None,
        state: RetryCallState | None,
        request: Request,
        attempt: int,
        response: Response,
    ) -> RetryCallState | None:
        """Attempt number ``attempt`` was answered: None when the answer ends the call, else the
        call's state with the failure recorded (then ``after_failure``)."""
        response.attempts = attempt
        if retry is None or response.status not in retry.statuses:
            return None  # the answer stands (what ``Retry.failure_of_status`` says, asked cheaply)
        failure = retry.failure_of_status(response.status)
        if failure is None:
            return None
        state = self._state(state, request, attempt)
        state.answered(response, failure, self._clock.time())
        return state

    def raised(
        self, state: RetryCallState | None, request: Request, attempt: int, error: CallError
    ) -> RetryCallState:
        """Attempt number ``attempt`` raised one of ``RETRIED_ERRORS``: the state recording it."""
        state = self._state(state, request, attempt)
        state.raised(error)
        return state

    @staticmethod
    def refused(state: RetryCallState | None, request: Request, attempt: int, error: CallError) -> CallError:
        """The error ending a call whose attempt number ``attempt`` was refused before it was
        sent (one of ``REFUSED_ERRORS``): it counts the attempts that were sent, and says how
        the last of them ended."""
        request.attempt = attempt - 1
        response = state.response if state is not None else None
        return error.with_context(
            **request.context(),
            attempts=attempt - 1,
            tracking_id=response.tracking_id if response else None,
            status=response.status if response else None,
        )

    def _state(self, state: RetryCallState | None, request: Request, attempt: int) -> RetryCallState:
        if state is None:
            state = RetryCallState(request, waits=_testing is None)
            if self._breaker is not None:
                state.recoveries = self._breaker.recoveries
        state.attempt = attempt
        return state

    def after_failure(self, retry: Retry | None, state: RetryCallState) -> Response | None:
        """What follows the failed attempt ``state`` records: the answer that ends the call, or
        None when another attempt follows (after ``wait``); raises the error that ends it."""
        decision = _NOT_RETRYABLE if retry is None else self._decide(retry, state)
        if isinstance(decision, GiveUp):
            return _give_up(state, decision)
        state.next_wait = decision.delay
        return None

    async def wait(self, state: RetryCallState) -> None:
        """Wait before the next attempt, as ``after_failure`` decided (not in testing mode)."""
        if state.waits and state.next_wait is not None:
            breaker = self._breaker
            if breaker is not None and _wakes_on_breaker(self.config, state.failure):
                started = self._clock.monotonic()
                await self._until_breaker_changes(state.next_wait, breaker)
                state.idle_for += self._clock.monotonic() - started
            else:
                await self._clock.sleep(state.next_wait)
                state.idle_for += state.next_wait

    async def _until_breaker_changes(self, delay: float, breaker: BreakerWatch) -> None:
        """Sleep ``delay`` seconds, or less: until the breaker may admit the call again."""
        changed = asyncio.ensure_future(breaker.changed())
        sleeper = asyncio.ensure_future(self._clock.sleep(delay))
        try:
            await asyncio.wait((sleeper, changed), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()

    async def handle(self, request: Request, call_next: Send) -> Response:
        """Run attempts of ``request`` down ``call_next`` until the core says the call is done."""
        retry = self.begin()
        state: RetryCallState | None = None
        attempt = 1
        while True:
            request.attempt = attempt
            try:
                response = await call_next(request)
            except REFUSED_ERRORS as exc:
                raise self.refused(state, request, attempt, exc) from exc.__cause__
            except RETRIED_ERRORS as exc:
                state = self.raised(state, request, attempt, exc)
            else:
                state = self.answered(retry, state, request, attempt, response)
                if state is None:
                    return response
            final = self.after_failure(retry, state)
            if final is not None:
                return final
            await self.wait(state)
            attempt = state.attempt + 1

    def _decide(self, retry: Retry, state: RetryCallState) -> RetryIn | GiveUp:
        assert state.failure is not None
        request = state.request
        breaker = self._breaker
        if breaker is not None and breaker.recoveries != state.recoveries:
            # The upstream came back since this call's last failure: the backoff grown during
            # the outage is stale, this failure starts it again.
            state.recoveries = breaker.recoveries
            state.backoff_from = state.attempt - 1
        return retry.decide(
            attempt=state.attempt,
            method=request.method,
            has_idempotency_key=request.idempotency_key is not None,
            failure=state.failure,
            retry_after=state.retry_after,
            now=self._clock.monotonic(),
            deadline=request.deadline,
            budget=self._budget,
            rng=self._rng,
            backoff_from=state.backoff_from,
        )

    def __repr__(self) -> str:
        return f"<RetryPolicy {self.config} budget={self._budget!r}>"


def _wakes_on_breaker(retry: Retry | None, failure: FailureKind | None) -> bool:
    """Whether a call backing off after ``failure`` is woken when the breaker changes: a call
    refused by the open breaker always is; one backing off after a failed attempt (a 5xx, a
    network error, a timeout) is when it would wait out the breaker anyway
    (``Retry(circuit_open=True)``): the breaker closing after a probe succeeded says the
    upstream is back, and sleeping out a backoff grown during the outage would only waste that.
    A 429's wait belongs to the rate limit, not the breaker."""
    if failure is FailureKind.CIRCUIT_OPEN:
        return True
    return retry is not None and retry.circuit_open and failure is not FailureKind.THROTTLED


def _give_up(state: RetryCallState, decision: GiveUp) -> Response:
    """End a call whose last attempt failed: return the answer or raise the right error."""
    request, response, error = state.request, state.response, state.error
    context: dict[str, Any] = {
        **request.context(),
        "attempts": state.attempt,
        "tracking_id": response.tracking_id if response else None,
        "status": response.status if response else None,
    }
    if decision.answer_stands:
        if response is not None:
            return response
        assert error is not None
        if decision.reason == "unsafe_method":
            error.hint = "not retried: it may have been applied; pass idempotency_key= to retry it"
        raise error.with_context(**context) from error.__cause__
    last = f"last answer {response.status}" if response else f"last error: {error}"
    if decision.reason == "deadline":
        raise DeadlineExceeded(f"{decision.words}; {last}", **context) from error
    if error is not None and state.attempt == 1 and decision.reason == "attempts":
        raise error.with_context(**context) from error.__cause__
    raise RetriesExhausted(f"gave up: {decision.words}; {last}", **context) from error
