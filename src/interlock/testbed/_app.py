"""The request handler: routing, faults, quota, resources, admin API, compression.

One plain coroutine on aiohttp's low-level ``web.Server`` (no router, no middleware chain,
no access log): the hot path is a few dict lookups, so one core serves thousands of requests
per second and the testbed is never the bottleneck of a benchmark.

Order of events for a resource request (anything outside ``/_testbed/``), chosen to match
how a real API's layers fail:

1. **outage** -- the load balancer answers ``outage_status``; nothing else is counted;
2. **rate limit** -- the gateway refuses over-quota requests with 429 before any service
   work (no latency, no fault draw); admitted requests consume quota even if they fail later;
3. **reset** -- the connection is dropped with no response (TCP RST);
4. **injected error** -- the service answers an ``error_rates`` status (quota headers kept);
5. **latency** (+ slow) -- ``asyncio.sleep``, so concurrent requests overlap as upstream;
6. **the resource** itself; for writes, ``lost_response_rate`` may drop the connection
   *after* the write was applied.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
import random
import socket
import struct
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Mapping
from contextlib import suppress
from typing import Any

from aiohttp import web

from ..errors import ConfigError
from ._config import Faults, RateLimitConfig, TestbedConfig
from ._counters import Stats
from ._data import DataStore, Record
from ._faults import FaultInjector
from ._hostile import HOSTILE_PREFIX, handle_hostile
from ._listing import BadRequest, by_ids, list_page
from ._ratelimit import RateLimiter
from ._streams import StreamServer
from ._timefmt import http_date, parse_http_date

__all__ = ["TestbedApp"]

# (status, body, headers): what a handler decided; ``_finish`` turns it into a response.
Reply = tuple[int, bytes, dict[str, str]]
ADMIN_PREFIX = "/_testbed/"
_STREAM_PATHS = frozenset({"/events", "/ws"})
_JSON = "application/json"
_REASONS = {
    400: "bad request",
    404: "not found",
    405: "method not allowed",
    409: "conflict",
    422: "unprocessable",
    429: "rate limited",
    500: "internal server error",
    502: "bad gateway",
    503: "service unavailable",
    504: "gateway timeout",
}


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _error(status: int, message: str | None = None, **extra: Any) -> Reply:
    body = {"error": message or _REASONS.get(status, "error"), **extra}
    return status, _dumps(body), {}


def _compressors() -> dict[str, Callable[[bytes], bytes]]:
    codecs: dict[str, Callable[[bytes], bytes]] = {}
    try:
        import zstandard

        zstd = zstandard.ZstdCompressor(level=3)
        codecs["zstd"] = zstd.compress
    except ImportError:  # optional: the "compression" extra
        pass
    try:
        import brotli

        # Quality 4, not brotli's default 11: that one costs milliseconds per response.
        codecs["br"] = lambda body: brotli.compress(body, quality=4)
    except ImportError:
        pass

    def gzip(body: bytes) -> bytes:
        compressor = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31: gzip container
        return compressor.compress(body) + compressor.flush()

    codecs["gzip"] = gzip
    return codecs


_CODINGS = _compressors()
_CODING_SUFFIXES = tuple(f"-{c}" for c in _CODINGS)


class _Stored:
    """A write's response, kept for ``Idempotency-Key`` replays."""

    __slots__ = ("body", "fingerprint", "headers", "status")

    def __init__(self, fingerprint: tuple[str, str, int], reply: Reply) -> None:
        self.fingerprint = fingerprint
        self.status, self.body, headers = reply
        self.headers = dict(headers)


