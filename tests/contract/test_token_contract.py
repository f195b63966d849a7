"""The TokenStore contract, run on every backend: in-process, Redis, SQLite and PostgreSQL.

Lease expiry is checked with short leases (0.2 s) and a wait well past them: what is asserted
is that an expired lease can be taken, never how fast."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack

import pytest

from interlock.core.token import Token
from interlock.stores import TokenStore, open_token_store
from interlock.stores.token_memory import MemoryTokenStore
from interlock.testing import temporary_schema

TOKEN = Token(
    "at-1", expires_at=2_000_000_000.0, refresh_token="rt-1", scope="a b", issued_at=1_999_999_000.0
)


@pytest.fixture(params=["memory", "redis", "sqlite", "postgres"])
async def stores(
    request: pytest.FixtureRequest, sqlite_path: str
) -> AsyncIterator[Callable[[], Awaitable[TokenStore]]]:
    """Opens stores on one shared backend (several instances = several processes); closes them."""
    made: list[TokenStore] = []
    cleanup = AsyncExitStack()
    shared_memory = MemoryTokenStore()

    if request.param == "memory":

        def make() -> TokenStore:
            return shared_memory
    elif request.param == "redis":
        url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("redis_prefix")

        def make() -> TokenStore:
            return open_token_store(url, namespace=prefix + "token:")
    elif request.param == "sqlite":

        def make() -> TokenStore:
            return open_token_store(f"sqlite:///{sqlite_path}")
    else:
        dsn = request.getfixturevalue("postgres_dsn")  # skips (or fails under CI) without a server
        schema = await cleanup.enter_async_context(
            temporary_schema(dsn, f"contract_{request.getfixturevalue('run_id')}")
        )

        def make() -> TokenStore:
            return open_token_store(f"{dsn}?schema={schema}")

    async def opened() -> TokenStore:
        store = make()
        await store.open()
        made.append(store)
        return store

    try:
        yield opened
    finally:
        for store in made:
            await store.aclose()
        await cleanup.aclose()


Stores = Callable[[], Awaitable[TokenStore]]


@pytest.fixture
async def store(stores: Stores) -> TokenStore:
    return await stores()


async def test_is_a_token_store(store: TokenStore) -> None:
    assert isinstance(store, TokenStore)


async def test_save_then_load_round_trips_every_field(store: TokenStore) -> None:
    assert await store.load("k") is None
    await store.save("k", TOKEN)
    loaded = await store.load("k")
    assert loaded is not None
    assert loaded.to_json() == TOKEN.to_json()


async def test_save_replaces_and_keys_are_independent(store: TokenStore) -> None:
    await store.save("k", TOKEN)
    newer = Token("at-2", expires_at=2_000_000_500.0, refresh_token="rt-2")
    await store.save("k", newer)
    await store.save("other", TOKEN)
    loaded = await store.load("k")
    assert loaded is not None and loaded.access_token == "at-2" and loaded.refresh_token == "rt-2"
    other = await store.load("other")
    assert other is not None and other.access_token == "at-1"


async def test_a_token_saved_by_one_process_is_read_by_another(
    stores: Stores,
) -> None:
    one, two = await stores(), await stores()
    await one.save("k", TOKEN)
    loaded = await two.load("k")
    assert loaded is not None and loaded.refresh_token == "rt-1"


async def test_the_lock_is_exclusive_and_released_only_by_its_owner(
    stores: Stores,
) -> None:
    one, two = await stores(), await stores()
    assert await one.lock("k", "owner-a", 30.0) is True
    assert await two.lock("k", "owner-b", 30.0) is False
    assert await one.lock("k", "owner-a", 30.0) is False  # held: not re-entrant
    assert await two.lock("other", "owner-b", 30.0) is True  # per key
    await two.unlock("k", "owner-b")  # not its lock: nothing happens
    assert await two.lock("k", "owner-b", 30.0) is False
    await one.unlock("k", "owner-a")
    assert await two.lock("k", "owner-b", 30.0) is True


async def test_concurrent_lockers_get_exactly_one_lock(
    stores: Stores,
) -> None:
    contenders = [await stores() for _ in range(3)]
    results = await asyncio.gather(*(s.lock("k", f"o{i}", 30.0) for i, s in enumerate(contenders * 3)))
    assert sum(results) == 1


async def test_an_expired_lease_is_taken_over_and_the_old_owner_cannot_release_it(
    stores: Stores,
) -> None:
    one, two = await stores(), await stores()
    assert await one.lock("k", "crashed", 0.2)
    await asyncio.sleep(0.6)
    assert await two.lock("k", "successor", 30.0) is True
    await one.unlock("k", "crashed")  # the late holder wakes up: the successor keeps its lock
    assert await one.lock("k", "third", 30.0) is False
