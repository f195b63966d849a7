"""The adaptive poll interval and the poll budget, pure."""

from __future__ import annotations

import pytest

from interlock.core.adaptive import AdaptiveInterval, PollBudget
from interlock.errors import ConfigError


def test_interval_shrinks_with_changes_and_grows_without() -> None:
    interval = AdaptiveInterval(60, 5, 900)
    assert [interval.after_poll(3) for _ in range(3)] == [15, 5, 5]
    assert [interval.after_poll(0) for _ in range(10)] == [10, 20, 40, 80, 160, 320, 640, 900, 900, 900]
    assert AdaptiveInterval(60, 5, 900, shrink=0.5).after_poll(1) == 30
    assert interval.reset() == 60


@pytest.mark.parametrize(
    ("every", "low", "high", "field"),
    [(60, 120, 900, "every"), (0, 5, 900, "every"), (60, 5, -1, "max_every"), (60, 0, 900, "min_every")],
)
def test_bounds_are_config_errors(every: float, low: float, high: float, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        AdaptiveInterval(every, low, high)
    assert info.value.field == field


def test_budget_counts_the_last_hour_and_compares_with_the_fixed_interval() -> None:
    budget = PollBudget(60)
    for i in range(10):
        budget.polled(1000.0 + i * 60, 1, not_modified=i > 2)
    report = budget.report(1600.0, 900.0)
    assert report["calls_last_hour"] == 10 and report["not_modified"] == 7
    assert report["calls_per_hour_fixed"] == 60.0 and report["calls_per_hour_now"] == 4.0
    assert budget.calls_last_hour(1000.0 + 9 * 60 + 3600) == 0  # all older than an hour
