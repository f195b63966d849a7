"""The rate limit against the testbed's server-side quota: 0 x 429 in every header dialect and
on fixed windows (skewed clocks, resets rounded either way), a 429 pauses the whole upstream,
per-credential quotas, 4 processes sharing one Redis quota, no cost without quota headers, and
no absurd header stopping an upstream for long."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable

import pytest

import interlock
from interlock.testbed import Faults, Latency, RateLimitConfig, Testbed, TestbedConfig
from interlock.testing import FakeClock

DIALECTS = ["x-ratelimit-epoch", "x-ratelimit-delta", "ietf", "retry-after-seconds", "retry-after-date"]
ANNOUNCED = {"x-ratelimit-epoch", "x-ratelimit-delta", "ietf"}


async def hammer(
    api: interlock.Client, calls: int, workers: int = 10, path: str = "/customers/1"
) -> list[int]:
    statuses: list[int] = []
    queue = iter(range(calls))

    async def worker() -> None:
        for _ in queue:
            statuses.append((await api.get(path)).status)

    await asyncio.gather(*[worker() for _ in range(workers)])
    return statuses


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_zero_429_in_every_dialect(dialect: str) -> None:
    # 60 calls against 30/s with a burst of 30: the second half must be paced. Dialects that
    # announce their quota are given no rate at all and must learn it; Retry-After-only ones
    # announce nothing until it is too late, so they are configured.
    limit = RateLimitConfig(limit=30, window=1.0, dialect=dialect)  # type: ignore[arg-type]
    per_second = None if dialect in ANNOUNCED else 30
    async with (
        Testbed(TestbedConfig(records=10, rate_limit=limit)) as tb,
        interlock.Client(
            tb.url, rate_limit=interlock.RateLimit(per_second=per_second), coalesce=False
        ) as api,
    ):
        statuses = await hammer(api, 60)
        assert api.rate_limit is not None
        state = next(iter(api.rate_limit._keys.values()))
    assert statuses == [200] * 60
    assert tb.counters.rate_limited == 0
    assert tb.counters.requests == 60  # no retries needed, none hidden
    if dialect in ANNOUNCED:  # a count until a reset: spent, then waited out
        assert state.windows is not None and state.capacity == 30
    else:
        assert state.pacer.rate == pytest.approx(30 * 0.99)


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for a condition the test cannot be told about (the testbed's and the client's
    counters), checking it between event-loop turns; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {timeout}s")
        await asyncio.sleep(0.005)


async def test_a_429_pauses_the_whole_upstream() -> None:
    # Configured far above the real quota (5 per second, a bucket of 5) and not adaptive: the
    # first wave of 8 calls gets 3 429s. The 429 must pause every call to the upstream, so the
    # calls started during the pause wait with the 429'd ones and none of them gets a 429: the
    # 3 retries and the 2 newcomers fit in the 5 tokens the quota has again after the pause.
    limit = RateLimitConfig(limit=5, window=1.0, dialect="retry-after-seconds")
    rate = interlock.RateLimit(per_second=1000, burst=1000, adaptive=False)
    async with (
        Testbed(TestbedConfig(records=10, rate_limit=limit)) as tb,
        interlock.Client(tb.url, rate_limit=rate, coalesce=False, retry=interlock.Retry(attempts=5)) as api,
    ):
        limiter = api.rate_limit
        assert limiter is not None
        first = [asyncio.ensure_future(api.get("/customers/1")) for _ in range(8)]
        # The first wave has been answered and the client has seen every 429 of it.
        await until(lambda: tb.counters.requests >= 8 and 0 < tb.counters.rate_limited == limiter.throttled)
        refused = tb.counters.rate_limited
        assert refused <= 3  # 8 calls, 5 tokens (more only if the wave took > 200 ms)
        during_pause = [asyncio.ensure_future(api.get("/customers/2")) for _ in range(2)]
        responses = await asyncio.gather(*first, *during_pause)
        assert limiter.throttled == tb.counters.rate_limited
    assert [r.status for r in responses] == [200] * 10
    # Server-side counts: no 429 after the first wave's (the newcomers waited for the pause),
    # and every refused call was retried once, after it.
    assert tb.counters.rate_limited == refused
    assert tb.counters.requests == 10 + refused


async def test_max_wait_fails_fast_with_rate_limited() -> None:
    async with Testbed(TestbedConfig(records=10)) as tb:
        rate = interlock.RateLimit(per_second=0.1, burst=1, max_wait=0.5)
        async with interlock.Client(tb.url, rate_limit=rate) as api:
            await api.get("/customers/1")
            with pytest.raises(interlock.errors.RateLimited) as info:
                await api.get("/customers/2")
    assert info.value.retry_in > 0.5
    assert tb.counters.requests == 1


async def test_each_credential_has_its_own_quota() -> None:
    limit = RateLimitConfig(limit=10, window=1.0, key_header="Authorization", dialect="ietf")
    rate = interlock.RateLimit(key="Authorization")
    async with (
        Testbed(TestbedConfig(records=10, rate_limit=limit)) as tb,
        interlock.Client(tb.url, rate_limit=rate, coalesce=False) as api,
    ):

        async def as_user(token: str) -> list[int]:
            return [
                (await api.get("/customers/1", headers={"Authorization": token})).status for _ in range(9)
            ]

        results = await asyncio.gather(as_user("Bearer a"), as_user("Bearer b"))
        assert api.rate_limit is not None
        keys = api.rate_limit._keys
    assert results == [[200] * 9, [200] * 9]
    assert tb.counters.rate_limited == 0
    assert len(keys) == 2 and all("Bearer" not in k for k in keys)


async def test_retries_draw_from_the_same_quota() -> None:
    limit = RateLimitConfig(limit=20, window=1.0, dialect="ietf")
    faults = Faults(error_rates={503: 0.3})
    async with (
        Testbed(TestbedConfig(records=10, rate_limit=limit, faults=faults)) as tb,
        interlock.Client(
            tb.url, rate_limit=interlock.RateLimit(), coalesce=False, retry=interlock.Retry(attempts=10)
        ) as api,
    ):
        statuses = await hammer(api, 30, workers=5)
    assert statuses == [200] * 30
    assert tb.counters.requests > 30  # retries happened...
    assert tb.counters.rate_limited == 0  # ...and were paced like every other attempt


WORKER = r"""
import asyncio, json, sys, time
import interlock

