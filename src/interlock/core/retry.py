"""When to retry a call, and how long to wait first. Pure: no sleeping, no I/O.

Defaults follow the seeds: retry network errors and 429/502/503/504; never repeat a request that
could apply twice (POST, PATCH) unless it carries an idempotency key; honour ``Retry-After``
(RFC 9110 section 10.2.3); keep retries to a fraction of traffic with a budget, so a failing
upstream is not hit with attempts x load (the retry-budget idea of Finagle and gRPC's
retry throttling).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

from .._models import IDEMPOTENT_METHODS
from ..errors import ConfigError
from .backoff import Backoff


class FailureKind(Enum):
    """What went wrong with one attempt, as far as retrying is concerned."""

    STATUS = "status"  # the upstream answered with a retryable status
    THROTTLED = "throttled"  # 429: refused before processing (RFC 6585 section 4), safe to repeat
    CONNECT = "connect"  # no connection was made: nothing was sent, always safe to repeat
    NETWORK = "network"  # the connection broke after the request may have been sent
    TIMEOUT = "timeout"  # the attempt ran out of time; the request may have been applied
    CIRCUIT_OPEN = "circuit_open"  # the breaker refused the attempt: nothing was sent


_GIVE_UP_WORDS = {
    "attempts": "no attempts left",
    "budget": "retry budget exhausted (the upstream is failing a large share of calls)",
    "retry_after_too_long": "Retry-After is longer than Retry.max_retry_after",
    "deadline": "deadline reached, no time for another retry",
}


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Decision: no further attempt; the driver ends the call with the last answer or error."""

    reason: str
    """One of: not_retryable, unsafe_method, attempts, deadline, budget, retry_after_too_long."""

    @property
    def answer_stands(self) -> bool:
        """True when retrying was never the cure (a failure not worth retrying, or a request
        unsafe to repeat): the caller gets the last answer, or the attempt's own error."""
        return self.reason in ("not_retryable", "unsafe_method")

    @property
    def words(self) -> str:
        """The reason in words, for the error that ends the call."""
        return _GIVE_UP_WORDS.get(self.reason, self.reason.replace("_", " "))


@dataclass(frozen=True, slots=True)
class RetryIn:
    """Decision: wait ``delay`` seconds, then send the next attempt."""

    delay: float


Decision = RetryIn | GiveUp
"""What follows a failed attempt."""


@dataclass(frozen=True, slots=True)
class RetryBudget:
    """Retries may add at most ``ratio`` extra load over ``window`` seconds, with a floor of
    ``min_per_second`` so low-traffic upstreams can still retry. The default 0.5 lets a client
    ride out a 20 % error rate (which needs about 0.25 retries per call) while a dead upstream
    sees 1.5x its normal load instead of ``attempts`` times it."""

    ratio: float = 0.5
    min_per_second: float = 10.0
    window: float = 10.0

    def __post_init__(self) -> None:
        if not 0 <= self.ratio <= 10:
            raise ConfigError("RetryBudget", "ratio", f"must be between 0 and 10, got {self.ratio!r}")
        if self.min_per_second < 0:
            raise ConfigError("RetryBudget", "min_per_second", "must be >= 0")
        if self.window <= 0:
            raise ConfigError("RetryBudget", "window", f"must be > 0 seconds, got {self.window!r}")