class TestbedApp:
    """The simulated API's state and handler; ``Testbed`` serves it on a socket."""

    __test__ = False  # not a pytest test class

    def __init__(self, config: TestbedConfig) -> None:
        self.config = config
        self.data = DataStore(
            config.kinds,
            config.records,
            seed=config.seed,
            epoch=config.epoch,
            step_seconds=config.updated_at_step,
            same_timestamp_every=config.same_timestamp_every,
        )
        self.stats = Stats()
        self.streams = StreamServer(self.data.feed)
        self.started = time.monotonic()
        self._rng = random.Random(config.seed)
        self.faults = FaultInjector(config.faults, self._rng, self.started)
        self.limiter = RateLimiter(config.rate_limit) if config.rate_limit else None
        self._idempotency: OrderedDict[str, _Stored] = OrderedDict()
        self._accept_cache: dict[str, str | None] = {}
        self._routes: dict[tuple[str, str, bool], str] = {}
        self._lateness = 0.0  # how late asyncio timers wake, learned by _hold
        self._apply_live_fields()

    def _apply_live_fields(self) -> None:
        cfg = self.config
        # RFC 9111 section 5.2.2.4: no-cache lets a cache store the response but requires
        # revalidation (a conditional request) before reuse -- what max-age=0 means here.
        self._cache_control = {
            kind: f"max-age={cfg.max_age[kind]}" if cfg.max_age.get(kind) else "no-cache"
            for kind in cfg.kinds
        }

    # -- live control ----------------------------------------------------------------------

    def configure(self, changes: Mapping[str, Any]) -> TestbedConfig:
        """Change live fields (``TestbedConfig.LIVE_FIELDS``); the configuration now in force.

        New ``faults`` re-base their outage windows on now and end any ``start_outage`` window; a new
        ``rate_limit`` starts with full quotas. ``faults=None`` means no faults.
        """
        unknown = sorted(set(changes) - TestbedConfig.LIVE_FIELDS)
        if unknown:
            live = ", ".join(sorted(TestbedConfig.LIVE_FIELDS))
            raise ConfigError(
                "Testbed.configure", unknown[0], f"cannot change on a running testbed; live: {live}"
            )
        values = dict(changes)
        if "faults" in values and values["faults"] is None:
            values["faults"] = Faults()
        new = dataclasses.replace(self.config, **values)
        self.config = new
        if "faults" in values:
            self.faults = FaultInjector(new.faults, self._rng, time.monotonic())
        if "rate_limit" in values:
            self.limiter = RateLimiter(new.rate_limit) if new.rate_limit else None
        self._apply_live_fields()
        return new

    def configure_from_dict(self, data: Mapping[str, Any]) -> TestbedConfig:
        """``configure`` from JSON: nested objects are dicts, ``null`` clears."""
        if not isinstance(data, Mapping):
            raise ConfigError("Testbed.configure", "*", "expected a JSON object")
        values = dict(data)
        if values.get("faults") is not None:
            values["faults"] = Faults.from_dict(values["faults"])
        if values.get("rate_limit") is not None:
            values["rate_limit"] = RateLimitConfig.from_dict(values["rate_limit"])
        return self.configure(values)

    def start_outage(self, duration: float) -> None:
        """Fail every resource request with ``faults.outage_status`` for ``duration`` seconds from now."""
        if not isinstance(duration, int | float) or isinstance(duration, bool) or duration <= 0:
            raise ConfigError("Testbed.start_outage", "duration", f"must be > 0, got {duration!r}")
        self.faults.start_outage(float(duration), time.monotonic())

    def outage_active(self) -> bool:
        """Whether an outage window (configured or started by hand) is on now."""
        return self.faults.outage_active(time.monotonic())

    def touch(self, kind: str, ids: list[int], updated_at: str | float | None = None) -> list[Record]:
        """Change records of ``kind`` as the upstream would (``DataStore.touch``); ``ConfigError`` for an unknown kind or a bad ``updated_at``."""
        if not self.data.has_kind(kind):
            raise ConfigError("Testbed.touch", "kind", f"{kind!r} is not one of {self.data.kinds}")
        try:
            return self.data.touch(kind, ids, updated_at)
        except ValueError as exc:
            raise ConfigError("Testbed.touch", "updated_at", str(exc)) from exc

    # -- entry point -----------------------------------------------------------------------

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """Answer one HTTP request: the admin API under ``/_testbed/``, else a resource request, faults and quota applied in the order the module docstring gives."""
        path = request.path
        if path.startswith(HOSTILE_PREFIX):
            return await handle_hostile(request, path[len(HOSTILE_PREFIX) :])
        if path.startswith(ADMIN_PREFIX):
            try:
                reply = await self._admin(request, path[len(ADMIN_PREFIX) :])
            except ConfigError as exc:
                reply = _error(400, str(exc))
            except BadRequest as exc:
                reply = _error(400, str(exc))
            return self._finish(request, reply, resource=False)
        if path in _STREAM_PATHS and request.method == "GET":
            return await self._stream(request, path)
        stats = self.stats
        stats.enter()
        method = request.method
        route = "?"
        status: int | None = None
        try:
            segments = path.split("/")
            count = len(segments)
            if count == 2 or (count == 3 and segments[2] == ""):
                kind, rid_text = segments[1], None
            elif count == 3:
                kind, rid_text = segments[1], segments[2]
            else:
                kind, rid_text = "", None
            route = self._route(method, kind, rid_text is not None)
            outcome = await self._resource(request, method, kind, rid_text)
            if outcome is None:
                return web.Response()  # transport already aborted; aiohttp drops this quietly
            status = outcome[0]
            return self._finish(request, outcome, resource=True)
        finally:
            stats.leave()
            headers = request.headers
            stats.answered(
                route,
                status,
                method,
                path,
                request.query_string,
                headers.get("X-Request-ID"),
                headers.get("Idempotency-Key"),
            )

    async def _stream(self, request: web.BaseRequest, path: str) -> web.StreamResponse:
        """``GET /events`` or ``GET /ws``: refused during an outage, else the stream (faults: see
        ``StreamServer``)."""
        stats = self.stats
        route = f"GET {path}"
        status: int | None = 200
        try:
            if self.faults.outage_active(time.monotonic()):
                stats.errors_injected += 1
                stats.outage_rejections += 1
                status = self.config.faults.outage_status
                return self._finish(request, _error(status, "service unavailable", outage=True), resource=False)
            serve = self.streams.sse if path == "/events" else self.streams.websocket
            answered = await serve(request)
            if answered is None:
                status = None
                return web.Response()  # cut: the transport is already aborted
            return answered
        finally:
            stats.answered(
                route, status, "GET", path, request.query_string, request.headers.get("X-Request-ID"), None
            )

    def _route(self, method: str, kind: str, has_id: bool) -> str:
        key = (method, kind, has_id)
        label = self._routes.get(key)
        if label is None:
            if not self.data.has_kind(kind):
                label = f"{method} <unknown>"
            else:
                label = f"{method} /{kind}/{{id}}" if has_id else f"{method} /{kind}"
            self._routes[key] = label
        return label

    async def _resource(
        self, request: web.BaseRequest, method: str, kind: str, rid_text: str | None
    ) -> Reply | None:
        stats = self.stats
        if self.faults.outage_active(time.monotonic()):
            stats.errors_injected += 1
            stats.outage_rejections += 1
            reply = _error(self.config.faults.outage_status, "service unavailable", outage=True)
            come_back = self.config.faults.outage_retry_after
            if come_back is not None:
                reply[2]["Retry-After"] = f"{come_back:g}"
            return reply
        quota: dict[str, str] | None = None
        limiter = self.limiter
        if limiter is not None:
            now = limiter.now()
            key = request.headers.get(limiter.config.key_header) or "anonymous"
            decision = limiter.check(key, now)
            quota = limiter.headers(decision, now)
            if limiter.config.clock_skew:
                # A skewed server's Date comes from its own clock (RFC 9110 section 6.6.1).
                quota["Date"] = http_date(now)
            if not decision.allowed:
                stats.rate_limited += 1
                retry_after = limiter.retry_after(decision, now)
                quota["Retry-After"] = retry_after
                status, body, _ = _error(429, "rate limited", retry_after=retry_after)
                return status, body, quota
        draw = self.faults.draw()
        if draw.reset:
            stats.resets += 1
            _abort(request)
            return None
        if draw.status is not None:
            stats.errors_injected += 1
            status, body, headers = _error(draw.status, injected=True)
        else:
            if draw.delay > 0:
                await self._hold(draw.delay)
            answered = await self._dispatch(request, method, kind, rid_text)
            if answered is None:
                return None
            status, body, headers = answered
        if quota:
            headers.update(quota)
        extra = self.config.faults.headers
        if extra:
            headers.update(extra)
        return status, body, headers

    async def _hold(self, delay: float) -> None:
        """Wait ``delay`` seconds as a client would measure it. asyncio timers wake up to a
        millisecond late (epoll waits in whole milliseconds), which turns a configured 20 ms into
        about 21; an integral correction of the observed lateness keeps the mean on target."""
        loop = asyncio.get_running_loop()
        target = loop.time() + delay
        await asyncio.sleep(max(0.0, delay - self._lateness))
        late = loop.time() - target
        self._lateness = min(0.002, max(0.0, self._lateness + 0.1 * late))

    async def _dispatch(
        self, request: web.BaseRequest, method: str, kind: str, rid_text: str | None
    ) -> Reply | None:
        if not self.data.has_kind(kind):
            return _error(404, "unknown resource", path=request.path)
        if rid_text is None:
            if method in ("GET", "HEAD"):
                return self._collection(request, kind)
            if method == "POST":
                return await self._write(request, "POST", kind, None)
            return self._not_allowed("GET, HEAD, POST")
        try:
            rid = int(rid_text)
        except ValueError:
            return _error(404, "not found", id=rid_text)
        if method in ("GET", "HEAD"):
            return self._get(request, kind, rid)
        if method in ("PUT", "DELETE"):
            return await self._write(request, method, kind, rid)
        return self._not_allowed("GET, HEAD, PUT, DELETE")

    @staticmethod
    def _not_allowed(allow: str) -> Reply:
        status, body, headers = _error(405)
        headers["Allow"] = allow  # RFC 9110 section 15.5.6: a 405 must list allowed methods
        return status, body, headers

    # -- reads -----------------------------------------------------------------------------

    def _get(self, request: web.BaseRequest, kind: str, rid: int) -> Reply:
        record = self.data.raw(kind, rid)
        if record is None:
            return _error(404, "not found", id=rid)
        # A strong validator (RFC 9110 section 8.8.3) that changes whenever the record does.
        etag = f'"{kind}-{rid}-{record["version"]}"'
        modified = self.data.updated_at_ms(kind, rid) // 1000
        headers = {
            "ETag": etag,
            "Last-Modified": http_date(modified),
            "Cache-Control": self._cache_control[kind],
        }
        # RFC 9110 section 13.2.2: If-None-Match is evaluated first; If-Modified-Since only
        # when it is absent. Both end in 304 with the validators and no body (15.4.5).
        if_none_match = request.headers.get("If-None-Match")
        if if_none_match is not None:
            matched = _etag_match(if_none_match, etag)
            if matched is not None:
                # Echo the tag the client holds (it may carry a content-coding suffix), so
                # its cache finds the stored response to freshen (RFC 9111 section 4.3.4).
                headers["ETag"] = matched
                self.stats.not_modified += 1
                return 304, b"", headers
        else:
            since = request.headers.get("If-Modified-Since")
            if since is not None:
                when = parse_http_date(since)
                if when is not None and modified <= when:
                    self.stats.not_modified += 1
                    return 304, b"", headers
        return 200, _dumps(record), headers

    def _collection(self, request: web.BaseRequest, kind: str) -> Reply:
        query = request.query
        stats = self.stats
        stats.list_calls += 1
        headers = {"Cache-Control": self._cache_control[kind]}
        try:
            ids = query.get("ids")
            if ids is not None:
                stats.batch_calls += 1
                body, asked = by_ids(self.data, kind, ids, query, self.config.max_ids)
                stats.ids_requested += asked
            else:
                body, extra = list_page(self.data, kind, query, self.config, request.url)
                headers.update(extra)
        except BadRequest as exc:
            return _error(400, str(exc))
        raw = _dumps(body)
        # A strong validator of the listing page (RFC 9110 section 8.8.3): the same page
        # bytes, the same tag, so a poll that finds nothing new costs a 304 with no body.
        etag = f'"l-{hashlib.blake2b(raw, digest_size=8).hexdigest()}"'
        headers["ETag"] = etag
        if_none_match = request.headers.get("If-None-Match")
        if if_none_match is not None:
            matched = _etag_match(if_none_match, etag)
            if matched is not None:
                headers["ETag"] = matched
                stats.not_modified += 1
                return 304, b"", headers
        return 200, raw, headers

    # -- writes ----------------------------------------------------------------------------

    async def _write(self, request: web.BaseRequest, method: str, kind: str, rid: int | None) -> Reply | None:
        raw = await request.read() if request.body_exists else b""
        key = request.headers.get("Idempotency-Key")
        fingerprint = (method, request.path, hash(raw))
        if key:
            stored = self._idempotency.get(key)
            if stored is not None:
                if stored.fingerprint != fingerprint:
                    # draft-ietf-httpapi-idempotency-key-header section 2.7: a key reused
                    # with a different request is refused with 422.
                    return _error(422, "Idempotency-Key reused for a different request")
                self.stats.idempotent_replays += 1
                headers = dict(stored.headers)
                headers["Idempotent-Replayed"] = "true"
                return stored.status, stored.body, headers
        reply = self._apply(method, kind, rid, raw)
        if key and reply[0] < 500:
            store = self._idempotency
            store[key] = _Stored(fingerprint, reply)
            if len(store) > self.config.idempotency_keys:
                store.popitem(last=False)
        if reply[0] < 300 and self.faults.lost_response():
            # Applied, stored, and then the connection dies: the client cannot know.
            self.stats.lost_responses += 1
            _abort(request)
            return None
        return reply

    def _apply(self, method: str, kind: str, rid: int | None, raw: bytes) -> Reply:
        data = self.data
        if method == "DELETE":
            assert rid is not None
            if not data.delete(kind, rid):
                return _error(404, "not found", id=rid)
            self.stats.applied(kind, rid)
            return 204, b"", {}
        try:
            patch = json.loads(raw) if raw else {}
        except ValueError:
            return _error(400, "body is not valid JSON")
        if not isinstance(patch, dict):
            return _error(400, "body must be a JSON object")
        if rid is None:
            record = data.create(kind, patch)
            created = True
        else:
            record, created = data.upsert(kind, rid, patch)
        self.stats.applied(kind, record["id"])
        headers = {"ETag": f'"{kind}-{record["id"]}-{record["version"]}"'}
        if created:
            headers["Location"] = f"/{kind}/{record['id']}"
        return (201 if created else 200), _dumps(record), headers

    # -- admin -----------------------------------------------------------------------------

    async def _admin(self, request: web.BaseRequest, name: str) -> Reply:
        method = request.method
        if name == "health" and method == "GET":
            return 200, _dumps({"ok": True}), {}
        if name == "counters" and method == "GET":
            return 200, _dumps(self.stats.snapshot().to_dict()), {}
        if name == "reset" and method == "POST":
            self.stats.reset()
            return 200, _dumps({"ok": True}), {}
        if name == "requests" and method == "GET":
            limit = request.query.get("limit")
            recent = self.stats.recent_requests(int(limit) if limit else None)
            return 200, _dumps({"requests": [r.to_dict() for r in recent]}), {}
        if name == "config" and method == "GET":
            return 200, _dumps(self.config.to_dict()), {}
        if name == "config" and method == "POST":
            new = self.configure_from_dict(await _json_body(request))
            return 200, _dumps(new.to_dict()), {}
        if name == "outage" and method == "POST":
            body = await _json_body(request)
            self.start_outage(body.get("duration", 0))
            return 200, _dumps({"ok": True}), {}
        if name == "touch" and method == "POST":
            body = await _json_body(request)
            ids = body.get("ids")
            if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
                raise BadRequest("ids must be a list of integers")
            touched = self.touch(str(body.get("kind")), ids, body.get("updated_at"))
            return 200, _dumps({"data": touched}), {}
        if name == "streams" and method == "POST":
            body = await _json_body(request)
            dropped = self.streams.drop() if body.pop("drop", False) else 0
            stall = body.pop("stall", None)
            if stall is not None:
                if not isinstance(stall, int | float) or stall < 0:
                    raise BadRequest("stall must be a number of seconds >= 0")
                self.streams.stall(float(stall))
            control = self.streams.configure(**body)
            state = {k: getattr(control, k) for k in sorted(control.LIVE)}
            return 200, _dumps({"dropped": dropped, "open": self.streams.open_streams, **state}), {}
        if name == "streams" and method == "GET":
            streams = self.streams
            return 200, _dumps({
                "open": streams.open_streams, "connections": streams.connections,
                "resumed_from": streams.resumed_from[-100:], "events_sent": streams.events_sent,
            }), {}
        if name.startswith("records/") and method == "GET":
            _, kind, rid_text = [*name.split("/"), "", ""][:3]
            if not self.data.has_kind(kind) or not rid_text.isdigit():
                return _error(404, "not found")
            record = self.data.get(kind, int(rid_text))
            return (200, _dumps(record), {}) if record else _error(404, "not found")
        return _error(404, "unknown admin route", path=f"{ADMIN_PREFIX}{name}")

    # -- response --------------------------------------------------------------------------

    def _finish(self, request: web.BaseRequest, reply: Reply, *, resource: bool) -> web.Response:
        status, body, headers = reply
        tracking = self.config.tracking_header
        if tracking:
            headers[tracking] = os.urandom(8).hex()
        request_id = request.headers.get("X-Request-ID")
        if request_id:
            headers["X-Request-ID"] = request_id
        if resource:
            # RFC 9110 section 12.5.5: the representation depends on Accept-Encoding.
            headers["Vary"] = "Accept-Encoding"
            if body and len(body) >= self.config.compress_min_bytes:
                coding = self._coding(request.headers.get("Accept-Encoding"))
                if coding is not None:
                    body = _CODINGS[coding](body)
                    headers["Content-Encoding"] = coding
                    etag = headers.get("ETag")
                    if etag:
                        # A strong ETag must differ between content codings (RFC 9110
                        # section 8.8.3); suffix it as Apache httpd does.
                        headers["ETag"] = f'{etag[:-1]}-{coding}"'
        if body:
            headers["Content-Type"] = _JSON
            return web.Response(status=status, body=body, headers=headers)
        return web.Response(status=status, headers=headers)

    def _coding(self, accept: str | None) -> str | None:
        if not accept:
            return None
        cached = self._accept_cache.get(accept, "?")
        if cached != "?":
            return cached
        chosen = _negotiate(accept)
        if len(self._accept_cache) > 256:
            self._accept_cache.clear()
        self._accept_cache[accept] = chosen
        return chosen

    def __repr__(self) -> str:
        return f"TestbedApp(kinds={self.data.kinds}, records={len(self.data)})"


