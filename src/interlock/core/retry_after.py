"""``Retry-After`` parsing (RFC 9110 section 10.2.3): delay-seconds or an HTTP-date."""

from __future__ import annotations

import math
from email.utils import parsedate_to_datetime


def parse_retry_after(value: str | None, now_wall: float) -> float | None:
    """Seconds to wait from now, or None when the header is absent or unreadable.

    An HTTP-date in the past means "now" (0.0). Garbage is ignored rather than trusted: a server
    that sends nonsense gets the ordinary backoff.
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)  # delay-seconds; some servers send fractions despite the RFC
    except ValueError:
        pass
    else:
        # NaN, infinities (``inf``, ``1e400``, 400 nines) and negatives are garbage too.
        return seconds if 0 <= seconds < math.inf else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 HTTP-dates are always GMT
        return None
    return max(0.0, when.timestamp() - now_wall)
