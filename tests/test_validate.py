"""The ground-floor config checks: what they accept, and how they word a refusal."""

from __future__ import annotations

import math

import pytest

from interlock._validate import check_count, check_seconds
from interlock.errors import ConfigError


def test_check_count_accepts_integers_from_the_minimum() -> None:
    check_count("Job", "window", 1)
    check_count("Job", "window", 0, minimum=0)
    check_count("Job", "page_size", None, optional=True)


@pytest.mark.parametrize("value", [0, -3, 2.5, "5", None])
def test_check_count_refuses_the_rest_naming_owner_field_and_bound(value: object) -> None:
    with pytest.raises(ConfigError, match=r"Job\.window.*must be an integer >= 1, got") as info:
        check_count("Job", "window", value)
    assert repr(value) in str(info.value)


def test_check_count_says_when_none_is_accepted() -> None:
    with pytest.raises(ConfigError, match=r"must be an integer >= 1 or None, got 0"):
        check_count("Job", "page_size", 0, optional=True)


def test_check_seconds_accepts_zero_unless_positive() -> None:
    check_seconds("Job", "lookback", 0)
    check_seconds("Job", "lookback", 2.5)
    check_seconds("Job", "every", None, positive=True, optional=True)
    with pytest.raises(ConfigError, match=r"Job\.every.*must be > 0 seconds or None, got 0"):
        check_seconds("Job", "every", 0, positive=True, optional=True)


@pytest.mark.parametrize("value", [-0.1, math.nan, "1", None])
def test_check_seconds_refuses_negative_nan_and_non_numbers(value: object) -> None:
    with pytest.raises(ConfigError, match=r"Job\.lookback.*must be >= 0 seconds, got"):
        check_seconds("Job", "lookback", value)
