"""``interlock.Client``: one upstream, every call through the pipeline ``interlock.client``
describes."""

from __future__ import annotations

import base64
import json as _json
import logging
import random
import uuid
import warnings
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from typing import Any, TypedDict
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit, urlunsplit

from multidict import CIMultiDict, istr

from .. import _otel
from .._clock import SYSTEM_CLOCK, Clock
from .._ids import CORRELATION_ID, new_id
from .._metrics import UpstreamStats, track_client, upstream_stats
from .._models import Request, Response
from .._redact import REDACTION, Redaction
from ..core.breaker import CircuitBreaker
from ..core.redirect import Redirects
from ..core.retry import Retry
from ..errors import CallError, ConfigError, DeadlineExceeded
from ..stores.interactions import Interaction, InteractionFilter
from ._config import Batch, Cache, Concurrency, Limits, Profile, RateLimit, Timeout, batches_of, profile_named
from ._follow import RedirectFollower
from ._interactions import InteractionLog, InteractionRecorder
from ._paginate import Paginator
from ._pipeline import Send, compose_pipeline
from ._routes import RouteNamer
from ._tracing import server_of, traced_attempt, traced_call
from .policies.auth import AuthPolicy, Credentials
from .policies.batch import BatchPolicy
from .policies.breaker import CUT_SHORT, BreakerFirst, BreakerPolicy
from .policies.cache import CachePolicy
from .policies.coalesce import CoalescePolicy
from .policies.concurrency import ConcurrencyLimiter
from .policies.ratelimit import RateLimitPolicy
from .policies.retry import RetryPolicy
from .transports import DEFAULT_TRACKING_HEADERS, AiohttpTransport, AttemptTimeout, Transport

__all__ = ["Client", "ParamValue", "RequestOptions"]

_log = logging.getLogger("interlock.client")

ParamValue = str | int | float | bool | Sequence[str | int]
"""A query parameter's value: a sequence is sent comma-joined, a bool as ``true`` / ``false``."""
UNSAFE_KEYED_METHODS = frozenset({"POST", "PUT", "PATCH"})
_DEFAULT_RETRY = Retry()
# Request.extensions key naming the profile a call asked for (absent: the client's own).
_PROFILE = "interlock.profile"
_leak_reported = False


class RequestOptions(TypedDict, total=False):
    """The keyword arguments every call takes, as a type: to hand a set of options around
    (``options: RequestOptions = {"timeout": 2.0}``, then ``client.get(path, **options)``).
    ``build_request`` documents each; the verbs (``get``, ``post``...) spell them out.
    """

    params: Mapping[str, ParamValue] | None
    headers: Mapping[str, str] | None
    json: Any
    content: bytes | str | None
    idempotency_key: str | None
    route: str | None
    timeout: float | None
    fields: Iterable[str] | None
    profile: str | Profile | None


def _userinfo_as_basic(base_url: str, parts: SplitResult) -> tuple[str, str | None]:
    """``base_url`` (split as ``parts``) without its ``user:password@``, and that user info as
    an ``Authorization: Basic`` value (None when the URL carries none): the client sends it as
    a default header, so a call's own ``Authorization`` replaces it instead of clashing with it
    in aiohttp."""
    if parts.username is None and parts.password is None:
        return base_url, None
    pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}".encode()
    bare = parts._replace(netloc=parts.netloc.rpartition("@")[2])
    return urlunsplit(bare), "Basic " + base64.b64encode(pair).decode("ascii")


