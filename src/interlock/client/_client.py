"""``interlock.Client``: one upstream, every call through the resilience pipeline."""

from __future__ import annotations

import asyncio
import json as _json
import logging
import random
import uuid
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from multidict import CIMultiDict

from .._clock import SYSTEM_CLOCK, Clock
from .._ids import current_correlation_id, new_id
from .._metrics import track_client, upstream_stats
from .._models import Request, Response
from ..core.breaker import CircuitBreaker
from ..core.retry import BudgetLedger, FailureKind, GiveUp, Retry
from ..core.retry_after import parse_retry_after
from ..errors import (
    CallError,
    CircuitOpen,
    ConfigError,
    ConnectError,
    DeadlineExceeded,
    RetriesExhausted,
    TimedOut,
    TransportError,
)
from ._config import Batch, Cache, Concurrency, RateLimit, Timeout, batches_of
from ._paginate import Paginator
from ._pipeline import Gate, Policy, Send, compose
from ._routes import RouteNamer
from .policies.batch import BatchPolicy
from .policies.breaker import BreakerPolicy
from .policies.cache import CachePolicy
from .policies.coalesce import CoalescePolicy
from .policies.concurrency import ConcurrencyLimiter
from .policies.ratelimit import RateLimitPolicy
from .transports import AttemptTimeout, Transport
from .transports._aiohttp import AiohttpTransport

_log = logging.getLogger("interlock.client")

ParamValue = str | int | float | bool | Sequence[str | int]
UNSAFE_KEYED_METHODS = frozenset({"POST", "PUT", "PATCH"})
DEFAULT_TRACKING_HEADERS = (
    "Trackingid",
    "X-Tracking-Id",
    "X-Amzn-Requestid",
    "X-Amz-Request-Id",
    "Request-Id",
    "X-Request-Id",
)
_GIVE_UP_WORDS = {
    "attempts": "no attempts left",
    "budget": "retry budget exhausted (the upstream is failing a large share of calls)",
    "retry_after_too_long": "Retry-After is longer than Retry.max_retry_after",
}


