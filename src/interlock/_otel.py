"""OpenTelemetry, when the application uses it: the tracer Interlock's spans come from, and the
trace context carried through the queue.

Only the API package is used (``pip install 'interlock[otel]'``); the application chooses the
SDK, the sampler and the exporter. ``tracer()`` is the one switch: it returns None when the API
is not installed, when no SDK tracer provider is set (the API's default proxy would only hand
out non-recording spans), or after ``disable()``; every instrumented place checks it first, so
an application without tracing gets no span object, only that check (the API module, when
installed, is imported once, at the first check; ``import interlock`` never imports it).
Ground floor: imports nothing of Interlock.

Span names and attributes follow the OpenTelemetry semantic conventions: HTTP server and
client spans (``http.request.method``, ``url.full``, ``server.address``,
``http.response.status_code``, ``error.type``, ``http.request.resend_count``) and messaging
spans for the queue (``messaging.system``, ``messaging.operation.type`` ``create`` /
``process``, ``messaging.destination.name``, ``messaging.message.id``). Interlock's own are
under ``interlock.*``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

__all__ = [
    "MESSAGING_SYSTEM",
    "TRACEPARENT",
    "TRACESTATE",
    "TRACE_HEADERS",
    "disable",
    "enable",
    "extract",
    "inject",
    "messaging",
    "producer_span",
    "stamp",
    "stored_context",
    "suppress_http_instrumentation",
    "trace_id",
    "tracer",
]

MESSAGING_SYSTEM = "interlock"
"""``messaging.system`` of the inbox queue's spans (whatever backend stores it)."""
TRACEPARENT = "interlock-traceparent"
"""The header an event's trace context is stored under with the event (W3C ``traceparent``
form), next to the sender's own headers, which stay untouched."""
TRACESTATE = "interlock-tracestate"
TRACE_HEADERS = frozenset({TRACEPARENT, TRACESTATE})
"""The headers Interlock stores an event's trace context under (never taken from a sender)."""

_api: Any = None
_loaded = False
_enabled = True
_cached: tuple[Any, Any] | None = None  # (provider, tracer)
_UNKNOWN = object()
_suppress: tuple[Any, Any] | None = None
_propagate: Any = None  # (opentelemetry.context, its suppression key)


def _load() -> Any:
    global _api, _loaded
    if not _loaded:
        _loaded = True
        try:
            from opentelemetry import trace
        except ImportError:
            _api = None
        else:
            _api = trace
    return _api


def tracer() -> Any:
    """Interlock's tracer, or None when tracing is off (see the module docstring)."""
    global _cached
    if not _enabled:
        return None
    api = _api if _loaded else _load()
    if api is None:
        return None
    # The provider the application set; None while it has set none. Read directly because
    # get_tracer_provider() looks up environment variables on every call until one is set
    # (microseconds a call), which the fast path of an untraced application cannot pay.
    provider: Any = getattr(api, "_TRACER_PROVIDER", _UNKNOWN)
    if provider is None:
        return None
    if provider is _UNKNOWN:  # pragma: no cover - an API without the module global
        provider = api.get_tracer_provider()
    cached = _cached
    if cached is not None and cached[0] is provider:
        return cached[1]
    if isinstance(provider, api.ProxyTracerProvider | api.NoOpTracerProvider):
        return None
    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version("interlock")
    except PackageNotFoundError:  # pragma: no cover - a source checkout
        ours = None
    made = provider.get_tracer("interlock", ours)
    _cached = (provider, made)
    return made


def enable() -> None:
    """Make spans again after ``disable()`` (tracing is on by default where an SDK is set)."""
    global _enabled
    _enabled = True


def disable() -> None:
    """Make no spans, even where an SDK tracer provider is set (benchmarks, noisy tests)."""
    global _enabled
    _enabled = False


def inject(carrier: MutableMapping[str, str], context: Any = None) -> None:
    """Write the current (or ``context``'s) trace context into ``carrier`` with the global
    propagator (W3C ``traceparent`` / ``tracestate`` unless the application set another)."""
    global _propagate
    if _propagate is None:
        from opentelemetry import propagate

        _propagate = propagate
    _propagate.inject(carrier, context=context)


def extract(carrier: Mapping[str, str]) -> Any:
    """The trace context an incoming request's headers carry (an empty context if none)."""
    from opentelemetry import propagate

    return propagate.extract(carrier)


def stored_context(headers: Mapping[str, str]) -> Any:
    """The trace context stored with an event (``TRACEPARENT``), or None when it has none."""
    parent = headers.get(TRACEPARENT)
    if not parent:
        return None
    carrier = {"traceparent": parent}
    state = headers.get(TRACESTATE)
    if state:
        carrier["tracestate"] = state
    from opentelemetry.propagators.textmap import DefaultGetter
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    ctx = TraceContextTextMapPropagator().extract(carrier, getter=DefaultGetter())
    from opentelemetry import trace

    return ctx if trace.get_current_span(ctx).get_span_context().is_valid else None


def stamp(headers: Mapping[str, str]) -> dict[str, str]:
    """``headers`` plus the current span's context under ``TRACEPARENT`` / ``TRACESTATE``."""
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    stamped = dict(headers)
    if "traceparent" in carrier:
        stamped[TRACEPARENT] = carrier["traceparent"]
        if carrier.get("tracestate"):
            stamped[TRACESTATE] = carrier["tracestate"]
    return stamped


def messaging(operation: str, destination: str, message_id: str, kind: str) -> dict[str, Any]:
    """The messaging semantic conventions' attributes of a queue span (``operation``:
    ``create`` or ``process``; ``kind``: the event type or task, as ``interlock.event.type``)."""
    return {
        "messaging.system": MESSAGING_SYSTEM,
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
        "messaging.destination.name": destination,
        "messaging.message.id": message_id,
        "interlock.event.type": kind,
    }


def producer_span(tracer: Any, destination: str, message_id: str, kind: str) -> Any:
    """The ``create {destination}`` (producer) span of a message put on the queue; inside it,
    ``stamp(headers)`` gives the headers to store the message with."""
    from opentelemetry.trace import SpanKind

    return tracer.start_as_current_span(
        f"create {destination}",
        kind=SpanKind.PRODUCER,
        attributes=messaging("create", destination, message_id, kind),
    )


def suppress_http_instrumentation() -> Any:
    """Attach a context in which the contrib HTTP client instrumentations (aiohttp, httpx) make
    no span of their own: Interlock's attempt span is the HTTP client span. Returns the token
    for ``opentelemetry.context.detach``."""
    global _suppress
    if _suppress is None:
        from opentelemetry import context

        key = getattr(context, "_SUPPRESS_HTTP_INSTRUMENTATION_KEY", None)
        _suppress = (context, key)
    context, key = _suppress
    if key is None:  # pragma: no cover - an API older than the key
        return None
    return context.attach(context.set_value(key, True))


def trace_id() -> str | None:
    """The current span's trace id as 32 hex digits, or None (no span, or the API not loaded)."""
    api = sys.modules.get("opentelemetry.trace")
    if api is None:
        return None
    ctx = api.get_current_span().get_span_context()
    return f"{ctx.trace_id:032x}" if ctx.is_valid else None
