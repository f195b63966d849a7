"""The breaker's recovery end to end, against the testbed: it closes again after an outage, a
probe that only ran out of its own call's time does not hold it open, the upstream's
Retry-After sets the probe cadence, and callers waiting on it are woken by a successful probe
rather than sleeping out their backoff."""

from __future__ import annotations

import asyncio

import pytest

from interlock import Backoff, CircuitBreaker, Client, Retry, Timeout
from interlock.core.breaker import BreakerState
from interlock.errors import CircuitOpen, TimedOut
from interlock.testbed import Faults, Latency, Testbed, TestbedConfig
from interlock.testing import FakeClock


class HeldClock:
    """Time that moves only when the test says, and whose sleeps really wait for it: a caller
    asleep on it wakes by its own timer only if the test advances the clock."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self._moved = asyncio.Event()

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return 1_700_000_000.0 + self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self._moved.set()
        self._moved = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        until = self.now + seconds
        while self.now < until:
            await self._moved.wait()


async def trip(client: Client, tb: Testbed, calls: int) -> None:
    """Open the client's breaker with ``calls`` failing calls during an outage."""
    tb.start_outage(60.0)
    for i in range(calls):
        assert (await client.get(f"/customers/{i + 1}")).status == 503
    assert client._breaker is not None and client._breaker.breaker.state is BreakerState.OPEN


async def test_a_probe_cut_short_by_its_own_deadline_does_not_reopen_the_breaker() -> None:
    # The bug behind "calls after the outage kept failing with circuit open": the first caller
    # let through after the open period may be the one with the least time left; its probe
    # timed out by its own deadline and reopened the breaker for everyone, again and again.
    clock = FakeClock()
    async with (
        Testbed(TestbedConfig(records=10)) as tb,
        Client(
            tb.url,
            retry=None,
            breaker=CircuitBreaker(min_calls=2, open_for=5.0),
            timeout=Timeout(read=10.0, total=30.0),
            clock=clock,
        ) as client,
    ):
        await trip(client, tb, 2)
        tb.configure(faults=Faults(latency=Latency.fixed(2_000)))  # back, but slow
        clock.advance(5.0)
        with pytest.raises(TimedOut):
            await client.get("/customers/1", timeout=0.05)  # the probe: 50 ms for a 2 s answer
        assert client._breaker is not None
        breaker = client._breaker.breaker
        assert breaker.state is BreakerState.HALF_OPEN  # not OPEN for another 5 s
        assert breaker.probes_in_flight == 0  # the slot is free for the next caller
        tb.configure(faults=Faults())
        assert (await client.get("/customers/2")).status == 200  # the next caller's probe
        assert breaker.state is BreakerState.CLOSED


async def test_a_probe_given_the_full_attempt_time_still_counts() -> None:
    # The exemption covers only attempts cut short by their call's deadline: a probe that had
    # the client's whole attempt timeout and still timed out says the upstream is not back.
    clock = FakeClock()
    async with (
        Testbed(TestbedConfig(records=10)) as tb,
        Client(
            tb.url,
            retry=None,
            breaker=CircuitBreaker(min_calls=2, open_for=5.0),
            timeout=Timeout(read=0.05, total=30.0),
            clock=clock,
        ) as client,
    ):
        await trip(client, tb, 2)
        tb.configure(faults=Faults(latency=Latency.fixed(2_000)))
        clock.advance(5.0)
        with pytest.raises(TimedOut):
            await client.get("/customers/1")
        assert client._breaker is not None and client._breaker.breaker.state is BreakerState.OPEN


async def test_the_upstreams_retry_after_sets_when_the_breaker_probes() -> None:
    clock = FakeClock()
    async with (
        Testbed(TestbedConfig(records=10, faults=Faults(outage_retry_after=2))) as tb,
        Client(tb.url, retry=None, breaker=CircuitBreaker(min_calls=2, open_for=30.0), clock=clock) as client,
    ):
        await trip(client, tb, 2)
        with pytest.raises(CircuitOpen) as refused:
            await client.get("/customers/3")
        assert refused.value.retry_in == pytest.approx(2.0)  # not open_for's 30 s
        assert tb.counters.requests == 2
        clock.advance(2.0)
        tb.configure(faults=Faults())
        assert (await client.get("/customers/3")).status == 200
        assert client._breaker is not None and client._breaker.breaker.state is BreakerState.CLOSED


async def test_callers_waiting_on_the_breaker_are_woken_by_a_successful_probe() -> None:
    # On a clock that never moves by itself, a caller told to come back in a second can only
    # finish if the breaker wakes it: the probe's success does.
    clock = HeldClock()
    retry = Retry(attempts=3, circuit_open=True, backoff=Backoff(base=5.0, cap=5.0))
    async with (
        Testbed(TestbedConfig(records=10)) as tb,
        Client(
            tb.url,
            retry=retry,
            breaker=CircuitBreaker(min_calls=2, open_for=5.0),
            timeout=Timeout(total=60.0),
            clock=clock,  # type: ignore[arg-type]
        ) as client,
    ):
        client.retry = None  # trip it with single attempts
        await trip(client, tb, 2)
        client.retry = retry
        clock.advance(5.0)
        tb.configure(faults=Faults(latency=Latency.fixed(300)))  # back; the probe takes 300 ms
        probe = asyncio.create_task(client.get("/customers/3"))
        while tb.counters.in_flight == 0:  # until the probe is at the upstream
            await asyncio.sleep(0.005)
        waiter = asyncio.create_task(client.get("/customers/4"))  # refused: a probe is in flight
        responses = await asyncio.wait_for(asyncio.gather(probe, waiter), timeout=10)
        assert [r.status for r in responses] == [200, 200]
        assert clock.now == 1_005.0  # nobody's own timer ran out: the waiter was woken
        assert tb.counters.requests == 4  # 2 tripping calls, the probe, the woken waiter


