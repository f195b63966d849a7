"""Timestamps on the wire. Record times are integer milliseconds since the epoch, so a value
a client copies from ``updated_at`` into ``updated_since`` compares exactly (no float drift)."""

from __future__ import annotations

import calendar
import time
from datetime import UTC, datetime
from email.utils import formatdate, parsedate_to_datetime

__all__ = ["format_rfc3339", "http_date", "parse_http_date", "parse_rfc3339_ms"]


def format_rfc3339(ms: int) -> str:
    """RFC 3339 in UTC with ``Z``; milliseconds only when non-zero (``2026-01-01T00:00:05Z``)."""
    seconds, millis = divmod(ms, 1000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{base}Z" if millis == 0 else f"{base}.{millis:03d}Z"


def parse_rfc3339_ms(text: str) -> int:
    """Milliseconds since the epoch of an RFC 3339 timestamp, rounded *up*.

    Rounded up so ``record_ms >= result`` is exactly the inclusive comparison with the
    sub-millisecond original. A timestamp without offset is UTC.
    """
    if not isinstance(text, str) or "T" not in text.upper():
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    parsed = datetime.fromisoformat(text.strip().replace("z", "Z"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    parsed = parsed.astimezone(UTC)
    whole = calendar.timegm(parsed.timetuple())
    return whole * 1000 + -(-parsed.microsecond // 1000)


def http_date(seconds: float) -> str:
    """IMF-fixdate (RFC 9110 section 5.6.7), e.g. ``Sun, 06 Nov 1994 08:49:37 GMT``."""
    return formatdate(seconds, usegmt=True)


def parse_http_date(text: str) -> float | None:
    """Epoch seconds of an HTTP-date, or None when unparseable.

    RFC 9110 section 13.1.3 says an invalid If-Modified-Since is ignored.
    """
    try:
        parsed = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()
