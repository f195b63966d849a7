"""Cache freshness decisions, after RFC 9111 (HTTP Caching) and RFC 5861 (stale-while-revalidate,
stale-if-error). Pure: callers pass the wall-clock time in.

What Interlock's cache is, in RFC 9111 terms: a *private* cache of one client application
(section 1: it may store responses to requests carrying Authorization, since it never serves
them to anyone else) whose freshness lifetimes come from the operator's per-route rules. When a
rule sets ``respect_headers``, the upstream's ``Cache-Control`` wins instead: ``no-store`` keeps
the response out (section 5.2.2.5), ``no-cache`` stores it but revalidates every time (5.2.2.4),
``max-age`` sets the lifetime (5.2.2.1), ``must-revalidate`` forbids serving it stale (5.2.2.2).

The entry records wall-clock times, not monotonic ones, because a Redis cache is shared by
processes whose monotonic clocks have nothing in common.

``CacheRead`` is the state machine of one GET through the cache (after hishel's RFC 9111 one):
fed what happened (the request, what the store held, the upstream's answer or failure) and the
time, it returns what to do next: ``Bypass``, ``Lookup``, ``Serve``, ``ServeStale`` (with the
reason), ``Revalidate`` (with the conditional headers), ``Fetch``, then ``Freshened``,
``Store`` or ``PassOn``. The driver (``client.policies.cache``) does the I/O and dispatches.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime
from enum import Enum
from typing import TypeVar

from .._models import SAFE_METHODS

__all__ = [
    "CACHEABLE_STATUSES",
    "Bypass",
    "CacheControl",
    "CacheEntry",
    "CacheRead",
    "CacheTerms",
    "Fetch",
    "Freshened",
    "Freshness",
    "Lookup",
    "PassOn",
    "Revalidate",
    "Serve",
    "ServeStale",
    "Store",
    "assess",
    "conditional_headers",
    "freshness_lifetime",
    "invalidates",
    "parse_cache_control",
    "refresh",
    "serve_stale_on_error",
    "storable",
    "vary_matches",
]

# RFC 9110 section 15.1 lists more statuses as heuristically cacheable; an API client wants only
# successful reads (a cached 404 would hide a record created a second later).
CACHEABLE_STATUSES = frozenset({200, 203})
# RFC 9111 section 3.2: a 304 updates the stored header fields, except these which describe the
# stored content itself (and hop-by-hop fields, which never reach us).
_KEEP_ON_304 = frozenset({"content-length", "content-encoding", "content-type", "transfer-encoding"})
# RFC 9110 sections 13.1 and 14.2: the caller's own conditional or range request; its answer
# (a 304, a 206) is for the caller to interpret, not for the cache to serve or store.
_CALLER_CONDITIONALS = ("If-None-Match", "If-Modified-Since", "Range", "If-Match", "If-Unmodified-Since")
# RFC 5861 section 4: the errors stale-if-error covers.
STALE_IF_ERROR_STATUSES = frozenset({500, 502, 503, 504})
# How long an entry with validators is kept past its staleness windows, so a stale read can
# still be revalidated with a cheap 304 instead of a full fetch.
REVALIDATION_RETENTION = 3600.0


@dataclass(frozen=True, slots=True)
class CacheControl:
    """The directives of a ``Cache-Control`` field this cache acts on (RFC 9111 section 5.2)."""

    no_store: bool = False
    no_cache: bool = False
    private: bool = False
    must_revalidate: bool = False
    max_age: float | None = None
    s_maxage: float | None = None
    stale_while_revalidate: float | None = None
    stale_if_error: float | None = None


def _seconds(value: str) -> float | None:
    # RFC 9111 section 1.2.2: delta-seconds, a non-negative integer; invalid means absent.
    value = value.strip().strip('"')
    return float(value) if value.isdigit() else None


def parse_cache_control(value: str | None) -> CacheControl:
    """Directives of a ``Cache-Control`` field (RFC 9111 section 5.2); unknown ones ignored."""
    if not value:
        return CacheControl()
    found: dict[str, object] = {}
    for part in value.split(","):
        name, _, arg = part.strip().partition("=")
        name = name.strip().lower()
        if name in ("no-store", "no-cache", "private", "must-revalidate", "proxy-revalidate"):
            found[name.replace("-", "_")] = True
        elif name in ("max-age", "s-maxage", "stale-while-revalidate", "stale-if-error"):
            seconds = _seconds(arg)
            if seconds is not None:
                found[name.replace("-", "_")] = seconds
    found.pop("proxy_revalidate", None)
    return CacheControl(**found)  # type: ignore[arg-type]


def _http_date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when.timestamp() if when.tzinfo is not None else None


def storable(status: int, headers: Mapping[str, str], respect_headers: bool) -> bool:
    """May this response be stored at all (RFC 9111 section 3)?"""
    if status not in CACHEABLE_STATUSES:
        return False
    if headers.get("Vary", "").strip() == "*":  # section 4.1: can never match a later request
        return False
    return not (respect_headers and parse_cache_control(headers.get("Cache-Control")).no_store)


def freshness_lifetime(ttl: float, headers: Mapping[str, str], respect_headers: bool) -> float:
    """Seconds the response stays fresh: the rule's ``ttl``, or when ``respect_headers`` the
    upstream's own statement (RFC 9111 section 4.2.1: ``max-age``, then ``Expires - Date``),
    falling back to the rule when the upstream says nothing."""
    if not respect_headers:
        return ttl
    cc = parse_cache_control(headers.get("Cache-Control"))
    if cc.no_cache:
        return 0.0
    if cc.max_age is not None:
        return cc.max_age
    expires, date = _http_date(headers.get("Expires")), _http_date(headers.get("Date"))
    if headers.get("Expires") is not None and expires is None:
        return 0.0  # section 5.3: an invalid Expires means "already expired"
    if expires is not None and date is not None:
        return max(0.0, expires - date)
    return ttl


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """A stored response and what is needed to judge and revalidate it."""

    status: int
    headers: tuple[tuple[str, str], ...]
    content: bytes
    stored_at: float
    """Wall-clock time (epoch seconds) the response was received or last revalidated."""
    lifetime: float
    stale_while_revalidate: float = 0.0
    stale_if_error: float = 0.0
    initial_age: float = 0.0
    """The upstream's ``Age`` at reception (RFC 9111 section 4.2.3, simplified: no
    request/response delay correction; an API client is one hop from the origin)."""
    must_revalidate: bool = False
    vary: tuple[tuple[str, str], ...] = ()
    """(lower-cased field name, request value) for each field the response's Vary names."""
    tags: tuple[str, ...] = ()

    def header(self, name: str) -> str | None:
        """The stored value of header ``name`` (case-insensitive), or None."""
        lower = name.lower()
        for key, value in self.headers:
            if key.lower() == lower:
                return value
        return None

    @property
    def etag(self) -> str | None:
        """The stored ``ETag`` validator (RFC 9110 section 8.8.3)."""
        return self.header("ETag")

    @property
    def last_modified(self) -> str | None:
        """The stored ``Last-Modified`` validator (RFC 9110 section 8.8.2)."""
        return self.header("Last-Modified")

    @property
    def has_validators(self) -> bool:
        """True when the entry can be revalidated with a conditional request (section 4.3.1)."""
        return self.etag is not None or self.last_modified is not None

    def age(self, now: float) -> float:
        """The entry's age at wall-clock time ``now`` (section 4.2.3)."""
        return self.initial_age + max(0.0, now - self.stored_at)

    def retention(self) -> float:
        """Seconds, from ``stored_at``, the store should keep this entry."""
        keep = max(self.stale_while_revalidate, self.stale_if_error)
        if self.has_validators:
            keep = max(keep, REVALIDATION_RETENTION)
        return max(1.0, self.lifetime - self.initial_age + keep)

    # A compact binary form for stores that hold bytes: length-prefixed JSON metadata, then the
    # content. ``compress_over`` bytes and more are zlib-compressed (API JSON shrinks ~5-10x).
    def to_bytes(self, compress_over: int = 1024) -> bytes:
        """The entry in the binary form stores keep (``from_bytes`` reads it back)."""
        meta = json.dumps(
            [
                self.status,
                self.headers,
                self.stored_at,
                self.lifetime,
                self.stale_while_revalidate,
                self.stale_if_error,
                self.initial_age,
                self.must_revalidate,
                self.vary,
                self.tags,
            ],
            separators=(",", ":"),
        ).encode()
        raw = struct.pack(">I", len(meta)) + meta + self.content
        if len(raw) >= compress_over:
            return b"z" + zlib.compress(raw, 1)
        return b"r" + raw

    @classmethod
    def from_bytes(cls, data: bytes) -> CacheEntry:
        """The entry ``to_bytes`` wrote; ValueError for anything else."""
        marker, body = data[:1], data[1:]
        if marker == b"z":
            body = zlib.decompress(body)
        elif marker != b"r":
            raise ValueError("not a cache entry")
        (size,) = struct.unpack(">I", body[:4])
        status, headers, stored_at, lifetime, swr, sie, age, must, vary, tags = json.loads(body[4 : 4 + size])
        pairs, content = tuple((k, v) for k, v in headers), body[4 + size :]
        varies = tuple((k, v) for k, v in vary)
        # Positional, in the fields' own order (the order ``to_bytes`` writes, content aside).
        return cls(status, pairs, content, stored_at, lifetime, swr, sie, age, must, varies, tuple(tags))

    @property
    def size(self) -> int:
        """Bytes the entry takes, roughly: what a bounded store counts."""
        return len(self.content) + sum(len(k) + len(v) for k, v in self.headers) + 128


