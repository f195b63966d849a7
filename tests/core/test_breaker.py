import pytest

from interlock import CircuitBreaker
from interlock.core.breaker import MIN_OPEN_FOR, Admit, BreakerState, Reject
from interlock.errors import ConfigError
from interlock.testing import FakeClock


def calls(breaker, clock: FakeClock, n: int, *, failed: bool, duration: float = 0.01) -> None:  # type: ignore[no-untyped-def]
    for _ in range(n):
        admitted = breaker.admit(clock.monotonic())
        assert isinstance(admitted, Admit)
        breaker.record(admitted, failed=failed, duration=duration, now=clock.monotonic())


def test_opens_only_after_min_calls_and_ratio() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_ratio=0.5, min_calls=10, window=10, open_for=5).new_state(
        clock.monotonic()
    )
    calls(breaker, clock, 9, failed=True)
    assert breaker.state is BreakerState.CLOSED  # 9 < min_calls
    calls(breaker, clock, 1, failed=True)
    assert breaker.state is BreakerState.OPEN


def test_ratio_below_threshold_stays_closed() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_ratio=0.5, min_calls=10).new_state(clock.monotonic())
    calls(breaker, clock, 12, failed=False)
    calls(breaker, clock, 10, failed=True)  # 10/22 < 0.5
    assert breaker.state is BreakerState.CLOSED
    calls(breaker, clock, 2, failed=True)  # 12/24 = 0.5
    assert breaker.state is BreakerState.OPEN


def test_old_failures_age_out_of_the_window() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_ratio=0.5, min_calls=10, window=10).new_state(clock.monotonic())
    calls(breaker, clock, 9, failed=True)
    clock.advance(11)
    calls(breaker, clock, 9, failed=True)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.window_counts(clock.monotonic()) == (9, 9)


def test_open_rejects_then_half_opens_with_limited_probes_then_closes() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(min_calls=2, open_for=5, half_open_calls=2).new_state(clock.monotonic())
    calls(breaker, clock, 2, failed=True)
    rejected = breaker.admit(clock.monotonic())
    assert isinstance(rejected, Reject)
    assert rejected.retry_in == pytest.approx(5)
    clock.advance(5)
    first, second, third = (breaker.admit(clock.monotonic()) for _ in range(3))
    assert breaker.state is BreakerState.HALF_OPEN
    assert first == Admit(probe=True) and second == Admit(probe=True)
    assert isinstance(third, Reject)
    breaker.record(first, failed=False, duration=0.01, now=clock.monotonic())
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.record(second, failed=False, duration=0.01, now=clock.monotonic())
    assert breaker.state is BreakerState.CLOSED
    assert breaker.window_counts(clock.monotonic()) == (0, 0)


def test_failed_probe_reopens_for_another_period() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(min_calls=2, open_for=5).new_state(clock.monotonic())
    calls(breaker, clock, 2, failed=True)
    clock.advance(5)
    probe = breaker.admit(clock.monotonic())
    breaker.record(probe, failed=True, duration=0.01, now=clock.monotonic())  # type: ignore[arg-type]
    assert breaker.state is BreakerState.OPEN
    clock.advance(4.9)
    assert isinstance(breaker.admit(clock.monotonic()), Reject)


def test_released_probe_frees_its_slot() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(min_calls=1, open_for=1).new_state(clock.monotonic())
    calls(breaker, clock, 1, failed=True)
    clock.advance(1)
    probe = breaker.admit(clock.monotonic())
    assert isinstance(breaker.admit(clock.monotonic()), Reject)
    breaker.release(probe)  # type: ignore[arg-type]
    assert breaker.admit(clock.monotonic()) == Admit(probe=True)


def test_slow_calls_count_as_failures() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(min_calls=4, slow_call=1.0).new_state(clock.monotonic())
    calls(breaker, clock, 4, failed=False, duration=1.5)
    assert breaker.state is BreakerState.OPEN


def test_repr_shows_state() -> None:
    breaker = CircuitBreaker().new_state(0.0)
    assert "closed" in repr(breaker)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"failure_ratio": 0}, "failure_ratio"),
        ({"min_calls": 0}, "min_calls"),
        ({"open_for": 0}, "open_for"),
        ({"slow_call": -1}, "slow_call"),
        ({"max_open_for": 0}, "max_open_for"),
        ({"consecutive_failures": 0}, "consecutive_failures"),
    ],
)
def test_bad_values_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=f"CircuitBreaker.{field}"):
        CircuitBreaker(**kwargs)  # type: ignore[arg-type]


# -- found by the mutation run (issue #19) ------------------------------------------------------


