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
``interlock.coalesced`` (answered by an identical call in flight), ``interlock.batched``
(answered by a list call), ``interlock.batch.size`` (on the list call's attempts),
``interlock.rate_limit.wait`` (seconds), ``interlock.breaker.state``, ``interlock.tracking_id``.

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
from .policies.batch import BATCHED
from .policies.ratelimit import RATE_LIMIT_WAIT

__all__ = ["server_of", "traced_attempt", "traced_call"]

Send = Callable[[Request], Coroutine[Any, Any, Response]]


class _Api:
    """The few OpenTelemetry names the spans use, imported once, on the first traced call."""

    __slots__ = ("CLIENT", "ERROR", "INTERNAL", "detach")

    def __init__(self) -> None:
        from opentelemetry import context
        from opentelemetry.trace import SpanKind, Status, StatusCode

        self.INTERNAL = SpanKind.INTERNAL
        self.CLIENT = SpanKind.CLIENT
        self.ERROR = Status(StatusCode.ERROR)
        self.detach = context.detach


_API: _Api | None = None


def _api() -> _Api:
    global _API
    if _API is None:
        _API = _Api()
    return _API


def server_of(base_url: str) -> tuple[str, int]:
    """``server.address`` and ``server.port`` of a client's base URL (computed once per client)."""
    parts = urlsplit(base_url)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


def _url(request: Request, redaction: Redaction) -> str:
    url = request.url
    if "@" in url:  # a password in the URL: parse it out
        url = redaction.mask_url(url)
    if request.params:
        url += "?" + urlencode(redaction.mask_params(request.params), safe="*")
    return url


async def traced_call(
    tracer: Any, request: Request, call: Send, *, breaker: Callable[[], str | None], cache: Any = None
) -> Response:
    """Run ``call(request)`` inside the call's logical span; ``breaker()`` reads the breaker's
    state when the call ends; ``cache`` (the client's cache policy) says whether an answer from
    the upstream was a cache miss."""
    api = _API or _api()
    attributes = {
        "http.request.method": request.method,
        "url.template": request.route,
        "interlock.upstream": request.upstream,
    }
    with tracer.start_as_current_span(
        f"{request.method} {request.route}", kind=api.INTERNAL, attributes=attributes
    ) as span:
        try:
            response = await call(request)
        except CallError as exc:
            ended: dict[str, Any] = {
                "error.type": type(exc).__qualname__,
                "interlock.attempts": request.attempt,
            }
            if exc.status is not None:
                ended["http.response.status_code"] = exc.status
            if exc.tracking_id:
                ended["interlock.tracking_id"] = exc.tracking_id
            state = breaker()
            if state is not None:
                ended["interlock.breaker.state"] = state
            span.set_attributes(ended)
            raise
        status = response.status
        ended = {"http.response.status_code": status, "interlock.attempts": request.attempt}
        if response.from_cache:
            ended["interlock.cache"] = "stale" if response.stale else "hit"
        elif request.attempt == 0:
            if request.extensions.get(BATCHED):
                ended["interlock.batched"] = True  # answered by a list call with its neighbours
            else:
                ended["interlock.coalesced"] = True  # answered by an identical call in flight
        elif (
            cache is not None and request.method == "GET" and cache.config.rule_for(request.path) is not None
        ):
            ended["interlock.cache"] = "miss"
        if response.tracking_id:
            ended["interlock.tracking_id"] = response.tracking_id
        state = breaker()
        if state is not None:
            ended["interlock.breaker.state"] = state
        if status >= 400:
            ended["error.type"] = str(status)
            span.set_status(api.ERROR)
        span.set_attributes(ended)
        return response


async def traced_attempt(
    tracer: Any, request: Request, send: Send, redaction: Redaction, server: tuple[str, int]
) -> Response:
    """Send one attempt inside its HTTP client span, with that span's ``traceparent``;
    ``server`` is the client's (``server_of``)."""
    api = _API or _api()
    attributes: dict[str, Any] = {
        "http.request.method": request.method,
        "server.address": server[0],
        "server.port": server[1],
        "url.full": _url(request, redaction),
        "url.template": request.route,
        "interlock.upstream": request.upstream,
    }
    if request.attempt > 1:
        attributes["http.request.resend_count"] = request.attempt - 1
    extensions = request.extensions
    if extensions:
        batch = extensions.get("batch_of")
        if batch:
            attributes["interlock.batch.size"] = batch
        waited = extensions.get(RATE_LIMIT_WAIT)
        if waited:
            attributes["interlock.rate_limit.wait"] = waited
    with tracer.start_as_current_span(request.method, kind=api.CLIENT, attributes=attributes) as span:
        _otel.inject(request.headers)  # this attempt's own traceparent, replacing the last one's
        token = _otel.suppress_http_instrumentation()
        try:
            response = await send(request)
        except BaseException as exc:
            span.set_attribute("error.type", type(exc).__qualname__)
            raise
        finally:
            if token is not None:
                api.detach(token)
        status = response.status
        if status >= 400:
            span.set_attributes({"http.response.status_code": status, "error.type": str(status)})
            span.set_status(api.ERROR)
        else:
            span.set_attribute("http.response.status_code", status)
        return response
