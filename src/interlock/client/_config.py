"""The Client's configuration: ``Timeout``, ``Concurrency``, ``Limits``, the work-avoiding
policies' ``Cache`` / ``CacheRule``, ``Batch`` and ``RateLimit``, and the named ``Profile``
presets. (``Retry`` and ``CircuitBreaker`` are the configs of a core decision object and live
with it in ``interlock.core``.)

Frozen and validated at construction, like every Interlock config object; durations in seconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from .._jsonpath import JsonPath
from .._redact import redact_url
from ..core.backoff import Backoff
from ..core.retry import Retry
from ..errors import ConfigError
from ._routes import RoutePattern

if TYPE_CHECKING:
    from .._models import Request
    from ..stores.cache import CacheStore
    from ..stores.quota import QuotaStore

__all__ = [
    "BACKGROUND",
    "INTERACTIVE",
    "PROFILES",
    "Batch",
    "Cache",
    "CacheRule",
    "Concurrency",
    "Limits",
    "Profile",
    "RateLimit",
    "Timeout",
    "batches_of",
    "profile_named",
]

_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def _positive_or_none(owner: str, name: str, value: float | None) -> None:
    if value is not None and not value > 0:
        raise ConfigError(owner, name, f"must be > 0 seconds or None, got {value!r}")


@dataclass(frozen=True, slots=True)
class Timeout:
    """Time limits, in seconds.

    - ``connect``: to open a connection;
    - ``read``: for one attempt's complete answer, counted from the moment the attempt starts
      (a new connection's setup included);
    - ``attempt``: an explicit per-attempt cap, when tighter than ``read``;
    - ``total``: the whole call, every attempt and every backoff together: the deadline after
      which no retry starts.

    ``read`` bounds the whole answer rather than each socket read: API answers arrive in one or
    two reads, and a per-read timer costs two event-loop timer operations per call.
    """

    connect: float | None = 3.0
    read: float | None = 10.0
    attempt: float | None = None
    total: float | None = 30.0

    def __post_init__(self) -> None:
        for name in ("connect", "read", "attempt", "total"):
            _positive_or_none("Timeout", name, getattr(self, name))

    @property
    def per_attempt(self) -> float | None:
        """The longest one attempt may take, before the call's deadline is applied."""
        caps = [c for c in (self.attempt, self.read) if c is not None]
        return min(caps) if caps else None


@dataclass(frozen=True, slots=True)
class Concurrency:
    """Bounds on requests in flight to one upstream. ``writes`` bounds unsafe methods (POST, PUT,
    PATCH, DELETE) on their own: seed 002 found 5 parallel writes the safe default."""

    limit: int | None = 100
    writes: int | None = 5

    def __post_init__(self) -> None:
        for name in ("limit", "writes"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError("Concurrency", name, f"must be an integer >= 1 or None, got {value!r}")

    @classmethod
    def coerce(cls, value: int | Concurrency | None) -> Concurrency | None:
        """The ``Client(concurrency=...)`` argument as a Concurrency: an int ``n`` bounds all
        calls to ``n`` and writes to ``min(n, 5)``; None means no bound."""
        if value is None or isinstance(value, Concurrency):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return cls(limit=value, writes=min(value, 5))
        raise ConfigError("Client", "concurrency", f"must be an int, a Concurrency or None, got {value!r}")


def _byte_bound(owner: str, name: str, value: object) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ConfigError(owner, name, f"must be a number of bytes >= 1 or None (no bound), got {value!r}")


@dataclass(frozen=True, eq=False)
class Limits:
    """Bounds on what one upstream may cost this process.

    ``max_response_bytes``: the largest answer read, counted on the wire and again while
    decoding gzip / br / zstd (so a small compression bomb stops at the bound, not at what it
    inflates to); past it the read stops, the connection is closed and the call fails with
    ``ResponseTooLarge``. Default 8 MiB; None: no bound.
    ``routes``: the same bound for some routes, by route template (``"/exports/*"``,
    ``"/reports/{id}"``, as ``Cache.routes``), the most specific template winning.
    ``max_routes``: how many distinct routes of the client (automatic names such as
    ``/users/alice``, where a slug is not recognised as an id, and names given with ``route=``)
    get their own statistics and Prometheus series; the ones after are all reported as
    ``"(other)"`` (with one warning). Declared templates (``Client(routes=...)``) always count
    on their own.
    """

    max_response_bytes: int | None = 8 * 1024 * 1024
    routes: Mapping[str, int | None] = field(default_factory=dict)
    max_routes: int = 200
    rules: tuple[tuple[RoutePattern, int | None], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        _byte_bound("Limits", "max_response_bytes", self.max_response_bytes)
        if not isinstance(self.max_routes, int) or isinstance(self.max_routes, bool) or self.max_routes < 1:
            raise ConfigError("Limits", "max_routes", f"must be an integer >= 1, got {self.max_routes!r}")
        if not isinstance(self.routes, Mapping):
            raise ConfigError("Limits", "routes", "must map route templates to a number of bytes or None")
        rules: list[tuple[RoutePattern, int | None]] = []
        for template, value in self.routes.items():
            _byte_bound("Limits", f"routes[{template!r}]", value)
            try:
                rules.append((RoutePattern(template), value))
            except ValueError as exc:
                raise ConfigError("Limits", "routes", str(exc)) from None
        rules.sort(key=lambda pair: pair[0].specificity)
        object.__setattr__(self, "rules", tuple(rules))

    def response_bytes_for(self, path: str) -> int | None:
        """The ``max_response_bytes`` of a request for ``path``: its most specific route rule's,
        else the default."""
        for pattern, value in self.rules:
            if pattern.regex.match(path):
                return value
        return self.max_response_bytes


def _non_negative(owner: str, name: str, value: float | None) -> None:
    if value is not None and (not isinstance(value, int | float) or not value >= 0 or math.isinf(value)):
        raise ConfigError(owner, name, f"must be a number of seconds >= 0, got {value!r}")


def _check_store(owner: str, store: object, seam: str) -> None:
    """A store named by a string is ``"memory"`` or a Redis URL; anything else is the seam itself."""
    if isinstance(store, str) and store != "memory" and not store.startswith(_REDIS_SCHEMES):
        shown = redact_url(store)
        raise ConfigError(owner, "store", f"must be 'memory', a redis:// URL or a {seam}, got {shown!r}")


def _store_repr(store: object) -> str:
    return repr(redact_url(store)) if isinstance(store, str) else repr(store)


@dataclass(frozen=True, slots=True)
class CacheRule:
    """How one route is cached. ``ttl``: seconds a response stays fresh. The stale windows and
    ``respect_headers`` default to the ``Cache``'s. ``tags``: templates filled from the route's
    placeholders (``"customer:{id}"``) for ``invalidate_tag``."""

    ttl: float
    stale_while_revalidate: float | None = None
    stale_if_error: float | None = None
    respect_headers: bool | None = None
    tags: Sequence[str] = ()

    def __post_init__(self) -> None:
        for name in ("ttl", "stale_while_revalidate", "stale_if_error"):
            _non_negative("CacheRule", name, getattr(self, name))
        if isinstance(self.tags, str):
            raise ConfigError("CacheRule", "tags", "must be a sequence of tag templates, not a string")
        object.__setattr__(self, "tags", tuple(self.tags))


@dataclass(frozen=True, eq=False)
class Cache:
    """Which routes of an upstream are cached, for how long, and where.

    ``routes`` maps route templates (``"/industries"``, ``"/zones/*"``, ``"/customers/{id}"``) to a
    TTL in seconds or a ``CacheRule``; routes not listed are never cached (transactional data).
    ``store``: None or ``"memory"`` (in-process LRU bounded by ``max_entries`` / ``max_bytes``),
    ``"redis://..."`` (shared by every process), or any ``CacheStore``.
    ``stale_while_revalidate``: seconds past freshness during which the stale copy is served
    while one background call refreshes it. ``stale_if_error``: seconds past freshness during
    which the stale copy stands in for a failing upstream or an open breaker.
    ``respect_headers``: let the upstream's ``Cache-Control`` (``no-store``, ``no-cache``,
    ``max-age``, ``must-revalidate``) override the rule's TTL.
    ``vary``: request headers that split entries (credentials are hashed, never stored).
    ``invalidate_on_write``: a successful POST/PUT/PATCH/DELETE on a path forgets its entries
    (RFC 9111 section 4.4).
    """

    routes: Mapping[str, float | CacheRule]
    store: str | CacheStore | None = None
    stale_while_revalidate: float = 0.0
    stale_if_error: float = 0.0
    respect_headers: bool = False
    vary: Sequence[str] = ("Accept", "Authorization")
    max_entries: int = 10_000
    max_bytes: int = 64 * 1024 * 1024
    namespace: str = "interlock:cache:"
    invalidate_on_write: bool = True
    rules: tuple[tuple[RoutePattern, CacheRule], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.routes, Mapping):
            raise ConfigError("Cache", "routes", "must map route templates to seconds or CacheRule")
        _non_negative("Cache", "stale_while_revalidate", self.stale_while_revalidate)
        _non_negative("Cache", "stale_if_error", self.stale_if_error)
        for name in ("max_entries", "max_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError("Cache", name, f"must be an integer >= 1, got {value!r}")
        if isinstance(self.vary, str):
            raise ConfigError("Cache", "vary", "must be a sequence of header names, not a string")
        _check_store("Cache", self.store, "CacheStore")
        rules: list[tuple[RoutePattern, CacheRule]] = []
        for template, value in self.routes.items():
            try:
                pattern = RoutePattern(template)
            except ValueError as exc:
                raise ConfigError("Cache", "routes", str(exc)) from None
            if isinstance(value, CacheRule):
                rule = value
            elif isinstance(value, int | float) and not isinstance(value, bool):
                _non_negative("Cache", f"routes[{template!r}]", value)
                rule = CacheRule(ttl=float(value))
            else:
                raise ConfigError(
                    "Cache", f"routes[{template!r}]", f"must be seconds or a CacheRule, got {value!r}"
                )
            rules.append((pattern, rule))
        rules.sort(key=lambda pair: pair[0].specificity)
        object.__setattr__(self, "rules", tuple(rules))
        object.__setattr__(self, "vary", tuple(self.vary))

    def __repr__(self) -> str:
        return (
            f"Cache(routes={dict(self.routes)!r}, store={_store_repr(self.store)}, "
            f"stale_while_revalidate={self.stale_while_revalidate!r}, stale_if_error={self.stale_if_error!r}, "
            f"respect_headers={self.respect_headers!r}, max_entries={self.max_entries!r}, "
            f"max_bytes={self.max_bytes!r})"
        )

    def rule_for(self, path: str) -> tuple[CacheRule, dict[str, str]] | None:
        """The rule of the most specific template matching ``path``, with the placeholders'
        values; None when the path is not cached."""
        for pattern, rule in self.rules:
            params = pattern.match(path)
            if params is not None:
                return rule, params
        return None

    @property
    def templates(self) -> list[str]:
        """The rules' templates that name a route (wildcards match many, so name none)."""
        return [p.template for p, _ in self.rules if not p.is_wildcard]


@dataclass(frozen=True, slots=True)
class Batch:
    """Serve single reads of ``route`` (``/customers/{id}``) by list calls to ``via``
    (``/customers?ids=1,2,3``).

    Calls arriving within ``window`` seconds of the first (default 5 ms), up to ``max_size``
    distinct ids, become one call. The list answer's items are found at ``items_path`` (dotted,
    ``""`` for a bare JSON array) and matched to callers by ``id_field``; an id absent from the
    answer is a 404 for its own caller only.
    """

    route: str
    via: str
    ids_param: str = "ids"
    max_size: int = 100
    window: float = 0.005
    items_path: str = "data"
    id_field: str = "id"
    separator: str = ","
    pattern: RoutePattern = field(init=False, repr=False, compare=False)
    items: JsonPath = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            pattern = RoutePattern(self.route)
        except ValueError as exc:
            raise ConfigError("Batch", "route", str(exc)) from None
        if len(pattern.names) != 1 or "*" in self.route:
            raise ConfigError(
                "Batch",
                "route",
                f"must hold exactly one placeholder for the id, like '/customers/{{id}}', got {self.route!r}",
            )
        if not self.via.startswith("/"):
            raise ConfigError("Batch", "via", f"must be a path starting with '/', got {self.via!r}")
        if not isinstance(self.max_size, int) or self.max_size < 1:
            raise ConfigError("Batch", "max_size", f"must be an integer >= 1, got {self.max_size!r}")
        _non_negative("Batch", "window", self.window)
        if not self.ids_param or not self.id_field:
            raise ConfigError("Batch", "ids_param", "ids_param and id_field must be non-empty")
        object.__setattr__(self, "pattern", pattern)
        object.__setattr__(self, "items", JsonPath.parse(self.items_path, owner="Batch", field="items_path"))

    @property
    def id_name(self) -> str:
        """The name of ``route``'s one placeholder (``id`` in ``/customers/{id}``)."""
        return self.pattern.names[0]


@dataclass(frozen=True, eq=False)
class RateLimit:
    """Pace calls to what the upstream allows, waiting rather than failing.

    ``per_second`` / ``burst``: the upstream's limit (burst defaults to one second's worth).
    ``adaptive``: learn the real limit and remaining quota from the upstream's headers (every
    ``X-RateLimit-*`` and IETF ``RateLimit`` dialect, ``Retry-After``) and re-pace live; on a 429
    the whole upstream pauses until the announced time. A quota announced with a reset (a fixed
    window: so many calls until a moment) is spent as it is announced and waited out to its
    end (``interlock.core.quota_window``). With ``adaptive`` and no ``per_second``, calls are not
    paced at all until the upstream announces a quota, or refuses a call with a 429 (then they
    pace at what it accepted before). What was learned is logged once, at INFO.
    ``max_pause``: the longest any pause or wait for a turn lasts before one call goes through to
    ask again, whatever the upstream announced (one absurd ``Retry-After: 86000`` must not stop
    an upstream for a day); learned rates are floored to one call per ``max_pause``.
    ``store``: None or ``"memory"`` (this process), ``"redis://..."`` (every process calling the
    upstream shares one quota), or any ``QuotaStore``.
    ``on_store_error``: when the shared store fails or does not answer in time, ``"local"``
    (the default) paces this process alone with a local bucket at the last known rate, with a
    warning and the ``interlock_ratelimit_store_errors`` metric, and goes back to the store on
    its next answer; ``"fail"`` refuses the call with ``RateLimited`` (fail closed).
    ``max_wait``: seconds a call may wait for its turn before failing with ``RateLimited``
    (None: wait as long as the call's deadline allows).
    ``key``: a header name (``"Authorization"``) or a function of the request, for upstreams
    called with several credentials, each with its own quota. Values are hashed, never stored.
    ``headroom`` / ``reserve``: safety margins, see ``interlock.core.bucket``.
    ``window``: the window assumed for an ``X-RateLimit-Limit`` that does not state one.
    ``warn_below``: log a warning when remaining quota drops below this share of the limit.
    """

    per_second: float | None = None
    burst: int | None = None
    adaptive: bool = True
    store: str | QuotaStore | None = None
    on_store_error: Literal["local", "fail"] = "local"
    max_wait: float | None = None
    key: str | Callable[[Request], str] | None = None
    headroom: float = 0.01
    reserve: float = 0.1
    window: float = 1.0
    warn_below: float = 0.2
    namespace: str = "interlock:quota:"
    max_pause: float = 60.0

    def __post_init__(self) -> None:
        if self.per_second is not None and (
            not isinstance(self.per_second, int | float)
            or not self.per_second > 0
            or math.isinf(self.per_second)
        ):
            raise ConfigError("RateLimit", "per_second", f"must be > 0 or None, got {self.per_second!r}")
        if self.per_second is None and not self.adaptive:
            raise ConfigError("RateLimit", "per_second", "is required unless adaptive=True")
        if self.burst is not None and (not isinstance(self.burst, int) or self.burst < 1):
            raise ConfigError("RateLimit", "burst", f"must be an integer >= 1 or None, got {self.burst!r}")
        _non_negative("RateLimit", "max_wait", self.max_wait)
        for name in ("headroom", "reserve", "warn_below"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0 <= value < 1:
                raise ConfigError("RateLimit", name, f"must be a fraction in [0, 1), got {value!r}")
        if not isinstance(self.window, int | float) or not self.window > 0:
            raise ConfigError("RateLimit", "window", f"must be > 0 seconds, got {self.window!r}")
        if (
            not isinstance(self.max_pause, int | float)
            or isinstance(self.max_pause, bool)
            or not 0 < self.max_pause < math.inf
        ):
            raise ConfigError(
                "RateLimit", "max_pause", f"must be a number of seconds > 0, got {self.max_pause!r}"
            )
        _check_store("RateLimit", self.store, "QuotaStore")
        if self.on_store_error not in ("local", "fail"):
            raise ConfigError(
                "RateLimit", "on_store_error", f"must be 'local' or 'fail', got {self.on_store_error!r}"
            )

    def __repr__(self) -> str:
        return (
            f"RateLimit(per_second={self.per_second!r}, burst={self.burst!r}, adaptive={self.adaptive!r}, "
            f"store={_store_repr(self.store)}, on_store_error={self.on_store_error!r}, "
            f"max_wait={self.max_wait!r})"
        )

    def describe(self) -> str:
        """A short human form for logs and reprs: ``10/s burst=auto adaptive=True``."""
        rate = f"{self.per_second:g}/s" if self.per_second else "learned"
        return f"{rate} burst={self.burst or 'auto'} adaptive={self.adaptive}"


def batches_of(value: Any) -> tuple[Batch, ...]:
    """The ``Client(batch=...)`` argument (None, a Batch or a sequence of them) as a tuple."""
    if value is None:
        return ()
    if isinstance(value, Batch):
        return (value,)
    batches = tuple(value)
    for b in batches:
        if not isinstance(b, Batch):
            raise ConfigError("Client", "batch", f"must be Batch objects, got {b!r}")
    return batches


@dataclass(frozen=True, slots=True)
class Profile:
    """A preset for one kind of caller: the ``retry`` policy and the ``timeout`` limits a Client
    uses for what it is not told explicitly. ``Client(url, profile="interactive")`` or
    ``"background"`` (``PROFILES`` holds both), or a ``Profile`` of your own.

    An explicit ``Client(retry=..., timeout=...)`` always wins over the profile's. A single call
    may name another profile (``client.get(path, profile="background")``): it then gets that
    profile's retry policy and deadline, unless the Client was given ``retry=`` / ``timeout=``
    explicitly. Interlock does so where it drives calls itself (``Sync`` polls and write-backs,
    ``Inbox.forward``, replays), so a job borrowing a request-serving client still waits out a
    breaker instead of dead-lettering every record of an outage.

    Rate-limit waits are bounded by the call's deadline: an interactive call whose turn would
    come after its deadline fails at once, a background call waits for it.
    """

    name: str
    retry: Retry
    timeout: Timeout
    summary: str
    """One line saying what the profile is for, shown by the demo and in reprs."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError("Profile", "name", f"must be a non-empty name, got {self.name!r}")
        if not isinstance(self.retry, Retry):
            raise ConfigError("Profile", "retry", f"must be an interlock.Retry, got {self.retry!r}")
        if not isinstance(self.timeout, Timeout):
            raise ConfigError("Profile", "timeout", f"must be an interlock.Timeout, got {self.timeout!r}")

    def describe(self) -> str:
        """The settings in a few words, for people: attempts, deadline, breaker behaviour."""
        retry, timeout = self.retry, self.timeout
        breaker = "waits out an open breaker" if retry.circuit_open else "fails fast on an open breaker"
        total = f"{timeout.total:g} s deadline" if timeout.total else "no deadline"
        return (
            f"{retry.attempts} attempts (backoff {retry.backoff.base:g} s x {retry.backoff.multiplier:g}^n, "
            f"cap {retry.backoff.cap:g} s), {total}, read {timeout.read:g} s per attempt, "
            f"Retry-After waited up to {retry.max_retry_after:g} s, {breaker}"
        )


INTERACTIVE = Profile(
    "interactive",
    retry=Retry(
        attempts=3, backoff=Backoff(base=0.1, multiplier=2.0, cap=1.0), max_retry_after=2.0, circuit_open=False
    ),
    timeout=Timeout(connect=1.0, read=5.0, total=8.0),
    summary="someone is waiting for the answer: few quick retries, an 8 s deadline, fail fast",
)
"""For calls made while a person waits (a request handler): three attempts a fraction of a
second apart, an 8 s deadline for everything, a ``Retry-After`` over 2 s not waited for, and an
open breaker fails the call at once (``CircuitOpen``) so the page can say so."""

BACKGROUND = Profile(
    "background",
    retry=Retry(
        attempts=8,
        backoff=Backoff(base=0.1, multiplier=2.0, cap=30.0),
        max_retry_after=120.0,
        circuit_open=True,
    ),
    timeout=Timeout(connect=3.0, read=30.0, total=300.0),
    summary="nobody is waiting (jobs, syncs, webhook handlers): wait out breakers and rate limits",
)
"""For work nobody waits on (a sync, a webhook handler, a replay): eight attempts backing off
from 0.1 s, doubling up to 30 s (counted afresh once an open breaker has closed again), a 5
minute deadline, ``Retry-After`` honoured up to 2 minutes, and an open breaker
waited out (``Retry(circuit_open=True)``) rather than failing the job's records."""

PROFILES: Mapping[str, Profile] = {p.name: p for p in (INTERACTIVE, BACKGROUND)}
"""The named profiles ``Client(profile=...)`` accepts: ``interactive`` and ``background``."""


def profile_named(value: str | Profile | None, owner: str = "Client", field: str = "profile") -> Profile | None:
    """The ``Profile`` for ``Client(profile=...)`` (a name from ``PROFILES``, a ``Profile``, or
    None); a ``ConfigError`` naming the accepted names otherwise."""
    if value is None or isinstance(value, Profile):
        return value
    found = PROFILES.get(value) if isinstance(value, str) else None
    if found is None:
        names = ", ".join(repr(n) for n in PROFILES)
        raise ConfigError(owner, field, f"must be one of {names}, a Profile or None, got {value!r}")
    return found
