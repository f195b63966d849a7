"""The CheckpointStore contract: every backend (SQLite, PostgreSQL) passes the same tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack

import pytest

from interlock.stores.checkpoint import APPLIED, DEAD, Checkpoint, CheckpointStore, LedgerEntry
from interlock.testing import temporary_schema


@pytest.fixture(params=["sqlite", "postgres"])
async def store_factory(
    request: pytest.FixtureRequest, sqlite_path: str
) -> AsyncIterator[Callable[[], CheckpointStore]]:
    """Makes stores on one shared database (several instances = several processes)."""
    schemas = AsyncExitStack()
    made: list[CheckpointStore] = []
    if request.param == "sqlite":
        from interlock.stores.checkpoint_sqlite import SQLiteCheckpointStore

        def factory() -> CheckpointStore:
            store = SQLiteCheckpointStore(f"sqlite:///{sqlite_path}")
            made.append(store)
            return store
    else:
        from interlock.stores.checkpoint_postgres import PostgresCheckpointStore

        dsn = request.getfixturevalue("postgres_dsn")  # skips (or fails under CI) without a server
        schema = await schemas.enter_async_context(
            temporary_schema(dsn, f"ledger_{request.getfixturevalue('run_id')}")
        )

        def factory() -> CheckpointStore:
            store = PostgresCheckpointStore(dsn, schema=schema, pool_size=2)
            made.append(store)
            return store

    try:
        yield factory
    finally:
        for store in made:
            await store.aclose()
        await schemas.aclose()


@pytest.fixture
async def store(store_factory: Callable[[], CheckpointStore]) -> CheckpointStore:
    s = store_factory()
    await s.open()
    return s


def entry(rid: str, version: int, outcome: str = APPLIED, **kw: object) -> LedgerEntry:
    return LedgerEntry(rid, version, outcome, **kw)  # type: ignore[arg-type]


async def test_is_a_checkpoint_store(store: CheckpointStore) -> None:
    assert isinstance(store, CheckpointStore)


async def test_checkpoint_round_trip_and_replace(store: CheckpointStore) -> None:
    assert await store.load_checkpoint("job") is None
    await store.save_checkpoint("job", Checkpoint(1_767_225_600_000_000, "42", 1000.5))
    assert await store.load_checkpoint("job") == Checkpoint(1_767_225_600_000_000, "42", 1000.5)
    await store.save_checkpoint("job", Checkpoint(1_767_225_601_000_000, "7", 1001.0))
    loaded = await store.load_checkpoint("job")
    assert loaded is not None and (loaded.updated_at, loaded.record_id) == (1_767_225_601_000_000, "7")
    assert await store.load_checkpoint("other") is None  # jobs are independent


async def test_checkpoint_survives_reopening(store_factory: Callable[[], CheckpointStore]) -> None:
    first = store_factory()
    await first.open()
    await first.save_checkpoint("job", Checkpoint(5, "a", 1.0))
    await first.record("job", [entry("a", 5, tracking_id="t-1")])
    await first.aclose()
    second = store_factory()
    await second.open()
    assert await second.load_checkpoint("job") == Checkpoint(5, "a", 1.0)
    found = await second.lookup("job", ["a"])
    assert found["a"].tracking_id == "t-1"


async def test_lookup_returns_only_known_ids(store: CheckpointStore) -> None:
    await store.record("job", [entry("1", 10), entry("2", 20, DEAD, error="boom", attempts=3)])
    found = await store.lookup("job", ["1", "2", "3", "1"])
    assert set(found) == {"1", "2"}
    assert found["1"].outcome == APPLIED and found["1"].applied_version == 10
    assert found["2"].outcome == DEAD and found["2"].applied_version is None
    assert found["2"].error == "boom" and found["2"].attempts == 3
    assert await store.lookup("job", []) == {}
    assert await store.lookup("other", ["1"]) == {}


async def test_lookup_of_many_ids(store: CheckpointStore) -> None:
    ids = [str(i) for i in range(2500)]
    await store.record("job", [entry(i, 1) for i in ids])
    found = await store.lookup("job", ids)
    assert len(found) == 2500


async def test_record_is_monotonic_per_record(store: CheckpointStore) -> None:
    await store.record("job", [entry("r", 2, tracking_id="v2")])
    await store.record("job", [entry("r", 1, DEAD, error="late failure of an older version")])
    e = (await store.lookup("job", ["r"]))["r"]
    assert (e.version, e.outcome, e.tracking_id, e.applied_version) == (2, APPLIED, "v2", 2)
    # A newer version failing keeps the memory of what was applied before.
    await store.record("job", [entry("r", 3, DEAD, error="bad")])
    e = (await store.lookup("job", ["r"]))["r"]
    assert (e.version, e.outcome, e.applied_version, e.error) == (3, DEAD, 2, "bad")
    # Its replay applies it: same version, now applied.
    await store.record("job", [entry("r", 3, APPLIED, attempts=2)])
    e = (await store.lookup("job", ["r"]))["r"]
    assert (e.version, e.outcome, e.applied_version, e.attempts) == (3, APPLIED, 3, 2)


async def test_two_outcomes_for_one_record_in_one_batch(store: CheckpointStore) -> None:
    await store.record("job", [entry("r", 1, DEAD), entry("r", 1, APPLIED)])
    e = (await store.lookup("job", ["r"]))["r"]
    assert (e.outcome, e.applied_version) == (APPLIED, 1)


async def test_concurrent_records_are_all_durable(store: CheckpointStore) -> None:
    await asyncio.gather(*(store.record("job", [entry(str(i), i)]) for i in range(200)))
    assert (await store.counts("job")) == {APPLIED: 200}


async def test_entries_and_counts(store: CheckpointStore) -> None:
    await store.record(
        "job",
        [entry("a", 1, at=100.0), entry("b", 1, DEAD, at=200.0, error="x"), entry("c", 1, at=300.0)],
    )
    assert (await store.counts("job")) == {APPLIED: 2, DEAD: 1}
    assert [e.record_id for e in await store.entries("job")] == ["c", "b", "a"]
    assert [e.record_id for e in await store.entries("job", outcome=DEAD)] == ["b"]
    assert [e.record_id for e in await store.entries("job", limit=1, offset=1)] == ["b"]


async def test_reset_forgets_one_job(store: CheckpointStore) -> None:
    await store.save_checkpoint("job", Checkpoint(1, "1", 1.0))
    await store.save_checkpoint("keep", Checkpoint(1, "1", 1.0))
    await store.record("job", [entry("1", 1)])
    await store.record("keep", [entry("1", 1)])
    await store.reset("job")
    assert await store.load_checkpoint("job") is None
    assert await store.lookup("job", ["1"]) == {}
    assert await store.load_checkpoint("keep") is not None
    assert set(await store.lookup("keep", ["1"])) == {"1"}


async def test_two_instances_share_one_database(store_factory: Callable[[], CheckpointStore]) -> None:
    a, b = store_factory(), store_factory()
    await asyncio.gather(a.open(), b.open())
    await a.record("job", [entry("1", 1)])
    await b.save_checkpoint("job", Checkpoint(9, "1", 1.0))
    assert set(await b.lookup("job", ["1"])) == {"1"}
    assert await a.load_checkpoint("job") == Checkpoint(9, "1", 1.0)


async def test_opening_waits_while_another_connection_holds_the_new_file(sqlite_path: str) -> None:
    """Why two instances opening one new file at once used to fail now and then with "database
    is locked": switching a file to WAL needs an exclusive lock, and SQLite refuses at once
    (no busy handler) while another connection writes or switches the same file. Made
    deterministic here: a connection holds a write transaction on the new file, and the store
    must wait for it instead of failing."""
    import logging
    import sqlite3
    import threading

    from interlock.stores.checkpoint_sqlite import SQLiteCheckpointStore

    holder = sqlite3.connect(sqlite_path, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE other (x)")
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO other VALUES (1)")
    refused_once = threading.Event()

    class Busy(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "busy switching to WAL mode" in record.getMessage():
                refused_once.set()

    handler, logger = Busy(), logging.getLogger("interlock.stores")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    store = SQLiteCheckpointStore(f"sqlite:///{sqlite_path}")
    try:
        opening = asyncio.ensure_future(store.open())
        refused = asyncio.ensure_future(asyncio.to_thread(refused_once.wait, 10))
        await asyncio.wait([opening, refused], return_when=asyncio.FIRST_COMPLETED)
        assert not opening.done(), f"open() gave up at the first refusal: {opening.exception()!r}"
        assert await refused  # SQLite refused the switch once; the store is waiting
        holder.execute("COMMIT")  # the other connection finishes: the store gets its lock
        await asyncio.wait_for(opening, 10)
        await store.save_checkpoint("job", Checkpoint(1, "1", 1.0))
        assert await store.load_checkpoint("job") == Checkpoint(1, "1", 1.0)
        with sqlite3.connect(sqlite_path) as reader:
            assert reader.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        refused_once.set()  # the waiting thread ends even when the test failed early
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
        holder.close()
        await store.aclose()
