"""Interlock: fast, reliable system-to-system API integrations."""

from __future__ import annotations

import logging as _logging

from . import errors, metrics, signatures
from ._ids import correlation_id, current_correlation_id
from ._models import Request, Response
from ._redact import Redaction
from .client import (
    Batch,
    Cache,
    CacheRule,
    Client,
    Concurrency,
    Limits,
    Paginator,
    Profile,
    RateLimit,
    RequestOptions,
    SyncClient,
    Timeout,
)
from .core.backoff import Backoff
from .core.breaker import CircuitBreaker
from .core.redirect import Redirects
from .core.retry import Retry, RetryBudget
from .inbox import Event, Inbox, Redelivery
from .server.jobs import Jobs
from .stores.batch_writer import BatchWriter
from .streams import EventStream, StreamPolicy, Subscription
from .sync import Sync, SyncRecord, SyncSource, ToHandler, ToTable, WriteBack

__all__ = [
    "Backoff",
    "Batch",
    "BatchWriter",
    "Cache",
    "CacheRule",
    "CircuitBreaker",
    "Client",
    "Concurrency",
    "Event",
    "EventStream",
    "Inbox",
    "Jobs",
    "Limits",
    "Paginator",
    "Profile",
    "RateLimit",
    "Redaction",
    "Redelivery",
    "Redirects",
    "Request",
    "RequestOptions",
    "Response",
    "Retry",
    "RetryBudget",
    "StreamPolicy",
    "Subscription",
    "Sync",
    "SyncClient",
    "SyncRecord",
    "SyncSource",
    "Timeout",
    "ToHandler",
    "ToTable",
    "WriteBack",
    "correlation_id",
    "current_correlation_id",
    "errors",
    "metrics",
    "signatures",
]

# A library never configures logging; without this, Python's last-resort handler would print
# every WARNING to stderr of applications that have not set logging up.
_logging.getLogger("interlock").addHandler(_logging.NullHandler())
