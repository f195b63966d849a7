"""The ``Transport`` seam (a Protocol) and what every transport shares."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from multidict import CIMultiDictProxy

from ..._models import Request, Response
from ..._redact import redact_text
from ...errors import CallError

DEFAULT_TRACKING_HEADERS = (
    "Trackingid",
    "X-Tracking-Id",
    "X-Amzn-Requestid",
    "X-Amz-Request-Id",
    "Request-Id",
    "X-Request-Id",
)
"""Where upstreams put the id of a call on their side (the first one present wins)."""


@dataclass(frozen=True, slots=True)
class AttemptTimeout:
    """The limits of one attempt, in seconds (None: no limit): to connect, per read, and in all
    (the tightest of ``Timeout.read``, ``Timeout.attempt`` and what is left of the deadline)."""

    connect: float | None
    read: float | None
    total: float | None


class Transport(Protocol):
    """Sends one attempt. Raises ``ConnectError``, ``TransportError``, ``TimedOut`` or
    ``ResponseTooLarge`` (never a library's own exceptions) and returns the full response,
    body read and decoded within ``request.max_response_bytes``. It never follows redirects
    itself: the client does (``interlock.core.redirect``), hop by hop."""

    async def send(self, request: Request, timeout: AttemptTimeout) -> Response:
        """Send one attempt of ``request`` within ``timeout`` and read the whole answer."""
        ...

    async def aclose(self) -> None:
        """Close the connections this transport opened."""
        ...


def answer(
    request: Request,
    status: int,
    headers: CIMultiDictProxy[str],
    content: bytes,
    tracking_headers: Sequence[str],
) -> Response:
    """The Response for one attempt, with the upstream's tracking id from the first header set."""
    tracking_id = None
    for name in tracking_headers:
        tracking_id = headers.get(name)
        if tracking_id:
            break
    # Response.answering's fields, set directly: this runs for every attempt.
    return Response(
        status, headers, content, request.method, request.url, request.route, request.upstream,
        tracking_id=tracking_id, request_id=request.request_id,
    )  # fmt: skip


def chained(error: CallError, cause: BaseException) -> CallError:
    """``error``, to raise for a library's ``cause``: chained to it (``raise ... from``), unless
    the cause's own text shows a credential (a URL with its ``api_key``): that one is left out,
    so no traceback prints it. ``error``'s message is redacted already."""
    text = str(cause)
    if redact_text(text) == text:
        error.__cause__ = cause
    else:
        error.__cause__ = None
        error.__suppress_context__ = True
    return error


__all__ = ["DEFAULT_TRACKING_HEADERS", "AttemptTimeout", "Transport", "answer", "chained"]
