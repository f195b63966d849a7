"""The Sync API as a new user meets it: record ids keep their type, ``run_once`` and
``run_forever`` say what they do, status reads only what is stored, and the calls a job makes
are background work that waits out a breaker."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest

import interlock
from interlock.sync import Sync, SyncRecord, checkpoint_json
from interlock.testbed import Testbed

MakeSync = Any


@pytest.mark.testbed(records=20)
async def test_record_ids_keep_the_upstreams_type(tb: Testbed, make_sync: MakeSync, store_url: str) -> None:
    """An integer id stays an int: ``record.id % 5`` is what a user writes (it dead-lettered
    every record while ids were always strings). The ledger and the DLQ use ``record.key``."""
    seen: list[Any] = []

    async def shard(record: SyncRecord) -> None:
        seen.append((record.id, record.id % 5, record.key))
        if record.id == 13:
            raise ValueError("refused")

    async with make_sync(destination=shard, attempts=1) as sync:
        report = await sync.run_once()
        assert (report.applied, report.dead) == (19, 1)
        assert {type(rid) for rid, _, _ in seen} == {int}
        assert (13, 3, "13") in seen
        assert (await sync.store.lookup("crm", ["13"]))["13"].outcome == "dead"
        (letter,) = await sync.queue.dead_letters(interlock.inbox.DeadLetterFilter(source="sync:crm"))
        assert SyncRecord.from_json("crm", letter.message.body).id == 13  # the replay sees an int too
        text = sync.source.record("crm", {"id": "cus_1", "updated_at": "2026-01-01T00:00:00Z"})
        assert (text.id, text.key) == ("cus_1", "cus_1")  # and a text id stays text


def test_run_once_and_run_forever_say_which_returns() -> None:
    assert not hasattr(Sync, "run")  # the name that never returned, and did not say so
    once, forever = inspect.getdoc(Sync.run_once) or "", inspect.getdoc(Sync.run_forever) or ""
    assert "return what it did" in once and "run_forever" in once
    assert "returns only when" in forever and "run_once" in forever


@pytest.mark.testbed(records=30)
async def test_run_forever_polls_until_cancelled(tb: Testbed, make_sync: MakeSync) -> None:
    sync = make_sync(every=0.05, min_trigger_interval=0.0)
    async with sync:
        runner = asyncio.create_task(sync.run_forever())
        while sync.polls < 2:
            await asyncio.sleep(0.01)
        assert not runner.done()  # it does not return
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner


@pytest.mark.testbed(records=10)
async def test_status_reads_only_what_is_stored(tb: Testbed, make_sync: MakeSync) -> None:
    async with make_sync() as sync:
        report = await sync.run_once()
        status = await sync.status()
    assert "polls" not in status  # a count of this process's polls read 0 from the CLI
    assert status["checkpoint"] == checkpoint_json(report.checkpoint)
    assert status["checkpoint"]["updated_at"].endswith("Z") and status["checkpoint"]["saved_at"].endswith("Z")
    assert checkpoint_json(None) is None


@pytest.mark.testbed(records=40, kinds=("customers", "mirror"))
async def test_a_sync_through_a_default_client_waits_out_a_breaker(tb: Testbed, store_url: str) -> None:
    """The job borrows a client built with the defaults (fail fast, for request handlers): its
    calls are background work, so an outage that opens the breaker delays them instead of
    failing the listing or dead-lettering the records."""
    breaker = interlock.CircuitBreaker(failure_ratio=0.5, min_calls=2, window=10.0, open_for=0.2)
    async with interlock.Client(tb.url, breaker=breaker) as client:
        source = interlock.SyncSource(client, "/customers", page_size=10)
        destination = interlock.WriteBack(client, "/mirror/{id}")
        async with interlock.Sync("crm", source=source, destination=destination, store=store_url) as sync:
            tb.start_outage(0.6)
            report = await sync.run_once()
    assert (report.read, report.applied, report.dead) == (40, 40, 0)
    assert tb.counters.outage_rejections > 0  # the outage was met, and waited out
