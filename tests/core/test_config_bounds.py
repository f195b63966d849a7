"""Every bound of the core's configuration objects, at its edge: the edge value is accepted, the
first value past it is refused with the exact message (owner, field, what is accepted, what was
given). Written from the mutation run of issue #19: an off-by-one in a bound, or a message that
names the wrong field, survived every other test."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from interlock.core.backoff import Backoff
from interlock.core.batching import Batcher
from interlock.core.breaker import CircuitBreaker
from interlock.core.checkpoint import FlushSchedule
from interlock.core.redelivery import Redelivery
from interlock.core.retry import Retry, RetryBudget
from interlock.errors import ConfigError

# (make, field, accepted at the edge, refused just past it, the exact message of the refusal)
BOUNDS: list[tuple[Callable[..., Any], str, list[Any], Any, str]] = [
    (CircuitBreaker, "failure_ratio", [1, 0.001], 0, "CircuitBreaker.failure_ratio: must be in (0, 1], got 0"),
    (CircuitBreaker, "failure_ratio", [1], 1.01, "CircuitBreaker.failure_ratio: must be in (0, 1], got 1.01"),
    (CircuitBreaker, "min_calls", [1], 0, "CircuitBreaker.min_calls: must be >= 1, got 0"),
    (CircuitBreaker, "window", [0.5, 1], 0, "CircuitBreaker.window: must be > 0 seconds, got 0"),
    (CircuitBreaker, "open_for", [0.5], 0, "CircuitBreaker.open_for: must be > 0 seconds, got 0"),
    (CircuitBreaker, "half_open_calls", [1], 0, "CircuitBreaker.half_open_calls: must be >= 1"),
    (CircuitBreaker, "slow_call", [None, 0.001], 0, "CircuitBreaker.slow_call: must be > 0 seconds or None"),
    (CircuitBreaker, "buckets", [1, 1000], 0, "CircuitBreaker.buckets: must be between 1 and 1000"),
    (CircuitBreaker, "buckets", [1000], 1001, "CircuitBreaker.buckets: must be between 1 and 1000"),
    (RetryBudget, "ratio", [0, 10], -0.1, "RetryBudget.ratio: must be between 0 and 10, got -0.1"),
    (RetryBudget, "ratio", [10], 10.5, "RetryBudget.ratio: must be between 0 and 10, got 10.5"),
    (RetryBudget, "min_per_second", [0], -1, "RetryBudget.min_per_second: must be >= 0"),
    (RetryBudget, "window", [0.5], 0, "RetryBudget.window: must be > 0 seconds, got 0"),
    (Retry, "attempts", [1], 0, "Retry.attempts: must be an integer >= 1, got 0"),
    (Retry, "attempts", [1], 1.0, "Retry.attempts: must be an integer >= 1, got 1.0"),
    (Retry, "max_retry_after", [0], -1, "Retry.max_retry_after: must be >= 0 seconds"),
    (Retry, "statuses", [{100, 599}], {99, 600}, "Retry.statuses: not HTTP statuses: [99, 600]"),
    (Backoff, "base", [0], -0.5, "Backoff.base: must be >= 0 seconds, got -0.5"),
    (Backoff, "multiplier", [1], 0.5, "Backoff.multiplier: must be >= 1, got 0.5"),
    (Backoff, "jitter", ["full", "equal", "none"], "half", "Backoff.jitter: must be 'full', 'equal' or 'none', got 'half'"),
    (Backoff, "delays", [(0, 1.5)], (1, -1), "Backoff.delays: every delay must be >= 0 seconds"),
    (Redelivery, "attempts", [1], 0, "Redelivery.attempts: must be >= 1, got 0"),
    (FlushSchedule, "every", [0, 2.5], -1, "FlushSchedule.every: must be >= 0 seconds, got -1"),
    (FlushSchedule, "records", [1], 0, "FlushSchedule.records: must be an integer >= 1, got 0"),
]


@pytest.mark.parametrize(
    ("make", "field", "accepted", "refused", "message"),
    BOUNDS,
    ids=[f"{b[0].__name__}.{b[1]}={b[3]!r}" for b in BOUNDS],
)
def test_each_bound_holds_at_its_edge(
    make: Callable[..., Any], field: str, accepted: list[Any], refused: Any, message: str
) -> None:
    for value in accepted:
        built = make(**{field: value})
        stored = getattr(built, field)
        assert stored == value or stored == frozenset(value) or stored == tuple(value)
    with pytest.raises(ConfigError) as caught:
        make(**{field: refused})
    assert str(caught.value) == message
    assert (caught.value.owner, caught.value.field) == (make.__name__, field)


def test_backoff_cap_may_equal_base_but_not_go_below() -> None:
    assert Backoff(base=2.0, cap=2.0).cap == 2.0
    with pytest.raises(ConfigError) as caught:
        Backoff(base=2.0, cap=1.5)
    assert str(caught.value) == "Backoff.cap: must be >= base (2.0), got 1.5"


def test_nan_is_refused_where_a_number_of_seconds_is_expected() -> None:
    with pytest.raises(ConfigError, match=r"^FlushSchedule\.every: must be >= 0 seconds, got nan$"):
        FlushSchedule(every=math.nan)


def test_batcher_bounds() -> None:
    assert Batcher(1, 0.0).max_size == 1
    with pytest.raises(ValueError, match=r"^max_size must be >= 1, got 0$"):
        Batcher(0, 0.01)
    with pytest.raises(ValueError, match=r"^window must be >= 0 seconds, got -0.01$"):
        Batcher(5, -0.01)
