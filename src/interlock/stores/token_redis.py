"""``RedisTokenStore``: tokens shared by every process using one Redis.

The lock is ``SET lock owner NX PX ttl`` (taken only when free, released by itself after ``ttl``
if its holder dies) and released by a script that deletes it only while it still holds the
caller's owner id (https://redis.io/docs/latest/commands/set/, "Patterns"), so a holder whose
lease ran out never deletes its successor's. A token without a refresh token expires from Redis
with the access token; one with a refresh token is kept (it is the only copy of the rotated
refresh token).
"""

from __future__ import annotations

from typing import Any

from .._clock import SYSTEM_CLOCK, Clock
from ..core.token import Token
from ._redis import RedisStore

__all__ = ["RedisTokenStore"]

# KEYS[1]: the lock; ARGV[1]: the owner. Deletes it only while it is the owner's.
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisTokenStore(RedisStore):
    """``TokenStore`` on Redis: ``{namespace}{key}`` holds the token (JSON), ``{namespace}{key}:lock``
    the lock. ``client`` shares a ``redis.asyncio`` client (then not closed by ``aclose``)."""

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        namespace: str = "interlock:token:",
        client: Any = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(url, namespace=namespace, client=client)
        self._unlock = self._redis.register_script(_UNLOCK)
        self._clock = clock or SYSTEM_CLOCK

    async def open(self) -> None:
        """Nothing to create: keys appear on first save."""

    async def load(self, key: str) -> Token | None:
        """``GET`` the token; None when absent or unreadable."""
        return Token.read_stored(await self._redis.get(self.namespace + key))

    async def save(self, key: str, token: Token) -> None:
        """``SET`` the token, with the access token's remaining life as its TTL when there is no
        refresh token to keep."""
        ttl_ms: int | None = None
        if token.refresh_token is None and token.expires_at is not None:
            ttl_ms = max(1, int((token.expires_at - self._clock.time()) * 1000))
        await self._redis.set(self.namespace + key, token.to_json(), px=ttl_ms)

    async def lock(self, key: str, owner: str, ttl: float) -> bool:
        """``SET lock owner NX PX ttl``: taken only when nobody holds it."""
        taken = await self._redis.set(
            self.namespace + key + ":lock", owner, nx=True, px=max(1, int(ttl * 1000))
        )
        return bool(taken)

    async def unlock(self, key: str, owner: str) -> None:
        """Compare-and-delete the lock."""
        await self._unlock(keys=[self.namespace + key + ":lock"], args=[owner])
