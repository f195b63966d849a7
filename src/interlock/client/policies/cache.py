"""Drives ``core.freshness`` over a ``CacheStore``: for each GET of a cached route a
``CacheRead`` decides (serve, revalidate with these headers, fetch, serve stale because...)
and this module does it: reads and writes the store, sends upstream, refreshes in the
background; and it forgets what writes change.

A cache must never break a call: store errors are logged and counted (``interlock_store_errors``)
and the call goes upstream as if the cache were not there. No store operation outlasts the
call's deadline, and after a failure reads and writes leave a shared store alone for
``STORE_RETRY_AFTER`` seconds (a frozen Redis costs one wait, not one per call); invalidations
are always tried.

Identical reads that miss together share one fill (when the client coalesces): the first goes
upstream and stores the answer, the others get their own copy of it, as the coalescing stage
below would give them, but without each building and storing the same entry again.
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
from ..._redact import DEFAULT_HEADERS, redact_text
from ...core import freshness as fr
from ...errors import CallError
from ...stores import open_cache
from ...stores.cache import CacheStore
from ...stores.cache_memory import MemoryCacheStore
from .._config import Cache, CacheRule
from .._pipeline import Send
from ._deadline import within_deadline
from .coalesce import CoalescePolicy

_log = logging.getLogger("interlock.cache")
_STORE_ERROR_LOG_EVERY = 30.0
_MAX_REMEMBERED_PATHS = 10_000
_UNKNOWN: Any = object()
STORE_RETRY_AFTER = 5.0
"""Seconds reads and writes skip a shared store after it failed, before trying it again."""


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
    """The cache stage of the pipeline, and the handle for invalidating it (``client.cache``)."""

    def __init__(
        self, config: Cache, upstream: str, clock: Clock, *, share_fills: Sequence[str] | None = None
    ) -> None:
        """``share_fills``: the headers that do not tell reads apart (as the coalescing stage's),
        to share fills between identical reads; None: every miss fills on its own."""
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
        self._store_down_until = -1e18
        self._shared = not isinstance(self.store, MemoryCacheStore)  # only a shared one can freeze
        self._terms_of: dict[CacheRule, fr.CacheTerms] = {}
        # path -> its rule and placeholders (or None), remembered like the route names: bounded
        self._rule_of: dict[str, Any] = {}
        # Its own flights: the coalescing stage below keeps the ones of the upstream calls.
        self._fills = CoalescePolicy(upstream, share_fills) if share_fills is not None else None

    @property
    def shared_fills(self) -> int:
        """Reads answered by an identical read's fill in flight (they count as coalesced)."""
        return self._fills.coalesced if self._fills is not None else 0

    # -- keys -------------------------------------------------------------------------------
    def _base(self, path: str) -> str:
        return f"{self.upstream}|{path}?"

    def key(self, request: Request) -> str:
        """The store key of ``request``: upstream, path, sorted query, and the ``vary`` headers
        (credentials hashed)."""
        query = "&".join(f"{quote(k)}={quote(v)}" for k, v in sorted(request.params.items()))
        vary = []
        for name in self._vary:
            value = request.headers.get(name)
            if value is not None:
                if name in DEFAULT_HEADERS:  # never a credential in a store key
                    value = hashlib.sha256(value.encode()).hexdigest()[:16]
                vary.append(f"{name}={value}")
        return f"{self._base(request.path)}{query}|{'&'.join(vary)}"

    # -- the policy: dispatch on core.freshness.CacheRead's decisions ----------------------
    async def handle(self, request: Request, call_next: Send) -> Response:
        """Answer a GET of a cached route from the store when RFC 9111 allows it, else go
        upstream and store what may be stored; after a successful write, forget what it
        changed (section 4.4). Other routes and methods pass through."""
        if request.method != "GET":
            response = await call_next(request)
            if self.config.invalidate_on_write and fr.invalidates(request.method, response.status):
                await self._invalidate_write(request, response)
            return response
        found = self._rule_of.get(request.path, _UNKNOWN)
        if found is _UNKNOWN:
            found = self.config.rule_for(request.path)
            if len(self._rule_of) >= _MAX_REMEMBERED_PATHS:
                self._rule_of.clear()
            self._rule_of[request.path] = found
        if found is None:
            return await call_next(request)
        rule, params = found
        read = fr.CacheRead(request.headers, self._terms(rule), self._tags(rule, params))
        start = read.start()
        if isinstance(start, fr.Bypass):
            return await call_next(request)
        key = self.key(request)
        decision = (
            read.stored(await self._get(key, request.deadline), self._clock.time())
            if isinstance(start, fr.Lookup)
            else start
        )
        if isinstance(decision, fr.Serve):
            self._count(request.route, "hit")
            return self._serve(decision.entry, request, stale=False)
        if isinstance(decision, fr.ServeStale):
            self._count(request.route, "stale")
            if decision.refresh is not None:
                self._refresh_in_background(key, request, read, decision.refresh, call_next)
            return self._serve(decision.entry, request, stale=True)
        fills = self._fills
        shared_as = fills.identity(request) if fills is not None else None
        if shared_as is None:
            return await self._upstream(key, request, read, decision, call_next)
        assert fills is not None
        while not fills.take_off(shared_as):
            if (shared := await fills.follow(shared_as, request)) is not None:
                self._count(request.route, "revalidated" if shared.from_cache else "miss")
                return shared
        try:
            response = await self._upstream(key, request, read, decision, call_next)
        except BaseException as exc:
            fills.land(shared_as, None, exc)
            raise
        fills.land(shared_as, response)
        return response

    async def _upstream(
        self,
        key: str,
        request: Request,
        read: fr.CacheRead,
        sent: fr.Revalidate | fr.Fetch,
        call_next: Send,
        *,
        background: bool = False,
    ) -> Response:
        """Send what ``read`` decided, then do what it decides of the outcome. ``background``:
        a stale-while-revalidate refresh, whose answer nobody waits for (and nobody counts)."""
        outgoing = request
        if isinstance(sent, fr.Revalidate):
            outgoing = replace(request, headers=request.headers.copy(), extensions=dict(request.extensions))
            outgoing.headers.update(sent.headers)
        try:
            response = await call_next(outgoing)
        except CallError as exc:
            failed = read.failed(f"{type(exc).__name__}: {exc}", self._clock.time())
            if isinstance(failed, fr.ServeStale):
                return self._serve_on_error(request, failed, background)
            raise
        outcome = read.answered(
            response.status, response.headers.items(), response.content, self._clock.time()
        )
        if isinstance(outcome, fr.ServeStale):
            return self._serve_on_error(request, outcome, background)
        if isinstance(outcome, fr.Freshened):
            await self._set(key, outcome.entry, request.deadline)
            if not background:
                self._count(request.route, "revalidated")
            served = self._serve(outcome.entry, request, stale=False)
            served.attempts, served.tracking_id = response.attempts, response.tracking_id
            return served
        if not background:
            self._count(request.route, "miss")
        if isinstance(outcome, fr.Store):
            await self._set(key, outcome.entry, request.deadline)
        return response

    def _serve_on_error(self, request: Request, stale: fr.ServeStale, background: bool) -> Response:
        if not background:
            self._count(request.route, "stale")
        _log.warning(
            "%s%s: upstream failed; serving the stale cached copy (%s)",
            self.upstream,
            request.route,
            stale.because,
            extra={"interlock": {"upstream": self.upstream, "route": request.route, "stale": True}},
        )
        return self._serve(stale.entry, request, stale=True)

    def _refresh_in_background(
        self,
        key: str,
        request: Request,
        read: fr.CacheRead,
        refresh: fr.Revalidate | fr.Fetch,
        call_next: Send,
    ) -> None:
        if key in self._refreshing:
            return  # RFC 5861 section 3: one refresh at a time, the others keep serving stale

        async def run() -> None:
            try:
                await self._upstream(key, request, read, refresh, call_next, background=True)
            except Exception as exc:
                _log.info("%s%s: background revalidation failed: %s", self.upstream, request.route, exc)
            finally:
                self._refreshing.pop(key, None)

        self._refreshing[key] = asyncio.ensure_future(run())

    def _serve(self, entry: fr.CacheEntry, request: Request, *, stale: bool) -> Response:
        headers: CIMultiDict[str] = CIMultiDict(entry.headers)
        headers["Age"] = str(int(entry.age(self._clock.time())))  # RFC 9111 section 5.1
        return Response.answering(
            request,
            entry.status,
            CIMultiDictProxy(headers),
            entry.content,
            attempts=0,
            from_cache=True,
            stale=stale,
        )

    # -- rules ------------------------------------------------------------------------------
    def _terms(self, rule: CacheRule) -> fr.CacheTerms:
        """The rule's terms, its unset fields taken from the ``Cache``."""
        terms = self._terms_of.get(rule)
        if terms is None:
            c = self.config
            terms = self._terms_of[rule] = fr.CacheTerms(
                ttl=rule.ttl,
                respect_headers=c.respect_headers if rule.respect_headers is None else rule.respect_headers,
                stale_while_revalidate=(
                    c.stale_while_revalidate
                    if rule.stale_while_revalidate is None
                    else rule.stale_while_revalidate
                ),
                stale_if_error=c.stale_if_error if rule.stale_if_error is None else rule.stale_if_error,
            )
        return terms

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
        deadline = request.deadline
        for path in paths:
            await self._delete(lambda p=path: self.store.delete_prefix(self._base(p)), "write", deadline)
            found = self.config.rule_for(path)
            if found is not None:
                for tag in self._tags(*found):
                    await self._delete(lambda t=tag: self.store.delete_tag(t), "write", deadline)

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
        """Forget every entry stored with ``tag`` (see ``CacheRule.tags``); returns how many."""
        return await self._delete(lambda: self.store.delete_tag(tag), "tag")

    async def clear(self) -> None:
        """Forget every entry of the store (a store failure is logged and counted, as for
        ``invalidate``)."""
        await self._delete(self._cleared, "clear")

    async def _cleared(self) -> int:
        await self.store.clear()
        return 0

    # -- store access that never breaks a call ----------------------------------------------
    def _resting(self) -> bool:
        return self._shared and self._clock.monotonic() < self._store_down_until

    async def _get(self, key: str, deadline: float | None) -> fr.CacheEntry | None:
        if self._resting():
            return None
        try:
            if not self._shared:
                return await self.store.get(key)
            return await within_deadline(deadline, self._clock, self.store.get(key))
        except Exception as exc:
            self._store_failed("read", exc)
            return None

    async def _set(self, key: str, entry: fr.CacheEntry, deadline: float | None) -> None:
        if self._resting():
            return
        try:
            if not self._shared:
                await self.store.set(key, entry, entry.retention())
            elif deadline is None or deadline > self._clock.monotonic():  # no time left: not cached
                await within_deadline(deadline, self._clock, self.store.set(key, entry, entry.retention()))
        except Exception as exc:
            self._store_failed("write", exc)

    async def _delete(self, op: Any, how: str, deadline: float | None = None) -> int:
        try:
            count = int(await within_deadline(deadline, self._clock, op()))
        except Exception as exc:
            self._store_failed("invalidate", exc)
            return 0
        if count:
            self._work.invalidations[how] = self._work.invalidations.get(how, 0) + count
        return count

    def _store_failed(self, what: str, exc: Exception) -> None:
        now = self._clock.monotonic()
        errors = self._work.store_errors
        errors["cache"] = errors.get("cache", 0) + 1
        self._store_down_until = now + STORE_RETRY_AFTER
        if now - self._last_store_error >= _STORE_ERROR_LOG_EVERY:
            self._last_store_error = now
            failed = (
                "did not answer within the call's deadline" if isinstance(exc, TimeoutError) else "failed"
            )
            _log.warning(
                "%s: cache store %s %s (%s: %s); calling upstream uncached for %gs, then trying it again",
                self.upstream,
                what,
                failed,
                type(exc).__name__,
                redact_text(str(exc)),
                STORE_RETRY_AFTER,
            )

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
        """Cancel background refreshes and close the store, if this policy opened it."""
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