def _param(value: ParamValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return ",".join(str(v) for v in value)


def _outcome(status: int) -> str:
    return f"{status // 100}xx"


_OUTCOMES = tuple(_outcome(status) for status in range(0, 1000, 100))  # by status // 100


class _CallRecorder:
    """The pipeline's ``Observer`` for one client: every call's metrics and log line, and its
    entry in the interaction log when the client keeps one."""

    __slots__ = ("_clock", "_interactions", "_name", "_redaction", "_stats")

    def __init__(
        self,
        name: str,
        stats: UpstreamStats,
        clock: Clock,
        redaction: Redaction,
        interactions: InteractionRecorder | None = None,
    ) -> None:
        self._name = name
        self._stats = stats
        self._clock = clock
        self._redaction = redaction
        self._interactions = interactions

    def answered(self, request: Request, response: Response, start: float) -> None:
        """Count and log an answered call."""
        response.elapsed = elapsed = self._clock.monotonic() - start
        response.request_id = request.request_id
        status = response.status
        outcome = _OUTCOMES[status // 100] if 100 <= status < 1000 else _outcome(status)
        stats = self._stats.routes.get(request.route) or self._stats.route(request.route)
        stats.observe(request.method, outcome, elapsed)
        if self._interactions is not None:
            self._interactions.on_response(request, response, elapsed)
        if _log.isEnabledFor(logging.INFO):
            fields = self._log_fields(request, response, elapsed, None)
            _log.info(
                "%s %s%s -> %s in %.1f ms (attempts=%d tracking_id=%s)",
                request.method,
                self._name,
                request.route,
                response.status,
                elapsed * 1000,
                response.attempts,
                response.tracking_id,
                extra={"interlock": fields},
            )

    def failed(self, request: Request, error: CallError, start: float) -> None:
        """Give a failed call's error its context, count and log it."""
        elapsed = self._clock.monotonic() - start
        error.with_context(**request.context(), attempts=request.attempt)
        if self._redaction is not REDACTION:
            error.redact(self._redaction)
        if self._interactions is not None:
            self._interactions.on_error(request, error, elapsed)
        self._observe(request, type(error).__name__.lower(), elapsed)
        if _log.isEnabledFor(logging.WARNING):
            _log.warning("%s", error, extra={"interlock": self._log_fields(request, None, elapsed, error)})

    def _observe(self, request: Request, outcome: str, elapsed: float) -> None:
        stats = self._stats.routes.get(request.route) or self._stats.route(request.route)
        stats.observe(request.method, outcome, elapsed)

    def _log_fields(
        self, request: Request, response: Response | None, elapsed: float, error: CallError | None
    ) -> dict[str, Any]:
        return {
            "upstream": self._name,
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


class Client:
    """One upstream API, every call through the resilience pipeline (``interlock.client``
    states its order and why).

    Use as ``async with Client("https://api.example.com") as api: await api.get("/x")``; a
    client that is never closed leaks its connections and warns (``ResourceWarning``) saying so.
    ``profile`` picks the retry policy and time limits for a kind of caller: ``"interactive"``
    (someone is waiting: fail fast) or ``"background"`` (jobs: wait out breakers and rate
    limits within a long deadline); see ``Profile``. Without one, ``Retry()`` and ``Timeout()``
    apply. Every option is a keyword: ``timeout`` (a ``Timeout``), ``retry``, ``breaker``,
    ``concurrency``, ``rate_limit``, ``cache``, ``coalesce``, ``batch`` switch and tune the
    policies (None switches one off); ``headers`` go with every call; ``idempotency_keys``
    adds a generated ``Idempotency-Key`` to POST, PUT and PATCH so that they may be retried;
    ``routes`` declares route templates for metrics and logs; ``limits`` bounds answer sizes
    and route cardinality (``Limits``); ``redirects`` says which redirects are followed (the
    call's own origin only, by default); ``redaction`` names the headers and query parameters
    masked in errors, logs and reprs and stripped from a redirect to another origin;
    ``interactions`` keeps failed calls (and a sample of the others) in an interaction log
    (``InteractionLog``; read back with ``client.interactions(...)``); ``transport``,
    ``clock`` and ``rng`` replace the network, time and jitter (tests: ``interlock.testing``).
    With an OpenTelemetry tracer provider set, every call is a span and every attempt an HTTP
    client span (``interlock.tracing``).
    ``auth`` puts credentials on every attempt (``interlock.auth``: ``Bearer``, ``ApiKey``,
    ``Basic``, ``OAuth2ClientCredentials``, ``OAuth2RefreshToken``), refreshing them once on a
    401 and masking them everywhere; ``transport``, ``clock`` and ``rng`` replace the network, time and jitter (tests:
    ``interlock.testing``).
    """

    def __init__(
        self,
        base_url: str,
        *,
        name: str | None = None,
        profile: str | Profile | None = None,
        timeout: Timeout | None = None,
        retry: Retry | None = _DEFAULT_RETRY,
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
        limits: Limits | None = None,
        redirects: Redirects | None = Redirects(),
        redaction: Redaction | None = None,
        interactions: InteractionLog | None = None,
        auth: Credentials | None = None,
        transport: Transport | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            shown = REDACTION.mask_url(base_url)
            raise ConfigError("Client", "base_url", f"must be an absolute http(s) URL, got {shown!r}")
        base_url, basic = _userinfo_as_basic(base_url, parts)
        self.base_url = base_url.rstrip("/")
        self._server = server_of(base_url)  # the attempt spans' server.address and server.port
        self.name = name or parts.netloc.rpartition("@")[2]  # a metrics label: never the user info
        self.profile = profile_named(profile)
        """The ``Profile`` the client was built with (None: the plain defaults)."""
        # What a call naming another profile may replace: only what was not given explicitly.
        self._own_retry = retry is not _DEFAULT_RETRY
        self._own_timeout = timeout is not None
        if self.profile is not None:
            retry = retry if self._own_retry else self.profile.retry
            timeout = timeout or self.profile.timeout
        self.timeout = timeout or Timeout()
        self._per_attempt = self.timeout.per_attempt
        self._attempt_timeout = AttemptTimeout(self.timeout.connect, None, self._per_attempt)
        self.concurrency = Concurrency.coerce(concurrency)
        self.limits = limits or Limits()
        self.redaction = redaction or REDACTION
        if auth is not None and (auth.redacted_headers or auth.redacted_query):
            self.redaction = self.redaction.extended(headers=auth.redacted_headers, query=auth.redacted_query)
        self.idempotency_keys = idempotency_keys
        # istr: the header tables of every call look them up without case-folding them again.
        self._idempotency_header = istr(idempotency_header)
        self._request_id_header = istr(request_id_header)
        self._headers: CIMultiDict[str] = CIMultiDict(headers or {})
        if basic is not None:
            if "Authorization" in self._headers or (auth is not None and "authorization" in auth.redacted_headers):
                raise ConfigError(
                    "Client", "base_url",
                    "carries user:password@ while headers= or auth= sets Authorization too: give the credentials once",
                )
            self._headers["Authorization"] = basic
        self._given_id = self._headers.get(request_id_header)
        self._given_key = self._headers.get(idempotency_header)
        self._clock = clock or SYSTEM_CLOCK
        batches = batches_of(batch)
        declared = [*(t for b in batches for t in (b.route, b.via)), *(cache.templates if cache else ())]
        try:
            self._routes = RouteNamer(
                [*routes, *declared], max_routes=self.limits.max_routes, upstream=self.name
            )
        except ValueError as exc:
            raise ConfigError("Client", "routes", str(exc)) from None
        self._transport: Transport = transport or AiohttpTransport(tracking_headers=tracking_headers)
        self._stats = upstream_stats(self.name)
        ignored = (request_id_header, idempotency_header)
        same_reads = (*ignored, "Traceparent", "Tracestate")  # headers that do not tell reads apart
        self.cache = (
            CachePolicy(cache, self.name, self._clock, share_fills=same_reads if coalesce else None)
            if cache
            else None
        )
        self._coalesce = CoalescePolicy(self.name, same_reads) if coalesce else None
        self._batch = (
            BatchPolicy(
                batches, self.name, self._clock, request_id_header=request_id_header, ignored_headers=ignored
            )
            if batches
            else None
        )
        self._rng = rng
        self.rate_limit = RateLimitPolicy(rate_limit, self.name, self._clock) if rate_limit else None
        self._limiter = ConcurrencyLimiter(self.concurrency) if self.concurrency else None
        self._breaker = (
            BreakerPolicy(breaker, self.name, self._clock, attempt_timeout=self._per_attempt)
            if breaker
            else None
        )
        self._retry = RetryPolicy(retry, self._clock, rng, breaker=self._breaker)
        self._follower = (
            RedirectFollower(
                redirects,
                self._transport.send,
                self._clock,
                self.redaction,
                idempotency_header,
                self.name,
                connect=self.timeout.connect,
                per_attempt=self._per_attempt,
            )
            if redirects is not None and redirects.follow
            else None
        )
        self._interactions = (
            InteractionRecorder(interactions, self.name, self._clock, self.redaction, rng)
            if interactions is not None
            else None
        )
        self._recorder = _CallRecorder(self.name, self._stats, self._clock, self.redaction, self._interactions)
        self.auth = AuthPolicy(auth, self.name, self.redaction) if auth is not None else None
        self._call = self._compose(self._retry)
        self._profiled: dict[str, Send] = {}
        self._closed = False
        track_client(self)

    def _compose(self, retry: RetryPolicy) -> Send:
        return compose_pipeline(
            cache=self.cache,
            coalesce=self._coalesce,
            batch=self._batch,
            retry=retry,
            rate_limit=self.rate_limit,
            concurrency=self._limiter,
            breaker=self._breaker,
            transport=self._send if self._interactions is None else self._interactions.wrap(self._send),
            clock=self._clock,
            on_resend=self._count_retry,
            observer=self._recorder,
            follow=self._follower.follow if self._follower is not None else None,
            auth=self.auth,
            breaker_first=BreakerFirst(self._breaker) if self._breaker is not None else None,
        )

    def _pipeline_for(self, profile: Profile) -> Send:
        # A call naming another profile: the same policies (one cache, quota, breaker, pool)
        # with that profile's retry stage, built once per profile.
        call = self._profiled.get(profile.name)
        if call is None:
            call = self._profiled[profile.name] = self._compose(
                RetryPolicy(profile.retry, self._clock, self._rng, breaker=self._breaker)
            )
        return call

    @property
    def retry(self) -> Retry | None:
        """How calls are retried (None: never). May be replaced on a live client."""
        return self._retry.config

    @retry.setter
    def retry(self, value: Retry | None) -> None:
        self._retry.config = value

    # -- the transport end of the pipeline -----------------------------------------------------
    def _send(self, request: Request) -> Coroutine[Any, Any, Response]:
        tracer = _otel.tracer()
        if tracer is not None:
            return traced_attempt(tracer, request, self._attempt, self.redaction, self._server)
        return self._attempt(request)

    def _attempt(self, request: Request) -> Coroutine[Any, Any, Response]:
        # A plain function handing back the transport's coroutine: one frame less per attempt.
        # While the deadline is further off than the per-attempt cap, every attempt shares one
        # AttemptTimeout (and the transport its one library timeout object).
        timeout = self._attempt_timeout
        if request.deadline is not None:
            remaining = request.deadline - self._clock.monotonic()
            if remaining <= 0:
                raise DeadlineExceeded("deadline reached before the attempt could start")
            if timeout.total is None or remaining < timeout.total:
                if timeout.total is not None and remaining < 0.5 * timeout.total:
                    request.extensions[CUT_SHORT] = True  # its timeout says nothing of health
                timeout = AttemptTimeout(timeout.connect, None, remaining)
        limits = self.limits
        request.max_response_bytes = (
            limits.response_bytes_for(request.path) if limits.rules else limits.max_response_bytes
        )
        return self._transport.send(request, timeout)

    def _count_retry(self, request: Request) -> None:
        self._stats.route(request.route).retries += 1

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
        profile: str | Profile | None = None,
    ) -> Request:
        """The ``Request`` for one call, ready for ``send`` (``get``, ``post``... build and send
        in one step). ``path`` is relative to ``base_url`` (or an absolute URL) and may carry a
        query string.

        - ``params``: query parameters, merged over the path's own;
        - ``headers``: merged over the client's;
        - ``json`` (serialised compactly, with ``Content-Type: application/json``) or
          ``content`` (bytes or text, sent as is): the body;
        - ``idempotency_key``: sent as the idempotency header; POST, PUT and PATCH get a
          generated one unless the client has ``idempotency_keys=False``;
        - ``route``: the route name for metrics, logs and rules, when the automatic one is wrong;
        - ``timeout``: seconds for the whole call, replacing ``Timeout.total``;
        - ``fields``: sparse fieldsets, sent as ``?fields=a,b``;
        - ``profile``: this call's ``Profile`` (``"interactive"`` / ``"background"``), when it
          differs from the client's: its retry policy and deadline apply, except where the
          client was given ``retry=`` / ``timeout=`` explicitly.
        """
        method = method.upper()
        if path[:1] == "/":
            relative, url = path, self.base_url + path
        elif path.startswith(("http://", "https://")):
            url, relative = path, urlsplit(path).path
        else:
            relative = "/" + path
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
            given_id, given_key = merged.get(self._request_id_header), merged.get(self._idempotency_header)
        else:  # the client's own headers alone: what they hold was looked up once, at init
            given_id, given_key = self._given_id, self._given_key
        request_id = given_id or CORRELATION_ID.get() or new_id()
        merged[self._request_id_header] = request_id
        body: bytes | None
        if json is not None:
            if content is not None:
                raise ValueError("pass json= or content=, not both")
            body = _json.dumps(json, separators=(",", ":")).encode()
            merged.setdefault("Content-Type", "application/json")
        else:
            body = content.encode() if isinstance(content, str) else content
        key = idempotency_key or given_key
        if key is None and self.idempotency_keys and method in UNSAFE_KEYED_METHODS:
            key = str(uuid.uuid4())
        if key is not None:
            merged[self._idempotency_header] = key
        total = timeout if timeout is not None else self.timeout.total
        extensions: dict[str, Any] = {}
        if profile is not None:
            chosen = profile_named(profile, "Client.request", "profile")
            if chosen is not None and chosen is not self.profile:
                if timeout is None and not self._own_timeout:
                    total = chosen.timeout.total
                if not self._own_retry:
                    extensions[_PROFILE] = chosen
        return Request(
            method,
            url,
            relative,
            self._routes.admit(route) if route else self._routes(relative),
            self.name,
            query,
            merged,
            body,
            request_id,
            key,
            self._clock.monotonic() + total if total else None,
            extensions=extensions,
        )

    # -- calling --------------------------------------------------------------------------------
    def send(self, request: Request) -> Coroutine[Any, Any, Response]:
        """Send a built request through the whole pipeline. Returns a coroutine: ``await
        api.send(request)``."""
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        call = self._call
        if request.extensions:
            profile = request.extensions.get(_PROFILE)
            if profile is not None:
                call = self._pipeline_for(profile)
        tracer = _otel.tracer()
        if tracer is not None:
            return traced_call(tracer, request, call, breaker=self._breaker_state, cache=self.cache)
        return call(request)

    def _breaker_state(self) -> str | None:
        return self._breaker.breaker.state.value if self._breaker is not None else None

    def request(
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
        profile: str | Profile | None = None,
    ) -> Coroutine[Any, Any, Response]:
        """Build and send one call with any method (``get``, ``post``... are its shorthands);
        the options are ``build_request``'s. Returns a coroutine: ``await api.request(...)``."""
        request = self.build_request(
            method,
            path,
            params=params,
            headers=headers,
            json=json,
            content=content,
            idempotency_key=idempotency_key,
            route=route,
            timeout=timeout,
            fields=fields,
            profile=profile,
        )
        return self.send(request)

    def get(
        self,
        path: str,
        *,
        params: Mapping[str, ParamValue] | None = None,
        headers: Mapping[str, str] | None = None,
        route: str | None = None,
        timeout: float | None = None,
        fields: Iterable[str] | None = None,
        profile: str | Profile | None = None,
    ) -> Coroutine[Any, Any, Response]:
        """GET ``path``, the call every policy serves: a cached route may be answered from the
        cache, identical GETs in flight share one upstream call, and a declared ``Batch`` route
        becomes part of a list call. Retried on failure."""
        return self.send(
            self.build_request(
                "GET", path, params=params, headers=headers, route=route, timeout=timeout, fields=fields,
                profile=profile,
            )
        )

    def head(
        self,
        path: str,
        *,
        params: Mapping[str, ParamValue] | None = None,
        headers: Mapping[str, str] | None = None,
        route: str | None = None,
        timeout: float | None = None,
        fields: Iterable[str] | None = None,
        profile: str | Profile | None = None,
    ) -> Coroutine[Any, Any, Response]:
        """HEAD ``path``: a GET without the body; shared while in flight, never cached."""
        return self.send(
            self.build_request(
                "HEAD", path, params=params, headers=headers, route=route, timeout=timeout, fields=fields,
                profile=profile,
            )
        )

    def post(
        self,
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
        profile: str | Profile | None = None,
    ) -> Coroutine[Any, Any, Response]:
        """POST ``path``. It may apply twice if repeated, so it is retried only when it carries
        an idempotency key: one is generated for each call unless the client has
        ``idempotency_keys=False`` or ``idempotency_key=`` gives the caller's own. A success
        forgets the cached copies of ``path`` (RFC 9111 section 4.4)."""
        request = self.build_request(
            "POST",
            path,
            params=params,
            headers=headers,
            json=json,
            content=content,
            idempotency_key=idempotency_key,
            route=route,
            timeout=timeout,
            fields=fields,
            profile=profile,
        )
        return self.send(request)

    def put(
        self,
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
        profile: str | Profile | None = None,
    ) -> Coroutine[Any, Any, Response]:
        """PUT ``path``: idempotent (RFC 9110 section 9.2.2), so retried like a read; a success
        forgets the cached copies of ``path``."""
        request = self.build_request(
            "PUT",
            path,
            params=params,
            headers=headers,
            json=json,
            content=content,
            idempotency_key=idempotency_key,
            route=route,
            timeout=timeout,
            fields=fields,
            profile=profile,
        )
        return self.send(request)

    def patch(
        self,
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
        profile: str | Profile | None = None,
    ) -> Coroutine[Any, Any, Response]:
        """PATCH ``path``: like ``post``, retried only with its (generated or given) idempotency
        key."""
        request = self.build_request(
            "PATCH",
            path,
            params=params,
            headers=headers,
            json=json,
            content=content,
            idempotency_key=idempotency_key,
            route=route,
            timeout=timeout,
            fields=fields,
            profile=profile,
        )
        return self.send(request)

    def delete(
        self,
        path: str,
        *,
        params: Mapping[str, ParamValue] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        route: str | None = None,
        timeout: float | None = None,
        fields: Iterable[str] | None = None,
        profile: str | Profile | None = None,
    ) -> Coroutine[Any, Any, Response]:
        """DELETE ``path``: idempotent, retried like a read; a success forgets the cached copies."""
        request = self.build_request(
            "DELETE",
            path,
            params=params,
            headers=headers,
            idempotency_key=idempotency_key,
            route=route,
            timeout=timeout,
            fields=fields,
            profile=profile,
        )
        return self.send(request)

    # -- state and lifecycle --------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """A snapshot for dashboards: breaker, in-flight, retries sent, latency quantiles
        (seconds), reads answered by an identical call in flight (``coalesced``), and list
        calls made for batched reads (``batch_calls``) with the reads they served (``batched``),
        and ``calls`` by outcome (``2xx``, ``5xx``, error names such as ``circuitopen``).
        ``retries`` and ``retries_by_route`` count retries sent, a batch's list calls under
        their ``via`` route. Cache results are ``client.cache.stats()``, pacing
        ``client.rate_limit.stats()``."""
        by_route = {route: stats.retries for route, stats in self._stats.routes.items() if stats.retries}
        calls: dict[str, int] = {}
        for stats in list(self._stats.routes.values()):
            for (_, outcome), n in list(stats.outcomes.items()):
                calls[outcome] = calls.get(outcome, 0) + n
        return {
            "upstream": self.name,
            "breaker": self._breaker.breaker.state.value if self._breaker else None,
            "in_flight": self._limiter.in_flight if self._limiter else None,
            "retries": sum(by_route.values()),
            "retries_by_route": by_route,
            "calls": calls,
            "latency": self._stats.latency_quantiles(),
            "coalesced": (self._coalesce.coalesced if self._coalesce else 0)
            + (self.cache.shared_fills if self.cache else 0),
            "batch_calls": self._batch.calls if self._batch else 0,
            "batched": self._batch.members if self._batch else 0,
        }

    def breaker_state(self) -> str | None:
        """The breaker's state (``"closed"``, ``"open"``, ``"half_open"``); None without a breaker."""
        return self._breaker.breaker.state.value if self._breaker else None

    def reset_breaker(self) -> None:
        """Close the breaker now, forgetting the failures it counted (an operator's override,
        e.g. from the service's admin API); no effect without a breaker."""
        if self._breaker is not None:
            self._breaker.breaker.reset(self._clock.monotonic())

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

    async def interactions(
        self,
        *,
        tracking_id: str | None = None,
        correlation_id: str | None = None,
        trace_id: str | None = None,
        route: str | None = None,
        failed: bool | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
    ) -> list[Interaction]:
        """The calls of this client kept in its interaction log (``interactions=``), newest
        first: matching the upstream's ``tracking_id``, the ``correlation_id`` (a webhook's
        event id, for the calls its handler made), the ``trace_id``, the ``route``, ``failed``
        (True: failures only), begun between ``since`` and ``until`` (wall-clock seconds); at
        most ``limit``. Writes still in flight are waited for first."""
        if self._interactions is None:
            raise ConfigError(
                "Client", "interactions", "this client keeps no interaction log: pass interactions=InteractionLog(store=...)"
            )
        where = InteractionFilter(
            tracking_id=tracking_id, correlation_id=correlation_id, trace_id=trace_id, upstream=self.name,
            route=route, failed=failed, since=since, until=until,
        )  # fmt: skip
        return await self._interactions.find(where, limit=limit)

    async def aclose(self) -> None:
        """Close the client: stop background work (batch timers, cache refreshes), finish the
        interaction log's writes, close the stores it opened and the transport's connections.
        Calls after this raise."""
        self._closed = True
        for policy in (self._batch, self.cache, self.rate_limit, self._interactions, self.auth):
            if policy is not None:
                await policy.aclose()
        await self._transport.aclose()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __del__(self) -> None:
        # A client dropped without aclose() leaks its connection pool. aiohttp then says only
        # "Unclosed client session"; this says whose and what to do, as a ResourceWarning (shown
        # by -X dev and test runners) and, once per process, through the loop's exception
        # handler, where aiohttp's own message goes too (visible without any setup).
        if getattr(self, "_closed", True) or not getattr(self._transport, "is_open", False):
            return
        message = (
            f"interlock.Client {self.name!r} was never closed and leaks its connections: use "
            "'async with interlock.Client(...) as client:' or 'await client.aclose()'"
        )
        warnings.warn(message, ResourceWarning, source=self, stacklevel=2)
        global _leak_reported
        loop = getattr(self._transport, "loop", None)
        if not _leak_reported and loop is not None:
            _leak_reported = True
            loop.call_exception_handler({"message": message})

    def __repr__(self) -> str:
        breaker = self._breaker.breaker.state.value if self._breaker else "none"
        in_flight = self._limiter.in_flight if self._limiter else 0
        url = self.redaction.mask_url(self.base_url)
        profile = f" profile={self.profile.name}" if self.profile else ""
        return f"<Client {self.name} {url}{profile} breaker={breaker} in_flight={in_flight}>"
