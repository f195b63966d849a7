import random

import pytest

from interlock import Backoff, Retry, RetryBudget
from interlock.core.retry import BudgetLedger, FailureKind, GiveUp, RetryIn
from interlock.errors import ConfigError

NO_JITTER = Backoff(base=0.5, multiplier=2, cap=4, jitter="none")


def decide(retry: Retry, **overrides: object) -> object:
    args: dict[str, object] = {
        "attempt": 1,
        "method": "GET",
        "has_idempotency_key": False,
        "failure": FailureKind.STATUS,
        "retry_after": None,
        "now": 100.0,
        "deadline": None,
        "budget": None,
        "rng": random.Random(0),
    }
    args.update(overrides)
    return retry.decide(**args)  # type: ignore[arg-type]


def test_backoff_grows_per_attempt_until_attempts_run_out() -> None:
    retry = Retry(attempts=4, backoff=NO_JITTER, budget=None)
    assert [decide(retry, attempt=n) for n in (1, 2, 3)] == [RetryIn(0.5), RetryIn(1.0), RetryIn(2.0)]
    assert decide(retry, attempt=4) == GiveUp("attempts")


def test_retry_after_wins_when_longer_and_is_capped() -> None:
    retry = Retry(backoff=NO_JITTER, max_retry_after=10, budget=None)
    assert decide(retry, retry_after=3.0) == RetryIn(3.0)
    assert decide(retry, retry_after=0.1) == RetryIn(0.5)
    assert decide(retry, retry_after=11.0) == GiveUp("retry_after_too_long")
    assert decide(
        Retry(backoff=NO_JITTER, respect_retry_after=False, budget=None), retry_after=9.0
    ) == RetryIn(0.5)


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_unsafe_methods_need_an_idempotency_key(method: str) -> None:
    retry = Retry(backoff=NO_JITTER, budget=None)
    assert decide(retry, method=method) == GiveUp("unsafe_method")
    assert decide(retry, method=method, failure=FailureKind.TIMEOUT) == GiveUp("unsafe_method")
    assert decide(retry, method=method, has_idempotency_key=True) == RetryIn(0.5)


def test_unsafe_methods_are_repeated_when_nothing_was_processed() -> None:
    retry = Retry(backoff=NO_JITTER, budget=None)
    assert decide(retry, method="POST", failure=FailureKind.CONNECT) == RetryIn(0.5)
    assert decide(retry, method="POST", failure=FailureKind.THROTTLED) == RetryIn(0.5)


def test_put_and_delete_are_idempotent_by_rfc() -> None:
    retry = Retry(backoff=NO_JITTER, budget=None)
    assert decide(retry, method="PUT") == RetryIn(0.5)
    assert decide(retry, method="DELETE") == RetryIn(0.5)


def test_network_errors_and_timeouts_can_be_switched_off() -> None:
    retry = Retry(network_errors=False, timeouts=False, budget=None)
    assert decide(retry, failure=FailureKind.NETWORK) == GiveUp("not_retryable")
    assert decide(retry, failure=FailureKind.CONNECT) == GiveUp("not_retryable")
    assert decide(retry, failure=FailureKind.TIMEOUT) == GiveUp("not_retryable")


def test_no_retry_that_would_end_past_the_deadline() -> None:
    retry = Retry(backoff=NO_JITTER, budget=None)
    assert decide(retry, now=100.0, deadline=100.4) == GiveUp("deadline")
    assert decide(retry, now=100.0, deadline=100.6) == RetryIn(0.5)
    assert decide(retry, retry_after=5.0, now=100.0, deadline=104.0) == GiveUp("deadline")


def test_budget_caps_retries_to_a_share_of_calls() -> None:
    ledger = BudgetLedger(RetryBudget(ratio=0.2, min_per_second=0, window=10))
    for _ in range(50):
        ledger.record_call(100.0)
    spent = sum(ledger.try_spend(100.0) for _ in range(30))
    assert spent == 10
    retry = Retry(backoff=NO_JITTER)
    assert decide(retry, budget=ledger) == GiveUp("budget")


def test_budget_recovers_as_the_window_slides() -> None:
    ledger = BudgetLedger(RetryBudget(ratio=0.5, min_per_second=0, window=10))
    for _ in range(4):
        ledger.record_call(0.0)
    assert [ledger.try_spend(1.0) for _ in range(3)] == [True, True, False]
    for _ in range(4):
        ledger.record_call(20.0)
    assert ledger.try_spend(20.0)


