"""Fixtures for the client suite: a loopback TCP proxy (``interlock.testing.TcpProxy``) in front
of the machine's real Redis, for fault tests that freeze the proxy, never the shared server."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlparse

import pytest

from interlock.testing import TcpProxy


@pytest.fixture
def redis_proxy(redis_url: str) -> Iterator[TcpProxy]:
    """A proxy in front of the test Redis; ``redis_proxy.url(redis_url)`` is the URL through it."""
    parsed = urlparse(redis_url)
    with TcpProxy(parsed.hostname or "127.0.0.1", parsed.port or 6379) as proxy:
        yield proxy