def _param(value: ParamValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return ",".join(str(v) for v in value)


def _outcome(status: int) -> str:
    return f"{status // 100}xx"


class Client:
    """An upstream API, called through cache, coalescing, batching, rate limit, concurrency,
    breaker, retry and timeout policies. Use as ``async with Client(...) as api:``."""

    def __init__(
        self,
        base_url: str,
        *,
        name: str | None = None,
        timeout: Timeout | None = None,
        retry: Retry | None = Retry(),
        breaker: CircuitBreaker | None = CircuitBreaker(),
        concurrency: int | Concurrency | None = Concurrency(),
        rate_limit: RateLimit | None = None,
        cache: Cache | None = None,
        coalesce: bool = True,
        batch: Batch | Sequence[Batch] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotency_keys: bool = True,
        idempotency_header: str = "Idempotency-Key",
        request_id_header: str = "X-Request-ID",
        tracking_headers: Sequence[str] = DEFAULT_TRACKING_HEADERS,
        routes: Iterable[str] = (),
        transport: Transport | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError("Client", "base_url", f"must be an absolute http(s) URL, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.name = name or parts.netloc
        self.timeout = timeout or Timeout()
        self._per_attempt = self.timeout.per_attempt
        self.retry = retry
        self.concurrency = Concurrency.coerce(concurrency)
        self.idempotency_keys = idempotency_keys
        self._idempotency_header = idempotency_header
        self._request_id_header = request_id_header
        self._headers: CIMultiDict[str] = CIMultiDict(headers or {})
        self._clock = clock or SYSTEM_CLOCK
        self._rng = rng
        batches = batches_of(batch)
        declared = [*(t for b in batches for t in (b.route, b.via)), *(cache.templates if cache else ())]
        try:
            self._routes = RouteNamer([*routes, *declared])
        except ValueError as exc:
            raise ConfigError("Client", "routes", str(exc)) from None
        self._transport: Transport = transport or AiohttpTransport(tracking_headers=tracking_headers)
        self._budget = BudgetLedger(retry.budget) if retry and retry.budget else None
        self._breaker = BreakerPolicy(breaker, self.name, self._clock) if breaker else None
        self._limiter = ConcurrencyLimiter(self.concurrency) if self.concurrency else None
        self._stats = upstream_stats(self.name)
        # Work avoided: cache -> coalesce -> batch once per call; the rate limit once per attempt,
        # first, so retries draw from the same quota.
        ignored = (request_id_header, idempotency_header)
        self.cache = CachePolicy(cache, self.name, self._clock) if cache else None
        self._coalesce = (
            CoalescePolicy(self.name, (*ignored, "Traceparent", "Tracestate")) if coalesce else None
        )
        self._batch = (
            BatchPolicy(
                batches, self.name, self._clock, request_id_header=request_id_header, ignored_headers=ignored
            )
            if batches
            else None
        )
        self.rate_limit = RateLimitPolicy(rate_limit, self.name, self._clock) if rate_limit else None
        self._call_policies: list[Policy] = [p for p in (self.cache, self._coalesce, self._batch) if p]
        self._attempt_policies: list[Policy] = [p for p in (self.rate_limit,) if p]
        self._gates: list[Gate] = [g for g in (self._limiter, self._breaker) if g is not None]
        self._rebuild()
        self._closed = False
        track_client(self)

    # -- pipeline -------------------------------------------------------------------------------
    def _rebuild(self) -> None:
        self._attempt: Send = compose(self._attempt_policies, self._send_gated)
        self._call: Send = compose(self._call_policies, self._send_with_retries)

    async def _send_gated(self, request: Request) -> Response:
        """Pass the gates (concurrency, breaker), send one attempt, tell the gates how it ended."""
        gates = self._gates
        entered = 0
        try:
            for gate in gates:
                if not gate.try_enter(request):
                    await self._enter_by_deadline(gate, request)
                entered += 1
            if request.attempt > 1:  # counted when sent: waiting out an open breaker sends nothing
                self._stats.route(request.route).retries += 1
            response = await self._send(request)
        except BaseException as exc:
            for gate in reversed(gates[:entered]):
                gate.exit(request, None, exc)
            raise
        for gate in reversed(gates):
            gate.exit(request, response, None)
        return response

    async def _enter_by_deadline(self, gate: Gate, request: Request) -> None:
        """Wait for a gate (a concurrency slot), but never past the call's deadline."""
        if request.deadline is None:
            await gate.enter(request)
            return
        remaining = request.deadline - self._clock.monotonic()
        try:
            async with asyncio.timeout(max(0.0, remaining)):
                await gate.enter(request)
        except TimeoutError:
            raise DeadlineExceeded("deadline reached while waiting for a concurrency slot") from None

    def _send(self, request: Request) -> Coroutine[Any, Any, Response]:
        # A plain function handing back the transport's coroutine: one frame less per attempt.
        total = self._per_attempt
        if request.deadline is not None:
            remaining = request.deadline - self._clock.monotonic()
            if remaining <= 0:
                raise DeadlineExceeded("deadline reached before the attempt could start")
            total = remaining if total is None else min(total, remaining)
        return self._transport.send(request, AttemptTimeout(self.timeout.connect, None, total))

    async def _send_with_retries(self, request: Request) -> Response:
        retry, clock = self.retry, self._clock
        if self._budget is not None:
            self._budget.record_call(clock.monotonic())
        attempt = 0
        while True:
            attempt += 1
            request.attempt = attempt
            response: Response | None = None
            error: CallError | None = None
            retry_after: float | None = None
            try:
                response = await self._attempt(request)
            except ConnectError as exc:
                error, failure = exc, FailureKind.CONNECT
            except TransportError as exc:
                error, failure = exc, FailureKind.NETWORK
            except TimedOut as exc:
                error, failure = exc, FailureKind.TIMEOUT
            except CircuitOpen as exc:
                error, failure, retry_after = exc, FailureKind.CIRCUIT_OPEN, exc.retry_in
                attempt -= 1  # refused before sending: not an attempt
            if response is not None:
                response.attempts = attempt
                if retry is None or not retry.is_retryable_status(response.status):
                    return response
                failure = FailureKind.THROTTLED if response.status == 429 else FailureKind.STATUS
                retry_after = parse_retry_after(response.headers.get("Retry-After"), clock.time())
            if retry is None:
                return self._give_up(request, GiveUp("not_retryable"), attempt, response, error)
            decision = retry.decide(
                attempt=attempt,
                method=request.method,
                has_idempotency_key=request.idempotency_key is not None,
                failure=failure,
                retry_after=retry_after,
                now=clock.monotonic(),
                deadline=request.deadline,
                budget=self._budget,
                rng=self._rng,
            )
            if isinstance(decision, GiveUp):
                return self._give_up(request, decision, attempt, response, error)
            await clock.sleep(decision.delay)

    def _give_up(
        self,
        request: Request,
        decision: GiveUp,
        attempts: int,
        response: Response | None,
        error: CallError | None,
    ) -> Response:
        """End a call whose last attempt failed: return the answer or raise the right error."""
        context: dict[str, Any] = {
            "upstream": request.upstream,
            "method": request.method,
            "route": request.route,
            "attempts": attempts,
            "request_id": request.request_id,
            "tracking_id": response.tracking_id if response else None,
            "status": response.status if response else None,
        }
        if decision.reason in ("not_retryable", "unsafe_method"):
            if response is not None:
                return response
            assert error is not None
            if decision.reason == "unsafe_method":
                error.hint = "not retried: it may have been applied; pass idempotency_key= to retry it"
            raise error.with_context(**context) from error.__cause__
        last = f"last answer {response.status}" if response else f"last error: {error}"
        if decision.reason == "deadline":
            raise DeadlineExceeded(
                f"deadline reached, no time for another retry; {last}", **context
            ) from error
        if error is not None and attempts == 1 and decision.reason == "attempts":
            raise error.with_context(**context) from error.__cause__
        words = _GIVE_UP_WORDS.get(decision.reason, decision.reason)
        raise RetriesExhausted(f"gave up: {words}; {last}", **context) from error

    # -- building requests ----------------------------------------------------------------------
    def build_request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, ParamValue] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        content: bytes | str | None = None,
        idempotency_key: str | None = None,
        route: str | None = None,
        timeout: float | None = None,
        fields: Iterable[str] | None = None,
    ) -> Request:
        method = method.upper()
        if path.startswith(("http://", "https://")):
            url, relative = path, urlsplit(path).path
        else:
            relative = path if path.startswith("/") else "/" + path
            url = self.base_url + relative
        query: dict[str, str] = {}
        if "?" in url:
            url, _, raw_query = url.partition("?")
            relative = relative.partition("?")[0]
            query.update(parse_qsl(raw_query, keep_blank_values=True))
        if params:
            query.update((k, _param(v)) for k, v in params.items())
        if fields is not None:  # sparse fieldsets: only these fields of each record
            query["fields"] = fields if isinstance(fields, str) else ",".join(fields)
        merged: CIMultiDict[str] = self._headers.copy()
        if headers:
            merged.update(headers)
        request_id = merged.get(self._request_id_header) or current_correlation_id() or new_id()
        merged[self._request_id_header] = request_id
        body: bytes | None
        if json is not None:
            if content is not None:
                raise ValueError("pass json= or content=, not both")
            body = _json.dumps(json, separators=(",", ":")).encode()
            merged.setdefault("Content-Type", "application/json")
        else:
            body = content.encode() if isinstance(content, str) else content
        key = idempotency_key or merged.get(self._idempotency_header)
        if key is None and self.idempotency_keys and method in UNSAFE_KEYED_METHODS:
            key = str(uuid.uuid4())
        if key is not None:
            merged[self._idempotency_header] = key
        total = timeout if timeout is not None else self.timeout.total
        return Request(
            method=method,
            url=url,
            path=relative,
            route=route or self._routes(relative),
            upstream=self.name,
            params=query,
            headers=merged,
            body=body,
            request_id=request_id,
            idempotency_key=key,
            deadline=self._clock.monotonic() + total if total else None,
        )

    # -- calling --------------------------------------------------------------------------------
    async def send(self, request: Request) -> Response:
        """Send a built request through the whole pipeline."""
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        start = self._clock.monotonic()
        try:
            response = await self._call(request)
        except CallError as exc:
            elapsed = self._clock.monotonic() - start
            exc.with_context(
                upstream=request.upstream,
                method=request.method,
                route=request.route,
                request_id=request.request_id,
                attempts=request.attempt,
            )
            self._observe(request, type(exc).__name__.lower(), elapsed)
            if _log.isEnabledFor(logging.WARNING):
                _log.warning("%s", exc, extra={"interlock": self._log_fields(request, None, elapsed, exc)})
            raise
        response.elapsed = elapsed = self._clock.monotonic() - start
        response.request_id = request.request_id
        self._observe(request, _outcome(response.status), elapsed)
        if _log.isEnabledFor(logging.INFO):
            fields = self._log_fields(request, response, elapsed, None)
            _log.info(
                "%s %s%s -> %s in %.1f ms (attempts=%d tracking_id=%s)",
                request.method,
                self.name,
                request.route,
                response.status,
                elapsed * 1000,
                response.attempts,
                response.tracking_id,
                extra={"interlock": fields},
            )
        return response

    def _observe(self, request: Request, outcome: str, elapsed: float) -> None:
        self._stats.route(request.route).observe(request.method, outcome, elapsed)

    def _log_fields(
        self, request: Request, response: Response | None, elapsed: float, error: CallError | None
    ) -> dict[str, Any]:
        return {
            "upstream": self.name,
            "method": request.method,
            "route": request.route,
            "status": response.status if response else (error.status if error else None),
            "attempts": response.attempts if response else request.attempt,
            "duration_ms": round(elapsed * 1000, 3),
            "tracking_id": response.tracking_id if response else (error.tracking_id if error else None),
            "request_id": request.request_id,
            "from_cache": response.from_cache if response else False,
            "error": type(error).__name__ if error else None,
        }

    def request(self, method: str, path: str, **kwargs: Any) -> Coroutine[Any, Any, Response]:
        """Build and send one call; ``get``, ``post``... are shorthands. Returns a coroutine."""
        return self.send(self.build_request(method, path, **kwargs))

    def get(self, path: str, **kwargs: Any) -> Coroutine[Any, Any, Response]:
        return self.send(self.build_request("GET", path, **kwargs))

    def head(self, path: str, **kwargs: Any) -> Coroutine[Any, Any, Response]:
        return self.send(self.build_request("HEAD", path, **kwargs))

    def post(self, path: str, **kwargs: Any) -> Coroutine[Any, Any, Response]:
        return self.send(self.build_request("POST", path, **kwargs))

    def put(self, path: str, **kwargs: Any) -> Coroutine[Any, Any, Response]:
        return self.send(self.build_request("PUT", path, **kwargs))

    def patch(self, path: str, **kwargs: Any) -> Coroutine[Any, Any, Response]:
        return self.send(self.build_request("PATCH", path, **kwargs))

    def delete(self, path: str, **kwargs: Any) -> Coroutine[Any, Any, Response]:
        return self.send(self.build_request("DELETE", path, **kwargs))

    # -- state and lifecycle --------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """A snapshot for dashboards: breaker, in-flight and latency quantiles (seconds)."""
        return {
            "upstream": self.name,
            "breaker": self._breaker.breaker.state.value if self._breaker else None,
            "in_flight": self._limiter.in_flight if self._limiter else None,
            "retries": sum(route.retries for route in self._stats.routes.values()),
            "latency": self._stats.latency_quantiles(),
        }

    def gauges(self) -> dict[str, float]:
        """Read by the metrics collector at scrape time (not kept up to date per call)."""
        gauges: dict[str, float] = {}
        if self._limiter is not None:
            gauges["in_flight"] = self._limiter.in_flight
        if self._breaker is not None:
            gauges["breaker_state"] = self._breaker.breaker.state.gauge
        return gauges

    def paginate(self, path: str, **options: Any) -> Paginator:
        """Every item of a listing: ``async for item in client.paginate("/customers")``. Cursor,
        offset, page and Link-header styles (``style="auto"`` detects), the next page fetched
        while the current one is processed, loop guards. See ``Paginator`` for the options."""
        return Paginator(self, path, **options)

    async def aclose(self) -> None:
        self._closed = True
        for policy in (self._batch, self.cache, self.rate_limit):
            if policy is not None:
                await policy.aclose()
        await self._transport.aclose()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        breaker = self._breaker.breaker.state.value if self._breaker else "none"
        in_flight = self._limiter.in_flight if self._limiter else 0
        return f"<Client {self.name} {self.base_url} breaker={breaker} in_flight={in_flight}>"
