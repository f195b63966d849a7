"""The server middleware's Prometheus metrics, on ``interlock.metrics.REGISTRY``."""

from __future__ import annotations

from prometheus_client import Counter

from .._metrics import REGISTRY

__all__ = ["RATELIMIT_BACKEND_ERRORS"]

RATELIMIT_BACKEND_ERRORS = Counter(
    "interlock_server_ratelimit_backend_errors",
    "Rate limit checks whose backend failed or timed out (the request was admitted or refused per fail_open).",
    registry=REGISTRY,
)
