"""Quota headers of every dialect read into one Quota value."""

from __future__ import annotations

import pytest

from interlock.core.quota_headers import Quota, parse_quota, parse_sf_list

NOW = 1_700_000_000.0


def test_x_ratelimit_with_epoch_reset() -> None:
    q = parse_quota(
        {"X-RateLimit-Limit": "50", "X-RateLimit-Remaining": "12", "X-RateLimit-Reset": str(int(NOW) + 3)},
        NOW,
    )
    assert q == Quota(
        limit=50, window=None, remaining=12, reset_after=3.0, dialect="x-ratelimit", reset_epoch=NOW + 3
    )


def test_x_ratelimit_with_delta_reset() -> None:
    q = parse_quota({"x-ratelimit-limit": "50", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "1"}, NOW)
    assert q is not None and (q.limit, q.remaining, q.reset_after) == (50, 0, 1.0)


def test_epoch_in_milliseconds_and_in_the_past() -> None:
    q = parse_quota({"X-RateLimit-Remaining": "1", "X-RateLimit-Reset": str(int(NOW * 1000) + 2500)}, NOW)
    assert q is not None and q.reset_after == pytest.approx(2.5)
    past = parse_quota({"X-RateLimit-Remaining": "1", "X-RateLimit-Reset": str(int(NOW) - 10)}, NOW)
    assert past is not None and past.reset_after == 0.0


def test_ietf_structured_fields() -> None:
    q = parse_quota({"RateLimit-Policy": '"default";q=50;w=1', "RateLimit": '"default";r=12;t=1'}, NOW)
    assert q == Quota(limit=50, window=1, remaining=12, reset_after=1.0, dialect="ietf")
    assert q.rate == 50


def test_ietf_several_policies_the_tightest_binds() -> None:
    q = parse_quota(
        {
            "RateLimit-Policy": '"burst";q=100;w=1, "daily";q=1000;w=86400',
            "RateLimit": '"burst";r=90;t=1, "daily";r=3;t=3600',
        },
        NOW,
    )
    assert q is not None
    assert (q.limit, q.window) == (1000, 86400)
    assert (q.remaining, q.reset_after) == (3, 3600)


def test_ietf_draft_05_fields() -> None:
    q = parse_quota(
        {
            "RateLimit-Limit": "10",
            "RateLimit-Remaining": "4",
            "RateLimit-Reset": "7",
            "RateLimit-Policy": "10;w=60",
        },
        NOW,
    )
    assert q == Quota(limit=10, window=60, remaining=4, reset_after=7.0, dialect="ietf-05")


def test_retry_after_seconds_and_date() -> None:
    assert parse_quota({"Retry-After": "3"}, NOW) == Quota(retry_after=3.0, dialect="retry-after")
    q = parse_quota({"Retry-After": "Tue, 14 Nov 2023 22:13:25 GMT"}, NOW)  # NOW + 5
    assert q is not None and q.retry_after == pytest.approx(5.0)


def test_retry_after_is_added_to_a_dialect() -> None:
    q = parse_quota({"X-RateLimit-Limit": "50", "X-RateLimit-Remaining": "0", "Retry-After": "2"}, NOW)
    assert q is not None and (q.remaining, q.retry_after, q.dialect) == (0, 2.0, "x-ratelimit")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-RateLimit-Limit": "lots"},
        {"Retry-After": "soon"},
        {"RateLimit": "garbage;;"},
    ],
)
def test_nothing_usable_is_none(headers: dict[str, str]) -> None:
    assert parse_quota(headers, NOW) is None


def test_absurd_reset_is_ignored() -> None:
    q = parse_quota({"X-RateLimit-Remaining": "5", "X-RateLimit-Reset": str(int(NOW) + 10 * 86400)}, NOW)
    assert q is not None and q.reset_after is None


def test_sf_list_parser() -> None:
    assert parse_sf_list('"a";q=1;w=2, b;r=3') == [("a", {"q": "1", "w": "2"}), ("b", {"r": "3"})]
    assert parse_sf_list('"x,y";q=1') == [("x,y", {"q": "1"})]
