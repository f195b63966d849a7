"""What an upstream says about its quota, in every dialect, read into one ``Quota`` value. Pure.

Dialects understood (the first one present wins, in this order):

- IETF structured fields, draft-ietf-httpapi-ratelimit-headers -08 onward (RFC 8941 syntax):
  ``RateLimit-Policy: "default";q=50;w=1`` and ``RateLimit: "default";r=12;t=1``.
- IETF draft -05 and earlier: ``RateLimit-Limit`` / ``RateLimit-Remaining`` / ``RateLimit-Reset``
  (reset as delta seconds) and ``RateLimit-Policy: 50;w=1``.
- The de-facto ``X-RateLimit-Limit`` / ``-Remaining`` / ``-Reset``, reset either as epoch seconds
  (GitHub) or as seconds from now (Twitter/X v1 and many others). Which one is told apart by size:
  a value above ``EPOCH_THRESHOLD`` (late 2001) can only be a timestamp. Epoch milliseconds are
  recognised too. ``X-Rate-Limit-*`` spellings are accepted.
- ``Retry-After`` (RFC 9110 section 10.2.3), delay-seconds or HTTP-date, on any response.

``reset_after`` is "seconds until Remaining next goes up": for a fixed window that is the window's
end, for a token bucket the next token. X-RateLimit headers do not say how long their window is;
``window`` is then None and the caller decides what to assume.

Every reset is a whole number of seconds on the wire, rounded up by some servers and truncated by
others, so the true moment lies within a second either side. An epoch reset is also read on the
server's clock: ``reset_epoch`` keeps it as sent, with the response's ``Date`` (``server_date``,
RFC 9110 section 6.6.1), so a caller can tell the server's clock from its own
(``core.quota_window`` does).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime

from .retry_after import parse_retry_after

__all__ = ["EPOCH_THRESHOLD", "Quota", "parse_quota", "parse_sf_list"]

EPOCH_THRESHOLD = 1_000_000_000.0
_EPOCH_MS_THRESHOLD = 1_000_000_000_000.0
# A reset announced further away than this is treated as garbage (or badly skewed clocks).
MAX_RESET = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class Quota:
    """One response's statement about the quota. Every field is optional."""

    limit: float | None = None
    """Requests allowed per ``window`` (the bucket's size, for a token bucket)."""
    window: float | None = None
    """Seconds the ``limit`` applies to, when the dialect says (IETF only)."""
    remaining: float | None = None
    """Requests still allowed right after this one."""
    reset_after: float | None = None
    """Seconds from now until ``remaining`` next goes up."""
    retry_after: float | None = None
    """Seconds from now before the next request may be sent (``Retry-After``)."""
    dialect: str = ""
    reset_epoch: float | None = None
    """The reset as sent, in epoch seconds on the server's clock, when the dialect sends a
    moment rather than a delay (GitHub's ``X-RateLimit-Reset``)."""
    retry_epoch: float | None = None
    """``Retry-After`` as sent, when it is an HTTP-date (epoch seconds, server's clock)."""
    server_date: float | None = None
    """The response's ``Date`` (epoch seconds, server's clock), read when a moment above needs it."""

    @property
    def rate(self) -> float | None:
        """Requests per second, when both the limit and its window are known."""
        if self.limit is None or not self.window:
            return None
        return self.limit / self.window


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip().strip('"'))
    except ValueError:
        return None
    if number != number or number in (float("inf"), float("-inf")):  # NaN / inf
        return None
    return number


def _reset_seconds(raw: str | None, now_wall: float) -> float | None:
    return _reset(raw, now_wall)[0]


def _reset(raw: str | None, now_wall: float) -> tuple[float | None, float | None]:
    """(seconds from now, the epoch moment as sent when it was one) of a reset field."""
    value = _number(raw)
    if value is None or value < 0:
        return None, None
    epoch: float | None = None
    if value >= _EPOCH_MS_THRESHOLD:
        epoch = value / 1000.0
    elif value >= EPOCH_THRESHOLD:
        epoch = value
    if epoch is not None:
        value = epoch - now_wall
    value = max(0.0, value)
    return (value, epoch) if value <= MAX_RESET else (None, None)


def parse_sf_list(value: str) -> list[tuple[str, dict[str, str]]]:
    """A lenient RFC 8941 list parser, enough for rate-limit fields.

    Each member is a bare item (string, token or number) with ``;key=value`` parameters. Inner
    lists are not supported (no rate-limit draft uses them).
    """
    members: list[tuple[str, dict[str, str]]] = []
    for raw_member in _split_outside_quotes(value, ","):
        parts = _split_outside_quotes(raw_member, ";")
        if not parts or not parts[0].strip():
            continue
        item = parts[0].strip().strip('"')
        params: dict[str, str] = {}
        for part in parts[1:]:
            key, _, val = part.strip().partition("=")
            if key:
                params[key.strip().lower()] = val.strip().strip('"') if val else "?1"
        members.append((item, params))
    return members


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    out: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == sep and not quoted:
            out.append("".join(current))
            current = []
        else:
            current.append(char)
    out.append("".join(current))
    return out


