"""Server-side quota per client key, and how it is announced (the "dialects").

``Remaining`` is rounded down. Reset times are whole seconds, rounded *up* by default (a client
that obeys them never gets a 429) or *down* (``reset_rounding="down"``: truncated, as many
servers do with ``int(...)``, so up to a second early). The server's clock may be skewed
(``clock_skew``): windows, epoch resets and HTTP-dates are all on that clock. Dialects:

- ``x-ratelimit-epoch``: ``X-RateLimit-Limit/Remaining/Reset``, Reset in epoch seconds
  (GitHub's style).
- ``x-ratelimit-delta``: same names, Reset in seconds from now (Twitter/X v1, many others).
- ``ietf``: draft-ietf-httpapi-ratelimit-headers (-08 onward) structured fields (RFC 8941):
  ``RateLimit-Policy: "default";q=<quota>;w=<window>`` and
  ``RateLimit: "default";r=<remaining>;t=<seconds until reset>``.
- ``retry-after-seconds`` / ``retry-after-date``: nothing on success; a 429 carries
  ``Retry-After`` as delay-seconds or an HTTP-date (RFC 9110 section 10.2.3).

"Reset" means when ``Remaining`` next goes up: for a token bucket, when the next whole token
arrives; for a fixed window, when the window ends. A 429 always carries ``Retry-After`` in
seconds (an HTTP-date for ``retry-after-date``) plus the dialect's headers.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from ._config import RateLimitConfig
from ._timefmt import http_date

__all__ = ["Decision", "RateLimiter"]

# Float slack so a client arriving exactly at the announced instant is admitted.
_EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class Decision:
    """The quota's verdict on one request: ``allowed``, what ``remaining`` to announce, and ``reset_after`` (seconds until Remaining goes up)."""

    allowed: bool
    remaining: int
    reset_after: float  # seconds until Remaining increases (a token, or the window's end)


class RateLimiter:
    """Token bucket or fixed window per client key, and the headers that announce it.

    ``now`` is the server's wall clock in epoch seconds (``now()``: the real one plus
    ``clock_skew``), the same clock the epoch dialect announces, so decisions and headers cannot
    disagree.
    """

    def __init__(self, config: RateLimitConfig) -> None:
        self.config = config
        self._skew = config.clock_skew
        self._round = math.ceil if config.reset_rounding == "up" else math.floor
        self._capacity = float(config.capacity)
        self._rate = config.limit / config.window
        self._buckets: dict[str, list[float]] = {}  # key -> [tokens, last refill time]
        self._windows: dict[str, list[int]] = {}  # key -> [window index, count]
        self._window_int = math.ceil(config.window)
        self._policy = f'"default";q={config.limit};w={self._window_int}'

    def now(self) -> float:
        """The server's wall clock: the real one, skewed by ``clock_skew``."""
        return time.time() + self._skew

    def check(self, key: str, now: float) -> Decision:
        """Charge one request to ``key`` at wall-clock ``now``: admitted or not, and what to announce."""
        if self.config.algorithm == "token_bucket":
            return self._token_bucket(key, now)
        return self._fixed_window(key, now)

    def _token_bucket(self, key: str, now: float) -> Decision:
        state = self._buckets.get(key)
        if state is None:
            state = self._buckets[key] = [self._capacity, now]
        tokens = min(self._capacity, state[0] + max(0.0, now - state[1]) * self._rate)
        state[1] = now
        if tokens >= 1.0 - _EPSILON:
            tokens = max(0.0, tokens - 1.0)
            state[0] = tokens
            whole = math.floor(tokens + _EPSILON)
            return Decision(True, whole, max(0.0, (whole + 1 - tokens) / self._rate))
        state[0] = tokens
        return Decision(False, 0, (1.0 - tokens) / self._rate)

    def _fixed_window(self, key: str, now: float) -> Decision:
        window = self.config.window
        index = math.floor(now / window)
        state = self._windows.get(key)
        if state is None or state[0] != index:
            state = self._windows[key] = [index, 0]
        reset_after = (index + 1) * window - now
        if state[1] < self.config.limit:
            state[1] += 1
            return Decision(True, self.config.limit - state[1], reset_after)
        return Decision(False, 0, reset_after)

    def headers(self, decision: Decision, now: float) -> dict[str, str]:
        """The dialect's quota headers for a response (429s add ``retry_after_headers``)."""
        dialect = self.config.dialect
        whole = self._round
        if dialect == "x-ratelimit-epoch":
            return {
                "X-RateLimit-Limit": str(self.config.limit),
                "X-RateLimit-Remaining": str(decision.remaining),
                "X-RateLimit-Reset": str(whole(now + decision.reset_after)),
            }
        if dialect == "x-ratelimit-delta":
            return {
                "X-RateLimit-Limit": str(self.config.limit),
                "X-RateLimit-Remaining": str(decision.remaining),
                "X-RateLimit-Reset": str(whole(decision.reset_after)),
            }
        if dialect == "ietf":
            return {
                "RateLimit-Policy": self._policy,
                "RateLimit": (f'"default";r={decision.remaining};t={whole(decision.reset_after)}'),
            }
        return {}

    def retry_after(self, decision: Decision, now: float) -> str:
        """``Retry-After`` for a 429: whole seconds (rounded up: at least 1; rounded down: maybe
        0), or an HTTP-date."""
        whole = self._round
        if self.config.dialect == "retry-after-date":
            return http_date(whole(now + decision.reset_after))
        if self.config.reset_rounding == "up":
            return str(max(1, math.ceil(decision.reset_after)))
        return str(math.floor(decision.reset_after))

    def reset(self) -> None:
        """Forget every key's usage: all quotas start full again."""
        self._buckets.clear()
        self._windows.clear()

    def __repr__(self) -> str:
        return f"RateLimiter({self.config.describe()}, keys={len(self._buckets) + len(self._windows)})"
