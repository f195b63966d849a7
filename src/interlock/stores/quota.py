"""The ``QuotaStore`` seam: the rate limit's token buckets, shared by every caller of an upstream.
One in-process backend and one Redis backend, held to one behaviour by
``tests/contract/test_quota_contract.py``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ..core.bucket import Grant

__all__ = ["QuotaStore"]


@runtime_checkable
class QuotaStore(Protocol):
    """Token buckets by key, with the arithmetic of ``core.bucket.TokenBucket``. Durations are
    relative (seconds from now on the store's own clock), so callers' clocks never meet.

    ``rate`` and ``capacity`` are passed on every call: whoever learned the latest limits from
    the upstream applies them for everyone. ``rate <= 0`` means "not known here yet": keep the
    stored limits, or, for a bucket nobody has set limits on, grant at once without pacing
    (callers probe one request at a time until they learn the quota).
    """

    async def acquire(
        self, key: str, *, rate: float, capacity: float, max_wait: float | None = None
    ) -> Grant:
        """Reserve one token: granted with the wait until it is due (0 when one is there), or,
        when the wait would pass ``max_wait``, not granted and nothing taken. The grant's
        ``seq`` numbers reservations of the key, for ``observe``."""
        ...

    async def refund(self, key: str, *, rate: float, capacity: float) -> None:
        """Give back one reserved token (the call was never sent), up to ``capacity``."""
        ...

    async def observe(
        self, key: str, *, remaining: float, seq: int, rate: float, capacity: float, adopt: bool = False
    ) -> None:
        """The upstream reported ``remaining`` after the request of reservation ``seq``
        (``TokenBucket.observe``: lowers the balance, or with ``adopt`` sets it)."""
        ...

    async def pause(self, key: str, seconds: float, *, rate: float, capacity: float) -> float:
        """Stop granting for ``seconds``; returns the pause still to run (the longest one wins)."""
        ...

    async def paused_for(self, key: str) -> float:
        """Seconds the pause on ``key`` still has to run (0 when none)."""
        ...

    async def aclose(self) -> None:
        """Release the connections the store opened; a borrowed client stays open."""
        ...
