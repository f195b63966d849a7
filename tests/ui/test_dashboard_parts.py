"""The dashboard's pure parts, without a browser: windowed figures, sessions, bounded notifier."""

from __future__ import annotations

import pytest

from interlock._metrics import LATENCY_BUCKETS
from interlock.service.dashboard._history import CallReading, Series
from interlock.service.dashboard._session import Sessions

N = len(LATENCY_BUCKETS) + 1


def reading(at: float, calls: int, errors: int = 0, slow: int = 0) -> CallReading:
    """``calls`` so far: ``slow`` of them in the 0.5-0.75 s bucket, the rest in 5-10 ms."""
    buckets = [0] * N
    buckets[LATENCY_BUCKETS.index(0.01)] = calls - slow
    buckets[LATENCY_BUCKETS.index(0.75)] = slow
    return CallReading(at, calls, errors, 0, tuple(buckets))


def test_a_window_is_the_difference_of_two_readings() -> None:
    series = Series(interval=5, horizon=60)
    assert series.window(60) is None
    series.record(reading(0, 1000, errors=500, slow=1000))  # a bad start, long ago
    series.record(reading(5, 1000, errors=500, slow=1000))
    series.record(reading(10, 1100, errors=501, slow=1000))  # 100 fast calls, 1 error
    window = series.window(5)
    assert window is not None
    assert (window.calls, window.errors, window.seconds) == (100, 1, 5)
    assert window.error_rate == pytest.approx(0.01)
    assert window.pace == pytest.approx(20)
    assert window.p95 is not None and 0.005 < window.p95 <= 0.01  # the old slow calls are not in it
    whole = series.window(60)
    assert whole is not None and whole.calls == 100  # as much as is kept: 0 s to 10 s


def test_a_counter_that_went_backwards_counts_from_zero() -> None:
    series = Series(interval=1, horizon=10)
    series.record(reading(0, 500))
    series.record(reading(1, 20))  # the process restarted
    window = series.window(1)
    assert window is not None and window.calls == 20


def test_the_history_is_bounded_by_its_horizon() -> None:
    series = Series(interval=5, horizon=3600)
    for i in range(10_000):
        series.record(reading(i * 5, i))
    assert len(series) == 721
    assert len(series.points()) == 720


def test_a_session_is_signed_expires_and_has_its_own_csrf_token() -> None:
    now = [1000.0]
    sessions = Sessions("s3cret-token", lifetime=60, clock=lambda: now[0])
    assert sessions.login("wrong") is None
    cookie = sessions.login("s3cret-token")
    assert cookie is not None and "s3cret" not in cookie and "s3cret" not in repr(sessions)
    assert sessions.valid(cookie)
    body, _, mac = cookie.rpartition(".")
    assert not sessions.valid(body.replace("v1.", "v1.9") + "." + mac)  # a longer expiry, forged
    assert not sessions.valid(cookie[:-1] + ("0" if cookie[-1] != "0" else "1"))
    assert not Sessions("another-token").valid(cookie)  # a rotated token ends every session
    csrf = sessions.csrf(cookie)
    assert sessions.csrf_ok(cookie, csrf)
    other = sessions.login("s3cret-token")
    assert other is not None and not sessions.csrf_ok(other, csrf)
    assert not sessions.csrf_ok(cookie, None)
    now[0] += 61
    assert not sessions.valid(cookie) and not sessions.csrf_ok(cookie, csrf)
    with pytest.raises(ValueError, match="admin token"):
        Sessions("")


async def test_the_quota_headroom_is_remaining_over_the_announced_limit() -> None:
    import interlock
    from interlock.service.dashboard import Monitor
    from interlock.testbed import RateLimitConfig, Testbed, TestbedConfig

    config = TestbedConfig(rate_limit=RateLimitConfig(limit=100, window=60, algorithm="fixed_window"))
    async with (
        Testbed(config) as tb,
        interlock.Client(tb.url, name="quota-ui", rate_limit=interlock.RateLimit()) as api,
    ):
        monitor = Monitor({"quota-ui": api})
        for i in range(10):
            await api.get(f"/customers/{i + 1}")
        await monitor.tick()
        row = monitor.upstream_row("quota-ui")
    assert row["remaining"] is not None and 80 <= row["remaining"] <= 90
    assert row["headroom"] == pytest.approx(row["remaining"] / 100)
    (quota,) = [b for b in row["badges"] if b["rule"] == "ratelimit_headroom"]
    assert quota["state"] == "ok"


async def test_the_notifier_posts_issues_and_alerts_as_slack_json_and_stays_bounded() -> None:
    import asyncio

    from aiohttp import web

    from interlock.core.failure_groups import FailureGroups, IssueKey, Transition
    from interlock.service.dashboard import Notifier

    received: list[dict] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/services/T0/B0/s3cretpath", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    notifier = Notifier(f"http://127.0.0.1:{port}/services/T0/B0/s3cretpath", dashboard_url="http://ops/ui")
    assert "s3cretpath" not in repr(notifier)
    groups = FailureGroups()
    key = IssueKey(("upstream", "crm", "GET /customers/{id}"), "TimedOut")
    groups.failure(key, at=1.0, reference="trk_1")
    notifier.issue(Transition.OPENED, groups.get(key.id))  # type: ignore[arg-type]
    notifier.alert("crm", {"rule": "upstream_p95", "detail": "upstream p95 latency 730 ms (> 500 ms)"})
    stop = asyncio.Event()
    task = asyncio.create_task(notifier.run(stop))
    try:
        for _ in range(100):
            if len(received) == 2:
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task
        await runner.cleanup()
    assert [r["text"] for r in received] == [
        "New issue: crm GET /customers/{id}: TimedOut (1x, last trk_1) http://ops/ui/issues",
        "Firing: crm: upstream p95 latency 730 ms (> 500 ms)",
    ]
    assert notifier.sent == 2 and notifier.dropped == 0
    for _ in range(150):  # a dead webhook: at most 100 wait, the rest dropped and counted
        notifier.alert("crm", {"rule": "error_rate", "detail": "x"})
    assert notifier.dropped == 50


async def test_each_source_row_counts_its_own_queue_depth_oldest_event_and_dlq(tmp_path: object) -> None:
    import interlock
    from interlock.service.dashboard import Monitor

    async with interlock.Inbox(f"sqlite:///{tmp_path}/inbox.db") as inbox:  # no workers: all stays pending
        for name in ("billing", "crm"):
            inbox.source(name, interlock.signatures.StandardWebhooks("whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"))
        for i in range(3):
            await inbox.submit("billing", "invoice.paid", {"n": i})
        await inbox.submit("crm", "contact.updated", {"n": 0})
        (lease,) = [lease for lease in await inbox.queue.lease(4, 30.0) if lease.message.source == "crm"][:1]
        await inbox.queue.dead_letter(lease, error="boom")
        rows = {row["name"]: row for row in await Monitor({}, inbox=inbox).source_rows()}
    assert (rows["billing"]["queue_depth"], rows["billing"]["dlq_size"]) == (3, 0)
    assert (rows["crm"]["queue_depth"], rows["crm"]["dlq_size"]) == (0, 1)
    assert rows["billing"]["oldest_age"] is not None and rows["crm"]["oldest_age"] is None
