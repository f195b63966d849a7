"""Backends for the Queue contract suite: every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack

import pytest

from interlock.stores import Queue
from interlock.testing import temporary_schema


@pytest.fixture(params=["sqlite", "postgres"])
async def queue_factory(
    request: pytest.FixtureRequest, sqlite_path: str
) -> AsyncIterator[Callable[[], Queue]]:
    """Makes queues on one shared store (several instances = several processes); closes them."""
    schemas = AsyncExitStack()
    made: list[Queue] = []
    if request.param == "sqlite":
        from interlock.stores.queue_sqlite import SQLiteQueue

        def factory() -> Queue:
            q = SQLiteQueue(f"sqlite:///{sqlite_path}", poll_interval=0.05)
            made.append(q)
            return q
    else:
        from interlock.stores.queue_postgres import PostgresQueue

        dsn = request.getfixturevalue("postgres_dsn")  # skips (or fails under CI) without a server
        schema = await schemas.enter_async_context(
            temporary_schema(dsn, f"contract_{request.getfixturevalue('run_id')}")
        )

        def factory() -> Queue:
            # A generous bound: the suite shares a loaded machine's server; the fault tests
            # (test_queue_faults.py) check the bound itself with their own.
            q = PostgresQueue(dsn, schema=schema, poll_interval=0.05, pool_size=4, command_timeout=60.0)
            made.append(q)
            return q

    try:
        yield factory
    finally:
        for q in made:
            await q.aclose()
        await schemas.aclose()


@pytest.fixture
async def queue(queue_factory: Callable[[], Queue]) -> Queue:
    q = queue_factory()
    await q.open()
    return q
