"""Transports: the seam between the pipeline and an HTTP library."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..._models import Request, Response


@dataclass(frozen=True, slots=True)
class AttemptTimeout:
    connect: float | None
    read: float | None
    total: float | None


class Transport(Protocol):
    """Sends one attempt. Raises ``ConnectError``, ``TransportError`` or ``Timeout`` (never a
    library's own exceptions) and returns the full response, body read."""

    async def send(self, request: Request, timeout: AttemptTimeout) -> Response: ...

    async def aclose(self) -> None: ...


__all__ = ["AttemptTimeout", "Transport"]
