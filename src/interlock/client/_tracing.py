"""The client's spans (OpenTelemetry, when the application traces; see ``interlock._otel``).

One logical span per call (``{method} {route}``, kind INTERNAL) and, under it, one HTTP
client span per attempt actually sent, following the stable HTTP client semantic conventions:
``http.request.method``, ``server.address``, ``server.port``, ``url.full`` (credentials and
sensitive query values masked), ``url.template`` (the route), ``http.response.status_code``,
``error.type`` and, on a retry, ``http.request.resend_count``. Each attempt carries its own
span's W3C ``traceparent`` (and ``tracestate``), and runs in a context that tells the contrib
HTTP instrumentations (aiohttp, httpx) to make no span of their own: the attempt span is the
HTTP client span, never two. Interlock's own attributes: ``interlock.upstream``,
``interlock.attempts``, ``interlock.cache`` (``hit`` / ``stale`` / ``miss``),
``interlock.coalesced``, ``interlock.batch.size``, ``interlock.rate_limit.wait`` (seconds),
``interlock.breaker.state``, ``interlock.tracking_id``.

Only called once ``_otel.tracer()`` returned a tracer: a client without tracing makes no span.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import urlencode, urlsplit

from .. import _otel
from .._models import Request, Response
from .._redact import Redaction
from ..errors import CallError
from .policies.ratelimit import RATE_LIMIT_WAIT

__all__ = ["traced_attempt", "traced_call"]

Send = Callable[[Request], Coroutine[Any, Any, Response]]


def _url(request: Request, redaction: Redaction) -> str:
    url = request.url + ("?" + urlencode(request.params) if request.params else "")
    return redaction.mask_url(url)


async def traced_call(
    tracer: Any, request: Request, call: Send, *, breaker: Callable[[], str | None], cache: Any = None
) -> Response:
    """Run ``call(request)`` inside the call's logical span; ``breaker()`` reads the breaker's
    state when the call ends; ``cache`` (the client's cache policy) says whether an answer from
    the upstream was a cache miss."""
    from opentelemetry.trace import SpanKind, Status, StatusCode

    attributes = {
        "http.request.method": request.method,
        "url.template": request.route,
        "interlock.upstream": request.upstream,
    }
    with tracer.start_as_current_span(
        f"{request.method} {request.route}", kind=SpanKind.INTERNAL, attributes=attributes
    ) as span:
        try:
            response = await call(request)
        except CallError as exc:
            span.set_attribute("error.type", type(exc).__qualname__)
            span.set_attribute("interlock.attempts", request.attempt)
            if exc.status is not None:
                span.set_attribute("http.response.status_code", exc.status)
            if exc.tracking_id:
                span.set_attribute("interlock.tracking_id", exc.tracking_id)
            _breaker(span, breaker)
            raise
        status = response.status
        span.set_attribute("http.response.status_code", status)
        span.set_attribute("interlock.attempts", request.attempt)
        if response.from_cache:
            span.set_attribute("interlock.cache", "stale" if response.stale else "hit")
        elif request.attempt == 0:
            span.set_attribute("interlock.coalesced", True)  # answered by an identical call in flight
        elif cache is not None and request.method == "GET" and cache.config.rule_for(request.path) is not None:
            span.set_attribute("interlock.cache", "miss")
        if response.tracking_id:
            span.set_attribute("interlock.tracking_id", response.tracking_id)
        _breaker(span, breaker)
        if status >= 400:
            span.set_attribute("error.type", str(status))
            span.set_status(Status(StatusCode.ERROR))
        return response


def _breaker(span: Any, breaker: Callable[[], str | None]) -> None:
    state = breaker()
    if state is not None:
        span.set_attribute("interlock.breaker.state", state)


async def traced_attempt(tracer: Any, request: Request, send: Send, redaction: Redaction) -> Response:
    """Send one attempt inside its HTTP client span, with that span's ``traceparent``."""
    from opentelemetry import context
    from opentelemetry.trace import SpanKind, Status, StatusCode

    parts = urlsplit(request.url)
    attributes: dict[str, Any] = {
        "http.request.method": request.method,
        "server.address": parts.hostname or "",
        "server.port": parts.port or (443 if parts.scheme == "https" else 80),
        "url.full": _url(request, redaction),
        "url.template": request.route,
        "interlock.upstream": request.upstream,
    }
    if request.attempt > 1:
        attributes["http.request.resend_count"] = request.attempt - 1
    batch = request.extensions.get("batch_of")
    if batch:
        attributes["interlock.batch.size"] = batch
    waited = request.extensions.get(RATE_LIMIT_WAIT)
    if waited:
        attributes["interlock.rate_limit.wait"] = waited
    with tracer.start_as_current_span(request.method, kind=SpanKind.CLIENT, attributes=attributes) as span:
        _otel.inject(request.headers)  # this attempt's own traceparent, replacing the last one's
        token = _otel.suppress_http_instrumentation()
        try:
            response = await send(request)
        except BaseException as exc:
            span.set_attribute("error.type", type(exc).__qualname__)
            raise
        finally:
            if token is not None:
                context.detach(token)
        span.set_attribute("http.response.status_code", response.status)
        if response.status >= 400:
            span.set_attribute("error.type", str(response.status))
            span.set_status(Status(StatusCode.ERROR))
        return response
