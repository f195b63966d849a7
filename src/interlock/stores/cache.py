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

    async def get(self, key: str) -> CacheEntry | None:
        """The entry stored under ``key``, as it was stored; None when missing or expired."""
        ...

    async def set(self, key: str, entry: CacheEntry, ttl: float) -> None:
        """Store ``entry`` under ``key`` (replacing what was there) for ``ttl`` s at least, and
        under each of its ``tags``. A store may refuse an entry larger than its bound."""
        ...

    async def delete(self, key: str) -> bool:
        """Forget one key; whether it was there."""
        ...

    async def delete_prefix(self, prefix: str) -> int:
        """Forget every key starting with ``prefix``; how many."""
        ...

    async def delete_tag(self, tag: str) -> int:
        """Forget every entry stored with ``tag`` in its ``tags``; how many."""
        ...

    async def clear(self) -> None:
        """Forget every entry of this store (only its own namespace on a shared server)."""
        ...

    async def aclose(self) -> None:
        """Release the connections the store opened; a borrowed client stays open."""
        ...


def glob_escape(text: str) -> str:
    """Escape Redis glob metacharacters so a prefix matches literally."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)