def new_entry(
    *,
    status: int,
    headers: Iterable[tuple[str, str]],
    content: bytes,
    now: float,
    ttl: float,
    respect_headers: bool,
    stale_while_revalidate: float,
    stale_if_error: float,
    request_headers: Mapping[str, str],
    tags: Iterable[str] = (),
) -> CacheEntry:
    """Build the entry for a response just received (the caller checked ``storable``)."""
    pairs = tuple((k, v) for k, v in headers if k.lower() not in ("set-cookie", "transfer-encoding"))
    lookup = {k.lower(): v for k, v in pairs}
    lifetime = freshness_lifetime(ttl, lookup_mapping(pairs), respect_headers)
    cc = parse_cache_control(lookup.get("cache-control"))
    swr, sie = stale_while_revalidate, stale_if_error
    if respect_headers:
        # RFC 5861: the upstream may grant the stale windows itself.
        swr = cc.stale_while_revalidate if cc.stale_while_revalidate is not None else swr
        sie = cc.stale_if_error if cc.stale_if_error is not None else sie
    age = _seconds(lookup.get("age", "")) or 0.0
    vary_names = [v.strip().lower() for v in lookup.get("vary", "").split(",") if v.strip()]
    vary = tuple((name, request_headers.get(name, "")) for name in vary_names)
    return CacheEntry(
        status=status,
        headers=pairs,
        content=content,
        stored_at=now,
        lifetime=lifetime,
        stale_while_revalidate=swr,
        stale_if_error=sie,
        initial_age=age,
        must_revalidate=respect_headers and cc.must_revalidate,
        vary=vary,
        tags=tuple(tags),
    )