def test_the_window_counts_every_bucket_up_to_its_oldest_edge() -> None:
    breaker = CircuitBreaker(window=10, buckets=10, min_calls=100).new_state(1000.0)
    for t in (1000.5, 1003.5, 1003.7):  # buckets 1000 and 1003
        breaker.record(Admit(probe=False), failed=True, duration=0.0, now=t)
    breaker.record(Admit(probe=False), failed=False, duration=0.0, now=1004.0)
    assert breaker.window_counts(1004.0) == (4, 3)
    assert breaker.window_counts(1009.99) == (4, 3)  # bucket 1000 is the window's oldest
    assert breaker.window_counts(1010.0) == (3, 2)  # and then it is gone
    assert breaker.window_counts(1013.99) == (1, 0)


def test_transitions_count_each_move_and_a_reopened_breaker_waits_open_for_again() -> None:
    breaker = CircuitBreaker(min_calls=1, open_for=5, half_open_calls=1).new_state(1000.0)
    assert breaker.transitions == 0
    breaker.record(Admit(probe=False), failed=True, duration=0.0, now=1000.0)
    assert (breaker.state, breaker.transitions) == (BreakerState.OPEN, 1)
    probe = breaker.admit(1005.0)
    assert isinstance(probe, Admit) and probe.probe is True and breaker.transitions == 2
    breaker.record(probe, failed=True, duration=0.0, now=1006.0)  # the probe fails: open again
    assert (breaker.state, breaker.transitions) == (BreakerState.OPEN, 3)
    rejected = breaker.admit(1010.5)  # 5 s from the reopening at 1006, not from 1005
    assert isinstance(rejected, Reject) and rejected.retry_in == pytest.approx(0.5)
    assert isinstance(breaker.admit(1011.0), Admit)


def test_half_open_admits_half_open_calls_probes_and_counts_them_back() -> None:
    breaker = CircuitBreaker(min_calls=1, open_for=5, half_open_calls=2, window=10, buckets=10).new_state(0.0)
    before = breaker.admit(0.0)  # a call admitted while closed...
    assert isinstance(before, Admit) and before.probe is False
    breaker.record(Admit(probe=False), failed=True, duration=0.0, now=0.0)
    first = breaker.admit(5.0)
    assert isinstance(first, Admit) and first.probe
    breaker.release(before)  # ...and released during half-open frees no probe slot
    second = breaker.admit(5.0)
    assert isinstance(second, Admit) and second.probe
    third = breaker.admit(5.0)
    assert isinstance(third, Reject) and third.retry_in == 1.0  # one bucket's width
    breaker.release(first)  # a probe ends without a verdict: its slot is free again
    assert isinstance(breaker.admit(5.0), Admit)
    assert isinstance(breaker.admit(5.0), Reject)


def test_a_successful_probe_frees_its_slot() -> None:
    breaker = CircuitBreaker(min_calls=1, open_for=5, half_open_calls=2).new_state(0.0)
    breaker.record(Admit(probe=False), failed=True, duration=0.0, now=0.0)
    probe = breaker.admit(5.0)
    assert isinstance(probe, Admit)
    breaker.record(probe, failed=False, duration=0.0, now=5.0)  # 1 success of 2: still half-open
    assert breaker.state is BreakerState.HALF_OPEN
    assert isinstance(breaker.admit(5.0), Admit) and isinstance(breaker.admit(5.0), Admit)
    assert isinstance(breaker.admit(5.0), Reject)


def test_a_call_exactly_as_slow_as_slow_call_counts_as_failed() -> None:
    breaker = CircuitBreaker(min_calls=1, slow_call=1.0).new_state(0.0)
    breaker.record(Admit(probe=False), failed=False, duration=0.999, now=0.0)
    assert breaker.state is BreakerState.CLOSED
    breaker.record(Admit(probe=False), failed=False, duration=1.0, now=0.0)
    assert breaker.state is BreakerState.OPEN


def test_each_successful_probe_frees_exactly_its_own_slot() -> None:
    breaker = CircuitBreaker(min_calls=1, open_for=5, half_open_calls=3).new_state(0.0)
    breaker.record(Admit(probe=False), failed=True, duration=0.0, now=0.0)
    first, second = breaker.admit(5.0), breaker.admit(5.0)
    assert isinstance(first, Admit) and isinstance(second, Admit)
    breaker.record(first, failed=False, duration=0.0, now=5.0)  # 1 in flight, 1 success of 3
    assert isinstance(breaker.admit(5.0), Admit) and isinstance(breaker.admit(5.0), Admit)  # 3 in flight
    assert isinstance(breaker.admit(5.0), Reject)


