"""Adaptive polling: the interval between polls of a listing, from what the polls found. Pure.

A poll that finds changes divides the interval by four (down to ``min_every``): changes come
in bursts (people at work, an import), and a burst is over before a gentler step would reach
it. A poll that finds none (or an unchanged listing, a 304) doubles it (up to ``max_every``): a
quiet upstream costs few calls. Multiplicative steps both ways, so the interval follows the
upstream's activity within a few polls; it never leaves ``[min_every, max_every]`` and starts
at ``every``.

``PollBudget`` counts the calls the polls spent over the last hour, and compares the rate now
with what the fixed ``every`` would spend, for ``Sync.status()``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from ..errors import ConfigError

__all__ = ["AdaptiveInterval", "PollBudget"]

HOUR = 3600.0


@dataclass(slots=True)
class AdaptiveInterval:
    """The next interval between polls. ``after_poll(changes)`` after each poll returns it."""

    every: float
    """The starting interval (the fixed one, without adaptation)."""
    min_every: float
    max_every: float
    shrink: float = 0.25
    """Factor applied after a poll that found changes."""
    grow: float = 2.0
    """Factor applied after a poll that found none."""
    current: float = field(init=False)

    def __post_init__(self) -> None:
        owner = "Sync"
        for name in ("every", "min_every", "max_every"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not value > 0:
                raise ConfigError(owner, name, f"must be > 0 seconds, got {value!r}")
        if not self.min_every <= self.every <= self.max_every:
            raise ConfigError(
                owner,
                "every",
                f"must lie within [min_every, max_every] = [{self.min_every}, {self.max_every}], got {self.every!r}",
            )
        if not 0 < self.shrink <= 1:
            raise ConfigError(owner, "shrink", f"must be in (0, 1], got {self.shrink!r}")
        if not self.grow >= 1:
            raise ConfigError(owner, "grow", f"must be >= 1, got {self.grow!r}")
        self.current = float(self.every)

    def after_poll(self, changes: int) -> float:
        """The interval before the next poll, given how many changed records this one found."""
        if changes > 0:
            self.current = max(self.min_every, self.current * self.shrink)
        else:
            self.current = min(self.max_every, self.current * self.grow)
        return self.current

    def reset(self) -> float:
        """Back to ``every`` (a webhook or stream event says the resource is active)."""
        self.current = float(self.every)
        return self.current


class PollBudget:
    """Calls spent by polls over the last hour, and the rate the current interval implies
    against the fixed one. Bounded: one entry per poll within the hour (at most
    ``3600 / min_every``, or ``max_polls``)."""

    __slots__ = ("_polls", "every", "not_modified")

    def __init__(self, every: float, *, max_polls: int = 4096) -> None:
        self.every = every
        self._polls: deque[tuple[float, int]] = deque(maxlen=max_polls)
        self.not_modified = 0
        """Polls answered 304 (unchanged listing) since the start."""

    def polled(self, now: float, calls: int, *, not_modified: bool = False) -> None:
        """A poll finished at monotonic ``now`` after ``calls`` requests."""
        self._polls.append((now, calls))
        if not_modified:
            self.not_modified += 1
        self._forget(now)

    def _forget(self, now: float) -> None:
        polls = self._polls
        while polls and polls[0][0] <= now - HOUR:
            polls.popleft()

    def calls_last_hour(self, now: float) -> int:
        """Requests the polls made in the hour before ``now``."""
        self._forget(now)
        return sum(calls for _, calls in self._polls)

    def report(self, now: float, interval: float) -> dict[str, float | int]:
        """What ``Sync.status()`` shows: calls per hour at the ``interval`` now and at the fixed
        ``every`` (both at the calls per poll seen lately, 1 before any), the calls actually
        made in the last hour, and the polls answered 304."""
        self._forget(now)
        polls = len(self._polls)
        per_poll = (sum(c for _, c in self._polls) / polls) if polls else 1.0
        return {
            "interval_seconds": round(interval, 3),
            "calls_per_hour_now": round(HOUR / interval * per_poll, 1),
            "calls_per_hour_fixed": round(HOUR / self.every * per_poll, 1),
            "calls_last_hour": self.calls_last_hour(now),
            "polls_last_hour": polls,
            "not_modified": self.not_modified,
        }

    def __repr__(self) -> str:
        return f"PollBudget(every={self.every}, polls={len(self._polls)}, not_modified={self.not_modified})"