class _Lookup(dict[str, str]):
    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return super().get(key.lower(), default)

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key.lower() if isinstance(key, str) else key)


def lookup_mapping(pairs: Iterable[tuple[str, str]]) -> Mapping[str, str]:
    """A case-insensitive read-only view of header pairs (first value wins)."""
    out = _Lookup()
    for key, value in pairs:
        out.setdefault(key.lower(), value)
    return out


class Freshness(Enum):
    """How a stored entry stands at a given time."""

    FRESH = "fresh"
    """Serve it; no upstream call (RFC 9111 section 4.2)."""
    STALE_REVALIDATE = "stale_while_revalidate"
    """Serve it stale now and refresh it in the background (RFC 5861 section 3)."""
    STALE = "stale"
    """Must not be served without revalidating (section 4.3) or fetching."""


def assess(entry: CacheEntry, now: float) -> Freshness:
    """Fresh (section 4.2), servable stale while revalidating (RFC 5861 section 3), or stale."""
    age = entry.age(now)
    if age < entry.lifetime:
        return Freshness.FRESH
    if not entry.must_revalidate and age < entry.lifetime + entry.stale_while_revalidate:
        return Freshness.STALE_REVALIDATE
    return Freshness.STALE


def serve_stale_on_error(entry: CacheEntry, now: float) -> bool:
    """May ``entry`` stand in for an upstream that failed (RFC 5861 section 4)?"""
    return not entry.must_revalidate and entry.age(now) < entry.lifetime + entry.stale_if_error


def vary_matches(entry: CacheEntry, request_headers: Mapping[str, str]) -> bool:
    """RFC 9111 section 4.1: a stored response is used only if the request's values of the
    fields its ``Vary`` names match those of the request that stored it."""
    return all(request_headers.get(name, "") == value for name, value in entry.vary)