def _ietf_structured(headers: Mapping[str, str], now_wall: float) -> Quota | None:
    policy_raw = headers.get("RateLimit-Policy")
    state_raw = headers.get("RateLimit")
    if state_raw is None and policy_raw is None:
        return None
    limit = window = remaining = reset = None
    policies = parse_sf_list(policy_raw) if policy_raw else []
    states = parse_sf_list(state_raw) if state_raw else []
    # Several policies may be announced; the one with the least quota per second binds.
    best_rate: float | None = None
    for item, params in policies:
        q = _number(params.get("q"))
        if q is None:  # draft -05 form: `50;w=1`, the quota is the bare item
            q = _number(item)
        w = _number(params.get("w"))
        if q is None:
            continue
        rate = q / w if w else None
        if limit is None or (rate is not None and (best_rate is None or rate < best_rate)):
            limit, window, best_rate = q, w, rate
    for _item, params in states:
        r = _number(params.get("r"))
        t = _reset_seconds(params.get("t"), now_wall)
        if r is not None and (remaining is None or r < remaining):
            remaining, reset = r, t
    if limit is None and remaining is None:
        return None
    return Quota(limit, window, remaining, reset, None, "ietf")


def _prefixed(
    headers: Mapping[str, str], prefixes: tuple[str, ...], dialect: str, now: float
) -> Quota | None:
    for prefix in prefixes:
        limit = _number(headers.get(prefix + "Limit"))
        remaining = _number(headers.get(prefix + "Remaining"))
        if limit is None and remaining is None:
            continue
        reset, epoch = _reset(headers.get(prefix + "Reset"), now)
        if reset is None:
            reset, epoch = _reset(headers.get(prefix + "Reset-After"), now)
        window: float | None = None
        if dialect == "ietf-05":
            # Draft -05 also allows `RateLimit-Policy: 50;w=1` next to the three fields.
            for item, params in parse_sf_list(headers.get("RateLimit-Policy", "")):
                if _number(item) == limit:
                    window = _number(params.get("w"))
        return Quota(limit, window, remaining, reset, None, dialect, reset_epoch=epoch)
    return None


class _CaseInsensitive(Mapping[str, str]):
    """Header names compare case-insensitively (RFC 9110 section 5.1), whatever mapping came in."""

    def __init__(self, headers: Mapping[str, str]) -> None:
        self._d: dict[str, str] = {}
        for key, value in headers.items():
            self._d.setdefault(key.lower(), value)

    def __getitem__(self, key: str) -> str:
        return self._d[key.lower()]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._d

    def __iter__(self) -> Iterator[str]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)


def parse_quota(headers: Mapping[str, str], now_wall: float) -> Quota | None:
    """Read the quota headers of a response; None when there are none at all.

    ``now_wall`` is the caller's wall clock (epoch seconds), used for epoch resets and
    HTTP-dates. The result is relative ("seconds from now"), so later decisions need no wall
    clock and are immune to a skew between the caller's and the server's clocks beyond the
    single subtraction made here.
    """
    headers = _CaseInsensitive(headers)
    if not any(("limit" in name and "rate" in name) or name == "retry-after" for name in headers):
        return None  # most answers of most APIs: nothing to read, found in one pass
    quota = (
        _prefixed(headers, ("RateLimit-",), "ietf-05", now_wall)
        if "RateLimit-Remaining" in headers or "RateLimit-Limit" in headers
        else _ietf_structured(headers, now_wall)
    )
    if quota is None:
        quota = _prefixed(headers, ("X-RateLimit-", "X-Rate-Limit-"), "x-ratelimit", now_wall)
    raw_retry = headers.get("Retry-After")
    retry_after = parse_retry_after(raw_retry, now_wall)
    retry_epoch: float | None = None
    if retry_after is not None and retry_after > MAX_RESET:
        retry_after = None
    elif retry_after is not None and raw_retry is not None and not _is_delay(raw_retry):
        retry_epoch = _http_date(raw_retry)
    if quota is None:
        if retry_after is None:
            return None
        quota = Quota(dialect="retry-after")
    if retry_after is not None:
        quota = replace(quota, retry_after=retry_after, retry_epoch=retry_epoch)
    if quota.reset_epoch is not None or quota.retry_epoch is not None:
        quota = replace(quota, server_date=_http_date(headers.get("Date")))
    return quota


def _is_delay(value: str) -> bool:
    """Retry-After as delay-seconds (``120``, or the fraction some servers send) rather than a date."""
    return _number(value) is not None


def _http_date(value: str | None) -> float | None:
    """An HTTP-date (RFC 9110 section 5.6.7) as epoch seconds; None when absent or unreadable."""
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when.timestamp() if when.tzinfo is not None else None