class BudgetLedger:
    """Counts calls and retries over a sliding window to enforce a ``RetryBudget``, in bounded
    memory: the window is cut into ``SLOTS`` equal slots (plus the one filling now), each holding
    two counters, so a client making millions of calls keeps the same few hundred bytes (one
    timestamp per call would grow without end on a healthy upstream, where no retry ever trims
    them).

    The window slides a slot at a time: a count is kept at least ``window`` seconds and
    forgotten before ``window + window/SLOTS`` (Finagle's retry budget buckets time the same way).
    """

    SLOTS = 20
    """How many slots the window is cut into."""

    __slots__ = ("_calls", "_retries", "_ring", "_slot", "_width", "budget", "calls", "retries")

    def __init__(self, budget: RetryBudget) -> None:
        self.budget = budget
        self._width = budget.window / self.SLOTS
        self._ring = self.SLOTS + 1  # the window's slots and the one filling now
        self._calls = [0] * self._ring
        self._retries = [0] * self._ring
        self._slot: int | None = None  # the slot number (time // width) counted into last
        self.calls = 0
        """Calls counted in the window now."""
        self.retries = 0
        """Retries counted in the window now."""

    def _advance(self, now: float) -> int:
        """Move the window to ``now``, forgetting the slots it leaves; the index to count into."""
        slot = int(now // self._width)
        last = self._slot
        if last is None or slot - last >= self._ring:
            if last is not None:
                self._calls = [0] * self._ring
                self._retries = [0] * self._ring
                self.calls = self.retries = 0
            self._slot = slot
        elif slot > last:
            for passed in range(last + 1, slot + 1):
                index = passed % self._ring
                self.calls -= self._calls[index]
                self.retries -= self._retries[index]
                self._calls[index] = self._retries[index] = 0
            self._slot = slot
        # A clock reading from before the last one (never from a monotonic clock) counts into
        # the current slot rather than into one the window already left.
        return (self._slot if self._slot is not None else slot) % self._ring

    def record_call(self, now: float) -> None:
        """Count a call (its first attempt) made at ``now``."""
        slot = int(now // self._width)
        # Most calls fall in the slot the last one did: nothing to forget, count and go (this
        # runs for every call).
        index = slot % self._ring if slot == self._slot else self._advance(now)
        self._calls[index] += 1
        self.calls += 1

    def try_spend(self, now: float) -> bool:
        """Take one retry from the budget; False when the budget is used up."""
        index = self._advance(now)
        allowed = self.budget.ratio * self.calls + self.budget.min_per_second * self.budget.window
        if self.retries + 1 > allowed:
            return False
        self._retries[index] += 1
        self.retries += 1
        return True

    def __repr__(self) -> str:
        return f"<BudgetLedger calls={self.calls} retries={self.retries} {self.budget}>"


def _frozen_ints(values: Iterable[int]) -> frozenset[int]:
    return frozenset(int(v) for v in values)


@dataclass(frozen=True, slots=True)
class Retry:
    """How a call is retried. ``attempts`` counts the first try: 1 means never retry."""

    attempts: int = 4
    backoff: Backoff = field(default_factory=lambda: Backoff(base=0.1, multiplier=2.0, cap=10.0))
    statuses: frozenset[int] = frozenset({429, 502, 503, 504})
    methods: frozenset[str] = IDEMPOTENT_METHODS
    """Methods retried without an idempotency key (RFC 9110 idempotent methods)."""
    network_errors: bool = True
    timeouts: bool = True
    respect_retry_after: bool = True
    max_retry_after: float = 60.0
    """A ``Retry-After`` longer than this is not waited for: the call fails at once."""
    budget: RetryBudget | None = field(default_factory=RetryBudget)
    circuit_open: bool = False
    """Wait for an open breaker to half-open and try again, until ``Timeout.total`` runs out,
    instead of failing fast. For batch work; request-serving code usually wants to fail fast."""

    def __post_init__(self) -> None:
        if not isinstance(self.attempts, int) or self.attempts < 1:
            raise ConfigError("Retry", "attempts", f"must be an integer >= 1, got {self.attempts!r}")
        if self.max_retry_after < 0:
            raise ConfigError("Retry", "max_retry_after", "must be >= 0 seconds")
        bad = [s for s in self.statuses if not 100 <= int(s) <= 599]
        if bad:
            raise ConfigError("Retry", "statuses", f"not HTTP statuses: {sorted(bad)}")
        object.__setattr__(self, "statuses", _frozen_ints(self.statuses))
        object.__setattr__(self, "methods", frozenset(m.upper() for m in self.methods))

    def is_retryable_status(self, status: int) -> bool:
        """True when an answer with ``status`` is worth another attempt."""
        return status in self.statuses

    def failure_of_status(self, status: int) -> FailureKind | None:
        """What an answer with ``status`` means for retrying: None when the answer stands (a
        success, or an error retrying cannot fix), else the kind of failure to ``decide`` on."""
        if status not in self.statuses:
            return None
        return FailureKind.THROTTLED if status == 429 else FailureKind.STATUS

    def decide(
        self,
        *,
        attempt: int,
        method: str,
        has_idempotency_key: bool,
        failure: FailureKind,
        retry_after: float | None,
        now: float,
        deadline: float | None,
        budget: BudgetLedger | None = None,
        rng: random.Random | None = None,
        backoff_from: int = 0,
    ) -> Decision:
        """Decide what follows failed attempt number ``attempt`` (1-based). ``backoff_from``:
        attempts that no longer count (those before the upstream was seen to recover, say): the
        backoff is that of attempt ``attempt - backoff_from``, and ``attempts`` counts from there
        (the deadline still bounds the call)."""
        if failure is FailureKind.NETWORK and not self.network_errors:
            return GiveUp("not_retryable")
        if failure is FailureKind.CONNECT and not self.network_errors:
            return GiveUp("not_retryable")
        if failure is FailureKind.TIMEOUT and not self.timeouts:
            return GiveUp("not_retryable")
        if failure is FailureKind.CIRCUIT_OPEN and not self.circuit_open:
            return GiveUp("not_retryable")
        nothing_sent = failure in (FailureKind.CONNECT, FailureKind.THROTTLED, FailureKind.CIRCUIT_OPEN)
        # A refused connection or an open breaker sent nothing and a 429 was refused before
        # processing, but any other failure may have been applied: repeat it only when harmless.
        repeatable = method in self.methods or has_idempotency_key or nothing_sent
        if not repeatable:
            return GiveUp("unsafe_method")
        # A refusal by the open breaker is not an attempt (nothing was sent): the deadline, not
        # ``attempts``, bounds how long a caller waits for the upstream to recover.
        if failure is not FailureKind.CIRCUIT_OPEN and attempt - backoff_from >= self.attempts:
            return GiveUp("attempts")
        delay = self.backoff.delay(max(1, attempt - backoff_from), rng)
        if retry_after is not None and self.respect_retry_after:
            if retry_after > self.max_retry_after:
                return GiveUp("retry_after_too_long")
            delay = max(delay, retry_after)
        if deadline is not None and now + delay >= deadline:
            return GiveUp("deadline")
        # The budget guards against retry storms. Waiting out an open breaker sends nothing, and
        # a 429 that says when to come back is paced by the server itself: neither spends it.
        server_paced = failure is FailureKind.THROTTLED and retry_after is not None
        spends_budget = failure is not FailureKind.CIRCUIT_OPEN and not server_paced
        if spends_budget and budget is not None and not budget.try_spend(now):
            return GiveUp("budget")
        return RetryIn(delay)
