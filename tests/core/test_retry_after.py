from datetime import UTC, datetime
from email.utils import format_datetime

from interlock.core.retry_after import parse_retry_after

NOW = 1_700_000_000.0


def test_seconds() -> None:
    assert parse_retry_after("7", NOW) == 7.0
    assert parse_retry_after(" 0 ", NOW) == 0.0


def test_http_date_in_future_and_past() -> None:
    later = format_datetime(datetime.fromtimestamp(NOW + 30, tz=UTC), usegmt=True)
    earlier = format_datetime(datetime.fromtimestamp(NOW - 30, tz=UTC), usegmt=True)
    assert parse_retry_after(later, NOW) == 30.0
    assert parse_retry_after(earlier, NOW) == 0.0


def test_garbage_and_absent_are_ignored() -> None:
    for value in (None, "", "soon", "-5", "Tue, 99 Foo 2020"):
        assert parse_retry_after(value, NOW) is None


def test_fractional_and_zero_seconds() -> None:
    assert parse_retry_after("0.5", 0.0) == 0.5
    assert parse_retry_after("0.0", 0.0) == 0.0
    assert parse_retry_after("-1.5", 0.0) is None