async def main(url, redis_url, namespace, seconds):
    rate = interlock.RateLimit(store=redis_url, namespace=namespace)
    statuses = {}
    async with interlock.Client(url, name="shared-upstream", rate_limit=rate, coalesce=False) as api:
        stop = time.monotonic() + seconds
        async def worker():
            while time.monotonic() < stop:
                status = (await api.get("/customers/1")).status
                statuses[status] = statuses.get(status, 0) + 1
        await asyncio.gather(*[worker() for _ in range(8)])
    print(json.dumps(statuses))

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])))
"""


@pytest.mark.slow
async def test_four_processes_sharing_redis_stay_within_one_quota(redis_url: str, redis_prefix: str) -> None:
    limit = RateLimitConfig(limit=40, window=1.0, dialect="x-ratelimit-epoch")
    seconds = 3.0
    async with Testbed(TestbedConfig(records=10, rate_limit=limit)) as tb:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        started = time.monotonic()
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                WORKER,
                tb.url,
                redis_url,
                redis_prefix,
                str(seconds),
                stdout=asyncio.subprocess.PIPE,
                env=env,
            )
            for _ in range(4)
        ]
        outputs = [await p.communicate() for p in procs]
        elapsed = time.monotonic() - started
        counters = tb.counters
    assert all(p.returncode == 0 for p in procs)
    per_process = [json.loads(out) for out, _ in outputs]
    assert all(set(s) == {"200"} for s in per_process)  # every call of every process succeeded
    assert all(s["200"] > 10 for s in per_process)  # all four really took part
    assert counters.rate_limited == 0
    # One quota for all four: never more than the bucket plus its refill over the whole run
    # (a ceiling, measured from before the first process started).
    assert counters.requests <= 40 + 40 * elapsed
    assert counters.requests > 40 * 2  # and well past the burst: the shared pacing carried it


async def test_without_quota_headers_calls_run_at_full_concurrency(caplog: pytest.LogCaptureFixture) -> None:
    # Many real APIs send no quota headers. Until a quota is learned, the adaptive limit must
    # cost nothing: the upstream sees the client's whole concurrency, not one call at a time.
    faults = Faults(latency=Latency.fixed(20))
    caplog.set_level(logging.INFO, logger="interlock.ratelimit")
    async with (
        Testbed(TestbedConfig(records=200, faults=faults)) as tb,
        interlock.Client(
            tb.url, rate_limit=interlock.RateLimit(), concurrency=20, coalesce=False, breaker=None
        ) as api,
    ):
        responses = await asyncio.gather(*[api.get(f"/customers/{i + 1}") for i in range(200)])
        peak = tb.counters.max_concurrency
    assert [r.status for r in responses] == [200] * 200
    assert peak == 20  # the configured concurrency (it was 1)
    said = [r for r in caplog.records if "no quota headers" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.INFO


FIXED_WINDOWS = [
    ("x-ratelimit-epoch", "up", 2.0),
    ("x-ratelimit-epoch", "down", -2.0),
    ("x-ratelimit-delta", "down", 0.0),
    ("ietf", "up", 1.5),
]


@pytest.mark.slow
@pytest.mark.parametrize(("dialect", "rounding", "skew"), FIXED_WINDOWS)
async def test_fixed_windows_are_spent_without_a_429(
    dialect: str, rounding: str, skew: float, caplog: pytest.LogCaptureFixture
) -> None:
    # GitHub-style quotas: 10 calls per 2-second window, called 10-way, the server's clock
    # skewed, its resets rounded up or truncated. Nothing may meet a 429.
    limit = RateLimitConfig(
        algorithm="fixed_window",
        limit=10,
        window=2.0,
        dialect=dialect,  # type: ignore[arg-type]
        reset_rounding=rounding,  # type: ignore[arg-type]
        clock_skew=skew,
    )
    caplog.set_level(logging.INFO, logger="interlock.ratelimit")
    async with (
        Testbed(TestbedConfig(records=10, rate_limit=limit)) as tb,
        interlock.Client(tb.url, rate_limit=interlock.RateLimit(), coalesce=False) as api,
    ):
        stop = time.monotonic() + 4.5
        statuses: list[int] = []

        async def worker(n: int) -> None:
            while time.monotonic() < stop:
                statuses.append((await api.get(f"/customers/{n + 1}")).status)

        await asyncio.gather(*[worker(n) for n in range(10)])
        counters = tb.counters
    assert counters.rate_limited == 0
    assert set(statuses) == {200} and len(statuses) >= 20  # at least two windows' worth
    learned = [r for r in caplog.records if "quota learned from the upstream's headers" in r.getMessage()]
    assert len(learned) == 1 and learned[0].levelno == logging.INFO


async def test_an_absurd_limit_paces_no_slower_than_max_pause() -> None:
    # ``X-RateLimit-Limit: 0.000001`` once meant a wait of a million seconds for the next call.
    clock = FakeClock()
    faults = Faults(headers={"X-RateLimit-Limit": "0.000001"})
    async with (
        Testbed(TestbedConfig(records=10, faults=faults)) as tb,
        interlock.Client(
            tb.url,
            rate_limit=interlock.RateLimit(max_pause=60),
            timeout=interlock.Timeout(total=120),
            clock=clock,
        ) as api,
    ):
        statuses = [(await api.get(f"/customers/{i + 1}")).status for i in range(4)]
    assert statuses == [200] * 4
    assert tb.counters.requests == 4
    assert max(clock.sleeps) <= 60  # the learned rate is floored to one call per max_pause


async def test_a_429_saying_retry_after_86000_pauses_at_most_max_pause() -> None:
    clock = FakeClock()
    absurd = Faults(error_rates={429: 1.0}, headers={"Retry-After": "86000"})
    async with (
        Testbed(TestbedConfig(records=10, faults=absurd)) as tb,
        interlock.Client(
            tb.url,
            rate_limit=interlock.RateLimit(max_pause=60),
            retry=None,
            timeout=interlock.Timeout(total=600),
            clock=clock,
        ) as api,
    ):
        assert (await api.get("/customers/1")).status == 429
        tb.configure(faults=Faults())  # the upstream is fine again; only a call can tell
        before = clock.monotonic()
        assert (await api.get("/customers/2")).status == 200  # let through after max_pause
        assert clock.monotonic() - before <= 60
    assert tb.counters.requests == 2


async def test_a_window_announced_to_end_tomorrow_is_asked_again_after_max_pause() -> None:
    clock = FakeClock()
    spent = Faults(
        headers={"X-RateLimit-Limit": "10", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "80000"}
    )
    async with (
        Testbed(TestbedConfig(records=10, faults=spent)) as tb,
        interlock.Client(
            tb.url,
            rate_limit=interlock.RateLimit(max_pause=60),
            timeout=interlock.Timeout(total=600),
            clock=clock,
        ) as api,
    ):
        assert (await api.get("/customers/1")).status == 200  # "none left until tomorrow"
        before = clock.monotonic()
        assert (await api.get("/customers/2")).status == 200  # one call asks again
        assert 60 <= clock.monotonic() - before <= 61
    assert tb.counters.requests == 2


HOUR_WINDOWS = [
    ("x-ratelimit-epoch", "up"),
    ("x-ratelimit-epoch", "down"),
    ("x-ratelimit-delta", "down"),
    ("ietf", "up"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("dialect", "rounding"), HOUR_WINDOWS)
async def test_hour_long_windows_are_spent_to_the_last_call_and_then_waited_for(
    dialect: str, rounding: str
) -> None:
    # 25 calls an hour (GitHub's shape), the server's clock set 1.5 s before an hour ends: this
    # hour's count, then the next hour's, are spent 10-way without a 429; after that the next
    # window is an hour away and a call is refused locally at once.
    now = time.time()
    skew = (math.floor(now / 3600) + 1) * 3600 - 1.5 - now
    limit = RateLimitConfig(
        algorithm="fixed_window",
        limit=25,
        window=3600.0,
        dialect=dialect,  # type: ignore[arg-type]
        reset_rounding=rounding,  # type: ignore[arg-type]
        clock_skew=skew,
    )
    async with (
        Testbed(TestbedConfig(records=10, rate_limit=limit)) as tb,
        interlock.Client(tb.url, rate_limit=interlock.RateLimit(), coalesce=False) as api,
    ):
        refusals: list[interlock.errors.RateLimited] = []

        async def worker(n: int) -> None:
            while not refusals:
                try:
                    assert (await api.get(f"/customers/{n + 1}")).status == 200
                except interlock.errors.RateLimited as refused:
                    refusals.append(refused)

        await asyncio.wait_for(asyncio.gather(*[worker(n) for n in range(10)]), timeout=30)
        counters = tb.counters
    assert counters.rate_limited == 0
    # Both windows spent but for the calls kept back for probing while the first window's
    # length was unknown: >= 90 % of the quota (the target), never over it.
    assert 45 <= counters.count(200) <= 50
    assert refusals[0].retry_in is not None and refusals[0].retry_in > 8  # past the deadline


@pytest.mark.slow
async def test_without_quota_headers_the_first_429s_teach_a_rate_and_say_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # An upstream that says nothing until it refuses (a 429 with Retry-After): unpaced at first,
    # then, after the first 429, paced at what it accepted, and the rest get no 429.
    limit = RateLimitConfig(limit=20, window=1.0, dialect="retry-after-seconds")
    caplog.set_level(logging.INFO, logger="interlock.ratelimit")
    async with (
        Testbed(TestbedConfig(records=10, rate_limit=limit)) as tb,
        interlock.Client(
            tb.url, rate_limit=interlock.RateLimit(), coalesce=False, retry=interlock.Retry(attempts=6)
        ) as api,
    ):
        statuses = await hammer(api, 50, workers=10)
        assert api.rate_limit is not None
        state = next(iter(api.rate_limit._keys.values()))
        refused = tb.counters.rate_limited
    assert statuses == [200] * 50  # the refused ones were retried after the pause
    assert state.pacer.paces and state.pacer.throttled_rate
    assert state.pacer.rate <= 20  # no faster than the quota it met
    assert 1 <= refused <= 10  # the first wave's, not one per window after it
    said = [r for r in caplog.records if "a 429 with no quota announced" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.INFO
