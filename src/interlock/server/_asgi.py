"""What the server middleware share: ASGI type aliases, header lookups and RFC 9457 problem
responses. Private to ``interlock.server``."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = [
    "ASGIApp",
    "HTTPMiddleware",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "header",
    "problem",
    "send_problem",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class HTTPMiddleware:
    """Base of the server middleware: scopes other than HTTP (websocket, lifespan) pass straight
    to the app; an HTTP request goes to ``handle``, which each middleware defines."""

    app: ASGIApp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass non-HTTP scopes through; hand HTTP requests to ``handle``."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.handle(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one HTTP request (defined by each middleware)."""
        raise NotImplementedError


PROBLEM_BASE = "https://interlock.dev/problems/"
"""Problem ``type`` URIs are this base plus a slug (``quota-exceeded``, ``invalid-fields``...)."""


def header(headers: list[tuple[bytes, bytes]] | Any, name: bytes) -> bytes | None:
    """The first value of header ``name`` (lower-case bytes) in an ASGI header list, or None."""
    for key, value in headers:
        if key.lower() == name:
            return bytes(value)
    return None


def problem(
    status: int, slug: str, title: str, detail: str, extra_headers: list[tuple[bytes, bytes]] | None = None
) -> tuple[dict[str, Any], list[tuple[bytes, bytes]], bytes]:
    """An RFC 9457 problem-details response: ``(start message, headers, body)``."""
    body = json.dumps(
        {"type": PROBLEM_BASE + slug, "title": title, "status": status, "detail": detail},
        separators=(",", ":"),
    ).encode()
    headers = [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(body)).encode()),
        *(extra_headers or []),
    ]
    return {"type": "http.response.start", "status": status, "headers": headers}, headers, body


async def send_problem(
    send: Send,
    status: int,
    slug: str,
    title: str,
    detail: str,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Send a whole problem-details response through ``send``."""
    start, _, body = problem(status, slug, title, detail, extra_headers)
    await send(start)
    await send({"type": "http.response.body", "body": body, "more_body": False})
