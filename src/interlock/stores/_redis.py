"""What the Redis-backed stores share (cache, quota): a client opened for a URL or borrowed, a key
namespace, and closing only what they opened.

A client opened here never waits without bound: ``SOCKET_TIMEOUT`` for each reply and
``CONNECT_TIMEOUT`` to connect (a frozen server is a ``redis.exceptions.TimeoutError`` after
that, which the cache and the rate limit turn into their degraded mode), and one immediate
retry only, for a pooled connection the server dropped. ``?socket_timeout=`` and
``?socket_connect_timeout=`` in the URL override them.
"""

from __future__ import annotations

from typing import Any

from .._redact import redact_url

__all__ = ["CONNECT_TIMEOUT", "SOCKET_TIMEOUT", "RedisStore", "redis_client"]

SOCKET_TIMEOUT = 1.0
"""Seconds a Redis client opened by a store waits for a reply."""
CONNECT_TIMEOUT = 1.0
"""Seconds it waits to connect."""


def redis_client(url: str, client: Any, owner: str) -> Any:
    """``client`` when given (the caller owns it), else a new asyncio client for ``url``."""
    if client is not None:
        return client
    try:
        import redis.asyncio as aioredis
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(f"{owner} needs redis: pip install 'interlock[redis]'") from exc
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    # redis-py retries 3 times with backoff by default: 4 socket timeouts on a frozen server.
    return aioredis.Redis.from_url(
        url,
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=CONNECT_TIMEOUT,
        retry=Retry(NoBackoff(), 1),
    )


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
