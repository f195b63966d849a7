"""The inbox's spans (OpenTelemetry, when the application traces; see ``interlock._otel``):
the HTTP server span of ``POST /hooks/{source}`` continuing the sender's ``traceparent``, the
``create`` span that stores the event with its trace context, and the worker's ``process``
span, a child of that stored context (one trace id from the webhook through the queue to the
handler's outbound calls, across processes and restarts) that also links to it, as the
messaging conventions ask of a consumer.

Each function is called only once ``_otel.tracer()`` has returned a tracer, except
``process_span``, which returns a shared no-op context manager when tracing is off.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import replace
from typing import Any

from .. import _otel
from ..stores.queue import Message
from ._event import Event

__all__ = ["process_span", "traced_http", "traced_put"]

_NULL = contextlib.nullcontext()

Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


async def traced_http(
    tracer: Any,
    scope: MutableMapping[str, Any],
    send: Send,
    route: str,
    serve: Callable[[Send], Awaitable[None]],
) -> None:
    """Serve one webhook request (``serve(send)``) inside an HTTP server span named
    ``POST {route}``, continuing the request's ``traceparent``."""
    from opentelemetry.trace import SpanKind, Status, StatusCode

    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())}
    method = scope.get("method", "")
    attributes: dict[str, Any] = {
        "http.request.method": method,
        "http.route": route,
        "url.path": scope.get("path", ""),
        "url.scheme": scope.get("scheme", "http"),
    }
    server = scope.get("server")
    if server:
        attributes["server.address"], attributes["server.port"] = server[0], server[1]
    client = scope.get("client")
    if client:
        attributes["client.address"] = client[0]
    agent = headers.get("user-agent")
    if agent:
        attributes["user_agent.original"] = agent[:256]
    status = 0

    async def watch(message: MutableMapping[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        await send(message)

    with tracer.start_as_current_span(
        f"{method} {route}", context=_otel.extract(headers), kind=SpanKind.SERVER, attributes=attributes
    ) as span:
        await serve(watch)
        if status:
            span.set_attribute("http.response.status_code", status)
        if status >= 500:
            # HTTP server semconv: only 5xx is an error of the server; 4xx is the sender's.
            span.set_attribute("error.type", str(status))
            span.set_status(Status(StatusCode.ERROR))


async def traced_put(tracer: Any, message: Message, put: Callable[[Message], Awaitable[bool]]) -> bool:
    """Store ``message`` inside a ``create`` (producer) span whose context goes with it."""
    with _otel.producer_span(tracer, message.source, message.id, message.type) as span:
        fresh = await put(replace(message, headers=_otel.stamp(message.headers)))
        span.set_attribute("interlock.duplicate", not fresh)
        return fresh


def process_span(event: Event) -> contextlib.AbstractContextManager[Any]:
    """The ``process`` (consumer) span around an event's handlers: the child of the context
    stored with the event, linked to it too; a no-op when tracing is off."""
    tracer = _otel.tracer()
    if tracer is None:
        return _NULL
    return _process(tracer, event)


@contextlib.contextmanager
def _process(tracer: Any, event: Event) -> Any:
    from opentelemetry import trace
    from opentelemetry.trace import Link, SpanKind

    stored = _otel.stored_context(event.headers)
    links = [Link(trace.get_current_span(stored).get_span_context())] if stored is not None else []
    attributes = _otel.messaging("process", event.source, event.id, event.type)
    attributes["interlock.attempt"] = event.attempt
    if event.ordering_key:
        attributes["messaging.message.conversation_id"] = event.ordering_key[:256]
    with tracer.start_as_current_span(
        f"process {event.source}", context=stored, kind=SpanKind.CONSUMER, links=links, attributes=attributes
    ) as span:
        yield span
