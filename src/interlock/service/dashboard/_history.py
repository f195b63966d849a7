"""The dashboard's memory of the last hour: windowed figures from cumulative counters.

Interlock's counters run from process start (Prometheus counters never go backwards), so "p95
now" and "the error rate over the last hour" are differences between two readings, as PromQL's
``rate()`` computes them. A ``Series`` keeps one reading per tick (``record``), at most
``horizon / interval`` of them; ``window(seconds)`` subtracts the reading ``seconds`` ago from
the newest one, and ``points()`` gives one difference per tick for a chart.

No I/O and no clock of its own: the caller passes ``at`` (wall-clock seconds) with each
reading. Bounded by construction: ``maxlen`` readings per series, one series per configured
upstream or source.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field

from ..._metrics import LATENCY_BUCKETS, histogram_quantile

__all__ = ["CallReading", "CallWindow", "GaugeSeries", "Series", "difference"]


@dataclass(frozen=True, slots=True)
class CallReading:
    """Cumulative counts of one upstream (every route merged) at one instant."""

    at: float
    calls: int = 0
    errors: int = 0
    """5xx answers and calls that got no answer (timeout, refused, open breaker)."""
    retries: int = 0
    buckets: tuple[int, ...] = ()
    """Calls per latency bucket (``LATENCY_BUCKETS`` and +Inf), not cumulative across buckets."""
    cache_lookups: int = 0
    cache_hits: int = 0
    """Lookups answered without a full fetch (fresh, stale or revalidated)."""


@dataclass(frozen=True, slots=True)
class CallWindow:
    """What happened between two readings."""

    seconds: float
    calls: int
    errors: int
    retries: int
    p50: float | None
    p95: float | None
    p99: float | None
    cache_lookups: int
    cache_hits: int

    @property
    def error_rate(self) -> float | None:
        """Errors per call; ``None`` with no call."""
        return self.errors / self.calls if self.calls else None

    @property
    def retry_share(self) -> float | None:
        """Retries per call sent (calls plus retries); ``None`` with no call."""
        sent = self.calls + self.retries
        return self.retries / sent if sent else None

    @property
    def hit_rate(self) -> float | None:
        """Cache hits per lookup; ``None`` with no lookup."""
        return self.cache_hits / self.cache_lookups if self.cache_lookups else None

    @property
    def pace(self) -> float:
        """Calls per second over the window."""
        return self.calls / self.seconds if self.seconds > 0 else 0.0


def difference(newer: CallReading, older: CallReading) -> CallWindow:
    """The window between two readings of the same upstream (a counter that went backwards,
    after a restart, counts from zero)."""

    def delta(a: int, b: int) -> int:
        return a - b if a >= b else a

    buckets = [
        delta(n, o) for n, o in zip(newer.buckets, older.buckets or (0,) * len(newer.buckets), strict=False)
    ]
    cumulative: list[float] = []
    running = 0
    for n in buckets:
        running += n
        cumulative.append(float(running))
    bounds = [*LATENCY_BUCKETS, float("inf")][: len(cumulative)]

    def quantile(q: float) -> float | None:
        return histogram_quantile(q, bounds, cumulative) if running else None

    return CallWindow(
        seconds=max(0.0, newer.at - older.at),
        calls=delta(newer.calls, older.calls),
        errors=delta(newer.errors, older.errors),
        retries=delta(newer.retries, older.retries),
        p50=quantile(0.5),
        p95=quantile(0.95),
        p99=quantile(0.99),
        cache_lookups=delta(newer.cache_lookups, older.cache_lookups),
        cache_hits=delta(newer.cache_hits, older.cache_hits),
    )


@dataclass(slots=True)
class Series:
    """The readings of one upstream, one per tick, for the last ``horizon`` seconds."""

    interval: float = 5.0
    horizon: float = 3600.0
    _readings: deque[CallReading] = field(init=False)

    def __post_init__(self) -> None:
        self._readings = deque(maxlen=int(self.horizon / self.interval) + 1)

    def __len__(self) -> int:
        return len(self._readings)

    def record(self, reading: CallReading) -> None:
        """Keep ``reading`` (the oldest one goes once ``horizon`` is covered)."""
        self._readings.append(reading)

    def latest(self) -> CallReading | None:
        """The newest reading, if any."""
        return self._readings[-1] if self._readings else None

    def window(self, seconds: float) -> CallWindow | None:
        """The last ``seconds`` (or as much of them as is kept); ``None`` before two readings."""
        if len(self._readings) < 2:
            return None
        newest = self._readings[-1]
        older = self._readings[0]
        for reading in reversed(self._readings):
            older = reading
            if newest.at - reading.at >= seconds:
                break
        return difference(newest, older) if older is not newest else None

    def points(self) -> list[tuple[float, CallWindow]]:
        """One window per tick, oldest first, stamped with its end: a chart's points."""
        readings = list(self._readings)
        return [(b.at, difference(b, a)) for a, b in itertools.pairwise(readings)]


@dataclass(slots=True)
class GaugeSeries:
    """Readings of a few named gauges (queue depth, processing p95...), one per tick, for the
    last ``horizon`` seconds: a chart's points as they are, no differencing."""

    interval: float = 5.0
    horizon: float = 3600.0
    _points: deque[tuple[float, dict[str, float | None]]] = field(init=False)

    def __post_init__(self) -> None:
        self._points = deque(maxlen=int(self.horizon / self.interval) + 1)

    def record(self, at: float, values: dict[str, float | None]) -> None:
        """Keep one reading of the gauges."""
        self._points.append((at, dict(values)))

    def points(self) -> list[tuple[float, dict[str, float | None]]]:
        """The readings, oldest first."""
        return list(self._points)
