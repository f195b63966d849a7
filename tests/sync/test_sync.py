"""Sync jobs against the testbed over loopback, with real SQLite (and PostgreSQL) stores."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable
from typing import Any

import pytest

import interlock
from interlock.core.checkpoint import Position
from interlock.stores.queue import DeadLetterFilter, Message
from interlock.sync import SyncRecord, format_time, parse_time
from interlock.testbed import Testbed

MakeSync = Callable[..., interlock.Sync]


def mirror_writes(tb: Testbed) -> dict[int, int]:
    return {rid: n for (kind, rid), n in tb.counters.applied_writes.items() if kind == "mirror"}


def listing(tb: Testbed, kind: str = "customers") -> list[tuple[int, int]]:
    """(updated_at_ms, id) of every record, in the order an incremental listing returns them."""
    return list(tb.data.time_index(kind))


async def wait_for(predicate: Callable[[], Any], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await _call(predicate):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.02)


async def _call(predicate: Callable[[], Any]) -> Any:
    result = predicate()
    if asyncio.iscoroutine(result):
        result = await result
    return result


# -- write-back ---------------------------------------------------------------------------------


@pytest.mark.testbed(records=300, same_timestamp_every=4)
async def test_write_back_applies_every_changed_record_once(tb: Testbed, make_sync: MakeSync) -> None:
    async with make_sync() as sync:
        report = await sync.run_once()
        assert (report.read, report.applied, report.dead) == (300, 300, 0)
        assert report.stop_reason == "end" and report.pages == 12
        writes = mirror_writes(tb)
        assert len(writes) == 300 and set(writes.values()) == {1}
        for rid in (1, 150, 300):
            assert tb.data.get("mirror", rid)["name"] == tb.data.get("customers", rid)["name"]  # type: ignore[index]
        last_ts, last_id = listing(tb)[-1]
        assert report.checkpoint is not None
        assert (report.checkpoint.updated_at, report.checkpoint.record_id) == (last_ts * 1000, str(last_id))
        # Every write carried the record version's deterministic idempotency key.
        keys = {r.idempotency_key for r in tb.recent() if r.method == "PUT"}
        version = parse_time(tb.data.get("customers", last_id)["updated_at"])  # type: ignore[index]
        assert any(k and k.startswith(f"sync:crm:{last_id}:{version}:") for k in keys)

        # Nothing changed: the next poll re-reads only the last timestamp's group (inclusive
        # since), skips it through the ledger, and writes nothing.
        again = await sync.run_once()
        assert again.since == format_time(last_ts * 1000)
        assert again.read == 4 and again.skipped == 4 and again.applied == 0
        assert mirror_writes(tb) == writes

        # Ten records change upstream: exactly those are written, at their new version.
        tb.touch("customers", range(1, 11))
        third = await sync.run_once()
        assert third.applied == 10
        writes = mirror_writes(tb)
        assert {rid: writes[rid] for rid in range(1, 12)} == {**dict.fromkeys(range(1, 11), 2), 11: 1}
        status = await sync.status()
        assert status["ledger"] == {"applied": 300}
        assert status["dead_letters"] == 0


@pytest.mark.testbed(records=120)
async def test_writes_stay_within_the_concurrency_limit(tb: Testbed, make_sync: MakeSync) -> None:
    running = peak = 0
    seen: list[str] = []
    gate = asyncio.Event()

    async def held(record: SyncRecord) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await gate.wait()  # the first writes hold their slots until every record is waiting
        await asyncio.sleep(0)
        seen.append(record.id)
        running -= 1

    async with make_sync(destination=held) as sync:
        assert sync.concurrency == 5
        poll = asyncio.ensure_future(sync.run_once())
        # All 120 records read and queued for a slot, 5 of them holding one: the limit, exactly.
        await wait_for(lambda: len(sync._applier._busy) == 120)
        assert running == 5
        gate.set()
        report = await poll
    assert report.applied == 120 and len(set(seen)) == 120
    assert peak == 5  # with 115 records queued behind them, never a sixth write at once


# -- checkpoint correctness ---------------------------------------------------------------------


@pytest.mark.testbed(records=60, same_timestamp_every=5)
async def test_equal_timestamps_across_a_page_boundary_are_not_skipped(
    tb: Testbed, make_sync: MakeSync
) -> None:
    """Pages of 7, groups of 5 records sharing a timestamp: stopping after 8 records leaves
    the checkpoint inside the second group, whose members straddle pages 1 and 2. An exclusive
    ``updated_at > checkpoint`` would skip the rest of that group (Airbyte #15427)."""
    applied: list[str] = []

    async def collect(record: SyncRecord) -> None:
        applied.append(record.key)

    order = listing(tb)
    async with make_sync(destination=collect, source={"page_size": 7}) as sync:
        first = await sync.run_once(max_records=8)
        assert first.read == 8 and first.applied == 8 and first.pages == 2
        checkpoint = first.checkpoint
        assert checkpoint is not None
        assert (checkpoint.updated_at, checkpoint.record_id) == (order[7][0] * 1000, str(order[7][1]))
        same_ts_left = [rid for ts, rid in order[8:] if ts * 1000 == checkpoint.updated_at]
        assert same_ts_left, "the group must continue past the checkpoint for this test to mean anything"
        would_be_lost = [
            rid for ts, rid in order if ts * 1000 == checkpoint.updated_at and str(rid) not in applied
        ]
        assert would_be_lost == same_ts_left

        second = await sync.run_once()
    assert second.since == format_time(checkpoint.updated_at)  # inclusive: the group is re-read
    assert sorted(applied, key=int) == [str(i) for i in range(1, 61)]  # each exactly once
    assert second.skipped == 5 - len(same_ts_left)  # the group's finished members, deduped
    assert second.late == 5 - len(same_ts_left)


@pytest.mark.testbed(records=100)
async def test_lookback_rereads_a_window_and_the_ledger_dedupes_it(tb: Testbed, make_sync: MakeSync) -> None:
    async with make_sync(lookback=10.0) as sync:
        first = await sync.run_once()
        assert first.applied == 100
        # A change stamped in the past (an upstream clock behind): below the checkpoint, but
        # inside the lookback window.
        last_ts = listing(tb)[-1][0]
        tb.touch("customers", [7], updated_at=(last_ts - 5000) / 1000)
        second = await sync.run_once()
    assert second.since == format_time((last_ts - 10_000) * 1000)
    assert second.applied == 1 and second.skipped == second.read - 1 >= 10
    assert mirror_writes(tb)[7] == 2


# -- poison records and the DLQ -----------------------------------------------------------------


@pytest.mark.testbed(records=50)
async def test_poison_record_lands_in_the_dlq_and_the_checkpoint_moves_past_it(
    tb: Testbed, client: interlock.Client, make_sync: MakeSync, store_url: str
) -> None:
    poison = listing(tb)[10][1]  # early in the listing, so the others finish after it
    broken = True

    def body(record: SyncRecord) -> Any:
        if broken and record.id == poison:
            return ["not", "an", "object"]  # the upstream answers 400 to this one record
        return record.data

    inbox = interlock.Inbox(store=store_url)
    sync = make_sync(destination=interlock.WriteBack(client, "/mirror/{id}", body=body), inbox=inbox)
    async with sync:
        report = await sync.run_once()
        assert (report.applied, report.dead) == (49, 1)
        last_ts, last_id = listing(tb)[-1]
        assert report.checkpoint is not None
        assert (report.checkpoint.updated_at, report.checkpoint.record_id) == (last_ts * 1000, str(last_id))
        assert poison not in mirror_writes(tb)

        # The ledger keeps the outcome, the attempts and the upstream's tracking id.
        entry = (await sync.store.lookup("crm", [str(poison)]))[str(poison)]
        assert entry.outcome == "dead" and entry.tracking_id and "400" in (entry.error or "")
        # The DLQ holds it as a record of source sync:crm, listed like any dead webhook.
        dead = await inbox.dlq.list(source="sync:crm")
        version = entry.version
        assert [d.message.id for d in dead] == [f"{poison}@{version}"]
        assert dead[0].message.headers["x-interlock-tracking-id"] == entry.tracking_id
        assert "status=400" in dead[0].last_error

        # Re-polling does not fail it again: it waits in the DLQ.
        tb.touch("customers", [listing(tb)[-1][1]])
        await sync.run_once()
        assert await inbox.dlq.count(source="sync:crm") == 1

        # Fixed upstream-side, then replayed from the DLQ: inbox workers run it through the job.
        broken = False
        assert await inbox.dlq.replay(f"{poison}@{version}", source="sync:crm") == 1
        pool = inbox.start_workers(concurrency=2)
        try:

            async def applied() -> bool:
                found = await sync.store.lookup("crm", [str(poison)])
                return found[str(poison)].outcome == "applied"

            await wait_for(applied)
        finally:
            await pool.aclose()
        assert mirror_writes(tb)[poison] == 1
        assert await inbox.dlq.count(source="sync:crm") == 0

        # Replayed a second time (say, from a copy of the dead letter): applied once only.
        event = interlock.Event(
            id=f"{poison}@{version}",
            source="sync:crm",
            type="record",
            body=dead[0].message.body,
            headers={},
            received_at=time.time(),
        )
        await sync.replay_event(event)
        assert mirror_writes(tb)[poison] == 1
    await inbox.aclose()


@pytest.mark.testbed(records=30)
async def test_replay_dead_letters_without_workers(tb: Testbed, make_sync: MakeSync, store_url: str) -> None:
    failing = {"5", "6"}
    calls: dict[str, int] = {}

    async def handler(record: SyncRecord) -> str:
        calls[record.key] = calls.get(record.key, 0) + 1
        if record.key in failing:
            raise RuntimeError(f"cannot apply {record.id}")
        return f"track-{record.id}"

    sync = make_sync(destination=handler, backoff=interlock.Backoff(base=0.0, cap=0.0))
    async with sync:
        report = await sync.run_once()
        assert (report.applied, report.dead) == (28, 2)
        assert calls["5"] == 3  # the job's own attempts for a Python handler
        dead = await sync.queue.dead_letters(DeadLetterFilter(source="sync:crm"))
        assert len(dead) == 2 and "cannot apply" in dead[0].last_error
        assert dead[0].attempts == 3 and len(dead[0].failures) == 3

        failing.discard("5")
        outcome = await sync.replay_dead_letters()
        assert outcome == {"applied": 1, "skipped": 0, "failed": 1}
        entry = (await sync.store.lookup("crm", ["5"]))["5"]
        assert (entry.outcome, entry.tracking_id) == ("applied", "track-5")
        assert [
            d.message.id.split("@")[0]
            for d in await sync.queue.dead_letters(DeadLetterFilter(source="sync:crm"))
        ] == ["6"]
        failing.clear()
        assert await sync.replay_dead_letters() == {"applied": 1, "skipped": 0, "failed": 0}
        assert await sync.replay_dead_letters() == {"applied": 0, "skipped": 0, "failed": 0}
    assert calls["5"] == 3 + 1 and calls["6"] == 3 + 3 + 1  # each replay gets the attempts again


@pytest.mark.testbed(records=20)
async def test_interlock_dlq_lists_sync_dead_letters(
    tb: Testbed, make_sync: MakeSync, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async def reject(record: SyncRecord) -> None:
        if record.id == 3:
            raise ValueError("rejected by the destination")

    async with make_sync(destination=reject, attempts=1) as sync:
        await sync.run_once()
    import argparse

    from interlock.cli import dlq as dlq_cli

    parser = argparse.ArgumentParser()
    dlq_cli.configure(parser)
    args = parser.parse_args(["--store", store_url, "list", "--source", "sync:crm", "--json"])
    assert await dlq_cli._run(args) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert len(lines) == 1 and lines[0]["id"].startswith("3@")


# -- webhooks + polling -------------------------------------------------------------------------


def webhook(tb: Testbed, rid: int, delivery: str) -> Message:
    record = tb.data.get("customers", rid)
    return Message(
        "crm", delivery, "customer.updated", json.dumps({"data": record}).encode(), {}, time.time()
    )


@pytest.mark.testbed(records=40)
async def test_missed_webhook_is_caught_by_the_next_poll_and_late_duplicates_are_skipped(
    tb: Testbed, make_sync: MakeSync, store_url: str
) -> None:
    inbox = interlock.Inbox(store=store_url)
    sync = make_sync(inbox=inbox, webhook_record="data")
    inbox.internal_source("crm")  # the test puts its webhooks from code
    inbox.add_handler("crm", "customer.updated", sync.on_webhook)
    async with sync:
        await sync.run_once()
        assert set(mirror_writes(tb).values()) == {1}
        v1_of_b = webhook(tb, 8, "evt-b-v1")

        tb.touch("customers", [5])  # its webhook is lost
        tb.touch("customers", [8])  # its webhook arrives
        assert await inbox.put(webhook(tb, 8, "evt-b-v2"))
        pool = inbox.start_workers(concurrency=2)
        try:
            await wait_for(lambda: mirror_writes(tb).get(8) == 2)
            poll = await sync.run_once()
            # 5 is caught by the poll; 8 (already applied by its webhook) and the boundary record
            # of the previous poll (re-read: since is inclusive) are skipped through the ledger.
            assert poll.read == 3 and poll.applied == 1 and poll.skipped == 2
            assert mirror_writes(tb)[5] == 2

            # Late duplicates: the same change again, and the older version arriving last.
            stats = inbox.metrics
            before = stats.processed["crm"]
            assert await inbox.put(webhook(tb, 8, "evt-b-v2-again"))
            assert await inbox.put(v1_of_b)
            await wait_for(lambda: stats.processed["crm"] >= before + 2)
        finally:
            await pool.aclose()
        writes = mirror_writes(tb)
        assert (writes[5], writes[8]) == (2, 2)
        assert sum(writes.values()) == 42
        entry = (await sync.store.lookup("crm", ["8"]))["8"]
        assert entry.version == parse_time(tb.data.get("customers", 8)["updated_at"])  # type: ignore[index]
    await inbox.aclose()


@pytest.mark.testbed(records=30)
async def test_a_webhook_triggers_an_early_poll(tb: Testbed, make_sync: MakeSync) -> None:
    sync = make_sync(every=3600.0, min_trigger_interval=0.0)
    async with sync:
        runner = asyncio.create_task(sync.run_forever())
        try:
            await wait_for(lambda: sync.polls == 1)
            tb.touch("customers", [3])  # no webhook for this one
            tb.touch("customers", [4])
            event = interlock.Event(
                "evt-1",
                "crm",
                "customer.updated",
                json.dumps(tb.data.get("customers", 4)).encode(),
                {},
                time.time(),
            )
            await sync.on_webhook(event)
            await wait_for(lambda: sync.polls == 2)  # long before the hour is up
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
    writes = mirror_writes(tb)
    assert (writes[3], writes[4]) == (2, 2)


# -- other destinations -------------------------------------------------------------------------


@pytest.mark.testbed(records=150)
async def test_into_a_sqlite_table_through_the_batch_writer(
    tb: Testbed, make_sync: MakeSync, tmp_path: Any
) -> None:
    target = f"{tmp_path}/warehouse.db"
    with sqlite3.connect(target) as conn:
        conn.execute(
            "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, email TEXT, updated_at TEXT)"
        )
    table = interlock.ToTable.sqlite(
        f"sqlite:///{target}", "customers", ["id", "name", "email", "updated_at"], ["id"]
    )
    async with make_sync(destination=table) as sync:
        assert sync.concurrency == 1000
        report = await sync.run_once()
        tb.touch("customers", [9])
        second = await sync.run_once()
    assert report.applied == 150 and second.applied == 1
    with sqlite3.connect(target) as conn:
        rows = dict(conn.execute("SELECT id, updated_at FROM customers").fetchall())
    assert len(rows) == 150
    assert rows[9] == tb.data.get("customers", 9)["updated_at"]  # type: ignore[index]


@pytest.mark.testbed(records=150)
async def test_into_a_postgres_table_through_the_batch_writer(
    tb: Testbed, make_sync: MakeSync, postgres_dsn: str, postgres_schema: str
) -> None:
    import asyncpg

    conn = await asyncpg.connect(postgres_dsn)
    try:
        await conn.execute(
            f'CREATE TABLE "{postgres_schema}".customers (id BIGINT PRIMARY KEY, name TEXT, version BIGINT)'
        )
        table = interlock.ToTable.postgres(
            postgres_dsn, "customers", ["id", "name", "version"], ["id"], schema=postgres_schema
        )
        store = f"{postgres_dsn}?schema={postgres_schema}"
        sync = make_sync(destination=table, store=store)
        async with sync:
            report = await sync.run_once()
            tb.touch("customers", [1, 2])
            second = await sync.run_once()
        assert report.applied == 150 and second.applied == 2
        assert await conn.fetchval(f'SELECT count(*) FROM "{postgres_schema}".customers') == 150
        assert await conn.fetchval(f'SELECT version FROM "{postgres_schema}".customers WHERE id = 2') == 2
        assert await conn.fetchval(f'SELECT count(*) FROM "{postgres_schema}".interlock_sync_ledger') == 150
    finally:
        await conn.close()


# -- configuration and parsing ------------------------------------------------------------------


def test_time_formats_round_trip() -> None:
    micros = parse_time("2026-01-01T00:00:05.250Z")
    assert micros == 1_767_225_605_250_000
    assert format_time(micros) == "2026-01-01T00:00:05.250Z"
    assert format_time(1_767_225_605_000_000) == "2026-01-01T00:00:05Z"
    assert parse_time("2026-01-01T01:00:05+01:00") == 1_767_225_605_000_000
    assert parse_time(1_767_225_605, "epoch") == 1_767_225_605_000_000
    assert parse_time("1767225605250", "epoch_ms") == micros
    assert format_time(micros, "epoch_ms") == "1767225605250"
    assert format_time(1_767_225_605_000_000, "epoch") == "1767225605"
    with pytest.raises(ValueError):
        parse_time("yesterday")


async def test_items_without_id_or_timestamp_are_dead_lettered(store_url: str) -> None:
    async with interlock.Client("http://127.0.0.1:9") as c:
        source = interlock.SyncSource(c, "/x", id="$.attributes.key")
        record = source.record("job", {"attributes": {"key": "k-1"}, "updated_at": "2026-01-01T00:00:00Z"})
        assert record.id == "k-1" and record.position == Position.of(1_767_225_600_000_000, "k-1")
        with pytest.raises(ValueError, match="no id"):
            source.record("job", {"updated_at": "2026-01-01T00:00:00Z"})
        with pytest.raises(ValueError, match="updated_at"):
            source.record("job", {"attributes": {"key": "k"}, "updated_at": None})
        versioned = interlock.SyncSource(c, "/x", version="version")
        assert (
            versioned.record("j", {"id": 1, "updated_at": "2026-01-01T00:00:00Z", "version": 7}).version == 7
        )


async def test_configuration_errors_are_explained(client: interlock.Client, store_url: str) -> None:
    source = interlock.SyncSource(client, "/customers")
    with pytest.raises(interlock.errors.ConfigError, match="Sync.name"):
        interlock.Sync("has space", source=source, destination=print, store=store_url)
    with pytest.raises(interlock.errors.ConfigError, match="Sync.concurrency"):
        interlock.Sync("j", source=source, destination=print, store=store_url, concurrency=0)
    with pytest.raises(interlock.errors.ConfigError, match="SyncSource.time_format"):
        interlock.SyncSource(client, "/customers", time_format="iso")  # type: ignore[arg-type]
    with pytest.raises(interlock.errors.ConfigError, match="WriteBack.path"):
        interlock.WriteBack(client, "/customers")
    with pytest.raises(interlock.errors.ConfigError, match="Sync.store"):
        interlock.Sync("j", source=source, destination=print, store="mysql://x")
    sync = interlock.Sync("j", source=source, destination=print, store=store_url)
    assert "concurrency=5" in repr(sync)


# -- failures of the source and races between paths ---------------------------------------------


@pytest.mark.testbed(records=200)
async def test_a_source_outage_mid_listing_keeps_the_progress_made(tb: Testbed, make_sync: MakeSync) -> None:
    applied: list[int | str] = []

    async def collect(record: SyncRecord) -> None:
        applied.append(record.id)
        if len(applied) == 30:
            tb.start_outage(3.0)  # the next page request fails, retries included

    # A window of 10: the listing cannot run ahead of the writes, so the outage hits a page read.
    async with make_sync(destination=collect, window=10, source={"page_size": 25}) as sync:
        with pytest.raises(interlock.errors.CallError):
            await sync.run_once()
        checkpoint = (await sync.status())["checkpoint"]
        assert checkpoint is not None  # what finished before the failure is not read again
        assert len(applied) >= 30
        tb.configure(faults=None)  # the outage ends
        report = await sync.run_once()
    assert sorted(set(applied)) == list(range(1, 201))
    assert len(applied) == 200  # nothing applied twice
    assert report.since == checkpoint["updated_at"]


@pytest.mark.testbed(records=5)
async def test_the_same_record_from_two_paths_at_once_is_applied_once(
    tb: Testbed, make_sync: MakeSync
) -> None:
    calls = 0

    async def slow(record: SyncRecord) -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)

    async with make_sync(destination=slow) as sync:
        item = tb.data.get("customers", 3)
        outcomes = await asyncio.gather(sync.apply(item), sync.apply(item), sync.apply(dict(item or {})))
    assert sorted(outcomes) == ["applied", "skipped", "skipped"]
    assert calls == 1


@pytest.mark.testbed(records=10)
async def test_a_replay_that_fails_again_goes_straight_back_to_the_dlq(
    tb: Testbed, make_sync: MakeSync, store_url: str
) -> None:
    async def refuse(record: SyncRecord) -> None:
        if record.id == 4:
            raise ValueError("still refused")

    inbox = interlock.Inbox(store=store_url)
    sync = make_sync(destination=refuse, inbox=inbox, attempts=1)
    async with sync:
        await sync.run_once()
        (letter,) = await inbox.dlq.list(source="sync:crm")
        assert await inbox.dlq.replay(letter.message.id, source="sync:crm") == 1
        pool = inbox.start_workers(concurrency=1)
        try:
            await wait_for(lambda: inbox.metrics.dead_lettered["sync:crm"] == 1)
        finally:
            await pool.aclose()
        (again,) = await inbox.dlq.list(source="sync:crm")
        assert again.attempts == 1 and "still refused" in again.last_error  # not retried 8 times

        bad = interlock.Event("evt-x", "crm", "customer.updated", b'{"name": "no id"}', {}, time.time())
        with pytest.raises(interlock.errors.PermanentFailure, match="no usable record"):
            await sync.on_webhook(bad)
    await inbox.aclose()
