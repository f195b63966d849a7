"""Drives the rate limit over a ``QuotaStore``: every attempt (retries included) takes its turn
from the quota, every answer teaches it, a 429 pauses the whole upstream.

What an upstream's quota is, per credential key, is known one of three ways:

- **announced with a reset** (``X-RateLimit-Remaining`` + ``-Reset``, IETF ``RateLimit``): a
  count left until a moment, a fixed window. The count lives in the store under
  ``<bucket>:window`` and is refilled only from answers; ``core.quota_window.WindowClock`` says
  when the window ends. Calls spend the count, then wait for the window's end, when the next
  window's count is assumed (and corrected by its first answer). With the in-process store
  the clock also sends *probes* on a call or two kept back, to find where windows really end.
- **a rate**: configured (``per_second``), or a limit announced without a reset, or learned
  from 429s: ``core.bucket.Pacer``'s token bucket in the store under ``<bucket>``.
- **nothing**: calls are not paced at all until the upstream announces a quota or refuses a
  call with a 429 (which pauses everyone, and teaches the pacer a rate).

What was learned is logged once per key, at INFO. No wait lasts longer than
``RateLimit.max_pause``: after it, one call goes through to ask again.

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
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..._clock import Clock
from ..._metrics import work_stats
from ..._models import Request, Response
from ..._redact import redact_text
from ...core.bucket import NO_REFILL, Advice, Grant, Pacer
from ...core.quota_headers import Quota, parse_quota
from ...core.quota_window import Answer, Verdict, WindowClock
from ...errors import RateLimited
from ...stores import open_quota
from ...stores.quota import QuotaStore
from ...stores.quota_memory import MemoryQuotaStore
from .._config import RateLimit
from .._pipeline import Send
from ._deadline import within_deadline

_log = logging.getLogger("interlock.ratelimit")
# The low-quota warning repeats at most this often per key, however long the quota stays low.
WARN_EVERY = 60.0
# Answers remembered per key to learn a rate from a 429 (those of the last ``RateLimit.window``).
ACCEPTED_KEPT = 10_000
# How often a call waiting for a window shared with other processes looks at the store again.
SHARED_POLL = 0.05
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


def _announces_window(quota: Quota) -> bool:
    """A count left until a moment: a fixed window's quota."""
    return quota.remaining is not None and (quota.reset_after is not None or quota.reset_epoch is not None)


def _take_from_window(key: str, capacity: float) -> Callable[[QuotaStore], Awaitable[Grant]]:
    """A call of a fixed window's count, granted now or not at all."""
    return lambda store: store.acquire(key, rate=NO_REFILL, capacity=capacity, max_wait=0.0)


def _refill_window(
    key: str, fresh: float, seq: int, capacity: float
) -> Callable[[QuotaStore], Awaitable[None]]:
    """The next window's count, assumed as it begins."""
    return lambda store: store.observe(
        key, remaining=fresh, seq=seq, rate=NO_REFILL, capacity=capacity, adopt=True
    )


@dataclass(slots=True, eq=False)
class _KeyState:
    pacer: Pacer
    bucket: str
    label: str
    windows: WindowClock | None = None
    capacity: float = 1.0
    """The window's count, as last announced."""
    seq: int = 0
    """The highest reservation of the window bucket answered or granted here."""
    resumed: tuple[int, float] = (-1, 0.0)
    """(window, end) at which the next window's count was last assumed."""
    asked: float = -1e18
    """When a call last went through past ``max_pause``."""
    unpaced: int = 0
    """Calls on the wire that were sent before any quota was known."""
    in_flight: int = 0
    """Calls of this key on the wire: their answers may yet say a window has begun."""
    accepted: deque[float] = field(default_factory=lambda: deque(maxlen=ACCEPTED_KEPT))
    said: set[str] = field(default_factory=set)
    changed: asyncio.Event | None = None
    last_warning: float = -1e18
    low: bool = False

    @property
    def window_bucket(self) -> str:
        return self.bucket + ":window"


MIN_WAIT = 0.001
"""Seconds: the shortest wait for a window's turn (a guard against waiting on a past moment)."""


