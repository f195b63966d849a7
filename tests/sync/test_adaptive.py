"""Adaptive polling on a fake clock against the testbed: the interval shortens while polls find
changes, lengthens to ``max_every`` while they find none, and unchanged listings cost 304s."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

import interlock
from interlock.testbed import Testbed
from interlock.testing import FakeClock


class ScriptedClock(FakeClock):
    """A fake clock whose sleeps between polls run the next step of an upstream script (a
    change, or nothing) and end the run after the script."""

    def __init__(self, script: list[Callable[[], None] | None]) -> None:
        super().__init__()
        self.script = list(script)
        self.waits: list[float] = []

    async def sleep(self, seconds: float) -> None:
        if seconds > 0:
            if not self.script:
                raise asyncio.CancelledError  # the scripted run is over
            self.waits.append(seconds)
            step = self.script.pop(0)
            if step is not None:
                step()
        await super().sleep(seconds)


async def _run(tb: Testbed, store_url: str, clock: ScriptedClock, **kw: Any) -> interlock.Sync:
    seen: list[Any] = []
    async with interlock.Client(tb.url, clock=clock) as client:
        sync = interlock.Sync(
            "crm", source=interlock.SyncSource(client, "/customers", page_size=100),
            destination=seen.append, store=store_url, clock=clock, **kw,
        )
        async with sync:
            with pytest.raises(asyncio.CancelledError):
                await sync.run_forever()
            sync.status_seen = await sync.status()  # type: ignore[attr-defined]
    return sync


@pytest.mark.testbed(records=50)
async def test_interval_follows_the_changes(tb: Testbed, store_url: str) -> None:
    def touch() -> None:
        tb.touch("customers", [1, 2])

    # Polls 2 and 3 find changes; then nothing changes for 9 polls.
    clock = ScriptedClock([touch, touch, *[None] * 9])
    sync = await _run(tb, store_url, clock, every=60, adaptive=True, min_every=5, max_every=900)
    # Poll 1 finds all 50 (60 / 4), polls 2-3 the touched ones (down to min_every), then
    # doubling up to max_every.
    assert clock.waits == [15, 5, 5, 10, 20, 40, 80, 160, 320, 640, 900]
    assert sync.polls == 12
    # Nothing changed after poll 3. Poll 4 lists from the new checkpoint (a new URL: no ETag
    # to send yet); polls 5-12 send its ETag and get 304s.
    assert tb.counters.not_modified == 8
    budget = sync.status_seen["budget"]  # type: ignore[attr-defined]
    assert budget["adaptive"] is True and budget["not_modified"] == 8
    assert budget["interval_seconds"] == 900
    assert budget["calls_per_hour_now"] < budget["calls_per_hour_fixed"]


@pytest.mark.testbed(records=50)
async def test_fixed_interval_still_uses_conditional_requests(tb: Testbed, store_url: str) -> None:
    clock = ScriptedClock([None, None, None, lambda: tb.touch("customers", [7]), None, None])
    sync = await _run(tb, store_url, clock, every=60)
    assert clock.waits == [60] * 6
    # Poll 1 from the start, poll 2 from the checkpoint (new URLs), 3 and 4 unchanged: 304;
    # poll 5 finds the change (200), poll 6 lists from the new checkpoint, poll 7: 304.
    assert tb.counters.by_route["GET /customers"] == {"200": 4, "304": 3}
    assert sync.status_seen["budget"]["adaptive"] is False  # type: ignore[attr-defined]


def test_adaptive_needs_every(store_url: str) -> None:
    client = interlock.Client("http://127.0.0.1:9")
    with pytest.raises(interlock.errors.ConfigError, match="every"):
        interlock.Sync("x", source=interlock.SyncSource(client, "/c"), destination=print, store=store_url, adaptive=True)
    with pytest.raises(interlock.errors.ConfigError, match="min_every"):
        interlock.Sync(
            "x", source=interlock.SyncSource(client, "/c"), destination=print, store=store_url,
            every=60, adaptive=True, min_every=120,
        )
