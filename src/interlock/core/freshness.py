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
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime
from enum import Enum

__all__ = [
    "CACHEABLE_STATUSES",
    "CacheControl",
    "CacheEntry",
    "Freshness",
    "assess",
    "conditional_headers",
    "freshness_lifetime",
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
# RFC 5861 section 4: the errors stale-if-error covers.
STALE_IF_ERROR_STATUSES = frozenset({500, 502, 503, 504})
# How long an entry with validators is kept past its staleness windows, so a stale read can
# still be revalidated with a cheap 304 instead of a full fetch.
REVALIDATION_RETENTION = 3600.0


@dataclass(frozen=True, slots=True)
class CacheControl:
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
        lower = name.lower()
        for key, value in self.headers:
            if key.lower() == lower:
                return value
        return None

    @property
    def etag(self) -> str | None:
        return self.header("ETag")

    @property
    def last_modified(self) -> str | None:
        return self.header("Last-Modified")

    @property
    def has_validators(self) -> bool:
        return self.etag is not None or self.last_modified is not None

    def age(self, now: float) -> float:
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
        marker, body = data[:1], data[1:]
        if marker == b"z":
            body = zlib.decompress(body)
        elif marker != b"r":
            raise ValueError("not a cache entry")
        (size,) = struct.unpack(">I", body[:4])
        status, headers, stored_at, lifetime, swr, sie, age, must, vary, tags = json.loads(body[4 : 4 + size])
        return cls(
            status=status,
            headers=tuple((k, v) for k, v in headers),
            content=body[4 + size :],
            stored_at=stored_at,
            lifetime=lifetime,
            stale_while_revalidate=swr,
            stale_if_error=sie,
            initial_age=age,
            must_revalidate=must,
            vary=tuple((k, v) for k, v in vary),
            tags=tuple(tags),
        )

    @property
    def size(self) -> int:
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
    FRESH = "fresh"
    """Serve it; no upstream call (RFC 9111 section 4.2)."""
    STALE_REVALIDATE = "stale_while_revalidate"
    """Serve it stale now and refresh it in the background (RFC 5861 section 3)."""
    STALE = "stale"
    """Must not be served without revalidating (section 4.3) or fetching."""


def assess(entry: CacheEntry, now: float) -> Freshness:
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
