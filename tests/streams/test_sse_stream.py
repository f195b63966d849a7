"""SSE streams from the testbed into the Inbox: drops, restarts, stalls, retry hints, a server
that ignores Last-Event-ID, reconciliation."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

import interlock
from interlock.testbed import Testbed

from .conftest import FAST, Recorder, change, json_ids, until


async def _inbox(db: str, tb: Testbed, policy: interlock.StreamPolicy = FAST, **kw: object) -> tuple[
    interlock.Inbox, interlock.Client, Recorder, interlock.Subscription
]:
    inbox = interlock.Inbox(store=db)
    client = interlock.Client(tb.url, headers={"Authorization": "Bearer s3cret-token"})
    sub = inbox.subscribe("crm", interlock.EventStream.sse(client, "/events", policy=policy), **kw)  # type: ignore[arg-type]
    recorder = Recorder()
    inbox.add_handler("crm", "*", recorder)
    return inbox, client, recorder, sub


@pytest.fixture
async def running(db: str, testbed: Testbed) -> AsyncIterator[tuple[interlock.Inbox, Recorder, interlock.Subscription]]:
    inbox, client, recorder, sub = await _inbox(db, testbed)
    inbox.start_workers(concurrency=2)
    try:
        yield inbox, recorder, sub
    finally:
        await inbox.aclose()
        await client.aclose()


async def test_events_reach_handlers_with_their_type_and_data(running, testbed: Testbed) -> None:
    _, recorder, sub = running
    await until(lambda: testbed.streams.open_streams == 1)
    change(testbed, 3)
    await until(lambda: len(recorder.seen) == 3)
    assert [t for _, t, _ in recorder.seen] == ["customers.updated"] * 3
    assert [i for i, _, _ in recorder.seen] == ["1", "2", "3"]  # the SSE ids dedupe
    assert json_ids(recorder) == [1, 2, 3]
    await until(lambda: sub.position == "3")  # saved right after the commit
    status = sub.status()
    assert status["connected"] is True and status["events"] >= 3


async def test_five_drops_mid_event_lose_nothing_and_repeat_nothing(running, testbed: Testbed) -> None:
    _, recorder, sub = running
    await until(lambda: testbed.streams.open_streams == 1)
    total = 0
    for _ in range(5):
        change(testbed, 4, start=total + 1)
        total += 4
        await until(lambda: testbed.streams.events_sent >= total)  # noqa: B023
        testbed.streams.drop()  # half of the next event, then a reset
        change(testbed, 2, start=total + 1)  # changes while the stream is down
        total += 2
        await until(lambda: testbed.streams.open_streams == 1 and sub.position == str(total))  # noqa: B023
    await until(lambda: len(recorder.seen) == total)
    assert recorder.ids == [str(i) for i in range(1, total + 1)]  # each once, in order
    assert testbed.streams.connections == 6
    # Each reconnection resumed after the last committed event.
    assert testbed.streams.resumed_from[1:] == [str(i) for i in range(4, total, 6)]
    assert sub.status()["reconnects"] == 5


async def test_drop_every_n_events(db: str, testbed: Testbed) -> None:
    testbed.streams.configure(drop_every=3, multiline=True)
    inbox, client, recorder, _sub = await _inbox(db, testbed)
    change(testbed, 20)
    inbox.start_workers(concurrency=4)
    try:
        await until(lambda: len(recorder.seen) == 20)
        assert sorted(map(int, recorder.ids)) == list(range(1, 21))
        assert len(set(recorder.ids)) == 20
        assert testbed.streams.connections >= 7
        assert json.loads(recorder.seen[0][2])["type"] == "customers.updated"  # multi-line data joined
    finally:
        await inbox.aclose()
        await client.aclose()


async def test_a_server_replaying_from_the_start_commits_nothing_twice(db: str, testbed: Testbed) -> None:
    testbed.streams.configure(ignore_last_event_id=True)
    inbox, client, recorder, sub = await _inbox(db, testbed)
    change(testbed, 12)
    inbox.start_workers(concurrency=2)
    try:
        await until(lambda: sub.position == "12")
        for round_ in (1, 2):
            before = testbed.streams.connections
            testbed.streams.drop()
            await until(lambda: testbed.streams.connections > before and sub.stats.duplicates >= 12 * round_)  # noqa: B023
        await until(lambda: len(recorder.seen) == 12)
        assert testbed.streams.resumed_from[1:] == ["12", "12"]  # asked, and ignored
        assert sorted(map(int, recorder.ids)) == list(range(1, 13))
    finally:
        await inbox.aclose()
        await client.aclose()


async def test_restart_resumes_from_the_checkpoint(db: str, testbed: Testbed) -> None:
    inbox, client, _recorder, sub = await _inbox(db, testbed)
    sub.start()
    await until(lambda: testbed.streams.open_streams == 1)
    change(testbed, 5)
    await until(lambda: sub.position == "5")
    await inbox.aclose()
    await client.aclose()
    change(testbed, 3, start=6)  # while nobody listens
    inbox2, client2, recorder2, sub2 = await _inbox(db, testbed)
    inbox2.start_workers(concurrency=2)
    try:
        await until(lambda: len(recorder2.seen) == 8)
        assert testbed.streams.resumed_from[-1] == "5"  # Last-Event-ID from the checkpoint
        assert sorted(map(int, recorder2.ids)) == list(range(1, 9))  # 1-5 were queued before
        await until(lambda: sub2.position == "8")
        assert sub2.stats.duplicates == 0 and sub2.stats.events == 3  # 6, 7, 8: nothing replayed
    finally:
        await inbox2.aclose()
        await client2.aclose()


async def test_a_stalled_stream_is_detected_and_reopened(running, testbed: Testbed) -> None:
    _, recorder, sub = running
    await until(lambda: testbed.streams.open_streams == 1)
    change(testbed, 2)
    await until(lambda: len(recorder.seen) == 2)
    testbed.streams.stall(2.0)  # the connection stays open and says nothing
    change(testbed, 2, start=3)
    await until(lambda: sub.stats.stalls >= 1)
    await until(lambda: len(recorder.seen) == 4)
    assert recorder.ids == ["1", "2", "3", "4"]
    assert "stalled" in (sub.last_error or "")


async def test_keepalives_keep_a_quiet_stream_open(db: str, testbed: Testbed) -> None:
    testbed.streams.configure(keepalive=0.1)
    inbox, client, _recorder, sub = await _inbox(db, testbed)
    sub.start()
    try:
        await until(lambda: testbed.streams.open_streams == 1)
        opened = testbed.streams.connections
        await until(lambda: sub.supervisor.delivered)  # a keep-alive arrived
        # Three stall timeouts of silence but keep-alives: still the first connection.
        import asyncio

        await asyncio.sleep(FAST.stall_timeout * 3)
        assert sub.stats.stalls == 0 and testbed.streams.connections == opened
    finally:
        await inbox.aclose()
        await client.aclose()


async def test_retry_hint_is_honoured(db: str, testbed: Testbed) -> None:
    testbed.streams.configure(retry_ms=1500)
    inbox, client, _recorder, sub = await _inbox(db, testbed)
    sub.start()
    try:
        await until(lambda: sub.supervisor.hint == 1.5)
        assert sub.supervisor.delay() >= 1.5
    finally:
        await inbox.aclose()
        await client.aclose()


async def test_an_outage_triggers_the_reconciliation_poll(db: str, testbed: Testbed) -> None:
    policy = interlock.StreamPolicy(
        backoff=interlock.Backoff(base=0.05, multiplier=2.0, cap=0.1), stall_timeout=1.0, reconcile_after=0.3
    )
    triggered: list[bool] = []
    inbox, client, _recorder, sub = await _inbox(db, testbed, policy, reconcile=lambda: triggered.append(True))
    sub.start()
    try:
        await until(lambda: testbed.streams.open_streams == 1)
        testbed.start_outage(1.5)  # the stream is refused 503 while it lasts
        testbed.streams.drop()
        await until(lambda: triggered)
        assert sub.stats.reconciliations == 1
        await until(lambda: testbed.streams.open_streams == 1)  # back after the outage
        assert len(triggered) == 1  # once per outage
    finally:
        await inbox.aclose()
        await client.aclose()


async def test_reconcile_accepts_a_sync_and_credentials_go_upstream(db: str, testbed: Testbed) -> None:
    class FakeSync:
        def __init__(self) -> None:
            self.triggers = 0

        def trigger(self) -> None:
            self.triggers += 1

    sync = FakeSync()
    inbox, client, _recorder, sub = await _inbox(db, testbed, reconcile=sync)
    assert sub._reconcile == sync.trigger
    sub.start()
    try:
        await until(lambda: testbed.streams.open_streams == 1)
        assert "s3cret-token" not in repr(sub) and "s3cret-token" not in repr(sub.stream)
    finally:
        await inbox.aclose()
        await client.aclose()


async def test_subscribe_mistakes_are_config_errors(db: str, testbed: Testbed) -> None:
    inbox = interlock.Inbox(store=db)
    async with interlock.Client(testbed.url) as client:
        with pytest.raises(interlock.errors.ConfigError, match="EventStream"):
            inbox.subscribe("crm", "/events")  # type: ignore[arg-type]
        stream = interlock.EventStream.sse(client, "/events")
        inbox.subscribe("crm", stream)
        with pytest.raises(interlock.errors.ConfigError, match="already subscribed"):
            inbox.subscribe("crm", stream)
        with pytest.raises(interlock.errors.ConfigError, match="reconcile"):
            inbox.subscribe("other", stream, reconcile=42)
        with pytest.raises(interlock.errors.ConfigError, match="heartbeat"):
            interlock.EventStream.websocket(client, "/ws", heartbeat=60)
    await inbox.aclose()


async def test_metrics_are_exported_per_stream(running, testbed: Testbed) -> None:
    _, recorder, sub = running
    await until(lambda: testbed.streams.open_streams == 1)
    change(testbed, 2)
    await until(lambda: len(recorder.seen) == 2 and sub.stats.events == 2)
    text = interlock.metrics.render()
    assert 'interlock_stream_connected{stream="crm"} 1.0' in text
    assert 'interlock_stream_events_total{stream="crm"} 2.0' in text
    assert 'interlock_stream_lag_seconds{stream="crm"}' in text


async def test_errors_are_redacted(db: str, testbed: Testbed) -> None:
    inbox = interlock.Inbox(store=db)
    async with interlock.Client(testbed.url) as client:
        stream = interlock.EventStream.sse(client, "/nope", params={"api_key": "k3y-s3cret"}, policy=FAST)
        sub = inbox.subscribe("crm", stream)
        sub.start()
        try:
            await until(lambda: sub.supervisor.failures >= 1)
            assert sub.last_error is not None and "404" in sub.last_error
            assert "k3y-s3cret" not in repr(sub.status())
        finally:
            await inbox.aclose()


async def test_the_dashboard_has_a_row_per_stream(running, testbed: Testbed) -> None:
    from interlock.service.dashboard._monitor import Monitor

    inbox, recorder, sub = running
    await until(lambda: testbed.streams.open_streams == 1)
    change(testbed, 1)
    await until(lambda: len(recorder.seen) == 1 and sub.position == "1")
    overview = await Monitor(clients={}, inbox=inbox).overview()
    [row] = overview["streams"]
    assert row["name"] == "crm" and row["kind"] == "sse" and row["connected"] is True
    assert row["events"] == 1 and row["position"] == "1"


async def test_stream_events_feed_a_sync_through_its_ledger(db: str, testbed: Testbed) -> None:
    inbox, client, _recorder, _sub = await _inbox(db, testbed)
    applied: list[tuple[int, int]] = []

    async def apply(record: interlock.SyncRecord) -> None:
        applied.append((int(record.data["id"]), int(record.data["version"])))

    sync = interlock.Sync(
        "crm-customers", source=interlock.SyncSource(client, "/customers"), destination=apply,
        store=db, inbox=inbox, webhook_record="$.data",
    )
    inbox.add_handler("crm", "customers.updated", sync.on_webhook)
    inbox.start_workers(concurrency=2)
    try:
        await until(lambda: testbed.streams.open_streams == 1)
        change(testbed, 2, start=7)
        await until(lambda: len(applied) == 2)
        assert sorted(applied) == [(7, 2), (8, 2)]
        report = await sync.run_once()  # the poll finds those versions applied already
        assert report.applied == 50 - 2 and report.skipped == 2
    finally:
        await sync.aclose()
        await inbox.aclose()
        await client.aclose()
