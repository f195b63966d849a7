"""``interlock.server``: plain ASGI middleware for your own API (Starlette style, usable in
FastAPI, Starlette or any ASGI app), one module each: ``ratelimit``, ``compression``,
``conditional``, ``fields``, ``accesslog``, ``security``, ``idempotency``; besides them
``jobs`` (202 Accepted and background work), ``pagination`` (signed cursors, ``Link``) and
``loader`` (batching ``load(key)`` calls within a request); for your callers' credentials
``jwt`` (``JWTAuth``, needs ``interlock[jwt]``) and ``apikey`` (``ApiKeyAuth``).

Put them in this order (outermost first), so each sees what it needs::

    middleware = [
        Middleware(AccessLogMiddleware),       # one record per request, X-Request-ID
        Middleware(SecurityMiddleware),        # headers, 413, 503 timeout
        Middleware(JWTAuth, jwks_url=..., audience=...),   # 401 / 403; claims for the limiter
        Middleware(RateLimitMiddleware, limits=[Limit("api", 100, 60.0, key=auth_subject)]),
        Middleware(CompressionMiddleware),     # gzip / br / zstd
        Middleware(ConditionalMiddleware),     # ETag, 304, 412
        Middleware(FieldsMiddleware),          # ?fields=id,email
    ]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._access import Require, auth_claims, auth_subject
from ._idempotency_sql import PostgresIdempotencyStore, SQLiteIdempotencyStore
from .accesslog import AccessLogMiddleware, route_template
from .apikey import ApiKeyAuth, ApiKeyRecord, hash_api_key, new_api_key
from .compression import DEFAULT_COMPRESSIBLE, CompressionMiddleware
from .conditional import ConditionalMiddleware, strong_etag
from .fields import FieldsMiddleware
from .idempotency import (
    IdempotencyMiddleware,
    IdempotencyStore,
    MemoryIdempotencyStore,
    RedisIdempotencyStore,
    StoredResponse,
)
from .jobs import (
    Job,
    JobRejected,
    Jobs,
    JobStatus,
    JobStatusApp,
    JobStore,
    JobWorker,
    PostgresJobStore,
    SQLiteJobStore,
)
from .loader import DataLoader, request_loader
from .pagination import InvalidPage, Page, Pagination, invalid_page_handler
from .ratelimit import (
    Limit,
    MemoryRateLimitBackend,
    RateLimitBackend,
    RateLimitMiddleware,
    RedisRateLimitBackend,
    client_ip,
)
from .security import DEFAULT_SECURITY_HEADERS, SecurityMiddleware

if TYPE_CHECKING:
    from .jwt import InvalidToken, JWKSUnavailable, JWTAuth, JWTVerifier

# Loaded on first use: they need PyJWT (interlock[jwt]), the rest of the package does not.
_JWT_NAMES = frozenset({"InvalidToken", "JWKSUnavailable", "JWTAuth", "JWTVerifier"})


def __getattr__(name: str) -> Any:
    if name in _JWT_NAMES:
        from . import jwt

        return getattr(jwt, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_COMPRESSIBLE",
    "DEFAULT_SECURITY_HEADERS",
    "AccessLogMiddleware",
    "ApiKeyAuth",
    "ApiKeyRecord",
    "CompressionMiddleware",
    "ConditionalMiddleware",
    "DataLoader",
    "FieldsMiddleware",
    "IdempotencyMiddleware",
    "IdempotencyStore",
    "InvalidPage",
    "InvalidToken",
    "JWKSUnavailable",
    "JWTAuth",
    "JWTVerifier",
    "Job",
    "JobRejected",
    "JobStatus",
    "JobStatusApp",
    "JobStore",
    "JobWorker",
    "Jobs",
    "Limit",
    "MemoryIdempotencyStore",
    "MemoryRateLimitBackend",
    "Page",
    "Pagination",
    "PostgresIdempotencyStore",
    "PostgresJobStore",
    "RateLimitBackend",
    "RateLimitMiddleware",
    "RedisIdempotencyStore",
    "RedisRateLimitBackend",
    "Require",
    "SQLiteIdempotencyStore",
    "SQLiteJobStore",
    "SecurityMiddleware",
    "StoredResponse",
    "auth_claims",
    "auth_subject",
    "client_ip",
    "hash_api_key",
    "invalid_page_handler",
    "new_api_key",
    "request_loader",
    "route_template",
    "strong_etag",
]
