"""In-process ``QuotaStore``: one ``TokenBucket`` per key. The default when no store URL is given."""

from __future__ import annotations

from .._clock import SYSTEM_CLOCK, Clock
from ..core.bucket import Grant, TokenBucket

__all__ = ["MemoryQuotaStore"]


class MemoryQuotaStore:
    """Buckets of one process. Time is the clock's monotonic seconds."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or SYSTEM_CLOCK
        self.buckets: dict[str, TokenBucket] = {}

    def bucket(self, key: str, rate: float, capacity: float) -> TokenBucket:
        """The key's bucket, created full at first use; known limits are replaced by new ones
        (``rate > 0``) and kept by a caller still probing (``rate <= 0``)."""
        now = self._clock.monotonic()
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = TokenBucket(rate if rate > 0 else 1.0, max(1.0, capacity), now)
        elif rate <= 0:
            pass  # a caller still probing keeps the limits already known
        elif bucket.rate != rate or bucket.capacity != capacity:
            bucket.set_limits(rate, capacity, now)
        return bucket

    async def acquire(
        self, key: str, *, rate: float, capacity: float, max_wait: float | None = None
    ) -> Grant:
        """Reserve a token of the key's bucket (granted at once while no limits are known)."""
        if rate <= 0 and key not in self.buckets:
            return Grant(0.0, 0)  # probing and nothing known yet: nothing to pace by
        return self.bucket(key, rate, capacity).reserve(self._clock.monotonic(), max_wait=max_wait)

    async def refund(self, key: str, *, rate: float, capacity: float) -> None:
        """Give back one token (up to capacity)."""
        self.bucket(key, rate, capacity).refund()

    async def observe(
        self, key: str, *, remaining: float, seq: int, rate: float, capacity: float, adopt: bool = False
    ) -> None:
        """Lower the balance to what the upstream reported (or set it, with ``adopt``)."""
        self.bucket(key, rate, capacity).observe(remaining, seq, self._clock.monotonic(), adopt=adopt)

    async def pause(self, key: str, seconds: float, *, rate: float, capacity: float) -> float:
        """Empty the bucket and stop granting for ``seconds``; the pause still to run."""
        now = self._clock.monotonic()
        bucket = self.bucket(key, rate, capacity)
        bucket.pause(now + seconds, now)
        return max(0.0, bucket.paused_until - now)

    async def paused_for(self, key: str) -> float:
        """The pause still to run (0 for a key never seen)."""
        bucket = self.buckets.get(key)
        return 0.0 if bucket is None else max(0.0, bucket.paused_until - self._clock.monotonic())

    async def aclose(self) -> None:
        """Nothing to release: the buckets live in this process."""

    def __repr__(self) -> str:
        return f"<MemoryQuotaStore buckets={len(self.buckets)}>"