def conditional_headers(entry: CacheEntry) -> dict[str, str]:
    """Validators to revalidate with (RFC 9111 section 4.3.1): ``If-None-Match`` from the
    ETag, and ``If-Modified-Since`` from Last-Modified (ignored upstream when both are sent,
    RFC 9110 section 13.1.3, but harmless and useful to servers that only know dates)."""
    out: dict[str, str] = {}
    if entry.etag is not None:
        out["If-None-Match"] = entry.etag
    if entry.last_modified is not None:
        out["If-Modified-Since"] = entry.last_modified
    return out


def refresh(
    entry: CacheEntry,
    headers: Iterable[tuple[str, str]],
    now: float,
    ttl: float,
    respect_headers: bool,
) -> CacheEntry:
    """The entry after a 304 Not Modified (RFC 9111 section 4.3.4): same content, header fields
    updated from the 304, freshness restarted."""
    updates: dict[str, list[tuple[str, str]]] = {}
    for key, value in headers:
        if key.lower() not in _KEEP_ON_304:
            updates.setdefault(key.lower(), []).append((key, value))
    merged: list[tuple[str, str]] = [(k, v) for k, v in entry.headers if k.lower() not in updates]
    for pairs in updates.values():
        merged.extend(pairs)
    lifetime = freshness_lifetime(ttl, lookup_mapping(merged), respect_headers)
    age = _seconds(lookup_mapping(merged).get("age") or "") or 0.0
    return replace(entry, headers=tuple(merged), stored_at=now, lifetime=lifetime, initial_age=age)


def invalidates(method: str, status: int) -> bool:
    """RFC 9111 section 4.4: a non-error answer (2xx, 3xx) to an unsafe method invalidates the
    stored responses of the target URI (and of its ``Location`` / ``Content-Location``)."""
    return method not in SAFE_METHODS and status < 400


# -- one GET through the cache: the decisions ------------------------------------------------


@dataclass(frozen=True, slots=True)
class CacheTerms:
    """How one route's responses are kept: the rule's TTL, whether the upstream's
    ``Cache-Control`` overrides it, and the RFC 5861 stale windows (seconds)."""

    ttl: float
    respect_headers: bool = False
    stale_while_revalidate: float = 0.0
    stale_if_error: float = 0.0


@dataclass(frozen=True, slots=True)
class Bypass:
    """Pass the request on untouched: read nothing, store nothing (the caller's own
    conditional or range request, RFC 9110 sections 13.1 and 14.2)."""


@dataclass(frozen=True, slots=True)
class Lookup:
    """Read the stored entry for this request and hand it (or None) to ``CacheRead.stored``."""


@dataclass(frozen=True, slots=True)
class Serve:
    """Answer with the stored ``entry``, without calling upstream: it is fresh (section 4.2)."""

    entry: CacheEntry


@dataclass(frozen=True, slots=True)
class Revalidate:
    """Ask the upstream whether ``entry`` still holds: send the request with ``headers`` added,
    its validators (section 4.3.1). A 304 makes it fresh again (section 4.3.4)."""

    entry: CacheEntry
    headers: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Fetch:
    """Send the request upstream as it is. ``entry``: a stale entry without validators, kept to
    stand in should the upstream fail (RFC 5861 section 4); None when there is none."""

    entry: CacheEntry | None = None


@dataclass(frozen=True, slots=True)
class ServeStale:
    """Answer with ``entry`` although it is stale, ``because`` it may (the RFC 5861 window that
    allows it, and why it is used). With ``refresh`` (stale-while-revalidate, RFC 5861 section
    3), send that in the background and report its answer to the same ``CacheRead``."""

    entry: CacheEntry
    because: str
    refresh: Revalidate | Fetch | None = None


@dataclass(frozen=True, slots=True)
class Freshened:
    """The upstream answered 304 Not Modified: store ``entry`` (the stored response with the
    304's header fields, freshness restarted; section 4.3.4) and answer with it."""

    entry: CacheEntry


@dataclass(frozen=True, slots=True)
class Store:
    """Answer with the upstream's response and store ``entry``, made from it (section 3)."""

    entry: CacheEntry


@dataclass(frozen=True, slots=True)
class PassOn:
    """Answer with what the upstream gave, the response or the error; store nothing."""


