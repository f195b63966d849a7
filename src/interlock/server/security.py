"""``SecurityMiddleware``: security headers, a request body limit and a request timeout, plain
ASGI.

- **Headers** (OWASP Secure Headers), added unless the app set its own: ``Strict-Transport-
  Security: max-age=31536000; includeSubDomains`` (browsers ignore it over plain HTTP),
  ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: strict-origin-when-cross-origin``,
  ``Content-Security-Policy: frame-ancestors 'none'`` and ``X-Frame-Options: DENY`` (no framing,
  for old browsers too). ``headers={"x-frame-options": None}`` drops one; other values replace.
- **Body limit**: a request whose body exceeds ``max_body`` bytes is answered ``413`` with
  problem details (type ``.../payload-too-large``): at once when ``Content-Length`` says so,
  else as soon as the streamed body passes the limit (the app's read of the body is cut off).
- **Timeout**: a request still running after ``timeout`` seconds is cancelled and answered
  ``503`` with problem details (type ``.../request-timeout``) and ``Retry-After``; if the app had
  already started its response, the connection is closed instead (the status is gone).

CORS is Starlette's ``CORSMiddleware`` (``starlette.middleware.cors``), not rewritten here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from .._validate import check_count, check_seconds
from ._asgi import ASGIApp, HTTPMiddleware, Message, Receive, Scope, Send, header, send_problem

__all__ = ["DEFAULT_SECURITY_HEADERS", "SecurityMiddleware"]

log = logging.getLogger("interlock.server.security")

DEFAULT_SECURITY_HEADERS: Mapping[str, str] = {
    "strict-transport-security": "max-age=31536000; includeSubDomains",
    "x-content-type-options": "nosniff",
    "referrer-policy": "strict-origin-when-cross-origin",
    "content-security-policy": "frame-ancestors 'none'",
    "x-frame-options": "DENY",
}
"""The headers ``SecurityMiddleware`` adds by default."""


class _BodyTooLarge(Exception):
    """Raised into the app's ``receive`` when the body passes the limit."""


class SecurityMiddleware(HTTPMiddleware):
    """ASGI middleware for security headers (``headers`` overrides the defaults, None drops one),
    a body limit (``max_body`` bytes, None for none) and a timeout (``timeout`` seconds, None for
    none)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        headers: Mapping[str, str | None] | None = None,
        max_body: int | None = 1024 * 1024,
        timeout: float | None = 30.0,
    ) -> None:
        check_count("SecurityMiddleware", "max_body", max_body, minimum=0, optional=True)
        check_seconds("SecurityMiddleware", "timeout", timeout, positive=True, optional=True)
        merged: dict[str, str | None] = {**DEFAULT_SECURITY_HEADERS}
        merged.update({k.lower(): v for k, v in (headers or {}).items()})
        self.app = app
        self.headers = [
            (k.encode("latin-1"), v.encode("latin-1")) for k, v in merged.items() if v is not None
        ]
        self.max_body = max_body
        self.timeout = timeout

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Enforce the limits and add the headers."""
        limit = self.max_body
        if limit is not None:
            length = header(scope.get("headers", []), b"content-length")
            if length is not None and length.strip().isdigit() and int(length) > limit:
                await self._too_large(send)
                return
        state: dict[str, Any] = {"started": False, "received": 0}

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["started"] = True
                present = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [
                    *message.get("headers", []),
                    *((k, v) for k, v in self.headers if k not in present),
                ]
            await send(message)

        async def receive_limited() -> Message:
            message = await receive()
            if limit is not None and message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > limit:
                    raise _BodyTooLarge
            return message

        try:
            async with asyncio.timeout(self.timeout) as deadline:
                await self.app(scope, receive_limited if limit is not None else receive, send_secured)
        except _BodyTooLarge:
            if not state["started"]:
                await self._too_large(send_secured)
            return
        except TimeoutError:
            if not deadline.expired():
                raise  # the app's own timeout, not ours
            log.warning(
                "request %s %s passed the %g s timeout", scope.get("method"), scope.get("path"), self.timeout
            )
            if not state["started"]:
                await send_problem(
                    send_secured,
                    503,
                    "request-timeout",
                    "Service Unavailable",
                    f"The request took longer than {self.timeout:g} s and was stopped; retry later.",
                    [(b"retry-after", b"1")],
                )

    async def _too_large(self, send: Send) -> None:
        await send_problem(
            send,
            413,
            "payload-too-large",
            "Content Too Large",
            f"The request body is larger than {self.max_body} bytes.",
        )

    def __repr__(self) -> str:
        return f"<SecurityMiddleware max_body={self.max_body} timeout={self.timeout}>"
