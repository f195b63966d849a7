"""Backoff schedules: exponential with full jitter, or an explicit list of delays.

Full jitter (delay drawn uniformly from [0, min(cap, base * multiplier**n)]) spreads retries of
many clients apart best; see "Exponential Backoff And Jitter", AWS Architecture Blog, 2015.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from ..errors import ConfigError

Jitter = Literal["full", "equal", "none"]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before retry number ``n`` (1 for the first retry).

    ``delays`` overrides the formula: the n-th retry waits ``delays[n-1]`` (the last one repeats),
    jittered the same way.
    """

    base: float = 0.1
    multiplier: float = 2.0
    cap: float = 10.0
    jitter: Jitter = "full"
    delays: Sequence[float] = field(default=())

    def __post_init__(self) -> None:
        if self.base < 0:
            raise ConfigError("Backoff", "base", f"must be >= 0 seconds, got {self.base!r}")
        if self.multiplier < 1:
            raise ConfigError("Backoff", "multiplier", f"must be >= 1, got {self.multiplier!r}")
        if self.cap < self.base:
            raise ConfigError("Backoff", "cap", f"must be >= base ({self.base}), got {self.cap!r}")
        if self.jitter not in ("full", "equal", "none"):
            raise ConfigError("Backoff", "jitter", f"must be 'full', 'equal' or 'none', got {self.jitter!r}")
        if any(d < 0 for d in self.delays):
            raise ConfigError("Backoff", "delays", "every delay must be >= 0 seconds")
        object.__setattr__(self, "delays", tuple(self.delays))

    def ceiling(self, retry: int) -> float:
        """The un-jittered delay for retry number ``retry`` (1-based)."""
        if retry < 1:
            return 0.0
        if self.delays:
            return float(self.delays[min(retry, len(self.delays)) - 1])
        # Bound the exponent so huge retry counts cannot overflow a float.
        return min(self.cap, self.base * self.multiplier ** min(retry - 1, 64))

    def delay(self, retry: int, rng: random.Random | None = None) -> float:
        """The jittered delay before retry number ``retry`` (1-based), drawn from ``rng``."""
        ceiling = self.ceiling(retry)
        if self.jitter == "none" or ceiling == 0:
            return ceiling
        draw = (rng or random).random()
        if self.jitter == "equal":
            return ceiling / 2 + draw * ceiling / 2
        return draw * ceiling
