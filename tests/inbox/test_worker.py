"""Processing: handlers, retries, dead letters and replay, per-key ordering, heartbeats."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import AsyncIterator

import pytest

import interlock
from interlock import Backoff, Redelivery
from interlock.stores import Message
from interlock.testing import FakeClock

from .conftest import until

FAST_RETRY = Redelivery(attempts=3, backoff=Backoff(delays=[0.05], jitter="none"))


def message(i: int, *, type: str = "invoice.paid", customer: str | None = None, source: str = "stripe") -> Message:
    body = {"id": f"evt_{i}", "type": type, "data": {"object": {"customer": customer}}}
    return Message(
        source=source, id=f"evt_{i}", type=type, body=json.dumps(body).encode(), headers={},
        received_at=time.time(), ordering_key=f"{source}\x1f{customer}" if customer else None,
    )


@pytest.fixture
async def box(sqlite_path: str) -> AsyncIterator[interlock.Inbox]:
    inbox = interlock.Inbox(store=f"sqlite:///{sqlite_path}", redelivery=FAST_RETRY, visibility=5.0)
    inbox.internal_source("stripe")  # the tests put its events from code
    try:
        yield inbox
    finally:
        await inbox.aclose()


async def test_handlers_see_the_event_and_the_correlation_id(box: interlock.Inbox) -> None:
    seen: list[tuple[str, str, int, str | None, object]] = []

    @box.handler("stripe", "invoice.paid")
    async def on_paid(event: interlock.Event) -> None:
        seen.append((event.id, event.type, event.attempt, interlock.current_correlation_id(), event.json()["id"]))

    other: list[str] = []

    @box.handler("stripe")
    def anything_else(event: interlock.Event) -> None:  # sync handlers run in a thread
        other.append(f"{event.type}:{interlock.current_correlation_id()}:{threading.current_thread().name != 'MainThread'}")

    await box.put(message(1))
    await box.put(message(2, type="customer.created"))
    pool = box.start_workers(concurrency=2)
    await until(lambda: len(seen) == 1 and len(other) == 1)
    await pool.aclose()
    assert seen == [("evt_1", "invoice.paid", 1, "evt_1", "evt_1")]
    assert other == ["customer.created:evt_2:True"]
    stats = await box.stats()
    assert (stats["processed"], stats["queue_depth"]) == (2, 0)
    assert stats["processing_seconds"]["p50"] is not None


async def test_exhausted_events_are_dead_lettered_then_replayed_after_the_fix(box: interlock.Inbox) -> None:
    fixed = False
    attempts: list[int] = []
    done: list[str] = []

    @box.handler("stripe", "*")
    async def flaky(event: interlock.Event) -> None:
        attempts.append(event.attempt)
        if not fixed:
            raise ValueError(f"customer missing for {event.id}")
        done.append(event.id)

    await box.put(message(1))
    pool = box.start_workers(concurrency=2)
    await until(lambda: len(attempts) == 3)
    await until(lambda: box.metrics.dead_lettered["stripe"] == 1)
    assert attempts == [1, 2, 3]
    (dead,) = await box.dlq.list()
    assert dead.message.id == "evt_1"
    assert dead.attempts == 3
    assert [f.attempt for f in dead.failures] == [1, 2, 3]
    assert "ValueError: customer missing for evt_1" in dead.last_error
    assert "test_worker.py" in dead.last_error  # where it was raised
    assert (await box.dlq.inspect("evt_1")) == dead
    stats = await box.stats()
    assert (stats["retries"], stats["dlq_size"]) == (2, 1)

    fixed = True
    assert await box.dlq.replay("evt_1") == 1
    await until(lambda: done == ["evt_1"])
    await pool.aclose()
    assert await box.dlq.count() == 0
    assert attempts[-1] == 1  # a replay starts counting again


async def test_replay_where_by_type_and_time(box: interlock.Inbox) -> None:
    fail = True
    handled: list[str] = []

    @box.handler("stripe", "*")
    async def h(event: interlock.Event) -> None:
        if fail:
            raise RuntimeError("down")
        handled.append(event.id)

    box.redelivery = Redelivery(attempts=1)
    started = time.time()
    for i in range(6):
        await box.put(message(i, type="a" if i % 2 else "b"))
    pool = box.start_workers(concurrency=4)
    await until(lambda: box.metrics.dead_lettered["stripe"] == 6)
    fail = False
    assert await box.dlq.count(type="a") == 3
    assert await box.dlq.replay_where(type="a", since=started) == 3
    await until(lambda: len(handled) == 3)
    assert sorted(handled) == ["evt_1", "evt_3", "evt_5"]
    assert await box.dlq.purge(type="b") == 3
    await pool.aclose()
    assert await box.dlq.count() == 0


async def test_same_customer_one_at_a_time_in_arrival_order(box: interlock.Inbox) -> None:
    running: dict[str, int] = {}
    max_parallel_per_key = 0
    max_parallel = 0
    order: dict[str, list[int]] = {}

    @box.handler("stripe", "*")
    async def h(event: interlock.Event) -> None:
        nonlocal max_parallel_per_key, max_parallel
        key = event.ordering_key or ""
        running[key] = running.get(key, 0) + 1
        max_parallel_per_key = max(max_parallel_per_key, running[key])
        max_parallel = max(max_parallel, sum(running.values()))
        await asyncio.sleep(0.002)
        order.setdefault(key, []).append(int(event.id.split("_")[1]))
        running[key] -= 1
        if int(event.id.split("_")[1]) % 7 == 0 and event.attempt == 1:
            raise RuntimeError("fail once")  # a retry must not let later events of the key pass

    customers = [f"cus_{c}" for c in range(5)]
    for i in range(100):  # arrival order = id order
        await box.put(message(i, customer=customers[i % 5]))
    failing = [i for i in range(100) if i % 7 == 0]
    pool = box.start_workers(concurrency=8)
    await until(lambda: sum(len(v) for v in order.values()) == 100 + len(failing), 30)
    await pool.aclose()
    assert (await box.queue.stats()).pending == 0
    for c, customer in enumerate(customers):
        # Each failure is retried before anything after it with the same key runs.
        expected = [n for n in range(c, 100, 5) for _ in range(2 if n % 7 == 0 else 1)]
        assert order[customer] == expected, f"{customer} out of order"
    assert max_parallel_per_key == 1
    assert max_parallel > 1  # different customers did run in parallel


async def test_heartbeat_keeps_a_long_handler_from_being_redelivered(sqlite_path: str) -> None:
    # On a fake clock (the wall-clock version flaked when a loaded machine delayed a beat past
    # the 0.3 s visibility): three idle workers poll the queue while the handler runs for over
    # three visibilities, and none of them is handed the event again.
    clock = FakeClock()
    box = interlock.Inbox(store=f"sqlite:///{sqlite_path}", visibility=0.3, clock=clock)
    release = asyncio.Event()
    box.internal_source("stripe")  # the tests put its events from code
    calls: list[int] = []

    @box.handler("stripe", "*")
    async def long(event: interlock.Event) -> None:
        calls.append(event.attempt)
        await release.wait()

    await box.put(message(1))
    started = clock.time()
    pool = box.start_workers(concurrency=4)
    # Only the handler's watcher sleeps on this clock: each beat moves it on by a third of 0.3 s.
    await until(lambda: clock.time() > started + 3 * 0.3)
    assert await box.queue.lease(1, 0.3) == []  # the beats kept the lease
    release.set()
    await until(lambda: box.metrics.processed["stripe"] == 1)
    await pool.aclose()
    await box.aclose()
    assert calls == [1]
    assert box.metrics.processed["stripe"] == 1


async def test_slow_handlers_are_warned_about(sqlite_path: str, caplog: pytest.LogCaptureFixture) -> None:
    box = interlock.Inbox(store=f"sqlite:///{sqlite_path}", slow_after=0.1)
    box.internal_source("stripe")  # the tests put its events from code

    @box.handler("stripe", "*")
    async def slow(event: interlock.Event) -> None:
        await asyncio.sleep(0.3)

    caplog.set_level(logging.WARNING, logger="interlock.inbox")
    await box.put(message(1))
    pool = box.start_workers()
    await until(lambda: box.metrics.processed["stripe"] == 1)
    await pool.aclose()
    await box.aclose()
    assert "still running after 0.1 s" in caplog.text
    assert box.metrics.slow["stripe"] == 1


async def test_events_without_a_handler_are_acknowledged_and_counted(box: interlock.Inbox) -> None:
    await box.put(message(1, source="nobody"))
    pool = box.start_workers()
    await until(lambda: box.metrics.unhandled["nobody"] == 1)
    await pool.aclose()
    assert (await box.queue.stats()).pending == 0


async def test_run_workers_until_cancelled_and_prometheus(box: interlock.Inbox) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    done: list[str] = []
    box.add_handler("stripe", "*", lambda e: done.append(e.id))
    await box.put(message(1))
    task = asyncio.create_task(box.run_workers(concurrency=1))
    await until(lambda: done == ["evt_1"])
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    registry = CollectorRegistry()
    box.register_prometheus(registry)
    await box.refresh_stats()
    text = generate_latest(registry).decode()
    assert 'interlock_webhooks_processed_total{source="stripe"} 1.0' in text
    assert "interlock_webhook_queue_depth 0.0" in text


async def test_permanent_failure_is_dead_lettered_at_once(box: interlock.Inbox) -> None:
    attempts: list[int] = []

    @box.handler("stripe", "*")
    async def validate(event: interlock.Event) -> None:
        attempts.append(event.attempt)
        raise interlock.errors.PermanentFailure(f"amount missing in {event.id}")

    await box.put(message(7))
    pool = box.start_workers(concurrency=1)
    await until(lambda: box.metrics.dead_lettered["stripe"] == 1)
    await pool.aclose()
    assert attempts == [1]  # no retry: FAST_RETRY would have allowed 3
    (dead,) = await box.dlq.list()
    assert "PermanentFailure: amount missing in evt_7" in dead.last_error
    assert (await box.stats())["retries"] == 0


# -- leases and visibility on a fake clock: the pool, the queue and the Inbox share one clock --------


async def test_heartbeats_on_the_fake_clock_keep_a_running_handlers_lease(
    sqlite_path: str, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    box = interlock.Inbox(store=f"sqlite:///{sqlite_path}", visibility=30.0, clock=clock)
    box.internal_source("stripe")  # the tests put its events from code
    release = asyncio.Event()
    calls: list[int] = []

    @box.handler("stripe", "*")
    async def stuck(event: interlock.Event) -> None:
        calls.append(event.attempt)
        await release.wait()

    caplog.set_level(logging.WARNING, logger="interlock.inbox")
    await box.put(message(1))
    started = clock.time()
    pool = box.start_workers(concurrency=2)
    # Nothing else sleeps on this clock: the handler's watcher moves it on, one wake at a time.
    await until(lambda: clock.time() > started + 3 * 30.0)
    assert await box.queue.lease(1, 30.0) == []  # three visibilities on, the lease still holds
    release.set()
    await until(lambda: box.metrics.processed["stripe"] == 1)
    await pool.aclose()
    await box.aclose()
    assert calls == [1]
    # The slow warning at slow_after (5 s), then a beat every third of the visibility.
    assert clock.sleeps[:4] == [5.0, 5.0, 10.0, 10.0]
    assert "still running after 5.0 s" in caplog.text


async def test_a_lease_nobody_extends_redelivers_with_the_next_attempt_once_the_fake_clock_passes_it(
    sqlite_path: str,
) -> None:
    clock = FakeClock()
    box = interlock.Inbox(store=f"sqlite:///{sqlite_path}", visibility=30.0, clock=clock)
    box.internal_source("stripe")  # the tests put its events from code
    seen: list[tuple[int, int]] = []

    @box.handler("stripe", "*")
    async def record(event: interlock.Event) -> None:
        seen.append((event.attempt, len(event.failures)))

    await box.put(message(1))
    (held,) = await box.queue.lease(1, 30.0)  # a worker that dies holding it: no heartbeat, no outcome
    assert held.attempt == 1
    clock.advance(29.0)
    assert await box.queue.lease(1, 30.0) == []
    clock.advance(2.0)
    pool = box.start_workers()
    await until(lambda: box.metrics.processed["stripe"] == 1)
    await pool.aclose()
    await box.aclose()
    assert seen == [(2, 0)]  # an expired lease is a delivery, not a failure


async def test_a_delivery_past_the_attempts_is_dead_lettered_without_running(sqlite_path: str) -> None:
    clock = FakeClock()
    box = interlock.Inbox(
        store=f"sqlite:///{sqlite_path}", visibility=30.0, clock=clock, redelivery=Redelivery(attempts=1)
    )
    box.internal_source("stripe")  # the tests put its events from code
    calls: list[int] = []
    box.add_handler("stripe", "*", lambda event: calls.append(event.attempt))
    await box.put(message(1))
    await box.queue.lease(1, 30.0)  # the only allowed delivery, abandoned
    clock.advance(31.0)
    pool = box.start_workers()
    await until(lambda: box.metrics.dead_lettered["stripe"] == 1)
    await pool.aclose()
    (dead,) = await box.dlq.list()
    await box.aclose()
    assert calls == []
    assert "delivery 2 is past the 1 allowed" in dead.last_error


async def test_a_failed_attempt_comes_back_after_its_retry_delay_on_the_fake_clock(sqlite_path: str) -> None:
    clock = FakeClock()
    policy = Redelivery(attempts=3, backoff=Backoff(delays=[60.0], jitter="none"))
    box = interlock.Inbox(store=f"sqlite:///{sqlite_path}", clock=clock, redelivery=policy)
    box.internal_source("stripe")  # the tests put its events from code
    seen: list[tuple[int, list[int]]] = []

    @box.handler("stripe", "*")
    async def fails_once(event: interlock.Event) -> None:
        seen.append((event.attempt, [f.attempt for f in event.failures]))
        if event.attempt == 1:
            raise ValueError("not yet")

    await box.put(message(1))
    pool = box.start_workers(concurrency=1)
    await until(lambda: box.metrics.retries["stripe"] == 1)
    await pool.aclose()
    # The handler raised without waiting, so nothing slept on the clock: the nack was at "now".
    clock.advance(59.0)
    assert await box.queue.lease(1, 30.0) == []
    clock.advance(2.0)
    pool = box.start_workers(concurrency=1)
    await until(lambda: box.metrics.processed["stripe"] == 1)
    await pool.aclose()
    await box.aclose()
    assert seen == [(1, []), (2, [1])]


async def acked_past_retention(sqlite_path: str) -> interlock.Inbox:
    """An inbox (retention one hour) holding one event acknowledged an hour and a second ago."""
    clock = FakeClock()
    box = interlock.Inbox(store=f"sqlite:///{sqlite_path}", clock=clock, retention=3600.0)
    box.internal_source("stripe")  # the tests put its events from code
    await box.put(message(1))
    (lease,) = await box.queue.lease(1, 30.0)
    await box.queue.ack(lease)
    clock.advance(3601.0)
    return box


async def test_stats_read_the_queue_and_prune_is_its_own_step(sqlite_path: str) -> None:
    box = await acked_past_retention(sqlite_path)
    await box.stats()
    assert await box.put(message(1)) is False  # stats did not prune: the id still drops duplicates
    assert await box.prune() == 1
    assert await box.put(message(1)) is True  # pruned: the id is forgotten
    await box.aclose()


async def test_workers_prune_on_their_own_schedule(sqlite_path: str) -> None:
    box = await acked_past_retention(sqlite_path)
    pool = box.start_workers()  # prunes when it starts, then every ten minutes
    deadline = time.monotonic() + 10
    while not await box.put(message(1)):  # a duplicate until the pool has pruned the old one
        assert time.monotonic() < deadline, "the pool did not prune"
        await asyncio.sleep(0.01)
    await pool.aclose()
    await box.aclose()
