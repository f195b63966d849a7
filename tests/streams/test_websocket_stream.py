"""WebSocket streams from the testbed: resume message, drops, stalls (no pongs), clean close."""

from __future__ import annotations

import interlock
from interlock.testbed import Testbed

from .conftest import Recorder, change, until


def _policy(stall: float = 0.8) -> interlock.StreamPolicy:
    return interlock.StreamPolicy(
        backoff=interlock.Backoff(base=0.01, multiplier=2.0, cap=0.05), stall_timeout=stall, reconcile_after=None
    )


async def _inbox(db: str, tb: Testbed, **kw: object) -> tuple[interlock.Inbox, interlock.Client, Recorder, interlock.Subscription]:
    inbox = interlock.Inbox(store=db)
    client = interlock.Client(tb.url)
    options: dict[str, object] = {"subscribe_message": {"type": "subscribe"}, "heartbeat": 0.2, "policy": _policy()}
    options.update(kw)
    stream = interlock.EventStream.websocket(client, "/ws", **options)  # type: ignore[arg-type]
    sub = inbox.subscribe("chat", stream)
    recorder = Recorder()
    inbox.add_handler("chat", "*", recorder)
    return inbox, client, recorder, sub


async def test_events_resume_message_and_five_drops(db: str, testbed: Testbed) -> None:
    inbox, client, recorder, sub = await _inbox(db, testbed)
    inbox.start_workers(concurrency=2)
    try:
        await until(lambda: testbed.streams.open_streams == 1)
        total = 0
        for _ in range(5):
            change(testbed, 3, start=total + 1)
            total += 3
            await until(lambda: sub.position == str(total))  # noqa: B023
            testbed.streams.drop()
            change(testbed, 1, start=total + 1)
            total += 1
            await until(lambda: sub.position == str(total))  # noqa: B023
        await until(lambda: len(recorder.seen) == total)
        assert recorder.ids == [str(i) for i in range(1, total + 1)]
        assert {t for _, t, _ in recorder.seen} == {"customers.updated"}
        # The first connection resumed from nothing, each later one after the last committed id.
        assert testbed.streams.resumed_from == [None, "3", "7", "11", "15", "19"]
    finally:
        await inbox.aclose()
        await client.aclose()
    assert testbed.streams.open_streams == 0  # closed cleanly on aclose


async def test_a_server_that_stops_answering_pings_is_a_stall(db: str, testbed: Testbed) -> None:
    inbox, client, _recorder, sub = await _inbox(db, testbed)
    sub.start()
    try:
        await until(lambda: testbed.streams.open_streams == 1)
        await until(lambda: sub.supervisor.delivered)  # pongs arrive: alive while quiet
        testbed.streams.stall(2.0)
        await until(lambda: sub.stats.stalls >= 1)
        await until(lambda: testbed.streams.connections >= 2 and sub.supervisor.connected)
    finally:
        await inbox.aclose()
        await client.aclose()


async def test_a_function_builds_the_resume_message(db: str, testbed: Testbed) -> None:
    sent: list[str | None] = []

    def hello(last: str | None) -> dict[str, object]:
        sent.append(last)
        return {"type": "subscribe", "after": last}

    inbox, client, _recorder, sub = await _inbox(db, testbed, subscribe_message=hello)
    inbox.start_workers(concurrency=1)
    try:
        await until(lambda: testbed.streams.open_streams == 1)
        change(testbed, 2)
        await until(lambda: sub.position == "2")
        testbed.streams.drop()
        await until(lambda: len(sent) == 2 and testbed.streams.open_streams == 1)
        assert sent == [None, "2"]
    finally:
        await inbox.aclose()
        await client.aclose()


async def test_a_refused_subscription_backs_off(db: str, testbed: Testbed) -> None:
    inbox, client, _recorder, sub = await _inbox(db, testbed, subscribe_message="not json")
    sub.start()
    try:
        await until(lambda: sub.supervisor.failures >= 2)
        assert sub.stats.events == 0
    finally:
        await inbox.aclose()
        await client.aclose()