Start = Bypass | Lookup | Fetch
"""What ``CacheRead.start`` decides."""
Found = Serve | ServeStale | Revalidate | Fetch
"""What ``CacheRead.stored`` decides."""
Answered = Freshened | Store | PassOn | ServeStale
"""What ``CacheRead.answered`` and ``CacheRead.failed`` decide."""

_Sent = TypeVar("_Sent", bound=Revalidate | Fetch)
STALE_WHILE_REVALIDATE = "stale-while-revalidate"
STALE_IF_ERROR = "stale-if-error"


class CacheRead:
    """One GET of a cached route through this private cache, as a state machine: each method
    takes what just happened (and the wall-clock time) and returns what to do next.

    ``start()`` -> ``Bypass`` | ``Lookup`` | ``Fetch``; after a ``Lookup``, ``stored(entry)`` ->
    ``Serve`` | ``ServeStale`` | ``Revalidate`` | ``Fetch``; after sending a ``Revalidate`` or
    ``Fetch`` (also one a ``ServeStale`` asks for in the background), ``answered(...)`` or
    ``failed(...)`` -> ``Freshened`` | ``Store`` | ``PassOn`` | ``ServeStale``. Pure: no I/O.
    """

    __slots__ = ("_may_store", "_request_headers", "_sent", "_tags", "_terms")

    def __init__(
        self, request_headers: Mapping[str, str], terms: CacheTerms, tags: Iterable[str] = ()
    ) -> None:
        self._request_headers = request_headers
        self._terms = terms
        self._tags = tuple(tags)
        self._may_store = True
        self._sent: Revalidate | Fetch = Fetch()

    def start(self) -> Start:
        """Decide from the request alone."""
        headers = self._request_headers
        for name in _CALLER_CONDITIONALS:
            if name in headers:
                return Bypass()
        cc = parse_cache_control(headers.get("Cache-Control"))
        # Section 5.2.1.5: no-store in the request forbids storing its answer.
        self._may_store = not cc.no_store
        if cc.no_cache or cc.no_store:
            # Section 5.2.1.4: no stored response may answer without validation; a plain
            # fetch is the simplest way to honour it.
            return self._send(Fetch())
        return Lookup()

    def stored(self, entry: CacheEntry | None, now: float) -> Found:
        """Decide from what the store holds for this request (None: nothing)."""
        if entry is None or not vary_matches(entry, self._request_headers):  # section 4.1
            return self._send(Fetch())
        state = assess(entry, now)
        if state is Freshness.FRESH:
            return Serve(entry)
        refresh = Revalidate(entry, conditional_headers(entry)) if entry.has_validators else Fetch(entry)
        if state is Freshness.STALE_REVALIDATE:
            return ServeStale(entry, STALE_WHILE_REVALIDATE, refresh=self._send(refresh))
        return self._send(refresh)

    def answered(
        self, status: int, headers: Iterable[tuple[str, str]], content: bytes, now: float
    ) -> Answered:
        """Decide from the upstream's answer to what was sent."""
        sent, terms = self._sent, self._terms
        if status in STALE_IF_ERROR_STATUSES:
            stale = self._stale_if_error(f"status {status}", now)
            if stale is not None:
                return stale
        pairs = list(headers)
        if status == 304 and isinstance(sent, Revalidate):
            return Freshened(refresh(sent.entry, pairs, now, terms.ttl, terms.respect_headers))
        if self._may_store and storable(status, lookup_mapping(pairs), terms.respect_headers):
            entry = new_entry(
                status=status, headers=pairs, content=content, now=now, ttl=terms.ttl,
                respect_headers=terms.respect_headers, request_headers=self._request_headers,
                stale_while_revalidate=terms.stale_while_revalidate,
                stale_if_error=terms.stale_if_error, tags=self._tags,
            )  # fmt: skip
            return Store(entry)
        return PassOn()

    def failed(self, why: str, now: float) -> ServeStale | PassOn:
        """Decide after what was sent failed with an error (``why`` describes it)."""
        return self._stale_if_error(why, now) or PassOn()

    def _stale_if_error(self, why: str, now: float) -> ServeStale | None:
        entry = self._sent.entry
        if entry is not None and serve_stale_on_error(entry, now):  # RFC 5861 section 4
            return ServeStale(entry, f"{STALE_IF_ERROR}: {why}")
        return None

    def _send(self, decision: _Sent) -> _Sent:
        self._sent = decision
        return decision

    def __repr__(self) -> str:
        return f"<CacheRead sent={type(self._sent).__name__} {self._terms}>"
