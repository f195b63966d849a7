from __future__ import annotations

import pytest

from interlock.core.gcra import check, check_all
from interlock.testing import FakeClock


def run(
    clock: FakeClock, count: int, tat: float | None, limit: int, window: float
) -> tuple[int, float | None]:
    admitted = 0
    for _ in range(count):
        v = check(tat, clock.monotonic(), limit=limit, window=window)
        if v.allowed:
            admitted += 1
            tat = v.tat
    return admitted, tat


def test_admits_the_burst_then_refuses_with_retry_after_one_interval() -> None:
    clock = FakeClock()
    admitted, tat = run(clock, 15, None, limit=10, window=60.0)
    assert admitted == 10
    v = check(tat, clock.monotonic(), limit=10, window=60.0)
    assert not v.allowed and v.remaining == 0
    assert v.retry_after == pytest.approx(6.0)
    assert v.reset == pytest.approx(60.0)
    clock.advance(6.0)
    assert check(tat, clock.monotonic(), limit=10, window=60.0).allowed


def test_remaining_counts_down_and_refills_with_time() -> None:
    clock = FakeClock()
    v = check(None, clock.monotonic(), limit=5, window=10.0)
    assert (v.allowed, v.remaining, v.reset) == (True, 4, pytest.approx(2.0))
    tat = v.tat
    for expected in (3, 2, 1, 0):
        v = check(tat, clock.monotonic(), limit=5, window=10.0)
        assert v.remaining == expected
        tat = v.tat
    clock.advance(4.0)
    assert check(tat, clock.monotonic(), limit=5, window=10.0).remaining == 1


def test_never_more_than_the_bucket_allows_in_any_interval_unlike_a_fixed_window() -> None:
    """A fixed window admits 2x the limit a moment apart across its boundary; GCRA admits at most
    limit + t/T in any interval of t seconds, so two quotas never land a moment apart."""
    clock = FakeClock()
    times: list[float] = []
    tat = None
    for _ in range(2000):
        v = check(tat, clock.monotonic(), limit=10, window=1.0)
        if v.allowed:
            tat = v.tat
            times.append(clock.monotonic())
        clock.advance(0.01)
    assert len(times) > 10
    for i, start in enumerate(times):
        for span in (0.05, 0.3, 1.0, 2.5):
            inside = [t for t in times[i:] if t <= start + span + 1e-9]
            assert len(inside) <= 10 + span / 0.1 + 1e-9


def test_several_limits_refused_by_one_consume_from_none() -> None:
    clock = FakeClock()
    limits = [(100, 1.0), (3, 3600.0)]
    tats: list[float | None] = [None, None]
    for _ in range(3):
        ok, vs = check_all(tats, clock.monotonic(), limits)
        assert ok
        tats = [v.tat for v in vs]
    ok, vs = check_all(tats, clock.monotonic(), limits)
    assert not ok
    assert vs[1].allowed is False and vs[1].retry_after == pytest.approx(1200.0)
    assert [v.tat for v in vs] == tats  # nothing consumed
    assert vs[0].remaining == 97


def test_cost_larger_than_one() -> None:
    v = check(None, 0.0, limit=10, window=10.0, cost=4)
    assert (v.allowed, v.remaining) == (True, 6)
    assert not check(None, 0.0, limit=10, window=10.0, cost=11).allowed
