"""Fault injection: outages, connection resets, error statuses, latency and slow requests.

Decisions only (no I/O): the app asks, per resource request, whether an outage is on and what
``draw()`` says, then acts. One seeded ``random.Random`` drives every draw, so a run with the
same seed and the same request order injects the same faults.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from ._config import Faults, Latency

__all__ = ["Draw", "FaultInjector"]


@dataclass(frozen=True, slots=True)
class Draw:
    """What happens to one request: a reset, an injected status, and/or a delay (seconds)."""

    reset: bool = False
    status: int | None = None
    delay: float = 0.0


_CLEAN = Draw()


class FaultInjector:
    """Decides, per resource request, which of the configured ``Faults`` strike.

    Outage windows are re-based on ``now`` (the moment the faults were set); ``rng`` is the
    testbed's seeded generator.
    """

    def __init__(self, faults: Faults, rng: random.Random, now: float) -> None:
        self.faults = faults
        self._rng = rng
        # Outage windows in monotonic seconds, re-based on the moment the faults were set.
        self._windows: list[tuple[float, float]] = [
            (now + o.start, now + o.start + o.duration) for o in faults.outages
        ]
        # Cumulative thresholds over one uniform draw: [0, reset) resets, then each status.
        self._thresholds: list[tuple[float, int]] = []
        edge = faults.reset_rate
        for status, rate in sorted(faults.error_rates.items()):
            if rate > 0:
                edge += rate
                self._thresholds.append((edge, status))
        self._any_draw = bool(faults.reset_rate or self._thresholds)
        self._clean = faults.latency is None and not self._any_draw and faults.slow_rate == 0

    def start_outage(self, duration: float, now: float) -> None:
        """Open an outage window of ``duration`` seconds from ``now``."""
        self._windows.append((now, now + duration))

    def outage_active(self, now: float) -> bool:
        """Whether an outage window covers ``now``; forgets the windows that are over."""
        if not self._windows:
            return False
        active = False
        for start, end in self._windows:
            if start <= now < end:
                active = True
        # Forget finished windows so the common path stays a cheap empty-list check.
        self._windows = [w for w in self._windows if w[1] > now]
        return active

    def draw(self) -> Draw:
        """What happens to the next request: a reset, an injected status, or a delay (often none)."""
        if self._clean:
            return _CLEAN
        rng = self._rng
        if self._any_draw:
            u = rng.random()
            if u < self.faults.reset_rate:
                return Draw(reset=True)
            for edge, status in self._thresholds:
                if u < edge:
                    return Draw(status=status)
        delay = 0.0
        if self.faults.latency is not None:
            delay = sample_latency(self.faults.latency, rng)
        if self.faults.slow_rate and rng.random() < self.faults.slow_rate:
            delay += self.faults.slow_ms / 1000.0
        return Draw(delay=delay) if delay > 0 else _CLEAN

    def lost_response(self) -> bool:
        """Whether to drop the connection after applying this write (``lost_response_rate``)."""
        rate = self.faults.lost_response_rate
        return rate > 0 and self._rng.random() < rate

    def __repr__(self) -> str:
        return f"FaultInjector({self.faults.describe()}, outage_windows={len(self._windows)})"


def sample_latency(latency: Latency, rng: random.Random) -> float:
    """One latency sample in seconds."""
    if latency.kind == "fixed":
        return latency.ms / 1000.0
    if latency.kind == "uniform":
        return rng.uniform(latency.low_ms, latency.high_ms) / 1000.0
    # Lognormal with the given median: exp(mu) is the median of a lognormal distribution.
    return latency.median_ms * math.exp(latency.sigma * rng.gauss(0.0, 1.0)) / 1000.0
