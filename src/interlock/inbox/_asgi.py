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
signature, 404 unknown source, 405 not POST, 408 body too slow, 413 too large, 503 the store
failed or did not answer in time (not acknowledged, so the sender retries). Nothing else is a
5xx.

The app receives what it uses (the sources by name, a ``put``, the metrics it counts into, a
clock for receipt times, lifespan hooks), not the ``Inbox`` that builds it with ``inbox.asgi()``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from .. import _otel
from .._clock import SYSTEM_CLOCK, Clock
from ..errors import ConfigError, PayloadTooLarge, UnknownSource, WebhookError
from ..stores.queue import Message
from ._metrics import UNKNOWN_SOURCE, InboxMetrics
from ._source import Source
from ._tracing import traced_http

__all__ = ["BODY_TIMEOUT", "PUT_TIMEOUT", "RETRY_AFTER", "InboxApp"]

BODY_TIMEOUT = 10.0
"""Seconds a request body may take to arrive in full (a 1 MiB body at 100 KiB/s) before 408."""
PUT_TIMEOUT = 5.0
"""Seconds the ingress waits for the store to make an event durable before answering 503;
well under the 10 s that senders such as GitHub wait for an answer."""
RETRY_AFTER = 5
"""The ``Retry-After`` of a 503, in seconds."""

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

log = logging.getLogger("interlock.inbox")

_JSON = (b"content-type", b"application/json")
_ACCEPTED = b'{"status":"accepted"}'
_DUPLICATE = b'{"status":"duplicate"}'
_REASONS = {400: "malformed", 401: "signature", 404: "unknown_source", 413: "too_large"}
_CLOSE = (b"connection", b"close")
_UNAVAILABLE = json.dumps({"error": "the event could not be stored; retry later", "status": 503}).encode()


def _error_body(status: int, message: str) -> bytes:
    return json.dumps({"error": message, "status": status}).encode()


class InboxApp:
    """ASGI application for an ``Inbox``; get one with ``inbox.asgi()``.

    ``sources`` is read on every request (the Inbox passes its own dict, so a source added
    later is served at once); ``put`` stores a verified event durably and returns ``False`` for
    a duplicate; ``clock`` stamps receipt times and checks signature timestamps. ``startup``
    and ``shutdown`` run on the ASGI lifespan events when the server sends them.

    Every wait is bounded: a body not received within ``body_timeout`` s is answered 408 and
    the connection closed; a ``put`` not done within ``put_timeout`` s is answered 503 with
    ``Retry-After: retry_after`` (the event may still land; the sender's retry is then a
    duplicate).
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
        body_timeout: float = BODY_TIMEOUT,
        put_timeout: float = PUT_TIMEOUT,
        retry_after: int = RETRY_AFTER,
    ) -> None:
        for field, value in (("body_timeout", body_timeout), ("put_timeout", put_timeout)):
            if not value > 0:
                raise ConfigError("InboxApp", field, f"must be > 0 seconds, got {value!r}")
        if retry_after < 0:
            raise ConfigError("InboxApp", "retry_after", f"must be >= 0 seconds, got {retry_after!r}")
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
        self.body_timeout = body_timeout
        self.put_timeout = put_timeout
        self.retry_after = retry_after
        self._retry_after = str(retry_after).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI entry point: HTTP requests and lifespan events; other scopes are ignored."""
        kind = scope["type"]
        if kind == "http":
            tracer = _otel.tracer()
            if tracer is None:
                await self._http(scope, receive, send)
            else:
                await traced_http(
                    tracer, scope, send, f"{self.prefix}{{source}}", lambda watched: self._http(scope, receive, watched)
                )
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
            # The name comes from the URL, unauthenticated: it is counted under one label and
            # quoted cut short, so a flood of made-up names costs nothing that lasts.
            shown = _shorten(name)
            if path.startswith(self.prefix) or path == self.prefix.rstrip("/"):
                err: WebhookError = UnknownSource(f"no webhook source named {shown!r}")
            else:
                err = UnknownSource(f"no route {_shorten(path)!r}; webhooks go to {self.prefix}{{source}}")
            metrics.rejected[(UNKNOWN_SOURCE, "unknown_source")] += 1
            await _respond(send, 404, _error_body(404, str(err)))
            return
        label = metrics.label(name)
        if scope["method"] != "POST":
            metrics.rejected[(label, "method")] += 1
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
            try:
                async with asyncio.timeout(self.body_timeout):
                    body = await _read_body(receive, limit, name)
            except TimeoutError:
                # A body trickling in (or never coming) would hold the connection and its
                # memory for as long as the sender likes: RFC 9110 section 15.5.9.
                metrics.rejected[(label, "body_timeout")] += 1
                log.info("webhook refused: body not received within %.1f s (HTTP 408)", self.body_timeout)
                slow = f"the body was not received within {self.body_timeout} s"
                await _respond(send, 408, _error_body(408, slow), extra=[_CLOSE])
                return
            if body is None:
                return  # the client went away
            message = source.accept(body, headers, self.clock.time())
        except WebhookError as exc:
            status = exc.http_status
            metrics.rejected[(label, _REASONS.get(status, "malformed"))] += 1
            log.info("webhook refused: %s (HTTP %d)", exc, status)
            close = [_CLOSE] if status == 413 else []
            await _respond(send, status, _error_body(status, str(exc)), extra=close)
            return
        except ValueError:
            metrics.rejected[(label, "malformed")] += 1
            await _respond(send, 400, _error_body(400, "Content-Length is not an integer"))
            return

        try:
            # Bounded: a store that stops answering must not hold the sender (and every
            # connection after it) without an answer; 503 tells it to come back.
            async with asyncio.timeout(self.put_timeout):
                fresh = await self.put(message)
        except TimeoutError:
            metrics.rejected[(label, "store_timeout")] += 1
            log.error(
                "webhook %s/%s not stored within %.1f s, answering 503", name, message.id, self.put_timeout
            )
            await _respond(send, 503, _UNAVAILABLE, extra=[(b"retry-after", self._retry_after)])
            return
        except Exception as exc:
            metrics.rejected[(label, "store_unavailable")] += 1
            log.error(
                "webhook %s/%s not stored, answering 503: %s", name, message.id, source.redact(repr(exc), headers)
            )
            await _respond(send, 503, _UNAVAILABLE, extra=[(b"retry-after", self._retry_after)])
            return
        if fresh:
            metrics.received[label] += 1
            await _respond(send, 200, _ACCEPTED)
        else:
            metrics.duplicates[label] += 1
            await _respond(send, 200, _DUPLICATE)


def _shorten(text: str, limit: int = 64) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
