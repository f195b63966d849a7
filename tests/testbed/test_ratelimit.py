"""Server-side quotas: each dialect's headers, 429s, and "obey the headers, get no 429"."""

from __future__ import annotations

import asyncio
import math
import random
import time
from email.utils import parsedate_to_datetime

import aiohttp
import pytest

from interlock.testbed import RateLimitConfig, Testbed, TestbedConfig
from interlock.testbed._ratelimit import RateLimiter


def limited(**kwargs: object) -> TestbedConfig:
    return TestbedConfig(records=5, rate_limit=RateLimitConfig(**kwargs))  # type: ignore[arg-type]


async def test_epoch_dialect_headers_and_429(session: aiohttp.ClientSession) -> None:
    async with Testbed(limited(limit=3, window=1.0, dialect="x-ratelimit-epoch")) as tb:
        remaining = []
        for _ in range(3):
            async with session.get(f"{tb.url}/customers/1") as r:
                assert r.status == 200
                assert r.headers["X-RateLimit-Limit"] == "3"
                remaining.append(int(r.headers["X-RateLimit-Remaining"]))
                # Next token in 1/3 s (3 per second), rounded up to a whole epoch second.
                reset = int(r.headers["X-RateLimit-Reset"])
                assert time.time() < reset <= math.ceil(time.time() + 1 / 3)
        assert remaining == [2, 1, 0]
        async with session.get(f"{tb.url}/customers/1") as r:
            assert r.status == 429
            assert r.headers["X-RateLimit-Remaining"] == "0"
            assert r.headers["Retry-After"] == "1"
            assert (await r.json())["error"] == "rate limited"
        assert tb.counters.rate_limited == 1
        assert tb.counters.count(429) == 1


async def test_delta_dialect_and_keys_are_separate(session: aiohttp.ClientSession) -> None:
    config = limited(algorithm="fixed_window", limit=2, window=30.0, dialect="x-ratelimit-delta")
    async with Testbed(config) as tb:
        for _ in range(2):
            async with session.get(f"{tb.url}/customers/1") as r:
                assert r.status == 200
                assert 0 < int(r.headers["X-RateLimit-Reset"]) <= 30
        async with session.get(f"{tb.url}/customers/1") as r:
            assert r.status == 429
            assert 0 < int(r.headers["Retry-After"]) <= 30
        # Another client key has its own quota; the anonymous one stays exhausted.
        other = {"Authorization": "Bearer other"}
        async with session.get(f"{tb.url}/customers/1", headers=other) as r:
            assert r.status == 200
            assert r.headers["X-RateLimit-Remaining"] == "1"


async def test_ietf_dialect_structured_fields(session: aiohttp.ClientSession) -> None:
    async with Testbed(limited(limit=2, window=1.0, dialect="ietf")) as tb:
        seen = []
        for _ in range(3):
            async with session.get(f"{tb.url}/customers/1") as r:
                assert r.headers["RateLimit-Policy"] == '"default";q=2;w=1'
                seen.append((r.status, r.headers["RateLimit"]))
                if r.status == 429:
                    assert r.headers["Retry-After"] == "1"
        assert seen == [
            (200, '"default";r=1;t=1'),
            (200, '"default";r=0;t=1'),
            (429, '"default";r=0;t=1'),
        ]


@pytest.mark.parametrize("dialect", ["retry-after-seconds", "retry-after-date"])
async def test_retry_after_dialects(session: aiohttp.ClientSession, dialect: str) -> None:
    async with Testbed(limited(limit=1, window=2.0, dialect=dialect)) as tb:
        async with session.get(f"{tb.url}/customers/1") as r:
            assert r.status == 200
            assert not any(h.lower().startswith(("x-ratelimit", "ratelimit")) for h in r.headers)
        async with session.get(f"{tb.url}/customers/1") as r:
            assert r.status == 429
            retry_after = r.headers["Retry-After"]
        if dialect == "retry-after-seconds":
            assert retry_after == "2"
        else:
            when = parsedate_to_datetime(retry_after).timestamp()
            assert time.time() < when <= time.time() + 3


