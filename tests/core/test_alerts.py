"""The five alert rules: ok, warning, firing and no_data at their edges, and their config."""

from __future__ import annotations

import pytest

from interlock.core.alerts import BadgeState, Rule, Thresholds, evaluate
from interlock.errors import ConfigError

T = Thresholds()


@pytest.mark.parametrize(
    ("rule", "value", "state"),
    [
        (T.upstream_p95, 0.2, BadgeState.OK),
        (T.upstream_p95, 0.4, BadgeState.OK),  # at the warning level, not past it
        (T.upstream_p95, 0.45, BadgeState.WARNING),
        (T.upstream_p95, 0.5, BadgeState.WARNING),  # "above 500 ms": 500 ms is not above
        (T.upstream_p95, 0.501, BadgeState.FIRING),
        (T.ratelimit_headroom, 0.9, BadgeState.OK),
        (T.ratelimit_headroom, 0.25, BadgeState.WARNING),
        (T.ratelimit_headroom, 0.19, BadgeState.FIRING),
        (T.processing_p95, 6.0, BadgeState.FIRING),
        (T.error_rate, 0.002, BadgeState.OK),
        (T.error_rate, 0.02, BadgeState.FIRING),
        (T.cache_hit_rate, 0.97, BadgeState.OK),
        (T.cache_hit_rate, 0.92, BadgeState.WARNING),
        (T.cache_hit_rate, 0.5, BadgeState.FIRING),
    ],
)
def test_each_rule_judges_its_reading(rule: Rule, value: float, state: BadgeState) -> None:
    badge = evaluate(rule, value, samples=100)
    assert badge.state is state
    assert badge.rule == rule.name


def test_a_rate_over_too_few_calls_is_no_data_not_a_false_alarm() -> None:
    assert evaluate(T.error_rate, 1.0, samples=1).state is BadgeState.NO_DATA
    assert evaluate(T.error_rate, 1.0, samples=20).state is BadgeState.FIRING
    assert evaluate(T.upstream_p95, None).state is BadgeState.NO_DATA
    assert evaluate(T.upstream_p95, float("nan")).state is BadgeState.NO_DATA


def test_the_detail_reads_like_the_dashboard_shows_it() -> None:
    assert evaluate(T.upstream_p95, 0.73).detail == "upstream p95 latency 730 ms (> 500 ms)"
    assert evaluate(T.processing_p95, 4.5).detail == "webhook processing p95 4.50 s (fires > 5.00 s)"
    assert evaluate(T.cache_hit_rate, 0.995, samples=50).detail == "cache hit rate on cached routes 99.5 %"


def test_overrides_from_the_alerts_section() -> None:
    t = Thresholds.from_mapping({"upstream_p95": {"warning": 0.1, "firing": 0.2}})
    assert evaluate(t.upstream_p95, 0.25).state is BadgeState.FIRING
    assert t.error_rate == T.error_rate  # the others keep their defaults
    assert [r.name for r in t.rules()] == [
        "upstream_p95",
        "ratelimit_headroom",
        "processing_p95",
        "error_rate",
        "cache_hit_rate",
    ]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"p95": {"firing": 1.0}}, "Thresholds.p95: is not a rule; accepted: cache_hit_rate, cache_hit_rate_below, error_rate"),
        ({"upstream_p95": {"fire": 1.0}}, "Thresholds.upstream_p95.fire: is not a setting"),
        ({"upstream_p95": {"warning": 0.9, "firing": 0.5}}, "warning must be <= firing"),
        ({"cache_hit_rate": {"warning": 0.8, "firing": 0.9}}, "warning must be >= firing"),
        ({"error_rate": {"firing": 5.0}}, "is a share"),
        ({"upstream_p95": {"firing": float("inf")}}, "must be a finite number"),
        ({"upstream_p95": {"firing": -1}}, "must be a finite number >= 0, got -1"),
    ],
)
def test_a_bad_threshold_names_the_rule_and_what_is_accepted(values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        Thresholds.from_mapping(values)