def test_retry_after_of_the_opening_failure_sets_the_open_period() -> None:
    # The upstream says when it will be back: probe then, not after the configured open_for.
    clock = FakeClock()
    breaker = CircuitBreaker(min_calls=2, open_for=30, max_open_for=120).new_state(clock.monotonic())
    first = breaker.admit(clock.monotonic())
    assert isinstance(first, Admit)
    breaker.record(first, failed=True, duration=0.01, now=clock.monotonic())
    second = breaker.admit(clock.monotonic())
    assert isinstance(second, Admit)
    breaker.record(second, failed=True, duration=0.01, now=clock.monotonic(), retry_after=2.0)
    rejected = breaker.admit(clock.monotonic())
    assert isinstance(rejected, Reject) and rejected.retry_in == pytest.approx(2.0)
    clock.advance(2.0)
    probe = breaker.admit(clock.monotonic())
    assert probe == Admit(probe=True)
    # The probe fails too, saying 90 s: longer than open_for, within max_open_for, so followed.
    breaker.record(probe, failed=True, duration=0.01, now=clock.monotonic(), retry_after=90.0)  # type: ignore[arg-type]
    reopened = breaker.admit(clock.monotonic())
    assert isinstance(reopened, Reject) and reopened.retry_in == pytest.approx(90.0)


@pytest.mark.parametrize(
    ("retry_after", "follow", "open_for"),
    [(None, True, 30.0), (1e6, True, 120.0), (0.0, True, MIN_OPEN_FOR), (2.0, False, 30.0)],
)
def test_open_period_is_bounded(retry_after: float | None, follow: bool, open_for: float) -> None:
    config = CircuitBreaker(open_for=30, max_open_for=120, follow_retry_after=follow)
    assert config.open_period(retry_after) == pytest.approx(open_for)


def test_a_busy_half_open_breaker_says_a_probe_is_in_flight() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(min_calls=1, open_for=1).new_state(clock.monotonic())
    calls(breaker, clock, 1, failed=True)
    assert breaker.admit(clock.monotonic()) == Reject(1.0, probing=False)
    clock.advance(1)
    probe = breaker.admit(clock.monotonic())
    assert breaker.probes_in_flight == 1
    busy = breaker.admit(clock.monotonic())
    assert isinstance(busy, Reject) and busy.probing
    breaker.record(probe, failed=False, duration=0.01, now=clock.monotonic())  # type: ignore[arg-type]
    assert breaker.state is BreakerState.CLOSED and breaker.probes_in_flight == 0


def test_failures_in_a_row_open_it_whatever_the_window_holds() -> None:
    # 200 healthy calls make the ratio slow to react; 20 failures in a row are an outage.
    clock = FakeClock()
    breaker = CircuitBreaker(min_calls=20, consecutive_failures=20).new_state(clock.monotonic())
    calls(breaker, clock, 200, failed=False)
    calls(breaker, clock, 19, failed=True)
    calls(breaker, clock, 1, failed=False)  # one success breaks the run
    calls(breaker, clock, 19, failed=True)
    assert breaker.state is BreakerState.CLOSED
    calls(breaker, clock, 1, failed=True)
    assert breaker.state is BreakerState.OPEN
    ratio_only = CircuitBreaker(min_calls=20, consecutive_failures=None).new_state(clock.monotonic())
    calls(ratio_only, clock, 200, failed=False)
    calls(ratio_only, clock, 100, failed=True)
    assert ratio_only.state is BreakerState.CLOSED


def test_a_probe_failing_without_retry_after_keeps_the_upstreams_cadence() -> None:
    # An outage says "Retry-After: 1"; the first probe after it meets a stray 503 with no
    # Retry-After. The breaker must probe again in 1 s, not after open_for's 30 s.
    clock = FakeClock()
    breaker = CircuitBreaker(min_calls=1, open_for=30).new_state(clock.monotonic())
    first = breaker.admit(clock.monotonic())
    assert isinstance(first, Admit)
    breaker.record(first, failed=True, duration=0.01, now=clock.monotonic(), retry_after=1.0)
    clock.advance(1.0)
    probe = breaker.admit(clock.monotonic())
    assert probe == Admit(probe=True)
    breaker.record(probe, failed=True, duration=0.01, now=clock.monotonic())  # type: ignore[arg-type]
    reopened = breaker.admit(clock.monotonic())
    assert isinstance(reopened, Reject) and reopened.retry_in == pytest.approx(1.0)
    clock.advance(1.0)
    second = breaker.admit(clock.monotonic())
    assert second == Admit(probe=True)
    breaker.record(second, failed=False, duration=0.01, now=clock.monotonic())  # type: ignore[arg-type]
    assert breaker.state is BreakerState.CLOSED
    # Closed, the episode is over: the next outage without a Retry-After gets open_for.
    again = breaker.admit(clock.monotonic())
    assert isinstance(again, Admit)
    breaker.record(again, failed=True, duration=0.01, now=clock.monotonic())
    rejected = breaker.admit(clock.monotonic())
    assert isinstance(rejected, Reject) and rejected.retry_in == pytest.approx(30.0)
