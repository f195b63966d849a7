"""The ``Queue`` contract: one suite, run on every backend (see conftest.py)."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from interlock.stores import DeadLetterFilter, Message, Queue
from interlock.stores.queue import Failure, Lease
from interlock.testing import FakeClock, TcpProxy

from .conftest import Elapse

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


async def test_nack_delays_and_keeps_error_history(queue: Queue, clock: FakeClock, elapse: Elapse) -> None:
    await queue.put(msg(1))
    (lease,) = await queue.lease(1, VIS)
    assert await queue.nack(lease, delay=elapse.delay, error="boom 1") is True
    elapse.nacked()
    assert await queue.lease(1, VIS) == []
    if not elapse.broker:  # on the FakeClock the delay's edge can be checked exactly
        clock.advance(elapse.delay - 0.01)
        assert await queue.lease(1, VIS) == []  # the delay is not over
    (again,) = await elapse.leasable_after_delay(queue)
    assert again.attempt == 2
    assert [(f.attempt, f.error) for f in again.failures] == [(1, "boom 1")]
    await queue.nack(again, delay=0, error="boom 2")
    (third,) = await lease_soon(queue)
    assert [f.error for f in third.failures] == ["boom 1", "boom 2"]


async def lease_soon(queue: Queue, want: int = 1) -> list[Lease]:
    """Lease ``want`` messages that are leasable now. A broker may take a moment to hand out a
    message it was just given back (a nack without delay is a publish on NATS); bounded."""
    leases: list[Lease] = []
    end = time.monotonic() + 10.0
    while True:
        leases += await queue.lease(want - len(leases), VIS)
        if len(leases) >= want or time.monotonic() > end:
            return leases
        await asyncio.sleep(0.02)


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


async def test_same_key_one_at_a_time_in_order_other_keys_in_parallel(queue: Queue, elapse: Elapse) -> None:
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
    await queue.nack(a2, delay=elapse.delay, error="x")
    elapse.nacked()
    assert await queue.lease(10, VIS) == []
    (a2_again,) = await elapse.leasable_after_delay(queue)
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


async def test_stats_of_one_source_count_only_its_messages(queue: Queue) -> None:
    """The dashboard's per-source row: depth, in flight, dead and oldest of that source alone."""
    crm_first = msg("c1", source="crm")
    await put_all(queue, msg("b1", source="billing"), crm_first, msg("c2", source="crm"), msg("b2", source="billing"))
    leases = await queue.lease(4, VIS)
    billing = [lease for lease in leases if lease.message.source == "billing"]
    crm = [lease for lease in leases if lease.message.source == "crm"]
    await queue.dead_letter(billing[0], error="boom")
    await queue.nack(crm[0], delay=0.0, error="retry")
    await queue.nack(crm[1], delay=0.0, error="retry")
    of_billing, of_crm, of_none = await queue.stats("billing"), await queue.stats("crm"), await queue.stats("nobody")
    assert (of_billing.pending, of_billing.in_flight, of_billing.dead) == (1, 1, 1)
    assert (of_crm.pending, of_crm.in_flight, of_crm.dead) == (2, 0, 0)
    assert of_crm.oldest_pending_at is not None and abs(of_crm.oldest_pending_at - crm_first.received_at) < 1e-3
    assert (of_none.pending, of_none.in_flight, of_none.dead, of_none.oldest_pending_at) == (0, 0, 0, None)
    whole = await queue.stats()
    assert (whole.pending, whole.dead) == (3, 1)


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


# -- the grown contract: processes that die, attempts that run out, connections that drop --------

CHILD = Path(__file__).with_name("_queue_child.py")


def child_store(queue_factory: Callable[..., Queue]) -> tuple[str, str]:
    """The fixture's store as a URL and table a child process opens. On NATS the consumer's
    AckWait is short, so the deliveries of a killed worker come back within the test."""
    url: str = queue_factory.store_url  # type: ignore[attr-defined]
    if queue_factory.kind == "nats":  # type: ignore[attr-defined]
        url += "&ack_wait=3"
    return url, queue_factory.table or "-"  # type: ignore[attr-defined]


def open_child_store(queue_factory: Callable[..., Queue]) -> Queue:
    from interlock.stores import open_queue

    url, table = child_store(queue_factory)
    q = open_queue(url, table=None if table == "-" else table, poll_interval=0.05)
    queue_factory.made.append(q)  # type: ignore[attr-defined]
    return q


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(CHILD), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


async def read_line(proc: subprocess.Popen[str], timeout: float = 60.0) -> str:
    assert proc.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), timeout)
    if not line:
        raise AssertionError(f"child exited ({proc.wait()}): {proc.stderr.read() if proc.stderr else ''}")
    return line.strip()


