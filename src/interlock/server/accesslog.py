"""``AccessLogMiddleware``: one structured log record per request, and the request's
correlation id, plain ASGI.

The caller's ``X-Request-ID`` is kept when it is a sane token (1-128 characters of letters,
digits, ``.``, ``_``, ``:``, ``-``), otherwise a new id is generated; either way it is echoed in
the response and bound to ``interlock.correlation_id`` for the whole request, so the outbound
calls (``interlock.Client`` sends it as ``X-Request-ID``) and queued work the request causes
carry it.

The record goes to the ``interlock.server.access`` logger at INFO, its message ``GET
/users/{id} 200 3.1ms``, its fields as attributes for structured formatters: ``method``,
``route`` (the route template when the framework sets ``scope["route"]``, as Starlette and
FastAPI do; else the path), ``path``, ``status``, ``duration_ms``, ``bytes`` (response body bytes
sent), ``client`` and ``correlation_id``. The query string is never logged (it may hold keys).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

from .._clock import SYSTEM_CLOCK, Clock
from .._ids import correlation_id, new_id
from ._asgi import ASGIApp, HTTPMiddleware, Message, Receive, Scope, Send, header
from .ratelimit import _networks, client_ip

__all__ = ["AccessLogMiddleware", "route_template"]

_SANE_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


def route_template(scope: Scope) -> str:
    """The route template the framework matched (``/users/{id}``), else the raw path."""
    route = scope.get("route")
    template = getattr(route, "path", None)
    if isinstance(template, str):
        return str(scope.get("root_path", "")) + template if scope.get("root_path") else template
    return str(scope.get("path", ""))


class AccessLogMiddleware(HTTPMiddleware):
    """ASGI middleware writing one access record per HTTP request to ``logger`` and handling
    ``X-Request-ID`` (``request_id_header``). ``trusted_proxies`` as for ``RateLimitMiddleware``:
    whose ``X-Forwarded-For`` names the client."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        logger: logging.Logger | None = None,
        request_id_header: str = "X-Request-ID",
        trusted_proxies: Iterable[str] = (),
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.app = app
        self.logger = logger or logging.getLogger("interlock.server.access")
        self.request_id_header = request_id_header
        self._header = request_id_header.lower().encode("latin-1")
        self.trusted_proxies = _networks(trusted_proxies)
        self._clock = clock

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Bind the correlation id, call the app, echo the id and log the request."""
        sent = header(scope.get("headers", []), self._header)
        given = sent.decode("latin-1") if sent is not None else ""
        rid = given if _SANE_ID.fullmatch(given) else new_id()
        started = self._clock.monotonic()
        result: dict[str, Any] = {"status": 500, "bytes": 0}

        async def send_logged(message: Message) -> None:
            if message["type"] == "http.response.start":
                result["status"] = int(message["status"])
                message["headers"] = [*message.get("headers", []), (self._header, rid.encode())]
            elif message["type"] == "http.response.body":
                result["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            with correlation_id(rid):
                await self.app(scope, receive, send_logged)
        finally:
            if self.logger.isEnabledFor(logging.INFO):  # a disabled access log costs nothing more
                self._log(scope, rid, result, (self._clock.monotonic() - started) * 1000.0)

    def _log(self, scope: Scope, rid: str, result: dict[str, Any], elapsed_ms: float) -> None:
        route = route_template(scope)
        fields = {
            "method": scope.get("method", ""),
            "route": route,
            "path": scope.get("path", ""),
            "status": result["status"],
            "duration_ms": round(elapsed_ms, 3),
            "bytes": result["bytes"],
            "client": client_ip(scope, self.trusted_proxies),
            "correlation_id": rid,
        }
        self.logger.info(
            "%s %s %d %.1fms", fields["method"], route, result["status"], elapsed_ms, extra=fields
        )

    def __repr__(self) -> str:
        return f"<AccessLogMiddleware logger={self.logger.name!r} header={self.request_id_header!r}>"
