"""``RedisCacheStore``: one cache shared by every process that points at the same Redis.

Layout, under the store's namespace (default ``interlock:cache:``): ``e:<key>`` holds the
entry's bytes (``CacheEntry.to_bytes``, zlib-compressed from ``compress_over`` bytes) with a
PX expiry; ``t:<tag>`` is the set of keys stored with that tag, expiring no earlier than its
longest-lived member. Writes that touch several keys run as one Lua script, so a reader never
sees an entry without its tags.
"""

from __future__ import annotations

from typing import Any

from ..core.freshness import CacheEntry
from ._redis import RedisStore
from .cache import glob_escape

__all__ = ["RedisCacheStore"]

_SET = """
local ttl = tonumber(ARGV[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
for i = 2, #KEYS do
  redis.call('SADD', KEYS[i], ARGV[3])
  if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
end
return 1
"""

_DELETE_TAG = """
local members = redis.call('SMEMBERS', KEYS[1])
local n = 0
for _, key in ipairs(members) do
  n = n + redis.call('DEL', ARGV[1] .. key)
end
redis.call('DEL', KEYS[1])
return n
"""


class RedisCacheStore(RedisStore):
    """``CacheStore`` on Redis, shared by every process using the same URL and namespace.

    Entries of ``compress_over`` bytes or more are stored zlib-compressed. Pass ``client`` to
    share a ``redis.asyncio`` client (it is then not closed by ``aclose``).
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        namespace: str = "interlock:cache:",
        compress_over: int = 1024,
        client: Any = None,
    ) -> None:
        super().__init__(url, namespace=namespace, client=client)
        self.compress_over = compress_over
        self._set = self._redis.register_script(_SET)
        self._delete_tag = self._redis.register_script(_DELETE_TAG)

    def _entry_key(self, key: str) -> str:
        return f"{self.namespace}e:{key}"

    def _tag_key(self, tag: str) -> str:
        return f"{self.namespace}t:{tag}"

    async def get(self, key: str) -> CacheEntry | None:
        """The entry under ``key``; a value that does not decode is deleted and reported missing."""
        data = await self._redis.get(self._entry_key(key))
        if data is None:
            return None
        try:
            return CacheEntry.from_bytes(data)
        except (ValueError, KeyError, TypeError):
            await self._redis.delete(self._entry_key(key))  # a foreign or corrupt value
            return None

    async def set(self, key: str, entry: CacheEntry, ttl: float) -> None:
        """Store the entry with a PX expiry of ``ttl`` and add it to its tags' sets, atomically."""
        keys = [self._entry_key(key), *(self._tag_key(t) for t in entry.tags)]
        ttl_ms = max(1, int(ttl * 1000))
        await self._set(keys=keys, args=[entry.to_bytes(self.compress_over), ttl_ms, key])

    async def delete(self, key: str) -> bool:
        """Delete the entry; whether it was there (its tag sets expire on their own)."""
        return bool(await self._redis.delete(self._entry_key(key)))

    async def _delete_matching(self, pattern: str) -> int:
        deleted, batch = 0, []
        async for found in self._redis.scan_iter(match=pattern, count=500):
            batch.append(found)
            if len(batch) >= 500:
                deleted += await self._redis.unlink(*batch)
                batch = []
        if batch:
            deleted += await self._redis.unlink(*batch)
        return int(deleted)

    async def delete_prefix(self, prefix: str) -> int:
        """Delete the entries whose keys start with ``prefix`` (SCAN, then UNLINK in batches)."""
        return await self._delete_matching(glob_escape(self._entry_key(prefix)) + "*")

    async def delete_tag(self, tag: str) -> int:
        """Delete the entries of the tag's set, then the set, in one script."""
        return int(await self._delete_tag(keys=[self._tag_key(tag)], args=[self._entry_key("")]))

    async def clear(self) -> None:
        """Delete every key of this store's namespace (and only those)."""
        await self._delete_matching(glob_escape(self.namespace) + "*")
