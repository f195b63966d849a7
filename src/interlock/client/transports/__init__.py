"""Transports: the seam between the pipeline and an HTTP library."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from multidict import CIMultiDictProxy

from ..._models import Request, Response


@dataclass(frozen=True, slots=True)
class AttemptTimeout:
    connect: float | None
    read: float | None
    total: float | None


class Transport(Protocol):
    """Sends one attempt. Raises ``ConnectError``, ``TransportError`` or ``TimedOut`` (never a
    library's own exceptions) and returns the full response, body read."""

    async def send(self, request: Request, timeout: AttemptTimeout) -> Response: ...

    async def aclose(self) -> None: ...


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
    return Response(
        status=status,
        headers=headers,
        content=content,
        method=request.method,
        url=request.url,
        route=request.route,
        upstream=request.upstream,
        tracking_id=tracking_id,
        request_id=request.request_id,
    )


def __getattr__(name: str) -> object:
    # Transports load on first use, so their HTTP libraries stay optional.
    if name == "AiohttpTransport":
        from ._aiohttp import AiohttpTransport

        return AiohttpTransport
    if name == "HttpxTransport":
        from ._httpx import HttpxTransport

        return HttpxTransport
    raise AttributeError(name)


__all__ = ["AiohttpTransport", "AttemptTimeout", "HttpxTransport", "Transport", "answer"]
