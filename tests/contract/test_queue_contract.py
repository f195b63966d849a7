"""The ``Queue`` contract: one suite, run on every backend (see conftest.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from interlock.stores import DeadLetterFilter, Message, Queue
from interlock.stores.queue import Failure
from interlock.testing import FakeClock

VIS = 30.0


def msg(i: int | str, *, source: str = "src", type: str = "t", key: str | None = None) -> Message:
    return Message(
        source=source, id=f"m{i}", type=type, body=f'{{"n": "{i}"}}'.encode(),
        headers={"x-test": str(i)}, received_at=time.time(), ordering_key=key,
    )


async def put_all(queue: Queue, *messages: Message) -> list[bool]:
    return [await queue.put(m) for m in messages]


async def test_put_dedupes_per_source(queue: Queue) -> None:
    assert await put_all(queue, msg(1), msg(1), msg(1, source="other"), msg(2)) == [True, False, True, True]
    assert (await queue.stats()).pending == 3


async def test_concurrent_duplicate_puts_store_one(queue: Queue) -> None:
    results = await asyncio.gather(*(queue.put(msg(7)) for _ in range(20)))
    assert sorted(results) == [False] * 19 + [True]
    assert (await queue.stats()).pending == 1


async def test_put_is_durable_across_instances(queue_factory: Callable[..., Queue]) -> None:
    first = queue_factory()
    await first.open()
    await put_all(first, msg(1), msg(2))
    await first.aclose()
    second = queue_factory()
    await second.open()
    leases = await second.lease(10, VIS)
    assert [lease.message.id for lease in leases] == ["m1", "m2"]


async def test_lease_hands_out_in_order_with_everything_kept(queue: Queue) -> None:
    await put_all(queue, msg(1, type="a"), msg(2, type="b"), msg(3))
    leases = await queue.lease(2, VIS)
    assert [(lease.message.id, lease.message.type, lease.attempt) for lease in leases] == [("m1", "a", 1), ("m2", "b", 1)]
    first = leases[0].message
    assert first.body == b'{"n": "1"}'
    assert first.headers == {"x-test": "1"}
    assert first.source == "src"
    assert first.received_at > 0
    assert leases[0].failures == ()
    rest = await queue.lease(10, VIS)
    assert [lease.message.id for lease in rest] == ["m3"]
    assert await queue.lease(10, VIS) == []
    stats = await queue.stats()
    assert (stats.pending, stats.in_flight) == (3, 3)


async def test_concurrent_leasers_never_share_a_message(queue_factory: Callable[..., Queue]) -> None:
    a, b = queue_factory(), queue_factory()
    await a.open()
    await b.open()
    await put_all(a, *(msg(i) for i in range(60)))
    batches = await asyncio.gather(*(q.lease(7, VIS) for _ in range(6) for q in (a, b)))
    ids = [lease.message.id for batch in batches for lease in batch]
    assert len(ids) == len(set(ids)) == 60


async def test_expired_lease_is_redelivered_with_the_next_attempt(queue: Queue, clock: FakeClock) -> None:
    await queue.put(msg(1))
    (first,) = await queue.lease(1, 0.2)
    clock.advance(0.19)
    assert await queue.lease(1, VIS) == []  # not yet expired
    clock.advance(0.02)
    (second,) = await queue.lease(1, VIS)
    assert (second.message.id, second.attempt) == ("m1", 2)
    assert await queue.ack(first) is False  # the old lease was handed on
    assert await queue.nack(first, delay=0, error="late") is False
    assert await queue.extend(first, VIS) is False
    assert await queue.ack(second) is True
    assert await queue.lease(1, VIS) == []


async def test_extend_keeps_the_lease(queue: Queue, clock: FakeClock) -> None:
    await queue.put(msg(1))
    (lease,) = await queue.lease(1, 0.3)
    for _ in range(3):
        clock.advance(0.2)
        assert await queue.extend(lease, 0.3) is True
        assert await queue.lease(1, VIS) == []  # 0.6 s after the lease began: still held
    clock.advance(0.31)  # not extended any more: the last extension runs out
    (again,) = await queue.lease(1, VIS)
    assert again.attempt == 2
    assert await queue.ack(lease) is False and await queue.ack(again) is True


async def test_ack_settles_for_good(queue: Queue) -> None:
    await put_all(queue, msg(1), msg(2))
    leases = await queue.lease(2, VIS)
    assert await queue.ack(leases[0]) is True
    assert await queue.ack(leases[0]) is False
    stats = await queue.stats()
    assert (stats.pending, stats.in_flight, stats.dead) == (1, 1, 0)
    assert await queue.put(msg(1)) is False  # still deduped after processing


def skip_on_broker_time(request: pytest.FixtureRequest) -> None:
    """A broker times nack delays on its own clock (TTL delay queues, JetStream's nak delay),
    which a FakeClock cannot move: these steps are not run on the broker backends yet."""
    if request.node.callspec.params.get("queue_factory") in ("rabbitmq", "nats"):
        pytest.skip("nack delays run on the broker's clock, which the test's FakeClock cannot move")


async def test_nack_delays_and_keeps_error_history(
    queue: Queue, clock: FakeClock, request: pytest.FixtureRequest
) -> None:
    skip_on_broker_time(request)
    await queue.put(msg(1))
    (lease,) = await queue.lease(1, VIS)
    assert await queue.nack(lease, delay=0.3, error="boom 1") is True
    assert await queue.lease(1, VIS) == []
    clock.advance(0.29)
    assert await queue.lease(1, VIS) == []  # the delay is not over
    clock.advance(0.02)
    (again,) = await queue.lease(1, VIS)
    assert again.attempt == 2
    assert [(f.attempt, f.error) for f in again.failures] == [(1, "boom 1")]
    await queue.nack(again, delay=0, error="boom 2")
    (third,) = await queue.lease(1, VIS)
    assert [f.error for f in third.failures] == ["boom 1", "boom 2"]


async def test_dead_letter_inspect_replay_purge(queue: Queue, clock: FakeClock) -> None:
    await put_all(queue, msg(1, type="a"), msg(2, type="b"), msg(3, source="s2"))
    leases = await queue.lease(3, VIS)
    await queue.nack(leases[0], delay=0, error="first failure")
    (retry,) = await queue.lease(1, VIS)
    assert await queue.dead_letter(retry, error="ValueError: bad customer") is True
    await queue.dead_letter(leases[1], error="KeyError: x")
    await queue.dead_letter(leases[2], error="KeyError: y")
    stats = await queue.stats()
    assert (stats.pending, stats.dead) == (0, 3)

    dead = await queue.dead_letters()
    assert [d.message.id for d in dead] == ["m1", "m2", "m3"]
    assert dead[0].attempts == 2
    assert [f.error for f in dead[0].failures] == ["first failure", "ValueError: bad customer"]
    assert dead[0].last_error == "ValueError: bad customer"
    assert dead[0].message.body == b'{"n": "1"}'
    assert dead[0].dead_at > 0

    assert await queue.count_dead(DeadLetterFilter(source="s2")) == 1
    assert await queue.count_dead(DeadLetterFilter(type="b")) == 1
    assert await queue.count_dead(DeadLetterFilter(error_contains="KeyError")) == 2
    assert await queue.count_dead(DeadLetterFilter(ids=["m1", "m3"])) == 2
    assert await queue.count_dead(DeadLetterFilter(since=clock.time() + 60)) == 0
    assert await queue.count_dead(DeadLetterFilter(until=clock.time() + 60)) == 3
    assert [d.message.id for d in await queue.dead_letters(limit=1, offset=1)] == ["m2"]

    assert await queue.replay(DeadLetterFilter(ids=["m1"])) == 1
    (replayed,) = await queue.lease(5, VIS)
    assert (replayed.message.id, replayed.attempt) == ("m1", 1)
    assert len(replayed.failures) == 2  # history survives the replay
    await queue.ack(replayed)

    assert await queue.purge(DeadLetterFilter(source="s2")) == 1
    assert await queue.count_dead() == 1
    assert await queue.purge(DeadLetterFilter()) == 1
    assert await queue.count_dead() == 0


async def test_put_dead_stores_a_dead_letter_directly_and_replays_once(queue: Queue) -> None:
    failures = [Failure(1, time.time(), "HTTP 400: bad zip"), Failure(2, time.time(), "HTTP 400: bad zip")]
    await queue.put_dead(msg("rec-7@3", source="sync:crm"), failures=failures)
    await queue.put(msg(8))  # live work is untouched
    (dead,) = await queue.dead_letters()
    assert (dead.message.source, dead.message.id, dead.attempts) == ("sync:crm", "mrec-7@3", 2)
    assert dead.last_error == "HTTP 400: bad zip"
    assert (await queue.stats()).pending == 1

    # the same record failing again replaces its dead letter, never duplicates it
    await queue.put_dead(msg("rec-7@3", source="sync:crm"), failures=[*failures, Failure(3, time.time(), "again")])
    (again,) = await queue.dead_letters()
    assert (again.attempts, again.last_error) == (3, "again")

    assert await queue.replay(DeadLetterFilter(source="sync:crm")) == 1
    leased = sorted(lease.message.id for lease in await queue.lease(5, VIS))
    assert leased == ["m8", "mrec-7@3"]
    assert await queue.count_dead() == 0


async def test_same_key_one_at_a_time_in_order_other_keys_in_parallel(
    queue: Queue, clock: FakeClock, request: pytest.FixtureRequest
) -> None:
    skip_on_broker_time(request)
    await put_all(
        queue, msg(1, key="A"), msg(2, key="A"), msg(3, key="B"), msg(4), msg(5, key="A"), msg(6, key="B")
    )
    leases = await queue.lease(10, VIS)
    assert [lease.message.id for lease in leases] == ["m1", "m3", "m4"]
    a1 = leases[0]
    assert await queue.lease(10, VIS) == []
    await queue.ack(a1)
    (a2,) = await queue.lease(10, VIS)
    assert a2.message.id == "m2"
    # A failure with a delay keeps the key blocked: m5 must wait for m2.
    await queue.nack(a2, delay=0.3, error="x")
    assert await queue.lease(10, VIS) == []
    clock.advance(0.31)
    (a2_again,) = await queue.lease(10, VIS)
    assert (a2_again.message.id, a2_again.attempt) == ("m2", 2)
    # Dead-lettering unblocks the key.
    await queue.dead_letter(a2_again, error="gave up")
    (a5,) = await queue.lease(10, VIS)
    assert a5.message.id == "m5"


async def test_wait_wakes_up_on_put(queue_factory: Callable[..., Queue]) -> None:
    # Polling every 60 s and waiting up to 30 s: only the put can end this wait within 5 s.
    queue = queue_factory(poll_interval=60.0)
    await queue.open()
    waiter = asyncio.create_task(queue.wait(30.0))
    for _ in range(3):
        await asyncio.sleep(0)  # the waiter runs until it blocks
    assert not waiter.done(), "wait() returned with nothing put"
    await queue.put(msg(1))
    await asyncio.wait_for(waiter, 5.0)
    assert waiter.exception() is None
    # A wake before the wait is kept, not lost: the next wait returns at once.
    await queue.put(msg(2))
    await asyncio.wait_for(queue.wait(30.0), 5.0)


async def test_stats_report_oldest_pending(queue: Queue) -> None:
    empty = await queue.stats()
    assert (empty.pending, empty.in_flight, empty.dead, empty.oldest_pending_at) == (0, 0, 0, None)
    first = msg(1)
    await put_all(queue, first, msg(2))
    stats = await queue.stats()
    assert stats.oldest_pending_at is not None
    assert abs(stats.oldest_pending_at - first.received_at) < 1e-3


async def test_prune_forgets_old_done_messages(queue: Queue, clock: FakeClock) -> None:
    await put_all(queue, msg(1), msg(2))
    leases = await queue.lease(2, VIS)
    await queue.ack(leases[0])
    assert await queue.prune(clock.time() + 1) == 1
    assert await queue.put(msg(1)) is True  # forgotten, so accepted again
    assert await queue.put(msg(2)) is False  # still pending: never pruned


async def test_prune_forgets_old_dead_letters_only_when_asked(queue: Queue) -> None:
    await put_all(queue, msg(1), msg(2), msg(3))
    one, two, _pending = await queue.lease(3, VIS)
    await queue.dead_letter(one, error="boom")
    await queue.ack(two)
    assert await queue.prune(time.time() + 1) == 1  # the done one; dead letters are kept
    assert await queue.count_dead() == 1
    assert await queue.prune(None, dead_before=time.time() + 1) == 1
    assert await queue.count_dead() == 0
    assert await queue.put(msg(1)) is True  # its id is forgotten with it
    assert await queue.put(msg(3)) is False  # pending: never pruned
    assert await queue.prune(None, dead_before=time.time() - 3600) == 0  # only those dead before


async def test_prune_removes_more_than_one_chunk(queue: Queue, monkeypatch: pytest.MonkeyPatch) -> None:
    from interlock.stores import _queue_rows

    monkeypatch.setattr(_queue_rows, "PRUNE_CHUNK", 4)  # a prune runs as statements of this many rows
    await put_all(queue, *(msg(i) for i in range(11)))
    for lease in await queue.lease(11, VIS):
        await queue.ack(lease)
    assert await queue.prune(time.time() + 1) == 11
    assert await queue.put(msg(10)) is True


def unstorable() -> list[tuple[str, Message]]:
    return [
        ("id", Message(source="src", id="bad\x00id", type="t", body=b"{}")),
        ("id", Message(source="src", id="bad\ud800id", type="t", body=b"{}")),
        ("type", Message(source="src", id="bad-type", type="t\x00", body=b"{}")),
        ("ordering_key", Message(source="src", id="bad-key", type="t", body=b"{}", ordering_key="k\udfff")),
    ]


async def test_a_message_that_cannot_be_stored_fails_only_its_own_put(queue: Queue) -> None:
    bad = unstorable()
    healthy = [msg(i) for i in range(40)]
    # All at once, so on a grouping backend they share one commit.
    results = await asyncio.gather(
        *(queue.put(m) for m in healthy[:20]), *(queue.put(m) for _, m in bad), *(queue.put(m) for m in healthy[20:]),
        return_exceptions=True,
    )
    good, refused = results[:20] + results[20 + len(bad):], results[20 : 20 + len(bad)]
    assert good == [True] * 40
    for (field, _), error in zip(bad, refused, strict=True):
        assert isinstance(error, ValueError), error
        assert f"message's {field}" in str(error)
    assert (await queue.stats()).pending == 40
