"""``Retry-After`` parsing (RFC 9110 section 10.2.3): delay-seconds or an HTTP-date."""

from __future__ import annotations

from email.utils import parsedate_to_datetime


def parse_retry_after(value: str | None, now_wall: float) -> float | None:
    """Seconds to wait from now, or None when the header is absent or unreadable.

    An HTTP-date in the past means "now" (0.0). Garbage is ignored rather than trusted: a server
    that sends nonsense gets the ordinary backoff.
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        seconds = float(value)  # some servers send fractions despite the RFC
    except ValueError:
        pass
    else:
        return seconds if seconds >= 0 else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 HTTP-dates are always GMT
        return None
    return max(0.0, when.timestamp() - now_wall)
