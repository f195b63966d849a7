"""Circuit breaker state machine (closed -> open -> half-open -> closed). Pure: fed with call
outcomes and clock readings, it answers whether the next call may go upstream.

Failure ratio is measured over a sliding time window split into buckets, so old failures age
out smoothly; the breaker only judges once ``min_calls`` calls are in the window (a single
failure of the day's first call must not open it). Defaults follow seed 001's example.

When the failure that opens the breaker says when to come back (``Retry-After``, RFC 9110
section 10.2.3, on a 503), the breaker stays open that long rather than ``open_for``: the probe
goes when the upstream said it would be back, no sooner (wasted) and no later (idle).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ..errors import ConfigError


class BreakerState(Enum):
    """Where a breaker is: closed (calls go through), open (fail fast), half-open (probing)."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"

    @property
    def gauge(self) -> int:
        """The state as the ``interlock_client_breaker_state`` gauge shows it: 0, 1 or 2."""
        return {"closed": 0, "half_open": 1, "open": 2}[self.value]


MIN_OPEN_FOR = 0.1
"""A ``Retry-After`` of 0 still holds the breaker open this long, so probes cannot spin."""


@dataclass(frozen=True, slots=True)
class CircuitBreaker:
    """Circuit breaker configuration: when to stop calling a failing upstream, and for how long.

    A call fails when it raises a network error or timeout, or the upstream answers 5xx; with
    ``slow_call`` set, a call slower than that counts as failed too. The breaker opens once
    ``min_calls`` calls in the last ``window`` seconds failed at ``failure_ratio`` or more (or
    the last ``consecutive_failures`` calls all failed), fails
    fast for ``open_for`` seconds (or for the ``Retry-After`` of the failure that opened it, see
    ``follow_retry_after``), then lets ``half_open_calls`` probes through.
    """

    failure_ratio: float = 0.5
    min_calls: int = 20
    window: float = 10.0
    open_for: float = 10.0
    half_open_calls: int = 1
    """Probe calls let through while half-open; all must succeed to close again."""
    slow_call: float | None = None
    buckets: int = 10
    consecutive_failures: int | None = 20
    """Open after this many failures in a row, whatever the window holds: a long healthy
    history must not make an outage that has just begun wait for the ratio (None: ratio only)."""
    follow_retry_after: bool = True
    """Stay open for the ``Retry-After`` of the failure that opened the breaker (when it has
    one) instead of ``open_for``, within ``MIN_OPEN_FOR`` and ``max_open_for``."""
    max_open_for: float = 60.0
    """The longest a ``Retry-After`` may hold the breaker open before a probe goes."""

    def __post_init__(self) -> None:
        if not 0 < self.failure_ratio <= 1:
            raise ConfigError(
                "CircuitBreaker", "failure_ratio", f"must be in (0, 1], got {self.failure_ratio!r}"
            )
        if self.min_calls < 1:
            raise ConfigError("CircuitBreaker", "min_calls", f"must be >= 1, got {self.min_calls!r}")
        if self.window <= 0:
            raise ConfigError("CircuitBreaker", "window", f"must be > 0 seconds, got {self.window!r}")
        if self.open_for <= 0:
            raise ConfigError("CircuitBreaker", "open_for", f"must be > 0 seconds, got {self.open_for!r}")
        if self.half_open_calls < 1:
            raise ConfigError("CircuitBreaker", "half_open_calls", "must be >= 1")
        if self.slow_call is not None and self.slow_call <= 0:
            raise ConfigError("CircuitBreaker", "slow_call", "must be > 0 seconds or None")
        if not 1 <= self.buckets <= 1000:
            raise ConfigError("CircuitBreaker", "buckets", "must be between 1 and 1000")
        if self.consecutive_failures is not None and (
            not isinstance(self.consecutive_failures, int) or self.consecutive_failures < 1
        ):
            raise ConfigError(
                "CircuitBreaker",
                "consecutive_failures",
                f"must be an integer >= 1 or None, got {self.consecutive_failures!r}",
            )
        if not self.max_open_for > 0:
            raise ConfigError(
                "CircuitBreaker", "max_open_for", f"must be > 0 seconds, got {self.max_open_for!r}"
            )

    def open_period(self, retry_after: float | None) -> float:
        """How long the breaker stays open after the failure that opened it: its ``Retry-After``
        (when followed) within [``MIN_OPEN_FOR``, ``max_open_for``], else ``open_for``."""
        if retry_after is None or not self.follow_retry_after:
            return self.open_for
        return min(self.max_open_for, max(MIN_OPEN_FOR, retry_after))

    def new_state(self, now: float) -> Breaker:
        """A closed ``Breaker`` run by this configuration, created at clock reading ``now``."""
        return Breaker(self, now)


@dataclass(frozen=True, slots=True)
class Admit:
    """The call may go upstream; ``probe`` when it is one of the half-open state's test calls."""

    probe: bool


@dataclass(frozen=True, slots=True)
class Reject:
    """Fail fast with ``CircuitOpen``: the breaker may admit a call again in ``retry_in`` seconds.

    ``probing``: half-open with every probe slot taken; a call may be admitted as soon as a probe
    ends (``retry_in`` is then only how often to look again)."""

    retry_in: float
    probing: bool = False


# Admissions carry no per-call data: two shared instances, so admitting a call allocates nothing.
ADMIT = Admit(probe=False)
ADMIT_PROBE = Admit(probe=True)


