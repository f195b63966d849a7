"""What the Redis-backed stores share (cache, quota): a client opened for a URL or borrowed, a key
namespace, and closing only what they opened."""

from __future__ import annotations

from typing import Any

from ._backends import redact_url

__all__ = ["RedisStore", "redis_client"]


def redis_client(url: str, client: Any, owner: str) -> Any:
    """``client`` when given (the caller owns it), else a new asyncio client for ``url``."""
    if client is not None:
        return client
    try:
        import redis.asyncio as aioredis
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(f"{owner} needs redis: pip install 'interlock[redis]'") from exc
    return aioredis.Redis.from_url(url)


class RedisStore:
    """Base of the Redis stores. Every key they write starts with ``namespace``; a ``client``
    passed in is borrowed (used, never closed), otherwise one is opened for ``url``."""

    def __init__(self, url: str, *, namespace: str, client: Any) -> None:
        self.url = url
        self.namespace = namespace
        self._own = client is None
        self._redis: Any = redis_client(url, client, type(self).__name__)

    async def aclose(self) -> None:
        """Close the client if the store opened it."""
        if self._own:
            await self._redis.aclose()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {redact_url(self.url)} namespace={self.namespace!r}>"
