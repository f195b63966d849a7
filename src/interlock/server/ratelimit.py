"""``RateLimitMiddleware``: per-client rate limits for your own API, plain ASGI.

::

    from starlette.middleware import Middleware
    from interlock.server import Limit, RateLimitMiddleware, RedisRateLimitBackend

    Middleware(
        RateLimitMiddleware,
        limits=[Limit("burst", 10, 1.0), Limit("daily", 10_000, 86_400.0, key=api_key)],
        backend=RedisRateLimitBackend("redis://127.0.0.1:6379/0"),
        trusted_proxies=["10.0.0.0/8"],
    )

The algorithm is GCRA (``interlock.core.gcra``): exact, smooth, one number per key. Every limit
that applies to a request is checked at once and a refused request consumes nothing. On Redis the
check is exactly one round trip: one Lua script run with ``EVALSHA`` (``EVAL`` once after a
``NOSCRIPT``, as after ``SCRIPT FLUSH`` or a restart), with time read from the Redis server so
processes whose clocks disagree still share one limit.

Behind a proxy, either let uvicorn rewrite the client address (``--proxy-headers
--forwarded-allow-ips``) or pass ``trusted_proxies`` here, not both.

Responses carry the IETF RateLimit fields (draft-ietf-httpapi-ratelimit-headers, structured
fields): ``RateLimit-Policy: "burst";q=10;w=1`` and ``RateLimit: "burst";r=7;t=1``, one list
member per limit; optionally the legacy ``X-RateLimit-Limit`` / ``-Remaining`` / ``-Reset`` for the
most constrained limit. A refusal is ``429`` with RFC 9457 problem details (type
``.../quota-exceeded``) and ``Retry-After``.

When the backend fails (Redis down, slow beyond ``timeout``), the request is admitted
(``fail_open=True``, the default) or refused with 429 (``fail_open=False``); either way a warning
is logged (at most once per 10 s) and ``interlock_server_ratelimit_backend_errors_total`` counts
it. Never a 5xx, never a wait longer than ``timeout``.
"""

from __future__ import annotations

import asyncio
import fnmatch
import ipaddress
import logging
import math
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .._clock import SYSTEM_CLOCK, Clock
from .._validate import check_count, check_seconds
from ..core.gcra import Verdict, check_all
from ..errors import ConfigError
from ._asgi import ASGIApp, HTTPMiddleware, Message, Receive, Scope, Send, header, send_problem
from ._metrics import RATELIMIT_BACKEND_ERRORS
from ._redis import open_redis

__all__ = [
    "Limit",
    "MemoryRateLimitBackend",
    "RateLimitBackend",
    "RateLimitMiddleware",
    "RedisRateLimitBackend",
    "client_ip",
]

log = logging.getLogger("interlock.server.ratelimit")

KeyFunction = Callable[[Scope], "str | None"]


@dataclass(frozen=True)
class Limit:
    """One limit: ``limit`` requests per ``window`` seconds for each key.

    ``key(scope)`` names who is limited (default: the client IP, see ``trusted_proxies``); a key
    function returning None exempts the request from this limit (e.g. no API key: another limit
    applies). ``paths`` (fnmatch patterns such as ``"/exports/*"``) and ``methods`` restrict which
    requests count; ``per_route=True`` gives each path its own quota. ``cost`` is what one request
    takes. ``name`` appears in the RateLimit fields and in Redis keys.
    """

    name: str
    limit: int
    window: float
    key: KeyFunction | None = None
    paths: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    per_route: bool = False
    cost: int = 1

    def __post_init__(self) -> None:
        if not self.name or not all(c.isalnum() or c in "-_." for c in self.name):
            raise ConfigError("Limit", "name", f"must be letters, digits, '-', '_' or '.', got {self.name!r}")
        check_count("Limit", "limit", self.limit)
        check_seconds("Limit", "window", self.window, positive=True)
        check_count("Limit", "cost", self.cost)
        if self.cost > self.limit:
            raise ConfigError("Limit", "cost", f"must be <= limit ({self.limit}), got {self.cost}")
        object.__setattr__(self, "paths", tuple(self.paths))
        object.__setattr__(self, "methods", tuple(m.upper() for m in self.methods))

    def applies(self, scope: Scope) -> bool:
        """Whether this limit counts the request."""
        if self.methods and scope.get("method", "GET") not in self.methods:
            return False
        return not self.paths or any(fnmatch.fnmatchcase(scope.get("path", ""), p) for p in self.paths)