class RateLimitPolicy:
    """The rate-limit stage of the pipeline: one pacer per credential key, over a quota store."""

    def __init__(self, config: RateLimit, upstream: str, clock: Clock) -> None:
        self.config = config
        self.upstream = upstream
        self._clock = clock
        self.store = open_quota_store(config, clock)
        self._own_store = not (config.store is not None and not isinstance(config.store, str))
        # Probes spend a call kept back from a window's count; several processes sharing a
        # store would each keep the same one back, so only an in-process store probes.
        self._probes = isinstance(self.store, MemoryQuotaStore)
        self._keys: dict[str, _KeyState] = {}
        self._work = work_stats(upstream)
        if config.per_second:
            self._work.ratelimit_limit = config.per_second
        self.waited = 0.0
        self.throttled = 0
        # A store in this process cannot freeze: its operations need no deadline of their own.
        self._shared = not self._probes
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
                max_pause=c.max_pause,
            )
            bucket = f"{self.upstream}:{credential}" if credential else self.upstream
            state = self._keys[credential] = _KeyState(pacer, bucket, credential or "-")
        return state

    async def handle(self, request: Request, call_next: Send) -> Response:
        """Wait for this attempt's turn (within ``max_wait`` and the deadline), send it, and
        learn the quota from the answer."""
        state = self._state(request)
        started = self._clock.monotonic()
        if state.pacer.paces:
            await self._rate_turn(state, request)
        seq = 0
        unpaced = state.windows is None and not state.pacer.paces
        if unpaced and not self._probes and "none" not in state.said:
            # A store shared with other processes may hold a window they learned already.
            seq = await self._window_turn(state, None, request, started)
            unpaced = seq == 0
        elif state.windows is not None:
            seq = await self._window_turn(state, state.windows, request, started)
        if unpaced:
            state.unpaced += 1
        state.in_flight += 1
        sent = self._clock.monotonic()
        waited = sent - started
        if waited > 0:
            self.waited += waited
            self._work.ratelimit_wait += waited
        try:
            response = await call_next(request)
        finally:
            state.in_flight -= 1
            if unpaced:
                state.unpaced -= 1
        await self._learn(state, request, response, seq, sent)
        return response

    # -- waiting for a turn -------------------------------------------------------------------
    def _bound(self, request: Request) -> float | None:
        """How long this attempt may still wait: ``max_wait`` and the deadline."""
        deadline_left = None if request.deadline is None else request.deadline - self._clock.monotonic()
        bounds = [b for b in (self.config.max_wait, deadline_left) if b is not None]
        return max(0.0, min(bounds)) if bounds else None

    def _refuse(self, request: Request, wait: float, why: str) -> None:
        context = request.context()
        max_wait = self.config.max_wait
        if max_wait is not None and wait > max_wait:
            raise RateLimited(
                f"rate limit: {why} in {wait:.2f}s, over max_wait={max_wait:g}s", retry_in=wait, **context
            )
        # Nothing was sent and waiting cannot help: a refusal, not a timed-out attempt.
        raise RateLimited(
            f"rate limit: {why} in {wait:.2f}s, after the call's deadline",
            retry_in=wait,
            hint="the local quota has no turn before the deadline; raise Timeout(total=...) to wait longer",
            **context,
        )

    async def _rate_turn(self, state: _KeyState, request: Request) -> None:
        """A turn of the pacer's token bucket (queued in arrival order), then any pause."""
        pacer, clock = state.pacer, self._clock
        rate, capacity, bound = pacer.rate, pacer.capacity, self._bound(request)
        grant = await self._store_op(
            request,
            lambda store: store.acquire(state.bucket, rate=rate, capacity=capacity, max_wait=bound),
            fail_closed=True,
        )
        if not grant.granted:
            self._refuse(request, grant.wait, "next turn")
        if grant.wait > 0:
            await clock.sleep(grant.wait)
            # A 429 seen while this call waited paused the upstream: honour it before sending.
            paused = await self._store_op(request, lambda store: store.paused_for(state.bucket))
            if paused > 0:
                await clock.sleep(min(paused, self.config.max_pause))

    async def _window_turn(
        self, state: _KeyState, windows: WindowClock | None, request: Request, started: float
    ) -> int:
        """A call of the window's count: its reservation number; 0 for a call sent without one
        (a probe on the count kept back, a call let through past ``max_pause``, or, with no
        ``windows`` yet, a call no process knows a window for)."""
        clock, key = self._clock, state.window_bucket
        max_pause = self.config.max_pause
        while True:
            if windows is None:  # ask with the limits whoever learned them stored, if any
                grant = await self._store_op(
                    request,
                    lambda store: store.acquire(key, rate=0.0, capacity=0.0, max_wait=0.0),
                    fail_closed=True,
                )
                if grant.granted and grant.seq == 0:
                    return 0
            else:
                grant = await self._store_op(
                    request, _take_from_window(key, state.capacity), fail_closed=True
                )
            if grant.granted:
                state.seq = max(state.seq, grant.seq)
                return grant.seq
            now = clock.monotonic()
            if windows is None:
                bound = self._bound(request)
                if bound is not None and bound <= 0:
                    self._refuse(request, SHARED_POLL, "the shared window's quota is spent; looking again")
                await self._sleep_or_change(state, min(SHARED_POLL, bound or SHARED_POLL))
                continue
            resume = windows.resume_at()
            if resume is not None and now >= resume and self._may_resume(state, windows, resume):
                # The window is over: the next one's count is fresh (its first answer corrects it).
                state.resumed = (windows.windows, resume)
                fresh = max(0.0, state.capacity - windows.keep_next)
                await self._store_op(request, _refill_window(key, fresh, state.seq, state.capacity))
                self._wake(state)
                continue
            probe = windows.probe_at() if self._probes else None
            if probe is not None and now >= probe:
                windows.probe_sent(now)
                return 0
            ask_at = max(state.asked, started) + max_pause
            if now >= ask_at:
                state.asked = now  # waited max_pause: one call asks the upstream again
                return 0
            moments = [ask_at] if probe is None else [ask_at, probe]
            known = False  # whether the next window's beginning is known, not just guessed at
            if resume is not None:
                if self._may_resume(state, windows, resume):
                    moments.append(resume)
                    known = True
                elif windows.window:  # assumed already: the window after it, at the latest
                    after = max(resume, state.resumed[1]) + windows.window
                    if now >= after:
                        # That one is over too, with no answer to say so: assume it like the
                        # first (waiting on a moment already past would spin the loop).
                        state.resumed = (windows.windows, after)
                        fresh = max(0.0, state.capacity - windows.keep_next)
                        await self._store_op(request, _refill_window(key, fresh, state.seq, state.capacity))
                        self._wake(state)
                        continue
                    moments.append(after)
                    known = True
            until = min(moments)
            bound = self._bound(request)
            if bound is not None and until - now > bound:
                # Answers still on the wire, or other processes sharing the count, may yet say
                # the next window has begun: wait for them within the bound, then refuse.
                may_change = state.in_flight > 0 or (not self._probes and not known)
                if bound <= 0 or not may_change:
                    self._refuse(request, until - now, "the window's quota is spent; the next window begins")
                until = now + bound
            if not self._probes:
                # Other processes spend and refill a shared count without telling us: look again.
                until = min(until, now + max(SHARED_POLL, 0.02 * (windows.window or 0.0)))
            # Never a wait of nothing: a moment that is already past must not spin the loop.
            await self._sleep_or_change(state, max(until - now, MIN_WAIT))

    @staticmethod
    def _may_resume(state: _KeyState, windows: WindowClock, resume: float) -> bool:
        """Whether the count at ``resume`` is still to be assumed: not yet for this window, or
        the window outlived the end it was assumed at."""
        window, at = state.resumed
        return window < windows.windows or resume > at + 1e-6

    async def _sleep_or_change(self, state: _KeyState, seconds: float) -> None:
        """Sleep ``seconds``, or less: until an answer changes what this key knows."""
        if state.changed is None:
            state.changed = asyncio.Event()
        changed = asyncio.ensure_future(state.changed.wait())
        sleeper = asyncio.ensure_future(self._clock.sleep(seconds))
        try:
            await asyncio.wait((sleeper, changed), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            changed.cancel()

    @staticmethod
    def _wake(state: _KeyState) -> None:
        if state.changed is not None:
            state.changed.set()
            state.changed = None

    # -- learning from answers ----------------------------------------------------------------
    async def _learn(
        self, state: _KeyState, request: Request, response: Response, seq: int, sent: float
    ) -> None:
        clock = self._clock
        quota = parse_quota(response.headers, clock.time())
        status = response.status
        if status == 429:
            self.throttled += 1
            self._work.ratelimit_throttled += 1
        adaptive = self.config.adaptive
        if adaptive and quota is not None and (_announces_window(quota) or state.windows is not None):
            await self._learn_window(state, request, response, quota, seq, sent)
            return
        if quota is None and status != 429:
            if not state.pacer.learned or state.pacer.throttled_rate:
                state.accepted.append(clock.monotonic())
            if state.windows is None and not state.pacer.learned and self._once(state, "none"):
                _log.info(
                    "%s: answers carry no quota headers; calls are not paced until it refuses one (429)",
                    self.upstream,
                    extra={"interlock": {"upstream": self.upstream, "quota": None}},
                )
            return
        await self._learn_rate(state, request, response, quota)

    async def _learn_window(
        self, state: _KeyState, request: Request, response: Response, quota: Quota, seq: int, sent: float
    ) -> None:
        clock = self._clock
        windows = state.windows
        if windows is None:
            windows = state.windows = WindowClock(probe=self._probes)
        received = clock.monotonic()
        throttled = response.status == 429
        # Calls sent before the window was known, or without a reservation, count from the last
        # reservation seen here: later ones are subtracted, which can only err low.
        answered = seq or state.seq
        verdict = windows.on_answer(
            Answer(sent, received, clock.time() - received, quota, throttled=throttled)
        )
        if verdict is Verdict.STALE:
            return
        if quota.limit is not None and quota.limit >= 1:
            state.capacity = quota.limit
        remaining = quota.remaining if quota.remaining is not None else (0.0 if throttled else None)
        if remaining is not None:
            self._work.ratelimit_remaining = remaining
            self._work.ratelimit_limit = state.capacity
            self._work.ratelimit_quota = state.capacity
            left = max(0.0, remaining - windows.keep_back - state.unpaced)
            # A later answer (or a new window's) is the balance; an earlier one only lowers it.
            adopt, capacity = verdict is Verdict.NEW or seq > state.seq, state.capacity
            await self._store_op(
                request,
                lambda store: store.observe(
                    state.window_bucket,
                    remaining=left,
                    seq=answered,
                    rate=NO_REFILL,
                    capacity=capacity,
                    adopt=adopt,
                ),
            )
            state.seq = max(state.seq, seq)
            limit = state.capacity
            self._warn_if_low(state, remaining, limit, remaining < self.config.warn_below * limit)
        self._say_window(state, windows)
        if throttled:
            self._warn_throttled(request, windows.resume_at(), received)
        self._wake(state)

    def _say_window(self, state: _KeyState, windows: WindowClock) -> None:
        end = windows.end
        if end is not None and self._once(state, "window"):
            now = self._clock.monotonic()
            _log.info(
                "%s: quota learned from the upstream's headers: %g calls per window, this one ending "
                "in %.1f-%.1fs; calls spend it, then wait for the next window",
                self.upstream,
                state.capacity,
                max(0.0, end.lo - now),
                max(0.0, end.hi - now),
                extra={"interlock": {"upstream": self.upstream, "limit": state.capacity, "mode": "window"}},
            )
        if windows.window and windows.window_source != "delay" and self._once(state, "window-length"):
            _log.info(
                "%s: quota windows are %gs long (from the %s)",
                self.upstream,
                windows.window,
                "rate-limit policy" if windows.window_source == "policy" else "spacing of its resets",
                extra={"interlock": {"upstream": self.upstream, "window": windows.window}},
            )

    async def _learn_rate(
        self, state: _KeyState, request: Request, response: Response, quota: Quota | None
    ) -> None:
        pacer, clock = state.pacer, self._clock
        status = response.status
        advice: Advice = pacer.on_response(status, quota)
        if status == 429 and (quota is None or quota.limit is None):
            now = clock.monotonic()
            over = self.config.window
            accepted = sum(1 for at in state.accepted if at >= now - over)
            learned = pacer.on_throttled(accepted, over)
            if learned is not None:
                advice = Advice(learned.rate, learned.capacity, True, pause=advice.pause)
                if self._once(state, "throttled"):
                    _log.info(
                        "%s: a 429 with no quota announced; from now on calls pace at %.2f/s (it "
                        "accepted %d in the %gs before), and slower at each further 429",
                        self.upstream,
                        learned.rate,
                        accepted,
                        over,
                        extra={"interlock": {"upstream": self.upstream, "rate": learned.rate}},
                    )
        rate, capacity = (0.0, 0.0) if pacer.probing else (advice.rate, advice.capacity)
        if advice.limits_changed and pacer.limit and pacer.window and not pacer.throttled_rate:
            self._work.ratelimit_limit = pacer.limit / pacer.window
            (_log.info if self._once(state, "rate") else _log.debug)(
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
            self._work.ratelimit_quota = pacer.limit
            remaining = advice.remaining
            await self._store_op(
                request,
                lambda store: store.observe(
                    state.bucket, remaining=remaining, seq=0, rate=rate, capacity=capacity, adopt=advice.adopt
                ),
            )
            self._warn_if_low(state, advice.remaining, pacer.limit or 0, advice.low)
        if advice.pause is not None and advice.pause > 0:
            pause = advice.pause
            left = await self._store_op(
                request, lambda store: store.pause(state.bucket, pause, rate=rate, capacity=capacity)
            )
            if status == 429:
                self._warn_throttled(request, None, None, left)

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
                        f"rate-limit store failed ({type(exc).__name__}: {redact_text(str(exc))}); failing closed",
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

    def _warn_throttled(
        self, request: Request, resume: float | None, now: float | None, pause: float | None = None
    ) -> None:
        if pause is None:
            pause = 0.0 if resume is None or now is None else max(0.0, resume - now)
        _log.warning(
            "%s%s: 429 Too Many Requests; pausing every call to %s for %.2fs",
            self.upstream,
            request.route,
            self.upstream,
            pause,
            extra={"interlock": {"upstream": self.upstream, "route": request.route, "pause": pause}},
        )

    @staticmethod
    def _once(state: _KeyState, what: str) -> bool:
        """True the first time ``what`` is asked for this key."""
        if what in state.said:
            return False
        state.said.add(what)
        return True

    def _warn_if_low(self, state: _KeyState, remaining: float, limit: float, low: bool) -> None:
        now = self._clock.monotonic()
        # At most once a WARN_EVERY: a window's count runs low every window when calls spend it.
        if low and now - state.last_warning >= WARN_EVERY:
            state.last_warning = now
            _log.warning(
                "%s: rate-limit quota low: %g of %g left (below %d %%)",
                self.upstream,
                remaining,
                limit,
                round(self.config.warn_below * 100),
                extra={"interlock": {"upstream": self.upstream, "remaining": remaining, "limit": limit}},
            )
        state.low = low

    def stats(self) -> dict[str, Any]:
        """Pacing per key (rate, burst capacity, remaining quota, the window when one is
        announced), seconds waited, 429s seen."""
        keys: dict[str, Any] = {}
        for s in self._keys.values():
            entry: dict[str, Any] = {
                "rate": s.pacer.rate,
                "capacity": s.pacer.capacity,
                "remaining": s.pacer.remaining,
                "limit": s.capacity if s.windows is not None else s.pacer.limit,
            }
            if s.windows is not None:
                entry["window"] = {
                    "limit": s.capacity,
                    "length": s.windows.window,
                    "trusted": s.windows.trusted,
                }
            keys[s.label] = entry
        return {"keys": keys, "waited": self.waited, "throttled": self.throttled}

    async def aclose(self) -> None:
        """Close the quota store, if this policy opened it."""
        if self._own_store:
            await self.store.aclose()

    def __repr__(self) -> str:
        return f"<RateLimitPolicy {self.upstream} {self.config.describe()} keys={len(self._keys)}>"
