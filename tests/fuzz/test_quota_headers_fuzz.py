"""Hypothesis fuzz of what an upstream says about its quota: ``parse_quota`` over every header
dialect and ``parse_retry_after`` over any text never raise, and what they return is finite and
bounded (times from now in [0, MAX_RESET], counts finite), whatever a hostile or broken
upstream sends."""

from __future__ import annotations

import math
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from interlock.core.quota_headers import MAX_RESET, Quota, parse_quota, parse_sf_list
from interlock.core.retry_after import parse_retry_after

FUZZ = settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

NAMES = [
    "RateLimit",
    "RateLimit-Policy",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "X-RateLimit-Reset-After",
    "X-Rate-Limit-Limit",
    "X-Rate-Limit-Remaining",
    "X-Rate-Limit-Reset",
    "Retry-After",
]

# Numbers as servers write them, and as they must not: huge, tiny, negative, exponents, NaN,
# infinities, fractions, epoch seconds and milliseconds, signs, spaces, quotes, Unicode digits.
numberish = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(
        [
            "nan",
            "inf",
            "-inf",
            "1e400",
            "-1e400",
            "9" * 400,
            "0.000001",
            "1_000",
            "²",
            "١٢",
            "0x10",
            " 7 ",
            '"5"',
            "-0",
        ]
    ),
    st.text(alphabet=string.digits + ".-+eE _", max_size=30),
)
http_dates = st.builds(
    lambda day, month, year, hms, zone: f"{day}, 01 {month} {year} {hms} {zone}",
    st.sampled_from(["Mon", "Tue", "Sun", "Xyz"]),
    st.sampled_from(["Jan", "Feb", "Dec", "Foo"]),
    st.integers(min_value=-10, max_value=100_000),
    st.sampled_from(["00:00:00", "23:59:60", "99:99:99", "12:00"]),
    st.sampled_from(["GMT", "UTC", "+0000", "-2400", "", "PST"]),
)
sf_params = st.lists(
    st.tuples(st.sampled_from(["q", "w", "r", "t", "Q", "x", ""]), st.one_of(numberish, st.just(""))),
    max_size=4,
)
sf_items = st.builds(
    lambda item, params: item + "".join(f";{k}={v}" if v else f";{k}" for k, v in params),
    st.one_of(st.sampled_from(['"default"', "default", '"a,b;c"', '"']), numberish),
    sf_params,
)
sf_lists = st.lists(sf_items, max_size=5).map(", ".join)
values = st.one_of(numberish, http_dates, sf_lists, st.text(max_size=80))
header_sets = st.dictionaries(
    st.one_of(
        st.sampled_from(NAMES), st.sampled_from(NAMES).map(str.lower), st.sampled_from(NAMES).map(str.upper)
    ),
    values,
    max_size=8,
)
# Wall clocks from the epoch to far past 2100: epoch resets are subtracted from them.
walls = st.floats(min_value=0.0, max_value=5e9, allow_nan=False)


def bounded_time(value: float | None) -> bool:
    return value is None or (math.isfinite(value) and 0.0 <= value <= MAX_RESET)


def finite(value: float | None) -> bool:
    return value is None or math.isfinite(value)


@FUZZ
@given(headers=header_sets, now=walls)
def test_parse_quota_never_raises_and_returns_finite_bounded_values(
    headers: dict[str, str], now: float
) -> None:
    quota = parse_quota(headers, now)
    if quota is None:
        return
    assert isinstance(quota, Quota)
    assert finite(quota.limit) and finite(quota.window) and finite(quota.remaining)
    assert bounded_time(quota.reset_after)
    assert bounded_time(quota.retry_after)
    rate = quota.rate
    assert rate is None or math.isfinite(rate)
    assert quota.dialect in {"ietf", "ietf-05", "x-ratelimit", "retry-after"}


@FUZZ
@given(value=st.one_of(values, st.none()), now=walls)
def test_parse_retry_after_never_raises_and_is_finite_and_not_negative(value: str | None, now: float) -> None:
    seconds = parse_retry_after(value, now)
    assert seconds is None or (math.isfinite(seconds) and seconds >= 0.0)


@FUZZ
@given(value=st.one_of(sf_lists, st.text(max_size=200)))
def test_structured_field_lists_never_raise(value: str) -> None:
    for item, params in parse_sf_list(value):
        assert isinstance(item, str)
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in params.items())


def test_the_values_that_once_broke_the_parsers() -> None:
    # Found by the fuzz above: a Unicode digit passed str.isdigit() and then float() refused it;
    # "inf" and 400 nines were read as an infinite wait.
    for value in ("²", "inf", "1e400", "9" * 400, "nan", "-inf"):
        seconds = parse_retry_after(value, 1.7e9)
        assert seconds is None or math.isfinite(seconds), value
        assert bounded_time((parse_quota({"Retry-After": value}, 1.7e9) or Quota()).retry_after)
    assert parse_retry_after("١٢", 1.7e9) == 12.0  # Arabic-Indic digits are still digits
