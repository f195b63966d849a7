"""Drives ``core.freshness`` over a ``CacheStore``: serve fresh entries, revalidate stale ones
with their validators (a 304 refreshes the entry), serve stale copies while refreshing in the
background or while the upstream fails, and forget what writes change.

A cache must never break a call: store errors are logged and the call goes upstream as if the
cache were not there.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import quote, urlsplit

from multidict import CIMultiDict, CIMultiDictProxy

from ..._clock import Clock
from ..._metrics import CACHE_RESULTS, work_stats
from ..._models import Request, Response
from ...core import freshness as fr
from ...errors import CallError
from ...stores import open_cache
from ...stores.cache import CacheStore
from .._options import Cache, CacheRule
from .._pipeline import Handler

_log = logging.getLogger("interlock.cache")
# The caller asked for a fresh answer or made its own conditional request: not ours to answer.
_BYPASS_HEADERS = ("If-None-Match", "If-Modified-Since", "Range", "If-Match", "If-Unmodified-Since")
_STORE_ERROR_LOG_EVERY = 30.0
_CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key"})


def open_cache_store(config: Cache, clock: Clock) -> CacheStore:
    """The store ``config.store`` names (a URL, "memory" or None), or the ``CacheStore`` given."""
    if config.store is None or isinstance(config.store, str):
        return open_cache(
            config.store,
            max_entries=config.max_entries,
            max_bytes=config.max_bytes,
            namespace=config.namespace,
            clock=clock,
            owner="Cache",
            field="store",
        )
    return config.store


class CachePolicy:
    def __init__(self, config: Cache, upstream: str, clock: Clock) -> None:
        self.config = config
        self.upstream = upstream
        self.store = open_cache_store(config, clock)
        self._own_store = config.store is None or isinstance(config.store, str)
        self._clock = clock
        self._vary = tuple(h.lower() for h in config.vary)
        self._counts: dict[str, dict[str, int]] = {}
        self._work = work_stats(upstream)
        self._refreshing: dict[str, asyncio.Task[None]] = {}
        self._last_store_error = -1e18

    # -- keys -------------------------------------------------------------------------------
    def _base(self, path: str) -> str:
        return f"{self.upstream}|{path}?"

    def key(self, request: Request) -> str:
        query = "&".join(f"{quote(k)}={quote(v)}" for k, v in sorted(request.params.items()))
        vary = []
        for name in self._vary:
            value = request.headers.get(name)
            if value is not None:
                if name in _CREDENTIAL_HEADERS:  # never a credential in a store key
                    value = hashlib.sha256(value.encode()).hexdigest()[:16]
                vary.append(f"{name}={value}")
        return f"{self._base(request.path)}{query}|{'&'.join(vary)}"

    # -- the policy -------------------------------------------------------------------------
    async def handle(self, request: Request, call_next: Handler) -> Response:
        if request.method != "GET":
            response = await call_next(request)
            if self.config.invalidate_on_write and not request.is_safe and response.status < 400:
                await self._invalidate_write(request, response)
            return response
        found = self.config.rule_for(request.path)
        if found is None or any(h in request.headers for h in _BYPASS_HEADERS):
            return await call_next(request)
        rule, params = found
        cc = fr.parse_cache_control(request.headers.get("Cache-Control"))
        key = self.key(request)
        entry = None if cc.no_cache or cc.no_store else await self._get(key)
        now = self._clock.time()
        if entry is not None and not fr.vary_matches(entry, request.headers):
            entry = None
        if entry is not None:
            state = fr.assess(entry, now)
            if state is fr.Freshness.FRESH:
                self._count(request.route, "hit")
                return self._serve(entry, request, now, stale=False)
            if state is fr.Freshness.STALE_REVALIDATE:
                self._count(request.route, "stale")
                self._refresh_in_background(key, request, entry, rule, params, call_next)
                return self._serve(entry, request, now, stale=True)
        return await self._fetch(key, request, entry, rule, params, call_next, store=not cc.no_store)

    async def _fetch(
        self,
        key: str,
        request: Request,
        entry: fr.CacheEntry | None,
        rule: CacheRule,
        params: Mapping[str, str],
        call_next: Handler,
        *,
        store: bool = True,
        background: bool = False,
    ) -> Response:
        outgoing = request
        if entry is not None and entry.has_validators:
            outgoing = replace(request, headers=request.headers.copy(), extensions=dict(request.extensions))
            outgoing.headers.update(fr.conditional_headers(entry))
        try:
            response = await call_next(outgoing)
        except CallError as exc:
            now = self._clock.time()
            if entry is not None and fr.serve_stale_on_error(entry, now):
                self._stale_on_error(request, f"{type(exc).__name__}: {exc}", background)
                return self._serve(entry, request, now, stale=True)
            raise
        now = self._clock.time()
        if (
            response.status in fr.STALE_IF_ERROR_STATUSES
            and entry is not None
            and fr.serve_stale_on_error(entry, now)
        ):
            self._stale_on_error(request, f"status {response.status}", background)
            return self._serve(entry, request, now, stale=True)
        respect = self._respect(rule)
        if response.status == 304 and entry is not None and outgoing is not request:
            # RFC 9111 section 4.3.4: the stored response is fresh again, with updated headers.
            refreshed = fr.refresh(entry, response.headers.items(), now, rule.ttl, respect)
            await self._set(key, refreshed)
            if not background:
                self._count(request.route, "revalidated")
            served = self._serve(refreshed, request, now, stale=False)
            served.attempts, served.tracking_id = response.attempts, response.tracking_id
            return served
        if not background:
            self._count(request.route, "miss")
        if store and fr.storable(response.status, response.headers, respect):
            new = fr.new_entry(
                status=response.status,
                headers=response.headers.items(),
                content=response.content,
                now=now,
                ttl=rule.ttl,
                respect_headers=respect,
                stale_while_revalidate=self._swr(rule),
                stale_if_error=self._sie(rule),
                request_headers=request.headers,
                tags=self._tags(rule, params),
            )
            await self._set(key, new)
        return response

    def _stale_on_error(self, request: Request, why: str, background: bool) -> None:
        if not background:
            self._count(request.route, "stale")
        _log.warning(
            "%s%s: upstream failed (%s); serving the stale cached copy (stale_if_error)",
            self.upstream,
            request.route,
            why,
            extra={"interlock": {"upstream": self.upstream, "route": request.route, "stale": True}},
        )

    def _refresh_in_background(
        self,
        key: str,
        request: Request,
        entry: fr.CacheEntry,
        rule: CacheRule,
        params: Mapping[str, str],
        call_next: Handler,
    ) -> None:
        if key in self._refreshing:
            return  # RFC 5861 section 3: one refresh at a time, the others keep serving stale

        async def refresh() -> None:
            try:
                await self._fetch(key, request, entry, rule, params, call_next, background=True)
            except Exception as exc:
                _log.info("%s%s: background revalidation failed: %s", self.upstream, request.route, exc)
            finally:
                self._refreshing.pop(key, None)

        self._refreshing[key] = asyncio.ensure_future(refresh())

    def _serve(self, entry: fr.CacheEntry, request: Request, now: float, *, stale: bool) -> Response:
        headers: CIMultiDict[str] = CIMultiDict(entry.headers)
        headers["Age"] = str(int(entry.age(now)))  # RFC 9111 section 5.1
        return Response(
            status=entry.status,
            headers=CIMultiDictProxy(headers),
            content=entry.content,
            method=request.method,
            url=request.url,
            route=request.route,
            upstream=request.upstream,
            attempts=0,
            request_id=request.request_id,
            from_cache=True,
            stale=stale,
        )

    # -- rules ------------------------------------------------------------------------------
    def _respect(self, rule: CacheRule) -> bool:
        return self.config.respect_headers if rule.respect_headers is None else rule.respect_headers

    def _swr(self, rule: CacheRule) -> float:
        c = self.config.stale_while_revalidate
        return c if rule.stale_while_revalidate is None else rule.stale_while_revalidate

    def _sie(self, rule: CacheRule) -> float:
        return self.config.stale_if_error if rule.stale_if_error is None else rule.stale_if_error

    @staticmethod
    def _tags(rule: CacheRule, params: Mapping[str, str]) -> list[str]:
        tags = []
        for template in rule.tags:
            try:
                tags.append(template.format(**params))
            except (KeyError, IndexError, ValueError):
                tags.append(template)
        return tags

    # -- invalidation -----------------------------------------------------------------------
    async def _invalidate_write(self, request: Request, response: Response) -> None:
        """RFC 9111 section 4.4: a non-error answer to an unsafe method invalidates the target
        URI and the URIs in Location / Content-Location (same upstream only)."""
        paths = {request.path}
        base = request.url[: len(request.url) - len(request.path)]
        for name in ("Location", "Content-Location"):
            value = response.headers.get(name)
            if value:
                target = value if "://" in value else base + (value if value.startswith("/") else "/" + value)
                if target.startswith(base):
                    paths.add(urlsplit(target[len(base) :] or "/").path)
        for path in paths:
            await self._delete(lambda p=path: self.store.delete_prefix(self._base(p)), "write")
            found = self.config.rule_for(path)
            if found is not None:
                for tag in self._tags(*found):
                    await self._delete(lambda t=tag: self.store.delete_tag(t), "write")

    async def invalidate(self, path: str, params: Mapping[str, str] | None = None) -> int:
        """Forget the entries of ``path`` (with exactly ``params`` when given, else any query)."""
        prefix = self._base(path)
        if params is not None:
            prefix += "&".join(f"{quote(k)}={quote(str(v))}" for k, v in sorted(params.items())) + "|"
        return await self._delete(lambda: self.store.delete_prefix(prefix), "key")

    async def invalidate_prefix(self, path_prefix: str) -> int:
        """Forget every entry whose path starts with ``path_prefix`` (a string prefix:
        ``/customers/4`` also matches ``/customers/42``; end it with ``/`` to stop at a segment)."""
        return await self._delete(
            lambda: self.store.delete_prefix(f"{self.upstream}|{path_prefix}"), "prefix"
        )

    async def invalidate_tag(self, tag: str) -> int:
        return await self._delete(lambda: self.store.delete_tag(tag), "tag")

    async def clear(self) -> None:
        await self.store.clear()

    # -- store access that never breaks a call ----------------------------------------------
    async def _get(self, key: str) -> fr.CacheEntry | None:
        try:
            return await self.store.get(key)
        except Exception as exc:
            self._store_failed("read", exc)
            return None

    async def _set(self, key: str, entry: fr.CacheEntry) -> None:
        try:
            await self.store.set(key, entry, entry.retention())
        except Exception as exc:
            self._store_failed("write", exc)

    async def _delete(self, op: Any, how: str) -> int:
        try:
            count = int(await op())
        except Exception as exc:
            self._store_failed("invalidate", exc)
            return 0
        if count:
            self._work.invalidations[how] = self._work.invalidations.get(how, 0) + count
        return count

    def _store_failed(self, what: str, exc: Exception) -> None:
        now = self._clock.monotonic()
        if now - self._last_store_error >= _STORE_ERROR_LOG_EVERY:
            self._last_store_error = now
            _log.warning("%s: cache store %s failed, calling upstream uncached: %r", self.upstream, what, exc)

    # -- figures ----------------------------------------------------------------------------
    def _count(self, route: str, result: str) -> None:
        counts = self._counts.get(route)
        if counts is None:
            counts = self._counts[route] = dict.fromkeys(CACHE_RESULTS, 0)
        counts[result] += 1
        self._work.cache_result(route, result)

    def stats(self, routes: Sequence[str] | None = None) -> dict[str, Any]:
        """Lookups per route and result, and the hit rate (share answered without a full fetch)."""
        out: dict[str, Any] = {}
        total = served = 0
        for route, counts in self._counts.items():
            if routes is not None and route not in routes:
                continue
            n = sum(counts.values())
            total += n
            served += n - counts["miss"]
            out[route] = {**counts, "hit_rate": (n - counts["miss"]) / n if n else None}
        return {"routes": out, "lookups": total, "hit_rate": served / total if total else None}

    async def aclose(self) -> None:
        tasks = list(self._refreshing.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._own_store:
            await self.store.aclose()

    def __repr__(self) -> str:
        stats = self.stats()
        rate = stats["hit_rate"]
        shown = "n/a" if rate is None else f"{rate:.1%}"
        return f"<CachePolicy {self.upstream} rules={len(self.config.rules)} lookups={stats['lookups']} hit_rate={shown}>"