async def test_injected_errors_still_count_against_quota(session: aiohttp.ClientSession) -> None:
    from interlock.testbed import Faults

    config = TestbedConfig(
        records=3,
        rate_limit=RateLimitConfig(limit=2, window=30.0),
        faults=Faults(error_rates={503: 1.0}),
    )
    async with Testbed(config) as tb:
        statuses = []
        for _ in range(3):
            async with session.get(f"{tb.url}/customers/1") as r:
                statuses.append(r.status)
                assert "X-RateLimit-Remaining" in r.headers
        assert statuses == [503, 503, 429]
        assert tb.counters.errors_injected == 2 and tb.counters.rate_limited == 1


async def obey(session: aiohttp.ClientSession, url: str, n: int, dialect: str) -> list[int]:
    """A client that does exactly what the headers say, nothing more."""
    statuses = []
    for _ in range(n):
        async with session.get(url) as r:
            await r.read()
            statuses.append(r.status)
            if dialect == "ietf":
                fields = dict(p.split("=") for p in r.headers["RateLimit"].split(";")[1:])
                remaining, wait = int(fields["r"]), float(fields["t"])
            else:
                remaining = int(r.headers["X-RateLimit-Remaining"])
                reset = int(r.headers["X-RateLimit-Reset"])
                wait = reset - time.time() if dialect == "x-ratelimit-epoch" else reset
        if remaining == 0:
            await asyncio.sleep(max(0.0, wait))
    return statuses


@pytest.mark.parametrize(
    ("algorithm", "dialect"),
    [("fixed_window", "x-ratelimit-epoch"), ("token_bucket", "ietf")],
)
async def test_obeying_the_headers_never_gets_429(
    session: aiohttp.ClientSession, algorithm: str, dialect: str
) -> None:
    async with Testbed(limited(algorithm=algorithm, limit=4, window=0.5, dialect=dialect)) as tb:
        statuses = await obey(session, f"{tb.url}/customers/1", 10, dialect)
        assert statuses == [200] * 10
        assert tb.counters.rate_limited == 0


@pytest.mark.parametrize("algorithm", ["token_bucket", "fixed_window"])
@pytest.mark.parametrize("dialect", ["x-ratelimit-epoch", "x-ratelimit-delta", "ietf"])
def test_announced_reset_is_never_early(algorithm: str, dialect: str) -> None:
    """Simulated clock: a client waiting exactly as announced is always admitted, while
    quota really is enforced (a request at Remaining 0 without waiting is refused)."""
    rng = random.Random(f"{algorithm}{dialect}")
    for _ in range(30):
        window = rng.choice([0.1, 0.25, 1.0, 3.0])
        limit = rng.randint(1, 6)
        config = RateLimitConfig(algorithm, limit=limit, window=window, dialect=dialect)  # type: ignore[arg-type]
        limiter = RateLimiter(config)
        now = 1_700_000_000.0 + rng.random()
        for _ in range(40):
            decision = limiter.check("k", now)
            assert decision.allowed, (config, now)
            headers = limiter.headers(decision, now)
            if decision.remaining == 0:
                assert not limiter.check("k", now).allowed
                if dialect == "x-ratelimit-epoch":
                    now = float(headers["X-RateLimit-Reset"])
                elif dialect == "x-ratelimit-delta":
                    now += int(headers["X-RateLimit-Reset"])
                else:
                    now += int(headers["RateLimit"].rsplit("t=", 1)[1])
            else:
                now += rng.random() * 0.01


def test_token_bucket_refills_and_retry_after_is_exact() -> None:
    limiter = RateLimiter(RateLimitConfig("token_bucket", limit=10, window=1.0, burst=3))
    now = 1000.0
    assert [limiter.check("k", now).remaining for _ in range(3)] == [2, 1, 0]
    denied = limiter.check("k", now)
    assert not denied.allowed
    assert denied.reset_after == pytest.approx(0.1)
    assert not limiter.check("k", now + 0.09).allowed
    assert limiter.check("k", now + 0.1001).allowed
    assert limiter.retry_after(denied, now) == "1"
    assert limiter.check("k", now + 10).remaining == 2  # refilled, capped at the burst