async def test_a_caller_backing_off_after_a_failure_is_woken_when_the_breaker_closes() -> None:
    # A caller whose attempt failed in the outage backs off 5 s; the breaker closes on another
    # caller's probe long before that. On a clock that never moves by itself, the caller can
    # only finish if the closing breaker wakes it; then its backoff starts over.
    clock = HeldClock()
    retry = Retry(
        attempts=4, circuit_open=True, backoff=Backoff(base=5.0, cap=5.0, jitter="none"), budget=None
    )
    async with (
        Testbed(TestbedConfig(records=10)) as tb,
        Client(
            tb.url,
            retry=retry,
            breaker=CircuitBreaker(min_calls=3, open_for=1.0),
            timeout=Timeout(total=60.0),
            clock=clock,  # type: ignore[arg-type]
        ) as client,
    ):
        assert client._breaker is not None
        client.retry = None
        tb.start_outage(60.0)
        for i in range(2):  # two failures: not yet open
            assert (await client.get(f"/customers/{i + 1}")).status == 503
        client.retry = retry
        backing_off = asyncio.create_task(client.get("/customers/3"))  # the 3rd failure opens it
        while client._breaker.breaker.state is not BreakerState.OPEN:
            await asyncio.sleep(0.005)
        assert tb.counters.requests == 3
        tb.configure(faults=Faults())  # the outage is over
        clock.advance(1.0)  # the open period is over, the caller's own 5 s backoff is not
        probe = await client.get("/customers/4")
        assert probe.status == 200 and client._breaker.breaker.state is BreakerState.CLOSED
        response = await asyncio.wait_for(backing_off, timeout=10)
    assert response.status == 200 and response.attempts == 2
    assert clock.now == 1_001.0  # its own timer never ran out: the closing breaker woke it
    assert client._breaker.recoveries == 1
    assert tb.counters.requests == 5  # 3 failures, the probe, the woken caller's second attempt


async def test_a_closed_breaker_takes_no_verdict_from_an_attempt_its_deadline_cut_short() -> None:
    # A closed breaker admits without reading the clock; the Client marks the attempt its
    # deadline leaves 50 ms of a 10 s attempt timeout, so its timeout opens nothing.
    async with (
        Testbed(TestbedConfig(records=10, faults=Faults(latency=Latency.fixed(2_000)))) as tb,
        Client(
            tb.url,
            retry=None,
            breaker=CircuitBreaker(min_calls=1, consecutive_failures=1),
            timeout=Timeout(read=10.0, total=30.0),
        ) as client,
    ):
        with pytest.raises(TimedOut):
            await client.get("/customers/1", timeout=0.05)
        assert client._breaker is not None
        assert client._breaker.breaker.state is BreakerState.CLOSED
    async with (
        Testbed(TestbedConfig(records=10, faults=Faults(latency=Latency.fixed(2_000)))) as tb,
        Client(
            tb.url,
            retry=None,
            breaker=CircuitBreaker(min_calls=1, consecutive_failures=1),
            timeout=Timeout(read=0.05, total=30.0),
        ) as whole,
    ):
        with pytest.raises(TimedOut):  # given its whole attempt time, a timeout counts
            await whole.get("/customers/2")
        assert whole._breaker is not None and whole._breaker.breaker.state is BreakerState.OPEN


async def test_a_call_the_open_breaker_refuses_waits_for_no_quota_turn_and_spends_none() -> None:
    """The breaker's early refusal comes before the rate limit: with the quota nearly spent and
    the clock held still, calls to an open breaker fail at once (before the fix each waited for
    a turn first, here forever) and leave the remaining quota as it was."""
    import interlock
    from interlock.testing import MockTransport, respond

    clock = HeldClock()
    async with Client(
        "https://api.test",
        profile="interactive",
        rate_limit=interlock.RateLimit(per_second=1, burst=3, adaptive=False),
        breaker=CircuitBreaker(min_calls=2, consecutive_failures=2, open_for=60),
        retry=Retry(attempts=1),
        transport=MockTransport(lambda request: respond(503)),
        clock=clock,
    ) as api:
        for _ in range(2):
            with pytest.raises(interlock.errors.RetriesExhausted):
                await api.get("/x")
        assert api._breaker is not None and api._breaker.breaker.state is BreakerState.OPEN
        assert api.rate_limit is not None
        (before,) = api.rate_limit.stats()["keys"].values()
        for _ in range(4):
            with pytest.raises(CircuitOpen):
                await asyncio.wait_for(api.get("/x"), 5.0)
        (after,) = api.rate_limit.stats()["keys"].values()
    assert after["remaining"] == before["remaining"]
    assert api.rate_limit.stats()["waited"] == 0