def kill(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


async def lease_until(queue: Queue, done: Callable[[set[str]], bool], deadline: float = 60.0) -> set[str]:
    """Lease and ack everything until ``done(ids seen)`` (bounded); the ids seen."""
    seen: set[str] = set()
    end = time.monotonic() + deadline
    while not done(seen) and time.monotonic() < end:
        leases = await queue.lease(100, VIS)
        for lease in leases:
            seen.add(lease.message.id)
            assert await queue.ack(lease) is True
        if not leases:
            await queue.wait(0.1)
    return seen


@pytest.mark.slow
async def test_no_acknowledged_put_is_lost_when_the_ingress_is_killed(queue_factory: Callable[..., Queue]) -> None:
    url, table = child_store(queue_factory)
    opener = open_child_store(queue_factory)
    await opener.open()  # declares the broker objects before the child and the kill
    ingress = spawn("ingress", url, table, "100000")
    acked: set[str] = set()
    try:
        while len(acked) < 40:
            line = await read_line(ingress)
            if line.startswith("acked "):
                acked.add(line.split()[1])
        os.kill(ingress.pid, signal.SIGKILL)  # mid-stream: a put is in flight
        assert ingress.stdout is not None
        for line in await asyncio.to_thread(ingress.stdout.readlines):  # lines printed before the kill
            if line.startswith("acked "):
                acked.add(line.split()[1])
    finally:
        kill(ingress)
    await opener.aclose()
    # A fresh consumer (its open reconciles what the ingress left half-published).
    queue = open_child_store(queue_factory)
    await queue.open()
    seen = await lease_until(queue, lambda ids: acked <= ids)
    assert acked - seen == set(), "acknowledged puts lost"
    stats = await queue.stats()
    assert stats.pending == 0 or len(seen) > len(acked)  # at most the one put in flight beyond them


@pytest.mark.slow
async def test_every_event_is_handled_when_a_worker_is_killed(
    queue_factory: Callable[..., Queue], tmp_path: Path
) -> None:
    url, table = child_store(queue_factory)
    queue = open_child_store(queue_factory)
    await queue.open()
    total = 150
    for i in range(total):
        await queue.put(msg(i))
    path = str(tmp_path / "ledger.db")
    workers = [spawn("worker", url, table, path) for _ in range(2)]
    try:
        for w in workers:
            assert await read_line(w) == "ready"
        db = sqlite3.connect(path, timeout=30.0)
        end = time.monotonic() + 60.0
        while db.execute("SELECT count(*) FROM calls").fetchone()[0] < 30 and time.monotonic() < end:
            await asyncio.sleep(0.05)
        os.kill(workers[0].pid, signal.SIGKILL)  # with events in flight
        end = time.monotonic() + 90.0
        while db.execute("SELECT count(*) FROM effects").fetchone()[0] < total and time.monotonic() < end:
            await asyncio.sleep(0.1)
        effects = {row[0] for row in db.execute("SELECT id FROM effects")}
        assert effects == {f"m{i}" for i in range(total)}, f"{total - len(effects)} events never handled"
        # Handled more than once only when the killed worker had it in flight.
        twice = db.execute("SELECT id FROM calls GROUP BY id HAVING count(*) > 1").fetchall()
        killed = {row[0] for row in db.execute("SELECT id FROM calls WHERE pid = ?", (workers[0].pid,))}
        assert {row[0] for row in twice} <= killed
        db.close()
        stats = await queue.stats()
        end = time.monotonic() + 30.0
        while stats.pending and time.monotonic() < end:  # the last acks land
            await asyncio.sleep(0.1)
            stats = await queue.stats()
        assert (stats.pending, stats.dead) == (0, 0)
    finally:
        for w in workers:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
        for w in workers:
            try:
                w.wait(timeout=30)
            finally:
                kill(w)


async def test_dead_lettered_after_exactly_n_attempts_and_never_dropped(queue_factory: Callable[..., Queue]) -> None:
    from interlock import Inbox, Redelivery
    from interlock.core.backoff import Backoff

    queue = queue_factory()  # on the real clock: the retry delays pass by themselves
    await queue.open()

    calls: list[int] = []
    inbox = Inbox(store=queue, redelivery=Redelivery(attempts=4, backoff=Backoff(delays=[0.05], jitter="none")))
    inbox.internal_source("src")

    @inbox.handler("src")
    async def fail(event: Any) -> None:
        calls.append(event.attempt)
        raise RuntimeError(f"boom {event.attempt}")

    await inbox.submit("src", "t", {"n": 1}, id="poison")
    await inbox.submit("src", "t", {"n": 2}, id="other")  # also failing: both end in the DLQ
    pool = inbox.start_workers(concurrency=2)
    try:
        end = time.monotonic() + 60.0
        while await queue.count_dead() < 2 and time.monotonic() < end:
            await asyncio.sleep(0.05)
    finally:
        await pool.aclose()
    (dead,) = await queue.dead_letters(DeadLetterFilter(ids=["poison"]))
    assert dead.attempts == 4
    assert [f.error.split(" (at ")[0] for f in dead.failures] == [f"RuntimeError: boom {n}" for n in (1, 2, 3, 4)]
    assert sorted(calls) == [1, 1, 2, 2, 3, 3, 4, 4]  # exactly four attempts each, no fifth
    stats = await queue.stats()
    assert (stats.pending, stats.dead) == (0, 2)
    assert await queue.lease(5, VIS) == []  # nothing left behind in the broker either
    assert await queue.replay(DeadLetterFilter(ids=["poison"])) == 1  # and it can come back
    (back,) = await lease_soon(queue)
    assert (back.message.id, back.attempt, len(back.failures)) == ("poison", 1, 4)


async def test_per_key_order_holds_with_concurrent_workers(queue_factory: Callable[..., Queue]) -> None:
    from interlock import Inbox

    queue = queue_factory()
    await queue.open()

    seen: dict[str, list[int]] = {}
    running: set[str] = set()
    overlaps: list[str] = []
    inbox = Inbox(store=queue)
    inbox.internal_source("src")

    @inbox.handler("src")
    async def record(event: Any) -> None:
        key, n = event.json()["key"], event.json()["n"]
        if key in running:
            overlaps.append(key)
        running.add(key)
        await asyncio.sleep(0.002)
        running.discard(key)
        seen.setdefault(key, []).append(n)

    for n in range(20):
        for key in ("a", "b", "c"):
            await inbox.submit("src", "t", {"key": key, "n": n}, ordering_key=key)
    pool = inbox.start_workers(concurrency=8)
    try:
        end = time.monotonic() + 60.0
        while sum(map(len, seen.values())) < 60 and time.monotonic() < end:
            await asyncio.sleep(0.05)
    finally:
        await pool.aclose()
    assert seen == {key: list(range(20)) for key in ("a", "b", "c")}
    assert overlaps == []


@pytest.mark.filterwarnings(  # nats-py leaks the writer of a reconnect attempt the cut proxy refuses
    r"ignore:Exception ignored in. <function StreamWriter.__del__:pytest.PytestUnraisableExceptionWarning"
)
@pytest.mark.parametrize("queue_factory", ["postgres", "rabbitmq", "nats"], indirect=True)
async def test_workers_recover_after_the_connection_is_cut(queue_factory: Callable[..., Queue]) -> None:
    """SQLite has no connection to cut; the three network backends are each cut through a
    loopback proxy while a worker pool runs on them, and their consumers come back."""
    from interlock import Inbox
    from interlock.stores import open_queue

    url, table = child_store(queue_factory)
    parsed = urlsplit(url)
    producer = open_child_store(queue_factory)
    await producer.open()
    handled: list[str] = []
    with TcpProxy(parsed.hostname or "127.0.0.1", parsed.port or 0) as proxy:
        through = proxy.url(url)
        if queue_factory.kind == "rabbitmq":  # type: ignore[attr-defined]
            # Consuming (prefetch), the mode where a robust connection may come back with no
            # consumer; test_broker_queues cuts the default basic.get mode.
            through += "&reconnect_interval=0.2&prefetch=16"
        consumer = open_queue(through, table=None if table == "-" else table, poll_interval=0.05)
        queue_factory.made.append(consumer)  # type: ignore[attr-defined]
        inbox = Inbox(store=consumer, visibility=3.0)
        inbox.internal_source("src")

        @inbox.handler("src")
        async def record(event: Any) -> None:
            handled.append(event.id)

        pool = inbox.start_workers(concurrency=4)
        try:
            for i in range(10):
                await producer.put(msg(i))
            end = time.monotonic() + 30.0
            while len(set(handled)) < 10 and time.monotonic() < end:
                await asyncio.sleep(0.05)
            assert len(set(handled)) == 10
            proxy.cut()  # every connection of the consumer drops; new ones are refused
            for i in range(10, 20):
                await producer.put(msg(i))
            await asyncio.sleep(0.5)
            proxy.restore()
            end = time.monotonic() + 60.0
            while len(set(handled)) < 20 and time.monotonic() < end:
                await asyncio.sleep(0.05)
            assert set(handled) == {f"m{i}" for i in range(20)}, "the consumer did not come back"
        finally:
            await pool.aclose()
    stats = await producer.stats()
    end = time.monotonic() + 30.0
    while stats.pending and time.monotonic() < end:
        await asyncio.sleep(0.1)
        stats = await producer.stats()
    assert stats.pending == 0
