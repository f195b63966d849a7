"""Configuration objects: validation at construction and the JSON round trip."""

from __future__ import annotations

import json

import pytest

from interlock.errors import ConfigError
from interlock.testbed import Faults, Latency, Outage, RateLimitConfig, TestbedConfig


def full_config() -> TestbedConfig:
    return TestbedConfig(
        seed=7,
        records=12,
        kinds=("customers", "orders"),
        tracking_header="X-Trace",
        max_age={"customers": 30},
        faults=Faults(
            latency=Latency("lognormal", median_ms=20, sigma=0.5),
            error_rates={503: 0.1, 500: 0.05},
            outages=[Outage(start=1.0, duration=2.0)],
            slow_rate=0.1,
            slow_ms=500,
            reset_rate=0.01,
            lost_response_rate=0.02,
        ),
        rate_limit=RateLimitConfig("fixed_window", limit=10, window=2.0, dialect="ietf"),
        updated_at_step=0.5,
        same_timestamp_every=3,
        pagination="offset",
        pagination_bug="no_total",
    )


def test_round_trip_through_json() -> None:
    config = full_config()
    text = json.dumps(config.to_dict())
    assert TestbedConfig.from_dict(json.loads(text)) == config


def test_defaults_round_trip_and_are_faultless() -> None:
    config = TestbedConfig()
    assert TestbedConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert config.faults.is_clean
    assert config.rate_limit is None


def test_error_rates_are_copied_and_keys_normalised() -> None:
    rates = {503: 0.2}
    faults = Faults(error_rates=rates)
    rates[503] = 0.9
    assert faults.error_rates == {503: 0.2}
    assert Faults.from_dict({"error_rates": {"502": 0.1}}).error_rates == {502: 0.1}


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: Latency("gaussian"), "kind"),  # type: ignore[arg-type]
        (lambda: Latency("uniform", low_ms=30, high_ms=5), "low_ms"),
        (lambda: Latency("lognormal", median_ms=0), "median_ms"),
        (lambda: Latency("fixed", ms=-1), "ms"),
        (lambda: Outage(start=0, duration=0), "duration"),
        (lambda: Faults(error_rates={503: 1.5}), "error_rates[503]"),
        (lambda: Faults(error_rates={200: 0.1}), "error_rates"),
        (lambda: Faults(error_rates={503: 0.6}, reset_rate=0.5), "error_rates"),
        (lambda: Faults(outage_status=200), "outage_status"),
        (lambda: RateLimitConfig(limit=0), "limit"),
        (lambda: RateLimitConfig(window=0), "window"),
        (lambda: RateLimitConfig(dialect="x-rate"), "dialect"),  # type: ignore[arg-type]
        (lambda: RateLimitConfig("fixed_window", burst=5), "burst"),
        (lambda: TestbedConfig(records=-1), "records"),
        (lambda: TestbedConfig(kinds=()), "kinds"),
        (lambda: TestbedConfig(kinds="customers"), "kinds"),
        (lambda: TestbedConfig(kinds=("Customers!",)), "kinds"),
        (lambda: TestbedConfig(max_age={"widgets": 5}), "max_age"),
        (lambda: TestbedConfig(pagination_bug="loop"), "pagination_bug"),  # type: ignore[arg-type]
        (lambda: TestbedConfig(updated_at_step=0), "updated_at_step"),
        (lambda: TestbedConfig(epoch="yesterday"), "epoch"),
        (lambda: TestbedConfig(default_limit=50, max_limit=10), "default_limit"),
    ],
)
def test_invalid_values_raise_config_error_naming_the_field(build: object, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        build()  # type: ignore[operator]
    assert info.value.field == field
    assert str(info.value).startswith(f"{info.value.owner}.{field}: ")


def test_from_dict_rejects_unknown_fields() -> None:
    with pytest.raises(ConfigError, match="recrods"):
        TestbedConfig.from_dict({"recrods": 5})
    with pytest.raises(ConfigError, match="latency_ms"):
        Faults.from_dict({"latency_ms": 5})