class RateLimitBackend(Protocol):
    """Where the limits' state lives. ``check`` decides one request against several limits at
    once, atomically: ``keys[i]`` under ``limits[i] = (limit, window)``."""

    async def check(
        self, keys: list[str], limits: list[tuple[int, float]], cost: int
    ) -> tuple[bool, list[Verdict]]:
        """Admit or refuse, and the verdict of each limit."""
        ...


class MemoryRateLimitBackend:
    """The state in this process: right for one worker. Holds at most ``max_keys`` keys; at the
    bound the least recently used is dropped (that client starts afresh)."""

    def __init__(self, *, max_keys: int = 100_000, clock: Clock = SYSTEM_CLOCK) -> None:
        check_count("MemoryRateLimitBackend", "max_keys", max_keys)
        self.max_keys = max_keys
        self._clock = clock
        self._tats: OrderedDict[str, float] = OrderedDict()

    async def check(
        self, keys: list[str], limits: list[tuple[int, float]], cost: int
    ) -> tuple[bool, list[Verdict]]:
        """Decide with ``core.gcra.check_all`` on the monotonic clock."""
        now = self._clock.monotonic()
        tats = [self._tats.get(k) for k in keys]
        allowed, verdicts = check_all(tats, now, limits, cost)
        if allowed:
            for key, verdict in zip(keys, verdicts, strict=True):
                self._tats[key] = verdict.tat
                self._tats.move_to_end(key)
            while len(self._tats) > self.max_keys:
                self._tats.popitem(last=False)
        return allowed, verdicts

    def __repr__(self) -> str:
        return f"<MemoryRateLimitBackend keys={len(self._tats)}/{self.max_keys}>"


# core.gcra.check_all in Lua, in milliseconds of the Redis server's clock. KEYS: one per limit.
# ARGV: cost, then limit and window_ms per key. Returns {allowed, remaining, reset_ms, retry_ms, ...}.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local cost = tonumber(ARGV[1])
local n = #KEYS
local tats, limits, windows = {}, {}, {}
local allowed = 1
for i = 1, n do
  limits[i] = tonumber(ARGV[2 * i])
  windows[i] = tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', KEYS[i]) or 0) or 0
  if tat < now then tat = now end
  tats[i] = tat
  if tat + cost * windows[i] / limits[i] - windows[i] > now + 0.000001 then allowed = 0 end
