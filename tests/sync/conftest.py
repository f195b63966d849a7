"""Fixtures for the sync tests: a testbed with a source kind (customers) and a destination kind
(mirror) for write-backs, and helpers to build jobs on a fresh SQLite file."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import interlock
from interlock.testbed import Testbed, TestbedConfig


@pytest.fixture
def store_url(sqlite_path: str) -> str:
    return f"sqlite:///{sqlite_path}"


@pytest.fixture
async def tb(request: pytest.FixtureRequest) -> AsyncIterator[Testbed]:
    """``@pytest.mark.testbed(records=..., same_timestamp_every=...)`` shapes it."""
    marker = request.node.get_closest_marker("testbed")
    options: dict[str, Any] = {"records": 200, "kinds": ("customers", "mirror")}
    if marker is not None:
        options.update(marker.kwargs)
    async with Testbed(TestbedConfig(**options)) as bed:
        yield bed


@pytest.fixture
async def client(tb: Testbed) -> AsyncIterator[interlock.Client]:
    async with interlock.Client(tb.url, retry=interlock.Retry(attempts=3)) as c:
        yield c


@pytest.fixture
def make_sync(client: interlock.Client, store_url: str) -> Callable[..., interlock.Sync]:
    def make(name: str = "crm", *, source: dict[str, Any] | None = None, **kwargs: Any) -> interlock.Sync:
        kwargs.setdefault("destination", interlock.WriteBack(client, "/mirror/{id}"))
        kwargs.setdefault("store", store_url)
        src = interlock.SyncSource(client, "/customers", **{"page_size": 25, **(source or {})})
        return interlock.Sync(name, source=src, **kwargs)

    return make


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "testbed(**config): TestbedConfig fields for the tb fixture")