def _negotiate(accept: str) -> str | None:
    """Pick a content coding from Accept-Encoding (RFC 9110 section 12.5.3): highest q wins,
    ties go to the better ratio (zstd, br, gzip); ``q=0`` refuses; ``*`` covers the rest."""
    weights: dict[str, float] = {}
    for item in accept.split(","):
        name, _, params = item.partition(";")
        coding = name.strip().lower()
        if coding == "x-gzip":  # RFC 9110 section 8.4.1.3
            coding = "gzip"
        q = 1.0
        for param in params.split(";"):
            pname, _, value = param.strip().partition("=")
            if pname.lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if coding:
            weights[coding] = q
    best: str | None = None
    best_q = 0.0
    for coding in _CODINGS:
        q = weights.get(coding, weights.get("*", 0.0))
        if q > best_q:
            best, best_q = coding, q
    return best


def _etag_match(header: str, etag: str) -> str | None:
    """The entity-tag in an If-None-Match list that matches ``etag`` (opaque part, as the
    client sent it), or None. Weak comparison, as RFC 9110 section 13.1.2 requires for
    If-None-Match, ignoring a content-coding suffix that ``_finish`` may have added."""
    if header.strip() == "*":
        return etag
    for candidate in header.split(","):
        sent = candidate.strip()
        if sent.startswith("W/"):
            sent = sent[2:]
        tag = sent
        for suffix in _CODING_SUFFIXES:
            if tag.endswith(f'{suffix}"'):
                tag = tag[: -len(suffix) - 1] + '"'
                break
        if tag == etag:
            return sent
    return None


def _abort(request: web.BaseRequest) -> None:
    """Drop the connection without a response. SO_LINGER 0 makes close() send a TCP RST,
    so the client sees a reset (not a clean EOF) -- the harsher, more realistic failure."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def _json_body(request: web.BaseRequest) -> dict[str, Any]:
    raw = await request.read()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise BadRequest("body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    return body
