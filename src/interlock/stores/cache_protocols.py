"""The seams of work avoided: ``CacheStore`` (the response cache) and ``QuotaStore`` (the rate
limit's bucket). One in-process backend and one Redis backend each, held to one behaviour by the
shared contract suites in ``tests/contract/``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from ..core.bucket import Grant
from ..core.freshness import CacheEntry

__all__ = ["CacheStore", "QuotaStore"]


@runtime_checkable
class CacheStore(Protocol):
    """Stored responses by key. Keys are opaque strings built by the cache policy
    (``upstream|/path?query|vary``); a store may prefix them with its own namespace.

    ``ttl`` is how long the store must keep the entry at least (the cache judges freshness
    itself; the store only forgets). Tags group entries for ``delete_tag``.
    """

    async def get(self, key: str) -> CacheEntry | None: ...

    async def set(self, key: str, entry: CacheEntry, ttl: float) -> None: ...

    async def delete(self, key: str) -> bool:
        """Forget one key; whether it was there."""
        ...

    async def delete_prefix(self, prefix: str) -> int:
        """Forget every key starting with ``prefix``; how many."""
        ...

    async def delete_tag(self, tag: str) -> int:
        """Forget every entry stored with ``tag`` in its ``tags``; how many."""
        ...

    async def clear(self) -> None: ...

    async def aclose(self) -> None: ...


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
    ) -> Grant: ...

    async def refund(self, key: str, *, rate: float, capacity: float) -> None: ...

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

    async def aclose(self) -> None: ...


def glob_escape(text: str) -> str:
    """Escape Redis glob metacharacters so a prefix matches literally."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def as_tags(tags: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(t for t in tags if t))
