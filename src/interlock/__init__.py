"""Interlock: fast, reliable system-to-system API integrations."""

from __future__ import annotations

from . import errors
from ._ids import correlation_id, current_correlation_id
from ._models import Request, Response
from .core.backoff import Backoff

__all__ = [
    "Backoff",
    "Request",
    "Response",
    "correlation_id",
    "current_correlation_id",
    "errors",
]
