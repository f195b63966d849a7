"""Token bucket and adaptive pacing. Pure: callers pass the time in, nothing sleeps here.

``TokenBucket`` hands out *reservations* (the GCRA way): a caller takes a token now and is told
how long to wait before using it, so waiters queue in arrival order with no polling and no
thundering herd. The Redis quota script (``stores/quota_redis.py``) is the same arithmetic in
Lua; the shared contract suite holds the two to one behaviour.

``Pacer`` decides *what* the bucket should be: the configured rate and burst, re-learned from the
upstream's own quota headers when ``adaptive`` (``core.quota_headers``), with a little headroom so
network jitter never turns into a 429:

- ``headroom``: the bucket refills at ``(1 - headroom)`` of the upstream's rate, so the upstream's
  own bucket slowly gains on ours instead of running at zero.
- ``reserve``: the bucket holds ``reserve`` of the upstream's burst back (at least one request),
  so requests that arrive a few milliseconds early still find a token upstream.

Quotas announced with a reset (fixed windows: a count left until a moment) are paced by
``core.quota_window`` instead; the pacer covers a configured rate, a limit announced without a
reset, and an upstream that announces nothing: its calls are not paced at all (``probing``)
until a 429, after which the pacer paces at what the upstream accepted in the window before it
(``on_throttled``) and a little less at each further 429.

Nothing an upstream says may stop calls for long: a learned rate is floored so that one call is
due at least every ``max_pause`` seconds, and every pause is cut to ``max_pause``, after which
a call goes through to ask again (one absurd header, ``Retry-After: 86000``, must not block an
upstream for a day with no call left to correct it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .quota_headers import Quota

__all__ = ["DEFAULT_429_PAUSE", "DEFAULT_MAX_PAUSE", "NO_REFILL", "Advice", "Grant", "Pacer", "TokenBucket"]


@dataclass(frozen=True, slots=True)
class Grant:
    """A reservation: send after ``wait`` seconds.

    ``seq`` numbers reservations, so a later ``Remaining`` can be matched with the requests sent
    after this one. ``granted`` is False when the wait would exceed the caller's ``max_wait``
    (then nothing was reserved).
    """

    wait: float
    seq: int
    granted: bool = True


class TokenBucket:
    """``capacity`` tokens, refilled at ``rate`` per second.

    Tokens may go negative: that is the queue of reservations waiting for their turn.
    """

    def __init__(self, rate: float, capacity: float, now: float, tokens: float | None = None) -> None:
        if rate <= 0 or capacity < 1:
            raise ValueError(f"TokenBucket needs rate > 0 and capacity >= 1, got {rate}, {capacity}")
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity if tokens is None else min(tokens, capacity)
        self.updated = now
        """Time up to which ``tokens`` is accounted; in the future while paused."""
        self.paused_until = -math.inf
        self.seq = 0

    def _advance(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def available(self, now: float) -> float:
        """Tokens there would be at ``now`` (negative: reservations still queued)."""
        if now <= self.updated:
            return self.tokens
        return min(self.capacity, self.tokens + (now - self.updated) * self.rate)

    def reserve(self, now: float, cost: float = 1.0, max_wait: float | None = None) -> Grant:
        """Take ``cost`` tokens now and say how long to wait before using them.

        Reservations queue in arrival order (tokens go negative); when the wait would exceed
        ``max_wait`` nothing is taken and the grant says ``granted=False``.
        """
        self._advance(now)
        start = max(now, self.updated)
        wait = (start - now) + max(0.0, cost - self.tokens) / self.rate
        if max_wait is not None and wait > max_wait:
            return Grant(wait, self.seq, granted=False)
        self.tokens -= cost
        self.seq += 1
        return Grant(wait, self.seq)

    def refund(self, cost: float = 1.0) -> None:
        """Give back a reservation that will not be used."""
        self.tokens = min(self.capacity, self.tokens + cost)

    def observe(self, remaining: float, seq: int, now: float, *, adopt: bool = False) -> bool:
        """The upstream said ``remaining`` right after the request of reservation ``seq``.

        Requests reserved since then were not counted upstream yet, so the upstream's true
        balance is at most ``remaining - (self.seq - seq)``. Normally this only ever lowers the
        bucket: the upstream knows about traffic we do not (other processes, other tools on the
        same key), while raising it on every answer would let a stale one overdraw. ``adopt``
        (used once, when the quota is first learned) takes the estimate as the new balance,
        up or down. Returns whether the balance changed.
        """
        self._advance(now)
        estimate = remaining - max(0, self.seq - seq)
        if adopt:
            estimate = min(self.capacity, estimate)
            changed = estimate != self.tokens
            self.tokens = estimate
            return changed
        if estimate < self.tokens:
            self.tokens = estimate
            return True
        return False

    def pause(self, until: float, now: float) -> None:
        """Grant nothing before ``until``, then one call at once (the next in line), and the rest
        at the bucket's pace.

        A 429 says the upstream's bucket is empty, whatever ours believed; the call at the end of
        the pause asks whether it is refilled, as the upstream said it would be by then.
        """
        self._advance(now)
        self.tokens = min(self.tokens, 0.0) + 1.0
        self.updated = max(self.updated, until)
        self.paused_until = max(self.paused_until, until)

    def set_limits(self, rate: float, capacity: float, now: float) -> None:
        """Refill at ``rate`` per second into ``capacity`` from ``now`` on (tokens kept, capped)."""
        if rate <= 0 or capacity < 1:
            raise ValueError(f"TokenBucket needs rate > 0 and capacity >= 1, got {rate}, {capacity}")
        self._advance(now)
        self.rate = rate
        self.capacity = capacity
        self.tokens = min(self.tokens, capacity)

    def __repr__(self) -> str:
        return (
            f"<TokenBucket rate={self.rate:g}/s capacity={self.capacity:g} "
            f"tokens={self.tokens:.2f} seq={self.seq}>"
        )


@dataclass(frozen=True, slots=True)
class Advice:
    """What to do after a response: apply new limits, lower the balance, pause the upstream."""

    rate: float
    capacity: float
    limits_changed: bool = False
    remaining: float | None = None
    adopt: bool = False
    """The quota was just learned: ``remaining`` (reserve already taken off) is the new
    balance, not only a ceiling."""
    pause: float | None = None
    """Seconds during which the whole upstream (this key) must not be called."""
    low: bool = False
    """Remaining dropped below ``warn_below`` of the limit (seed 000 alerts at 20 %)."""


# When a 429 names no time at all, wait this long before trying again.
DEFAULT_429_PAUSE = 1.0
# The longest any pause or wait for a turn lasts before a call goes through to ask again.
DEFAULT_MAX_PAUSE = 60.0
# Each further 429 while pacing at a rate learned from 429s lowers it by this share.
THROTTLE_DECREASE = 0.1
NO_REFILL = 1e-9
"""The refill rate of a bucket only the upstream's answers refill (a fixed window's count): a
rate the store arithmetic accepts, too small to add a token in years."""


class Pacer:
    """The adaptive half of a rate limit: turns responses into limits for the bucket.

    ``per_second`` / ``burst`` are the configured upstream limits (None when unknown: calls are
    then not paced until a response teaches the pacer the real quota, or a 429 a rate).
    ``assumed_window`` is the window given to an ``X-RateLimit-Limit`` that does not say its own.
    ``max_pause`` bounds every pause and, through the rate's floor, every wait for a turn.
    """

    def __init__(
        self,
        per_second: float | None,
        burst: float | None = None,
        *,
        adaptive: bool = True,
        headroom: float = 0.01,
        reserve: float = 0.1,
        assumed_window: float = 1.0,
        warn_below: float = 0.2,
        max_pause: float = DEFAULT_MAX_PAUSE,
    ) -> None:
        if per_second is None and not adaptive:
            raise ValueError("a rate limit without per_second must be adaptive")
        self.adaptive = adaptive
        self.headroom = headroom
        self.reserve = reserve
        self.assumed_window = assumed_window
        self.warn_below = warn_below
        self.max_pause = max_pause
        self.min_rate = 1.0 / max_pause
        """The slowest a learned rate paces: one call every ``max_pause`` seconds."""
        self.throttled_rate = False
        """The rate was learned from 429s, not announced."""
        self.configured_rate = per_second
        self.configured_burst = burst
        self.limit: float | None = None
        """The upstream's limit per window, as last announced."""
        self.window: float | None = None
        self.learned = False
        self.remaining: float | None = None
        self.rate, self.capacity = self._effective(per_second, burst)

    @property
    def probing(self) -> bool:
        """No rate configured and none learned yet."""
        return self.configured_rate is None and not self.learned

    @property
    def paces(self) -> bool:
        """Whether calls wait for a turn of this pacer's bucket (not while probing)."""
        return not self.probing

    def _effective(
        self, rate: float | None, burst: float | None, *, learned: bool = False
    ) -> tuple[float, float]:
        if rate is None:
            return 1.0, 1.0  # probing: not paced (see ``paces``); placeholders
        capacity = burst if burst is not None else max(1.0, rate)
        paced = rate * (1.0 - self.headroom)
        if learned:  # a configured rate is the user's word; a learned one is floored
            paced = max(self.min_rate, paced)
        return paced, max(1.0, capacity - self._kept(capacity))

    def _kept(self, capacity: float | None) -> float:
        """Requests of the upstream's burst held back (``reserve``, at least one)."""
        if capacity is None:
            capacity = self.configured_burst or 1.0
        return max(1.0, math.floor(capacity * self.reserve)) if capacity > 1 else 0.0

    def on_response(self, status: int, quota: Quota | None) -> Advice:
        """Learn from one response's status and parsed quota headers; what the bucket should do.

        A new limit (when ``adaptive``) changes rate and capacity; ``remaining`` lowers the
        balance; a 429, or an empty quota with a reset time, pauses the upstream.
        """
        changed = adopt = False
        remaining: float | None = None
        pause: float | None = None
        low = False
        if quota is not None and self.adaptive:
            if quota.limit is not None and quota.limit > 0 and not math.isinf(quota.limit):
                window = quota.window or self.assumed_window
                if (quota.limit, window) != (self.limit, self.window):
                    self.limit, self.window, self.learned = quota.limit, window, True
                    self.throttled_rate = False
                    burst = self.configured_burst if self.configured_burst is not None else quota.limit
                    rate, capacity = self._effective(quota.limit / window, burst, learned=True)
                    changed = (rate, capacity) != (self.rate, self.capacity)
                    self.rate, self.capacity = rate, capacity
            if quota.remaining is not None:
                remaining = self.remaining = max(0.0, quota.remaining)
                limit = self.limit
                low = limit is not None and remaining < self.warn_below * limit
                if changed:
                    adopt = True
                    remaining = max(
                        0.0, remaining - self._kept(limit if self.configured_burst is None else None)
                    )
                if remaining <= 0 and quota.reset_after is not None and status != 429:
                    # Empty: obey the upstream's own word on when Remaining goes up again.
                    pause = quota.reset_after
        if status == 429:
            if quota is not None and quota.retry_after is not None:
                pause = quota.retry_after
            elif quota is not None and quota.reset_after is not None:
                pause = quota.reset_after
            else:
                pause = DEFAULT_429_PAUSE
        if pause is not None:
            pause = min(pause, self.max_pause)
        return Advice(self.rate, self.capacity, changed, remaining, adopt, pause, low)

    def on_throttled(self, accepted: int, over: float) -> Advice | None:
        """A 429 from an upstream that announces no quota, after ``accepted`` calls were answered
        in the last ``over`` seconds: pace at that rate from now on (or, when already pacing at a
        rate learned so, ``THROTTLE_DECREASE`` less). None when the rate is configured or
        announced (a 429 then only pauses, see ``on_response``)."""
        if self.configured_rate is not None or (self.learned and not self.throttled_rate):
            return None
        if self.throttled_rate:
            rate = self.rate * (1.0 - THROTTLE_DECREASE)
            capacity = max(1.0, min(self.capacity, rate))
        else:
            per_second = max(1.0, accepted) / over
            rate, capacity = per_second * (1.0 - self.headroom), max(1.0, math.floor(per_second))
        self.learned = self.throttled_rate = True
        self.rate, self.capacity = max(self.min_rate, rate), capacity
        return Advice(self.rate, self.capacity, limits_changed=True)

    def __repr__(self) -> str:
        learned = f" learned={self.limit:g}/{self.window:g}s" if self.limit and self.window else ""
        return f"<Pacer rate={self.rate:g}/s capacity={self.capacity:g}{learned}>"
