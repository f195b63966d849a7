"""The Redis client the server's Redis backends open for themselves. Private to
``interlock.server``.

A bounded, *blocking* connection pool: redis-py's default pool (100 connections in redis-py 8)
raises ``MaxConnectionsError`` at once when a burst needs more, which a rate limit would turn
into failing open for that burst. Here a check past ``max_connections`` waits for a free
connection (bounded by ``timeout``, like the check itself) instead.
"""

from __future__ import annotations

from typing import Any

__all__ = ["open_redis"]


def open_redis(url: str, *, timeout: float, max_connections: int, owner: str) -> Any:
    """An asyncio Redis client for ``url`` whose ``aclose()`` closes its pool too."""
    try:
        import redis.asyncio as aioredis
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(f"{owner} needs redis: pip install 'interlock[redis]'") from exc
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
    )
    return aioredis.Redis.from_pool(pool)
