"""Opening a Redis client for the Redis-backed stores, with the extra to install named."""

from __future__ import annotations

from typing import Any


def redis_client(url: str, client: Any, owner: str) -> Any:
    """``client`` when given (the caller owns it), else a new asyncio client for ``url``."""
    if client is not None:
        return client
    try:
        import redis.asyncio as aioredis
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(f"{owner} needs redis: pip install 'interlock[redis]'") from exc
    return aioredis.Redis.from_url(url)
