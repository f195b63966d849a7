"""The ``CacheStore`` seam: stored responses for the cache policy. One in-process backend and one
Redis backend, held to one behaviour by ``tests/contract/test_cache_contract.py``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ..core.freshness import CacheEntry

__all__ = ["CacheStore"]


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


def glob_escape(text: str) -> str:
    """Escape Redis glob metacharacters so a prefix matches literally."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)

