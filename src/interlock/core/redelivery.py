"""When a webhook handler fails: retry after a delay, or give up and dead-letter. Pure decision."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from ..errors import ConfigError
from .backoff import Backoff

__all__ = ["Redelivery"]


@dataclass(frozen=True, slots=True)
class Redelivery:
    """Retry schedule for inbox events: ``attempts`` deliveries in all, spaced by ``backoff``.

    ``Redelivery(attempts=5, backoff=Backoff(delays=[1, 10, 60, 300]))`` for an explicit list,
    or the default exponential formula with full jitter (1 s, 2 s, 4 s ... capped at 10 min).
    """

    attempts: int = 8
    backoff: Backoff = field(default_factory=lambda: Backoff(base=1.0, multiplier=2.0, cap=600.0))

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigError("Redelivery", "attempts", f"must be >= 1, got {self.attempts!r}")

    def next_delay(self, attempt: int, rng: random.Random | None = None) -> float | None:
        """Seconds to wait before delivery ``attempt + 1``; ``None`` means dead-letter now."""
        if attempt >= self.attempts:
            return None
        return self.backoff.delay(attempt, rng)

    def exhausted(self, attempt: int) -> bool:
        """A lease numbered past the last attempt (its workers kept dying): dead-letter it."""
        return attempt > self.attempts
