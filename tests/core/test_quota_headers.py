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


# -- found by the mutation run (issue #19) ------------------------------------------------------

WALL = 1_767_225_600.0


def test_ietf_05_fields_without_a_policy_header() -> None:
    headers = {"RateLimit-Limit": "50", "RateLimit-Remaining": "3", "RateLimit-Reset": "7"}
    assert parse_quota(headers, WALL) == Quota(50, None, 3, 7, None, "ietf-05")
    with_policy = {**headers, "RateLimit-Policy": "50;w=60", "Retry-After": "4"}
    assert parse_quota(with_policy, WALL) == Quota(50, 60, 3, 7, 4, "ietf-05")


def test_x_ratelimit_reset_after_is_the_fallback_for_reset() -> None:
    headers = {"X-RateLimit-Remaining": "9", "X-RateLimit-Reset-After": "12"}
    assert parse_quota(headers, WALL) == Quota(None, None, 9, 12, None, "x-ratelimit")


@pytest.mark.parametrize(
    ("reset", "expected"),
    [
        ("0", 0.0),  # resets now
        ("-1", None),
        ("86400", 86400.0),  # MAX_RESET itself is kept...
        ("86401", None),  # ...beyond it is garbage
        (str(1_000_000_000), 10.0),  # EPOCH_THRESHOLD itself is a timestamp (now_wall is 10 s before)
        (str(1_000_000_000_000), 10.0),  # and the millisecond threshold a timestamp in ms
        ('"12"', 12.0),
        ("nan", None),
        ("inf", None),
        ("-inf", None),
        ("soon", None),
    ],
)
def test_reset_values_at_their_thresholds(reset: str, expected: float | None) -> None:
    quota = parse_quota({"X-RateLimit-Remaining": "1", "X-RateLimit-Reset": reset}, 1_000_000_000 - 10.0)
    assert quota is not None and quota.reset_after == expected


def test_ietf_structured_the_tightest_policy_and_state_bind() -> None:
    two = '"burst";q=100;w=1, "daily";q=1000;w=86400'
    for policy in (two, ", ".join(reversed(two.split(", ")))):
        quota = parse_quota({"RateLimit-Policy": policy}, WALL)
        assert quota is not None and (quota.limit, quota.window, quota.remaining) == (1000, 86400, None)
    # Equal rates: the first announced stays.
    quota = parse_quota({"RateLimit-Policy": '"a";q=10;w=1, "b";q=20;w=2'}, WALL)
    assert quota is not None and (quota.limit, quota.window) == (10, 1)
    states = parse_quota({"RateLimit": '"a";r=5;t=3, "b";r=2;t=9, "c";r=2;t=1'}, WALL)
    assert states == Quota(None, None, 2, 9, None, "ietf")  # the lowest remaining, the first of equals
    assert parse_quota({"RateLimit": '"a";t=3'}, WALL) is None  # nothing usable at all


def test_sf_list_members_parameters_and_quotes() -> None:
    assert parse_sf_list('"a";x;y=1, , "b"') == [("a", {"x": "?1", "y": "1"}), ("b", {})]
    assert parse_sf_list('"p";k=v=w') == [("p", {"k": "v=w"})]
    assert parse_sf_list('"a,b";q="1;2"') == [("a,b", {"q": "1;2"})]
    assert parse_sf_list('"x";Q=3') == [("x", {"q": "3"})]
    assert parse_sf_list("") == []


def test_the_other_spellings_and_partial_fields() -> None:
    assert parse_quota({"X-Rate-Limit-Remaining": "3"}, WALL) == Quota(
        None, None, 3, None, None, "x-ratelimit"
    )
    only_remaining = {"RateLimit-Remaining": "3", "RateLimit-Reset": "2"}
    assert parse_quota(only_remaining, WALL) == Quota(None, None, 3, 2, None, "ietf-05")
    only_limit = {"RateLimit-Limit": "9", "RateLimit-Reset": str(int(WALL) + 5)}  # an epoch, read as one
    # An epoch keeps the moment as sent too, to be read on the server's clock.
    assert parse_quota(only_limit, WALL) == Quota(
        9, None, None, 5, None, "ietf-05", reset_epoch=int(WALL) + 5
    )
    assert parse_quota({"RateLimit": '"d";r=1;t=' + str(int(WALL) + 4)}, WALL) == Quota(
        None, None, 1, 4, None, "ietf"
    )


def test_retry_after_at_the_maximum_is_kept_beyond_it_ignored() -> None:
    assert parse_quota({"Retry-After": "86400"}, WALL) == Quota(retry_after=86400.0, dialect="retry-after")
    assert parse_quota({"Retry-After": "86401"}, WALL) is None
    assert parse_quota({"X-RateLimit-Remaining": "0", "Retry-After": "86401"}, WALL) == Quota(
        None, None, 0, None, None, "x-ratelimit"
    )