def test_budget_floor_lets_quiet_upstreams_retry() -> None:
    ledger = BudgetLedger(RetryBudget(ratio=0.0, min_per_second=1, window=10))
    assert sum(ledger.try_spend(5.0) for _ in range(20)) == 10


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"attempts": 0}, "attempts"),
        ({"statuses": {700}}, "statuses"),
        ({"max_retry_after": -1}, "max_retry_after"),
    ],
)
def test_bad_values_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=f"Retry.{field}"):
        Retry(**kwargs)  # type: ignore[arg-type]


def test_open_breaker_fails_fast_unless_asked_to_wait() -> None:
    assert decide(Retry(budget=None), failure=FailureKind.CIRCUIT_OPEN, retry_after=2.0) == GiveUp(
        "not_retryable"
    )
    waiting = Retry(backoff=NO_JITTER, circuit_open=True)
    spent = BudgetLedger(RetryBudget(ratio=0, min_per_second=0))
    assert decide(
        waiting, method="POST", failure=FailureKind.CIRCUIT_OPEN, retry_after=2.0, budget=spent
    ) == RetryIn(2.0)


def test_server_paced_429s_do_not_spend_the_budget() -> None:
    empty = BudgetLedger(RetryBudget(ratio=0, min_per_second=0))
    retry = Retry(backoff=NO_JITTER)
    assert decide(retry, failure=FailureKind.THROTTLED, retry_after=1.0, budget=empty) == RetryIn(1.0)
    assert decide(retry, failure=FailureKind.THROTTLED, retry_after=None, budget=empty) == GiveUp("budget")
    assert decide(retry, failure=FailureKind.STATUS, retry_after=1.0, budget=empty) == GiveUp("budget")


# -- found by the mutation run (issue #19) ------------------------------------------------------


def test_network_errors_are_retried_unless_turned_off_and_nothing_else_is_affected() -> None:
    on = Retry(backoff=NO_JITTER, budget=None)
    off = Retry(backoff=NO_JITTER, budget=None, network_errors=False)
    assert decide(on, failure=FailureKind.NETWORK) == RetryIn(0.5)
    assert decide(off, failure=FailureKind.NETWORK) == GiveUp("not_retryable")
    assert decide(off, failure=FailureKind.STATUS) == RetryIn(0.5)


def test_retry_after_at_the_maximum_is_waited_for_and_a_delay_reaching_the_deadline_is_not() -> None:
    retry = Retry(backoff=NO_JITTER, budget=None, max_retry_after=10.0)
    assert decide(retry, retry_after=10.0) == RetryIn(10.0)
    assert decide(retry, retry_after=10.01) == GiveUp("retry_after_too_long")
    assert decide(retry, deadline=100.49) == GiveUp("deadline")
    assert decide(retry, deadline=100.5) == GiveUp("deadline")  # would start exactly at the deadline
    assert decide(retry, deadline=100.51) == RetryIn(0.5)


def test_the_jitter_draws_from_the_callers_random_source() -> None:
    class Half:
        def random(self) -> float:
            return 0.5

    retry = Retry(backoff=Backoff(base=2.0, cap=10.0, jitter="full"), budget=None)
    assert decide(retry, rng=Half()) == RetryIn(1.0)


def test_the_budget_window_keeps_calls_made_exactly_window_seconds_ago() -> None:
    ledger = BudgetLedger(RetryBudget(ratio=1.0, min_per_second=0.0, window=10.0))
    ledger.record_call(90.0)
    assert ledger.try_spend(100.0)  # the call at 90 is still inside [90, 100]
    assert not ledger.try_spend(100.0)


def test_what_each_status_means_for_retrying() -> None:
    retry = Retry(statuses={429, 503})
    assert retry.failure_of_status(429) is FailureKind.THROTTLED
    assert retry.failure_of_status(503) is FailureKind.STATUS
    assert retry.failure_of_status(500) is None and retry.failure_of_status(200) is None
    assert retry.is_retryable_status(503) and not retry.is_retryable_status(502)


def test_backoff_from_restarts_the_growth_and_the_attempt_count() -> None:
    # Attempts before the upstream recovered no longer count: neither for the backoff nor
    # against ``attempts`` (the deadline still bounds the call).
    retry = Retry(attempts=4, backoff=NO_JITTER, budget=None)
    assert decide(retry, attempt=3) == RetryIn(2.0)
    assert decide(retry, attempt=4) == GiveUp("attempts")
    assert decide(retry, attempt=4, backoff_from=3) == RetryIn(0.5)
    assert decide(retry, attempt=6, backoff_from=3) == RetryIn(2.0)
    assert decide(retry, attempt=7, backoff_from=3) == GiveUp("attempts")
