"""The settle decision, driven with plain values: ack, retry after the backoff, or dead-letter."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from interlock import Backoff, Redelivery
from interlock.core.settle import Ack, Outcome, RetryIn, ToDeadLetters, admit, settle

EXPLICIT = Redelivery(attempts=4, backoff=Backoff(delays=[1, 10, 60], jitter="none"))

policies = st.builds(
    Redelivery,
    attempts=st.integers(min_value=1, max_value=20),
    backoff=st.one_of(
        st.builds(
            Backoff,
            base=st.floats(min_value=0, max_value=5),
            multiplier=st.floats(min_value=1, max_value=4),
            cap=st.just(600.0),
            jitter=st.sampled_from(["full", "equal", "none"]),
        ),
        st.builds(
            Backoff,
            delays=st.lists(st.floats(min_value=0, max_value=3600), min_size=1, max_size=6),
            jitter=st.sampled_from(["full", "equal", "none"]),
        ),
    ),
)


def test_success_and_unhandled_events_are_acknowledged_on_any_attempt() -> None:
    for attempt in (1, 4, 99):
        assert settle(attempt, Outcome.SUCCEEDED, EXPLICIT) == Ack()
        assert settle(attempt, Outcome.UNHANDLED, EXPLICIT) == Ack()


def test_failures_follow_the_schedule_then_go_to_the_dead_letters() -> None:
    decisions = [settle(n, Outcome.FAILED, EXPLICIT, error="boom") for n in (1, 2, 3, 4)]
    assert decisions == [RetryIn(1.0), RetryIn(10.0), RetryIn(60.0), ToDeadLetters("attempts", "boom")]


def test_a_permanent_failure_is_dead_lettered_at_once() -> None:
    assert settle(1, Outcome.PERMANENT, EXPLICIT, error="PermanentFailure: no amount") == ToDeadLetters(
        "permanent", "PermanentFailure: no amount"
    )


def test_a_single_attempt_policy_never_retries() -> None:
    assert settle(1, Outcome.FAILED, Redelivery(attempts=1), error="x") == ToDeadLetters("attempts", "x")


def test_deliveries_past_the_last_attempt_are_dead_lettered_unrun() -> None:
    assert admit(1, EXPLICIT) is None
    assert admit(4, EXPLICIT) is None  # the last allowed delivery still runs
    refused = admit(5, EXPLICIT)
    assert isinstance(refused, ToDeadLetters)
    assert refused.reason == "abandoned"
    assert "delivery 5 is past the 4 allowed" in refused.error


def test_jitter_draws_from_the_rng_it_is_given() -> None:
    policy = Redelivery(attempts=3, backoff=Backoff(delays=[100], jitter="full"))
    first = settle(1, Outcome.FAILED, policy, rng=random.Random(7))
    again = settle(1, Outcome.FAILED, policy, rng=random.Random(7))
    assert first == again
    assert isinstance(first, RetryIn)
    assert 0 <= first.delay <= 100


@given(policy=policies, seed=st.integers(min_value=0, max_value=2**32))
def test_an_event_that_always_fails_is_delivered_exactly_attempts_times(
    policy: Redelivery, seed: int
) -> None:
    rng = random.Random(seed)
    attempt, deliveries = 1, 0
    while True:
        assert admit(attempt, policy) is None  # a retry never schedules a delivery past the policy
        deliveries += 1
        decision = settle(attempt, Outcome.FAILED, policy, error="e", rng=rng)
        if isinstance(decision, ToDeadLetters):
            assert decision == ToDeadLetters("attempts", "e")
            break
        assert isinstance(decision, RetryIn)
        attempt += 1
    assert deliveries == policy.attempts


@given(
    policy=policies,
    attempt=st.integers(min_value=1, max_value=25),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_retry_delays_stay_within_the_backoff_ceiling(policy: Redelivery, attempt: int, seed: int) -> None:
    decision = settle(attempt, Outcome.FAILED, policy, rng=random.Random(seed))
    if attempt >= policy.attempts:
        assert isinstance(decision, ToDeadLetters)
        return
    assert isinstance(decision, RetryIn)
    assert 0 <= decision.delay <= policy.backoff.ceiling(attempt)


@given(policy=policies, attempt=st.integers(min_value=1, max_value=25))
def test_admit_refuses_exactly_the_deliveries_past_the_policy(policy: Redelivery, attempt: int) -> None:
    assert (admit(attempt, policy) is None) == (attempt <= policy.attempts)