end
local out = {allowed}
for i = 1, n do
  local interval = windows[i] / limits[i]
  local tat = tats[i]
  local retry = 0
  if allowed == 1 then
    tat = tat + cost * interval
    -- At least 1 ms: with an interval below the clock's precision (a huge limit), tat - now is 0
    -- and 'PX 0' is an error, which would fail every check.
    redis.call('SET', KEYS[i], string.format('%.17g', tat), 'PX', math.max(1, math.ceil(tat - now)))
  else
    retry = math.max(0, tat + cost * interval - windows[i] - now)
  end
  local remaining = math.max(0, math.floor((now - (tat - windows[i])) / interval + 0.000001))
  out[#out + 1] = remaining
  out[#out + 1] = math.ceil(tat - now)
  out[#out + 1] = math.ceil(retry)
end
return out
"""


class RedisRateLimitBackend:
    """The state in Redis, shared by every process: one Lua script per check, one round trip.

    ``client`` is borrowed when given (never closed); otherwise one is opened for ``url`` with
    socket timeouts of ``timeout`` and at most ``max_connections`` connections (checks beyond
    that wait up to ``timeout`` for one, rather than failing). Keys are ``namespace + limit
    name + key``.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        namespace: str = "interlock:ratelimit:",
        client: Any = None,
        timeout: float = 0.25,
        max_connections: int = 64,
    ) -> None:
        check_seconds("RedisRateLimitBackend", "timeout", timeout, positive=True)
        check_count("RedisRateLimitBackend", "max_connections", max_connections)
        self.url = url
        self.namespace = namespace
        self.timeout = timeout
        self._own = client is None
        if client is None:
            client = open_redis(
                url, timeout=timeout, max_connections=max_connections, owner="RedisRateLimitBackend"
            )
        self._redis: Any = client
        import hashlib

        self._sha = hashlib.sha1(_GCRA.encode()).hexdigest()
        self._pending: list[tuple[list[str], list[Any], asyncio.Future[Any]]] = []
        self._flushes: set[asyncio.Future[None]] = set()

    async def check(
        self, keys: list[str], limits: list[tuple[int, float]], cost: int
    ) -> tuple[bool, list[Verdict]]:
        """One ``EVALSHA`` (``EVAL`` after ``NOSCRIPT``, which caches the script again).

        Checks made in the same event-loop tick share one pipeline (auto-pipelining): still one
        ``EVALSHA`` per check and one round trip each, but one write and one read for the lot,
        which is most of the client's cost per check under concurrency."""
        full = [self.namespace + k for k in keys]
        args: list[Any] = [cost]
        for limit, window in limits:
            args += [limit, window * 1000.0]
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((full, args, future))
        if len(self._pending) == 1:
            asyncio.get_running_loop().call_soon(self._flush)
        reply = await future
        allowed = bool(int(reply[0]))
        verdicts = []
        for i in range(len(keys)):
            remaining, reset_ms, retry_ms = (int(x) for x in reply[1 + 3 * i : 4 + 3 * i])
            verdicts.append(Verdict(retry_ms == 0, remaining, reset_ms / 1000.0, retry_ms / 1000.0, math.nan))
        return allowed, verdicts

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        task = asyncio.ensure_future(self._send(batch))
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _send(self, batch: list[tuple[list[str], list[Any], asyncio.Future[Any]]]) -> None:
        from redis.exceptions import NoScriptError

        try:
            if len(batch) == 1:  # alone: a plain call costs less than a pipeline
                full, args, future = batch[0]
                try:
                    reply = await self._redis.evalsha(self._sha, len(full), *full, *args)
                except NoScriptError:
                    reply = await self._redis.eval(_GCRA, len(full), *full, *args)
                if not future.done():
                    future.set_result(reply)
                return
            pipe = self._redis.pipeline(transaction=False)
            for full, args, _ in batch:
                pipe.evalsha(self._sha, len(full), *full, *args)
            replies = await pipe.execute(raise_on_error=False)
            missing = [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]
            if missing:  # SCRIPT FLUSH or a restart: EVAL caches the script again
                pipe = self._redis.pipeline(transaction=False)
                for i in missing:
                    full, args, _ = batch[i]
                    pipe.eval(_GCRA, len(full), *full, *args)
                for i, reply in zip(missing, await pipe.execute(raise_on_error=False), strict=True):
                    replies[i] = reply
            for (_, _, future), reply in zip(batch, replies, strict=True):
                if future.done():
                    continue  # its caller gave up (the middleware's timeout)
                if isinstance(reply, Exception):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)
        except BaseException as exc:
            for _, _, future in batch:
                if not future.done():
                    if isinstance(exc, Exception):
                        future.set_exception(exc)
                    else:
                        future.cancel()
            if not isinstance(exc, Exception):
                raise

    async def aclose(self) -> None:
        """Let the checks in flight finish (each bounded by the socket timeout), then close the
        client if this backend opened it."""
        if self._flushes:
            await asyncio.gather(*self._flushes, return_exceptions=True)
        if self._own:
            await self._redis.aclose()

    def __repr__(self) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(self.url)  # host and path only: never a password in a repr
        where = f"{parts.scheme}://{parts.hostname or ''}{':' + str(parts.port) if parts.port else ''}{parts.path}"
        return f"<RedisRateLimitBackend {where} namespace={self.namespace!r}>"


def _networks(values: Iterable[str]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    out = []
    for value in values:
        try:
            out.append(ipaddress.ip_network(value, strict=False))
        except ValueError as exc:
            raise ConfigError(
                "RateLimitMiddleware",
                "trusted_proxies",
                f"must be IP addresses or CIDR networks, got {value!r}",
            ) from exc
    return tuple(out)


def _trusted(address: str, networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def client_ip(
    scope: Scope, trusted_proxies: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network] = ()
) -> str:
    """The client's address: the TCP peer, unless the peer is a trusted proxy, in which case the
    right-most ``X-Forwarded-For`` entry that is not itself a trusted proxy (entries further left
    were written by the client and cannot be believed)."""
    peer = (scope.get("client") or ("unknown", 0))[0]
    if not trusted_proxies or not _trusted(peer, trusted_proxies):
        return str(peer)
    forwarded = header(scope.get("headers", []), b"x-forwarded-for")
    if not forwarded:
        return str(peer)
    hops = [h.strip() for h in forwarded.decode("latin-1").split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, trusted_proxies):
            return hop[:64]
    return hops[0][:64] if hops else str(peer)


@dataclass
class _WarnEvery:
    seconds: float
    last: float = field(default=-math.inf)

    def due(self, now: float) -> bool:
        if now - self.last >= self.seconds:
            self.last = now
            return True
        return False


class RateLimitMiddleware(HTTPMiddleware):
    """ASGI middleware enforcing ``limits`` on HTTP requests (other scopes pass through).

    ``backend``: ``MemoryRateLimitBackend()`` by default, ``RedisRateLimitBackend`` for many
    processes. ``trusted_proxies``: addresses or CIDR networks whose ``X-Forwarded-For`` is
    believed. ``fail_open``: what a backend failure does (admit, or refuse with 429).
    ``timeout``: the most a check may wait. ``legacy_headers``: also send ``X-RateLimit-*``.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        limits: Sequence[Limit],
        backend: RateLimitBackend | None = None,
        trusted_proxies: Iterable[str] = (),
        fail_open: bool = True,
        timeout: float = 0.25,
        legacy_headers: bool = False,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if not limits or not all(isinstance(limit, Limit) for limit in limits):
            raise ConfigError("RateLimitMiddleware", "limits", "must be a non-empty list of Limit")
        names = [limit.name for limit in limits]
        if len(set(names)) != len(names):
            raise ConfigError("RateLimitMiddleware", "limits", f"names must be unique, got {names}")
        check_seconds("RateLimitMiddleware", "timeout", timeout, positive=True)
        self.app = app
        self.limits = tuple(limits)
        self.backend: RateLimitBackend = (
            backend if backend is not None else MemoryRateLimitBackend(clock=clock)
        )
        self._in_process = isinstance(self.backend, MemoryRateLimitBackend)
        self.trusted_proxies = _networks(trusted_proxies)
        self.fail_open = fail_open
        self.timeout = timeout
        self.legacy_headers = legacy_headers
        self._clock = clock
        self._warn = _WarnEvery(10.0)
        self.backend_errors = 0
        """Backend failures seen by this middleware (also counted in Prometheus)."""

    def _keys(self, scope: Scope) -> tuple[list[Limit], list[str]]:
        applied: list[Limit] = []
        keys: list[str] = []
        ip: str | None = None
        for limit in self.limits:
            if not limit.applies(scope):
                continue
            if limit.key is None:
                if ip is None:
                    ip = client_ip(scope, self.trusted_proxies)
                who: str | None = ip
            else:
                who = limit.key(scope)
            if who is None:
                continue
            key = f"{limit.name}:{who}"
            if limit.per_route:
                key += ":" + scope.get("path", "")
            applied.append(limit)
            keys.append(key)
        return applied, keys

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the request's limits, then answer 429 or call the app with the fields added."""
        applied, keys = self._keys(scope)
        if not applied:
            await self.app(scope, receive, send)
            return
        cost = max(limit.cost for limit in applied)
        pairs = [(limit.limit, limit.window) for limit in applied]
        try:
            if self._in_process:  # nothing to wait for: no timer per request
                allowed, verdicts = await self.backend.check(keys, pairs, cost)
            else:
                async with asyncio.timeout(self.timeout):
                    allowed, verdicts = await self.backend.check(keys, pairs, cost)
        except Exception as exc:  # any backend failure: fail open or closed, never a 5xx
            self.backend_errors += 1
            RATELIMIT_BACKEND_ERRORS.inc()
            if self._warn.due(self._clock.monotonic()):
                log.warning(
                    "rate limit backend %r failed (%s); %s",
                    self.backend,
                    type(exc).__name__,
                    "admitting requests (fail_open=True)"
                    if self.fail_open
                    else "refusing requests (fail_open=False)",
                )
            if self.fail_open:
                await self.app(scope, receive, send)
            else:
                await send_problem(
                    send,
                    429,
                    "quota-exceeded",
                    "Too Many Requests",
                    "The rate limit could not be checked; try again shortly.",
                    [(b"retry-after", b"1")],
                )
            return
        fields = self._fields(applied, verdicts)
        if not allowed:
            retry = max(_whole_seconds(v.retry_after) for v in verdicts if not v.allowed)
            refused = [limit.name for limit, v in zip(applied, verdicts, strict=True) if not v.allowed]
            await send_problem(
                send,
                429,
                "quota-exceeded",
                "Too Many Requests",
                f"Rate limit {', '.join(refused)} exceeded; retry after {max(1, retry)} s.",
                [(b"retry-after", str(max(1, retry)).encode()), *fields],
            )
            return

        async def send_with_fields(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *fields]
            await send(message)

        await self.app(scope, receive, send_with_fields)

    def _fields(self, applied: list[Limit], verdicts: list[Verdict]) -> list[tuple[bytes, bytes]]:
        policy = ", ".join(f'"{limit.name}";q={limit.limit};w={math.ceil(limit.window)}' for limit in applied)
        state = ", ".join(
            f'"{limit.name}";r={v.remaining};t={_whole_seconds(v.retry_after if not v.allowed else v.reset)}'
            for limit, v in zip(applied, verdicts, strict=True)
        )
        out = [(b"ratelimit-policy", policy.encode()), (b"ratelimit", state.encode())]
        if self.legacy_headers:
            limit, v = min(zip(applied, verdicts, strict=True), key=lambda pair: pair[1].remaining)
            out += [
                (b"x-ratelimit-limit", str(limit.limit).encode()),
                (b"x-ratelimit-remaining", str(v.remaining).encode()),
                (b"x-ratelimit-reset", str(_whole_seconds(v.reset)).encode()),
            ]
        return out

    def __repr__(self) -> str:
        names = ", ".join(f"{limit.name}={limit.limit}/{limit.window:g}s" for limit in self.limits)
        return f"<RateLimitMiddleware {names} backend={self.backend!r} fail_open={self.fail_open}>"


def _whole_seconds(seconds: float) -> int:
    # Rounded up to whole seconds as the RateLimit fields want, after rounding to milliseconds
    # (the Redis backend's unit): float noise (1800.0000000002) must not announce 1801.
    return math.ceil(round(seconds, 3))