class Breaker:
    """One upstream's breaker. ``admit`` before a call, ``record`` after it."""

    def __init__(self, config: CircuitBreaker, now: float) -> None:
        self.config = config
        self.state = BreakerState.CLOSED
        self._bucket_width = config.window / config.buckets
        self._calls = [0] * config.buckets
        self._failures = [0] * config.buckets
        self._bucket_ids = [-1] * config.buckets
        self._open_until = now
        self._probes_in_flight = 0
        self._probe_successes = 0
        self._in_a_row = 0
        self._advised: float | None = None  # the upstream's Retry-After in this episode
        self.transitions = 0

    # -- sliding window -------------------------------------------------------------------------
    def window_counts(self, now: float) -> tuple[int, int]:
        """(calls, failures) in the window ending now."""
        oldest = int(now // self._bucket_width) - self.config.buckets + 1
        calls = failures = 0
        for slot, bucket_id in enumerate(self._bucket_ids):
            if bucket_id >= oldest:
                calls += self._calls[slot]
                failures += self._failures[slot]
        return calls, failures

    def _reset_window(self) -> None:
        self._bucket_ids = [-1] * self.config.buckets

    def _move(self, state: BreakerState, now: float, retry_after: float | None = None) -> None:
        if state is BreakerState.OPEN:
            if retry_after is None and self.state is BreakerState.HALF_OPEN:
                # A probe failed without saying when to come back (a stray 5xx, a timeout): the
                # upstream's last word in this episode still holds, not ``open_for``.
                retry_after = self._advised
            self._advised = retry_after
            self._open_until = now + self.config.open_period(retry_after)
        self.state = state
        self.transitions += 1
        self._probes_in_flight = 0
        self._probe_successes = 0
        self._in_a_row = 0
        if state is BreakerState.CLOSED:
            self._advised = None
            self._reset_window()

    # -- decisions ------------------------------------------------------------------------------
    def admit(self, now: float) -> Admit | Reject:
        """Whether a call may start now; moves an open breaker whose time is up to half-open."""
        if self.state is BreakerState.CLOSED:
            return ADMIT
        if self.state is BreakerState.OPEN:
            remaining = self._open_until - now
            if remaining > 0:
                return Reject(remaining)
            self._move(BreakerState.HALF_OPEN, now)
        if self.state is BreakerState.HALF_OPEN:
            if self._probes_in_flight >= self.config.half_open_calls:
                return Reject(self._bucket_width, probing=True)
            self._probes_in_flight += 1
            return ADMIT_PROBE
        return ADMIT

    def refusal(self, now: float) -> Reject | None:
        """What ``admit`` would refuse now, without changing anything (no move to half-open, no
        probe slot taken): ``None`` when it would admit a call."""
        if self.state is BreakerState.CLOSED:
            return None
        if self.state is BreakerState.OPEN:
            remaining = self._open_until - now
            return Reject(remaining) if remaining > 0 else None
        if self._probes_in_flight >= self.config.half_open_calls:
            return Reject(self._bucket_width, probing=True)
        return None

    def reset(self, now: float) -> None:
        """Close the breaker now and forget the window (an operator knows the upstream is back)."""
        self._move(BreakerState.CLOSED, now)

    @property
    def probes_in_flight(self) -> int:
        """Probe calls admitted while half-open and not yet ended."""
        return self._probes_in_flight

    def release(self, admitted: Admit) -> None:
        """The admitted call ended without a verdict on health (e.g. cancelled, a 429, or a probe
        cut short by its own call's deadline): a probe's slot is free for the next call."""
        if admitted.probe and self.state is BreakerState.HALF_OPEN:
            self._probes_in_flight = max(0, self._probes_in_flight - 1)

    def record(
        self,
        admitted: Admit,
        *,
        failed: bool,
        duration: float,
        now: float,
        retry_after: float | None = None,
    ) -> None:
        """The admitted call ended: ``failed`` (or slower than ``slow_call``) or not.

        A closed breaker opens once the window holds ``min_calls`` calls with at least
        ``failure_ratio`` failed, or ``consecutive_failures`` calls in a row failed; a probe's failure reopens a half-open one, and
        ``half_open_calls`` successful probes close it. ``retry_after``: what the failed answer
        said about coming back; it sets how long the breaker stays open if this failure opens it
        (``CircuitBreaker.open_period``). A probe failing without one reopens the breaker for
        the ``Retry-After`` last given in the same outage, if any: one stray 503 from a
        recovering upstream must not hold everyone back for ``open_for``.
        """
        config = self.config
        if config.slow_call is not None and duration >= config.slow_call:
            failed = True
        if admitted.probe:
            if self.state is not BreakerState.HALF_OPEN:
                return
            if failed:
                self._move(BreakerState.OPEN, now, retry_after)
                return
            self._probes_in_flight = max(0, self._probes_in_flight - 1)
            self._probe_successes += 1
            if self._probe_successes >= self.config.half_open_calls:
                self._move(BreakerState.CLOSED, now)
            return
        if self.state is not BreakerState.CLOSED:
            return  # a call admitted before the breaker opened; its verdict is already moot
        # ``_slot`` inlined: this runs once per call.
        bucket_id = int(now // self._bucket_width)
        slot = bucket_id % config.buckets
        if self._bucket_ids[slot] != bucket_id:
            self._bucket_ids[slot] = bucket_id
            self._calls[slot] = 0
            self._failures[slot] = 0
        self._calls[slot] += 1
        if not failed:
            self._in_a_row = 0
            return
        self._failures[slot] += 1
        self._in_a_row += 1
        in_a_row = self.config.consecutive_failures
        calls, failures = self.window_counts(now)
        if (calls >= self.config.min_calls and failures >= self.config.failure_ratio * calls) or (
            in_a_row is not None and self._in_a_row >= in_a_row
        ):
            self._move(BreakerState.OPEN, now, retry_after)

    def __repr__(self) -> str:
        return f"<Breaker {self.state.value} transitions={self.transitions} {self.config}>"
