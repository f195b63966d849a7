"""``interlock.server``: plain ASGI middleware for your own API (Starlette style, usable in
FastAPI, Starlette or any ASGI app), one module each: ``ratelimit``, ``compression``,
``conditional``, ``fields``, ``accesslog``, ``security``, ``idempotency``; besides them
``jobs`` (202 Accepted and background work), ``pagination`` (signed cursors, ``Link``) and
``loader`` (batching ``load(key)`` calls within a request).

Put them in this order (outermost first), so each sees what it needs::

    middleware = [
        Middleware(AccessLogMiddleware),       # one record per request, X-Request-ID
        Middleware(SecurityMiddleware),        # headers, 413, 503 timeout
        Middleware(RateLimitMiddleware, limits=[Limit("api", 100, 60.0)]),
        Middleware(CompressionMiddleware),     # gzip / br / zstd
        Middleware(ConditionalMiddleware),     # ETag, 304, 412
        Middleware(FieldsMiddleware),          # ?fields=id,email
    ]
"""

from __future__ import annotations

from ._idempotency_sql import PostgresIdempotencyStore, SQLiteIdempotencyStore
from .accesslog import AccessLogMiddleware, route_template
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

__all__ = [
    "DEFAULT_COMPRESSIBLE",
    "DEFAULT_SECURITY_HEADERS",
    "AccessLogMiddleware",
    "CompressionMiddleware",
    "ConditionalMiddleware",
    "DataLoader",
    "FieldsMiddleware",
    "IdempotencyMiddleware",
    "IdempotencyStore",
    "InvalidPage",
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
    "SQLiteIdempotencyStore",
    "SQLiteJobStore",
    "SecurityMiddleware",
    "StoredResponse",
    "client_ip",
    "invalid_page_handler",
    "request_loader",
    "route_template",
    "strong_etag",
]
