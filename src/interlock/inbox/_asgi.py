"""The receiving side: a raw ASGI app, ``POST {prefix}{source}``.

Raw ASGI rather than Starlette routing because the acknowledgement budget is a few
milliseconds: the whole request path is one dict lookup, a bounded body read, one HMAC and one
await on the group commit. Served by uvicorn directly, it answers ``POST {prefix}{source}``
(``/hooks/stripe``). Mounted in Starlette / FastAPI (``app.mount("/hooks", inbox.asgi())``),
the mount point is the prefix: ``POST /hooks/stripe`` reaches source ``stripe``, whatever the
mount path, and ``POST {mount}{prefix}{source}`` works too. The mount point is the ASGI
``root_path`` (Starlette passes the full path and the mount point in ``root_path``; a proxy's
``--root-path`` is stripped the same way).

Answers: 200 accepted or duplicate (only after the event is durable), 400 malformed, 401 bad
signature, 404 unknown source, 405 not POST, 413 too large, 503 the store failed (not
acknowledged, so the sender retries). Nothing else is a 5xx.

The app receives what it uses (the sources by name, a ``put``, the metrics it counts into, a
clock for receipt times, lifespan hooks), not the ``Inbox`` that builds it with ``inbox.asgi()``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from .._clock import SYSTEM_CLOCK, Clock
from ..errors import PayloadTooLarge, UnknownSource, WebhookError
from ..stores.queue import Message
from ._metrics import InboxMetrics
from ._source import Source

__all__ = ["InboxApp"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

log = logging.getLogger("interlock.inbox")

_JSON = (b"content-type", b"application/json")
_ACCEPTED = b'{"status":"accepted"}'
_DUPLICATE = b'{"status":"duplicate"}'
_REASONS = {400: "malformed", 401: "signature", 404: "unknown_source", 413: "too_large"}


def _error_body(status: int, message: str) -> bytes:
    return json.dumps({"error": message, "status": status}).encode()


class InboxApp:
    """ASGI application for an ``Inbox``; get one with ``inbox.asgi()``.

    ``sources`` is read on every request (the Inbox passes its own dict, so a source added
    later is served at once); ``put`` stores a verified event durably and returns ``False`` for
    a duplicate; ``clock`` stamps receipt times and checks signature timestamps. ``startup``
    and ``shutdown`` run on the ASGI lifespan events when the server sends them.
    """

    def __init__(
        self,
        sources: Mapping[str, Source],
        put: Callable[[Message], Awaitable[bool]],
        *,
        metrics: InboxMetrics | None = None,
        prefix: str = "/hooks/",
        clock: Clock | None = None,
        startup: Callable[[], Awaitable[object]] | None = None,
        shutdown: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        if not prefix.startswith("/"):
            prefix = "/" + prefix
        if not prefix.endswith("/"):
            prefix += "/"
        self.sources = sources
        self.put = put
        self.metrics = metrics or InboxMetrics()
        self.prefix = prefix
        self.clock = clock or SYSTEM_CLOCK
        self._startup = startup
        self._shutdown = shutdown

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI entry point: HTTP requests and lifespan events; other scopes are ignored."""
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    if self._startup is not None:
                        await self._startup()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._shutdown is not None:
                    await self._shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        metrics = self.metrics
        path: str = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        if path.startswith(self.prefix):
            name = path[len(self.prefix) :].rstrip("/")
        elif root and path.startswith("/"):
            # Mounted (or behind a proxy's root_path): the mount point is the prefix.
            name = path[1:].rstrip("/")
        else:
            name = ""
        source = self.sources.get(name)
        if source is None:
            if path.startswith(self.prefix) or path == self.prefix.rstrip("/"):
                err: WebhookError = UnknownSource(f"no webhook source named {name!r}")
            else:
                err = UnknownSource(f"no route {path!r}; webhooks go to {self.prefix}{{source}}")
            metrics.rejected[(name, "unknown_source")] += 1
            await _respond(send, 404, _error_body(404, str(err)))
            return
        if scope["method"] != "POST":
            metrics.rejected[(name, "method")] += 1
            await _respond(
                send, 405, _error_body(405, "webhooks must be POSTed"), extra=[(b"allow", b"POST")]
            )
            return

        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        limit = source.max_body
        declared = headers.get("content-length")
        try:
            if declared is not None and int(declared) > limit:
                # Refuse before reading: a huge body never touches memory.
                raise PayloadTooLarge(f"body of {int(declared)} bytes is over the {limit} byte limit", source=name)
            body = await _read_body(receive, limit, name)
            if body is None:
                return  # the client went away
            message = source.accept(body, headers, self.clock.time())
        except WebhookError as exc:
            status = exc.http_status
            metrics.rejected[(name, _REASONS.get(status, "malformed"))] += 1
            log.info("webhook refused: %s (HTTP %d)", exc, status)
            close = [(b"connection", b"close")] if status == 413 else []
            await _respond(send, status, _error_body(status, str(exc)), extra=close)
            return
        except ValueError:
            metrics.rejected[(name, "malformed")] += 1
            await _respond(send, 400, _error_body(400, "Content-Length is not an integer"))
            return

        try:
            fresh = await self.put(message)
        except Exception as exc:
            metrics.rejected[(name, "store_unavailable")] += 1
            log.error("webhook %s/%s not stored, answering 503: %r", name, message.id, exc)
            await _respond(
                send,
                503,
                _error_body(503, "the event could not be stored; retry later"),
                extra=[(b"retry-after", b"5")],
            )
            return
        if fresh:
            metrics.received[name] += 1
            await _respond(send, 200, _ACCEPTED)
        else:
            metrics.duplicates[name] += 1
            await _respond(send, 200, _DUPLICATE)


async def _read_body(receive: Receive, limit: int, source: str) -> bytes | None:
    message = await receive()
    if message["type"] == "http.disconnect":
        return None
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit:
            raise PayloadTooLarge(f"body is over the {limit} byte limit", source=source)
        return body
    chunks = [body]
    size = len(body)
    while True:
        if size > limit:
            raise PayloadTooLarge(f"body is over the {limit} byte limit", source=source)
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            break
    if size > limit:
        raise PayloadTooLarge(f"body is over the {limit} byte limit", source=source)
    return b"".join(chunks)


async def _respond(send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [_JSON, (b"content-length", str(len(body)).encode())]
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
