"""Drives a ``core.bucket.Pacer`` over a ``QuotaStore``: every attempt (retries included) takes
its turn from the quota, every answer teaches the pacer, a 429 pauses the whole upstream.

A shared store that fails or does not answer within the call's deadline never surfaces its
own exceptions: with ``RateLimit(on_store_error="local")`` (the default) this process paces
itself with a local bucket at the last known rate for ``STORE_RETRY_AFTER`` seconds, with a
warning and the ``interlock_store_errors`` metric, then tries the store again; with ``"fail"``
the call is refused with ``RateLimited`` (fail closed). A refusal sends nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..._clock import Clock
from ..._metrics import work_stats
from ..._models import Request, Response
from ..._redact import redact_text
from ...core.bucket import Advice, Grant, Pacer
from ...core.quota_headers import parse_quota
from ...errors import RateLimited
from ...stores import open_quota
from ...stores.quota import QuotaStore
from ...stores.quota_memory import MemoryQuotaStore
from .._config import RateLimit
from .._pipeline import Send
from ._deadline import within_deadline

_log = logging.getLogger("interlock.ratelimit")
RATE_LIMIT_WAIT = "interlock.rate_limit_wait"
"""Request.extensions key: seconds the attempt waited for its turn (absent: none)."""
# The low-quota warning repeats at most this often per key, however long the quota stays low.
WARN_EVERY = 60.0
STORE_RETRY_AFTER = 5.0
"""Seconds a failed shared store is left alone (the local bucket paces) before it is tried again."""
T = TypeVar("T")


def open_quota_store(config: RateLimit, clock: Clock) -> QuotaStore:
    """The store ``config.store`` names (a URL, "memory" or None), or the ``QuotaStore`` given."""
    if config.store is None or isinstance(config.store, str):
        return open_quota(
            config.store, namespace=config.namespace, clock=clock, owner="RateLimit", field="store"
        )
    return config.store


@dataclass(slots=True)
class _KeyState:
    pacer: Pacer
    bucket: str
    label: str
    last_warning: float = -1e18
    low: bool = False
    probe: asyncio.Lock = field(default_factory=asyncio.Lock)


class RateLimitPolicy:
    """The rate-limit stage of the pipeline: one pacer per credential key, over a quota store."""

    def __init__(self, config: RateLimit, upstream: str, clock: Clock) -> None:
        self.config = config
        self.upstream = upstream
        self._clock = clock
        self.store = open_quota_store(config, clock)
        self._own_store = not (config.store is not None and not isinstance(config.store, str))
        self._keys: dict[str, _KeyState] = {}
        self._work = work_stats(upstream)
        if config.per_second:
            self._work.ratelimit_limit = config.per_second
        self.waited = 0.0
        self.throttled = 0
        # A store in this process cannot freeze: its operations need no deadline of their own.
        self._shared = not isinstance(self.store, MemoryQuotaStore)
        self._local: MemoryQuotaStore | None = None
        self._store_down_until = -1e18
        self.store_errors = 0

    def _state(self, request: Request) -> _KeyState:
        key = self.config.key
        credential = ""
        if key is not None:
            raw = key(request) if callable(key) else request.headers.get(key, "")
            credential = hashlib.sha256(raw.encode()).hexdigest()[:16] if raw else ""
        state = self._keys.get(credential)
        if state is None:
            c = self.config
            pacer = Pacer(
                c.per_second,
                c.burst,
                adaptive=c.adaptive,
                headroom=c.headroom,
                reserve=c.reserve,
                assumed_window=c.window,
                warn_below=c.warn_below,
            )
            bucket = f"{self.upstream}:{credential}" if credential else self.upstream
            state = self._keys[credential] = _KeyState(pacer, bucket, credential or "-")
        return state

    async def handle(self, request: Request, call_next: Send) -> Response:
        """Wait for this attempt's turn (within ``max_wait`` and the deadline), send it, and
        learn the quota from the answer."""
        state = self._state(request)
        if state.pacer.probing:
            # Quota unknown: one call at a time until an answer tells it, rather than queueing
            # everyone at a guessed pace they would keep after the real one is known.
            async with state.probe:
                if state.pacer.probing:
                    return await self._paced(state, request, call_next)
        return await self._paced(state, request, call_next)

    async def _paced(self, state: _KeyState, request: Request, call_next: Send) -> Response:
        pacer, clock = state.pacer, self._clock
        max_wait = self.config.max_wait
        deadline_left = None if request.deadline is None else request.deadline - clock.monotonic()
        bounds = [b for b in (max_wait, deadline_left) if b is not None]
        bound = max(0.0, min(bounds)) if bounds else None
        rate, capacity = (0.0, 0.0) if pacer.probing else (pacer.rate, pacer.capacity)
        grant: Grant = await self._store_op(
            request,
            lambda store: store.acquire(state.bucket, rate=rate, capacity=capacity, max_wait=bound),
            fail_closed=True,
        )
        if not grant.granted:
            context = request.context()
            if max_wait is not None and grant.wait > max_wait:
                raise RateLimited(
                    f"rate limit: next turn in {grant.wait:.2f}s, over max_wait={max_wait:g}s",
                    retry_in=grant.wait,
                    **context,
                )
            # Nothing was sent and waiting cannot help: a refusal, not a timed-out attempt.
            raise RateLimited(
                f"rate limit: next turn in {grant.wait:.2f}s, after the call's deadline",
                retry_in=grant.wait,
                hint="the local quota has no turn before the deadline; raise Timeout(total=...) to wait longer",
                **context,
            )
        waited = grant.wait
        if grant.wait > 0:
            await clock.sleep(grant.wait)
            # A 429 seen while this call waited paused the upstream: honour it before sending.
            paused = await self._store_op(request, lambda store: store.paused_for(state.bucket))
            if paused > 0:
                waited += paused
                await clock.sleep(paused)
        if waited > 0:
            self.waited += waited
            self._work.ratelimit_wait += waited
            request.extensions[RATE_LIMIT_WAIT] = waited  # for the attempt's span
        response = await call_next(request)
        await self._learn(state, request, response, grant.seq)
        return response

    async def _learn(self, state: _KeyState, request: Request, response: Response, seq: int) -> None:
        quota = parse_quota(response.headers, self._clock.time())
        if quota is None and response.status != 429:
            return
        pacer = state.pacer
        advice: Advice = pacer.on_response(response.status, quota)
        rate, capacity = (0.0, 0.0) if pacer.probing else (advice.rate, advice.capacity)
        if advice.limits_changed and pacer.limit and pacer.window:
            self._work.ratelimit_limit = pacer.limit / pacer.window
            _log.info(
                "%s: quota learned from the upstream: %g per %gs; pacing at %.2f/s, burst %g",
                self.upstream,
                pacer.limit,
                pacer.window,
                advice.rate,
                advice.capacity,
                extra={
                    "interlock": {"upstream": self.upstream, "limit": pacer.limit, "window": pacer.window}
                },
            )
        if advice.remaining is not None:
            self._work.ratelimit_remaining = advice.remaining
            remaining = advice.remaining
            await self._store_op(
                request,
                lambda store: store.observe(
                    state.bucket,
                    remaining=remaining,
                    seq=seq,
                    rate=rate,
                    capacity=capacity,
                    adopt=advice.adopt,
                ),
            )
            self._warn_if_low(state, advice)
        if response.status == 429:
            self.throttled += 1
            self._work.ratelimit_throttled += 1
        if advice.pause is not None and advice.pause > 0:
            pause = advice.pause
            left = await self._store_op(
                request, lambda store: store.pause(state.bucket, pause, rate=rate, capacity=capacity)
            )
            if response.status == 429:
                _log.warning(
                    "%s%s: 429 Too Many Requests; pausing every call to %s for %.2fs",
                    self.upstream,
                    request.route,
                    self.upstream,
                    left,
                    extra={"interlock": {"upstream": self.upstream, "route": request.route, "pause": left}},
                )

    # -- the store, and what to do when it fails ------------------------------------------------
    async def _store_op(
        self, request: Request, op: Callable[[QuotaStore], Awaitable[T]], *, fail_closed: bool = False
    ) -> T:
        """Run ``op`` on the shared store within the call's deadline; when it fails (or the
        store is resting after a failure), on the local bucket instead, or, for an acquire
        under ``on_store_error="fail"``, refuse the call."""
        if not self._shared:
            return await op(self.store)
        now = self._clock.monotonic()
        if now >= self._store_down_until:
            try:
                return await within_deadline(request.deadline, self._clock, op(self.store))
            except Exception as exc:  # redis.exceptions.*, OSError, TimeoutError: all the store's
                self._store_failed(request, exc, now)
                if fail_closed and self.config.on_store_error == "fail":
                    raise RateLimited(
                        f"rate-limit store failed ({type(exc).__name__}: {exc}); failing closed",
                        hint="RateLimit(on_store_error='fail') refuses calls while the shared quota store is down",
                        **request.context(),
                    ) from exc
        elif fail_closed and self.config.on_store_error == "fail":
            raise RateLimited(
                "rate-limit store failed recently; failing closed",
                hint="RateLimit(on_store_error='fail') refuses calls while the shared quota store is down",
                **request.context(),
            )
        if self._local is None:
            self._local = MemoryQuotaStore(self._clock)
        return await op(self._local)

    def _store_failed(self, request: Request, exc: Exception, now: float) -> None:
        self.store_errors += 1
        errors = self._work.store_errors
        errors["quota"] = errors.get("quota", 0) + 1
        self._store_down_until = now + STORE_RETRY_AFTER
        what = "did not answer within the call's deadline" if isinstance(exc, TimeoutError) else "failed"
        then = "failing calls closed" if self.config.on_store_error == "fail" else "pacing this process alone"
        _log.warning(
            "%s: rate-limit store %r %s (%s: %s); %s for %gs, then trying it again",
            self.upstream,
            self.store,
            what,
            type(exc).__name__,
            redact_text(str(exc)),
            then,
            STORE_RETRY_AFTER,
            extra={"interlock": {"upstream": self.upstream, "route": request.route, "store_error": True}},
        )

    def _warn_if_low(self, state: _KeyState, advice: Advice) -> None:
        now = self._clock.monotonic()
        if advice.low and (not state.low or now - state.last_warning >= WARN_EVERY):
            state.last_warning = now
            limit = state.pacer.limit or 0
            _log.warning(
                "%s: rate-limit quota low: %g of %g left (below %d %%)",
                self.upstream,
                advice.remaining,
                limit,
                round(self.config.warn_below * 100),
                extra={
                    "interlock": {"upstream": self.upstream, "remaining": advice.remaining, "limit": limit}
                },
            )
        state.low = advice.low

    def stats(self) -> dict[str, Any]:
        """Pacing per key (rate, burst capacity, remaining quota), seconds waited, 429s seen."""
        return {
            "keys": {
                s.label: {"rate": s.pacer.rate, "capacity": s.pacer.capacity, "remaining": s.pacer.remaining}
                for s in self._keys.values()
            },
            "waited": self.waited,
            "throttled": self.throttled,
        }

    async def aclose(self) -> None:
        """Close the quota store, if this policy opened it."""
        if self._own_store:
            await self.store.aclose()

    def __repr__(self) -> str:
        return f"<RateLimitPolicy {self.upstream} {self.config.describe()} keys={len(self._keys)}>"
