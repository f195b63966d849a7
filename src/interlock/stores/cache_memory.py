"""In-process ``CacheStore``: LRU bounded by entries and bytes. The default when no store URL is given."""

from __future__ import annotations

from collections import OrderedDict

from .._clock import SYSTEM_CLOCK, Clock
from ..core.freshness import CacheEntry

__all__ = ["MemoryCacheStore"]


class MemoryCacheStore:
    """Least-recently-used eviction once either bound is passed. Expiry is lazy (on read) plus
    eviction, so no background task is needed."""

    def __init__(
        self, *, max_entries: int = 10_000, max_bytes: int = 64 * 1024 * 1024, clock: Clock | None = None
    ) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("max_entries and max_bytes must be >= 1")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._clock = clock or SYSTEM_CLOCK
        self._entries: OrderedDict[str, tuple[CacheEntry, float]] = OrderedDict()
        self._tags: dict[str, set[str]] = {}
        self.bytes = 0
        self.evictions = 0

    def _drop(self, key: str) -> bool:
        found = self._entries.pop(key, None)
        if found is None:
            return False
        entry = found[0]
        self.bytes -= entry.size
        for tag in entry.tags:
            keys = self._tags.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._tags[tag]
        return True

    async def get(self, key: str) -> CacheEntry | None:
        """The entry, marked most recently used; an expired one is dropped and reported missing."""
        found = self._entries.get(key)
        if found is None:
            return None
        entry, expires = found
        if self._clock.monotonic() >= expires:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry

    async def set(self, key: str, entry: CacheEntry, ttl: float) -> None:
        """Store the entry, then evict least recently used ones until both bounds hold; an entry
        larger than ``max_bytes`` on its own is not stored."""
        self._drop(key)
        if entry.size > self.max_bytes:
            return  # would evict everything else and still not fit
        self._entries[key] = (entry, self._clock.monotonic() + ttl)
        self.bytes += entry.size
        for tag in entry.tags:
            self._tags.setdefault(tag, set()).add(key)
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            oldest = next(iter(self._entries))
            self._drop(oldest)
            self.evictions += 1

    async def delete(self, key: str) -> bool:
        """Forget one key; whether it was there."""
        return self._drop(key)

    async def delete_prefix(self, prefix: str) -> int:
        """Forget the keys starting with ``prefix``; how many."""
        doomed = [k for k in self._entries if k.startswith(prefix)]
        for key in doomed:
            self._drop(key)
        return len(doomed)

    async def delete_tag(self, tag: str) -> int:
        """Forget the entries stored with ``tag``; how many."""
        doomed = list(self._tags.get(tag, ()))
        for key in doomed:
            self._drop(key)
        return len(doomed)

    async def clear(self) -> None:
        """Forget every entry."""
        self._entries.clear()
        self._tags.clear()
        self.bytes = 0

    async def aclose(self) -> None:
        """Nothing to release: the entries live in this process."""

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return (
            f"<MemoryCacheStore entries={len(self._entries)}/{self.max_entries} "
            f"bytes={self.bytes}/{self.max_bytes} evictions={self.evictions}>"
        )
