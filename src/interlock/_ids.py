"""Correlation ids: one per call, inherited from the caller's context when set.

A webhook handler runs inside ``correlation_id(event.id)``, so every outbound call it makes
carries the event's id in ``X-Request-ID`` and the whole chain can be followed in logs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from random import getrandbits as _getrandbits

CORRELATION_ID: ContextVar[str | None] = ContextVar("interlock_correlation_id", default=None)
"""The correlation id of the running context (``current_correlation_id`` reads it; the Client's
hot path reads it directly)."""


def new_id() -> str:
    """96 random bits as hex.

    Ids need to be unique, not secret: the Mersenne Twister draws them in a fraction of a
    getrandom() syscall, and ``random`` reseeds itself in forked children, so worker processes
    never repeat each other's ids.
    """
    # 24 hex digits; bytes.hex() is a fraction of the cost of an f-string's format spec.
    return _getrandbits(96).to_bytes(12, "little").hex()


def current_correlation_id() -> str | None:
    """The correlation id set by the caller's context, if any."""
    return CORRELATION_ID.get()


@contextmanager
def correlation_id(value: str | None = None) -> Iterator[str]:
    """Run a block with ``value`` (or a new id) as the correlation id of every call made in it."""
    chosen = value or new_id()
    token = CORRELATION_ID.set(chosen)
    try:
        yield chosen
    finally:
        CORRELATION_ID.reset(token)
