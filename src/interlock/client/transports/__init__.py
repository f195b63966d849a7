"""Transports: the seam between the pipeline and an HTTP library. ``AiohttpTransport`` is the
default, ``HttpxTransport`` the alternative (``interlock[httpx]``), ``MockTransport`` the one
for unit tests (also ``interlock.testing.MockTransport``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._aiohttp import AiohttpTransport
from ._base import DEFAULT_TRACKING_HEADERS, AttemptTimeout, Transport, answer
from ._mock import MockTransport, Responder, respond

if TYPE_CHECKING:
    from ._httpx import HttpxTransport


def __getattr__(name: str) -> object:
    # httpx loads on first use, so it stays optional (aiohttp is a core dependency).
    if name == "HttpxTransport":
        from ._httpx import HttpxTransport

        return HttpxTransport
    raise AttributeError(name)


__all__ = [
    "DEFAULT_TRACKING_HEADERS",
    "AiohttpTransport",
    "AttemptTimeout",
    "HttpxTransport",
    "MockTransport",
    "Responder",
    "Transport",
    "answer",
    "respond",
]
