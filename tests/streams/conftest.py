"""Helpers for the stream tests: a testbed serving its change feed, an inbox whose handler
records every event it handles, and a fast supervision policy."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

import interlock
from interlock.testbed import Testbed, TestbedConfig

FAST = interlock.StreamPolicy(
    backoff=interlock.Backoff(base=0.01, multiplier=2.0, cap=0.05),
    stall_timeout=0.6,
    reconcile_after=None,
    connect_timeout=5.0,
)


async def until(predicate: Callable[[], object], timeout: float = 20.0) -> None:
    """Wait until ``predicate()`` is true, failing the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


class Recorder:
    """An inbox handler that records (id, type, body) of each event it handles."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, bytes]] = []

    async def __call__(self, event: interlock.Event) -> None:
        self.seen.append((event.id, event.type, event.body))

    @property
    def ids(self) -> list[str]:
        return [i for i, _, _ in self.seen]


@pytest.fixture
async def testbed() -> AsyncIterator[Testbed]:
    async with Testbed(TestbedConfig(records=50)) as tb:
        yield tb


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'streams.db'}"


def change(tb: Testbed, n: int, start: int = 1) -> None:
    """Change ``n`` customers (ids start.. cycling over 1..50): ``n`` events in the feed."""
    for i in range(n):
        tb.touch("customers", [(start + i - 1) % 50 + 1])


def json_ids(recorder: Recorder) -> list[int]:
    import json

    return [int(json.loads(body)["id"]) for _, _, body in recorder.seen]


