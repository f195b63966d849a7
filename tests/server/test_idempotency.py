from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from interlock.server import (
    IdempotencyMiddleware,
    MemoryIdempotencyStore,
    PostgresIdempotencyStore,
    RedisIdempotencyStore,
    SQLiteIdempotencyStore,
    StoredResponse,
)
from interlock.testing import FakeClock, temporary_schema

from .conftest import serve


class Orders:
    def __init__(self) -> None:
        self.created = 0
        self.fail_next = False
        self.entered = asyncio.Event()
        self.release: asyncio.Event | None = None

    async def create(self, request: Request) -> JSONResponse:
        payload = await request.json()
        self.entered.set()
        if self.release is not None:
            await asyncio.wait_for(self.release.wait(), 10.0)
        if self.fail_next:
            self.fail_next = False
            return JSONResponse({"error": "db down"}, status_code=503)
        self.created += 1
        return JSONResponse(
            {"order": self.created, **payload}, status_code=201, headers={"location": f"/o/{self.created}"}
        )


def make_app(orders: Orders, store: Any, **options: Any) -> Starlette:
    return Starlette(
        routes=[Route("/orders", orders.create, methods=["POST"])],
        middleware=[Middleware(IdempotencyMiddleware, store=store, **options)],
    )


STORES = ["memory", "sqlite", "postgres", "redis"]


class Backend:
    """One store under test and how to let time pass for it: a fake clock where the store reads
    the clock, real time for Redis (its expiry is the server's own ``PX``)."""

    def __init__(self, store: Any, clock: FakeClock | None) -> None:
        self.store = store
        self.clock = clock

    async def advance(self, seconds: float) -> None:
        if self.clock is not None:
            self.clock.advance(seconds)
        else:
            await asyncio.sleep(seconds)


@pytest.fixture(params=STORES)
async def backend(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[Backend]:
    clock = FakeClock()
    if request.param == "memory":
        yield Backend(MemoryIdempotencyStore(clock=clock), clock)
        return
    if request.param == "sqlite":
        sqlite_store = SQLiteIdempotencyStore(str(tmp_path / "idem.db"), clock=clock, prune_every=3)
        yield Backend(sqlite_store, clock)
        await sqlite_store.aclose()
        return
    if request.param == "postgres":
        dsn = request.getfixturevalue("postgres_dsn")
        async with temporary_schema(dsn, "itest_idem") as schema:
            pg_store = PostgresIdempotencyStore(dsn, schema=schema, clock=clock, prune_every=3)
            yield Backend(pg_store, clock)
            await pg_store.aclose()
        return
    redis_url = request.getfixturevalue("redis_url")
    prefix = request.getfixturevalue("redis_prefix")
    redis_store = RedisIdempotencyStore(redis_url, namespace=prefix)
    yield Backend(redis_store, None)
    await redis_store.aclose()


@pytest.fixture
def store(backend: Backend) -> Any:
    return backend.store


async def test_a_repeat_replays_the_stored_response(store: Any) -> None:
    orders = Orders()
    async with serve(make_app(orders, store)) as base, httpx.AsyncClient(base_url=base) as http:
        key = {"idempotency-key": "k-1"}
        first = await http.post("/orders", json={"item": "book"}, headers=key)
        again = await http.post("/orders", json={"item": "book"}, headers=key)
        other = await http.post("/orders", json={"item": "book"}, headers={"idempotency-key": "k-2"})
    assert (first.status_code, first.json()) == (201, {"order": 1, "item": "book"})
    assert (again.status_code, again.content, again.headers["location"]) == (201, first.content, "/o/1")
    assert again.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
    assert other.json()["order"] == 2
    assert orders.created == 2


async def test_the_same_key_with_another_body_is_422(store: Any) -> None:
    orders = Orders()
    async with serve(make_app(orders, store)) as base, httpx.AsyncClient(base_url=base) as http:
        await http.post("/orders", json={"item": "book"}, headers={"idempotency-key": "k"})
        changed = await http.post("/orders", json={"item": "pen"}, headers={"idempotency-key": "k"})
    assert changed.status_code == 422
    assert changed.json()["type"].endswith("/idempotency-key-reused")
    assert orders.created == 1


async def test_a_repeat_while_the_first_runs_is_409(store: Any) -> None:
    orders = Orders()
    orders.release = asyncio.Event()
    async with serve(make_app(orders, store)) as base, httpx.AsyncClient(base_url=base) as http:
        key = {"idempotency-key": "slow"}
        first = asyncio.create_task(http.post("/orders", json={"n": 1}, headers=key))
        await asyncio.wait_for(orders.entered.wait(), 10.0)
        during = await http.post("/orders", json={"n": 1}, headers=key)
        orders.release.set()
        done = await first
        after = await http.post("/orders", json={"n": 1}, headers=key)
    assert during.status_code == 409 and during.headers["retry-after"] == "1"
    assert done.status_code == 201
    assert after.headers["idempotent-replayed"] == "true"
    assert orders.created == 1


async def test_a_5xx_is_not_stored_so_a_retry_runs_again(store: Any) -> None:
    orders = Orders()
    orders.fail_next = True
    async with serve(make_app(orders, store)) as base, httpx.AsyncClient(base_url=base) as http:
        key = {"idempotency-key": "retry-me"}
        failed = await http.post("/orders", json={}, headers=key)
        retried = await http.post("/orders", json={}, headers=key)
    assert (failed.status_code, retried.status_code) == (503, 201)
    assert "idempotent-replayed" not in retried.headers


async def test_invalid_and_required_keys_are_400() -> None:
    orders = Orders()
    app = make_app(orders, MemoryIdempotencyStore(), required=True)
    async with serve(app) as base, httpx.AsyncClient(base_url=base) as http:
        missing = await http.post("/orders", json={})
        too_long = await http.post("/orders", json={}, headers={"idempotency-key": "x" * 256})
    assert (missing.status_code, too_long.status_code) == (400, 400)
    assert orders.created == 0


async def test_keys_expire_and_an_abandoned_lease_frees_the_key(backend: Backend) -> None:
    store = backend.store
    begun = await store.begin("k", "fp", lock_ttl=0.3)
    assert begun.state == "started"
    assert (await store.begin("k", "fp", lock_ttl=0.3)).state == "running"
    assert (await store.begin("k", "other", lock_ttl=0.3)).state == "mismatch"
    await backend.advance(0.5)  # the first process died mid-request: its lease ran out
    second = await store.begin("k", "fp", lock_ttl=60.0)
    assert second.state == "started"
    await store.complete(
        "k", begun.token, "fp", StoredResponse(200, [], b"stale"), ttl=100.0
    )  # not the owner
    await store.release("k", begun.token)  # not the owner either: nothing happens
    assert (await store.begin("k", "fp", lock_ttl=60.0)).state == "running"
    reply = StoredResponse(201, [(b"location", b"/o/1")], b"ok")
    await store.complete("k", second.token, "fp", reply, ttl=0.5)
    done = await store.begin("k", "fp", lock_ttl=60.0)
    assert done.state == "done" and done.response == reply
    await backend.advance(0.7)
    again = await store.begin("k", "fp", lock_ttl=60.0)
    assert again.state == "started"
    await store.release("k", again.token)
    assert (await store.begin("k", "fp", lock_ttl=60.0)).state == "started"


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
async def test_sql_stores_prune_expired_keys(backend: Backend) -> None:
    """Memory and Redis drop keys by themselves (a bounded dict, PX); the SQL tables prune."""
    store = backend.store
    for n in range(5):
        await store.begin(f"old-{n}", "fp", lock_ttl=1.0)
    await backend.advance(2.0)
    assert await store.prune() == 5
    assert await store.prune() == 0


async def test_concurrent_claims_of_one_key_admit_one(backend: Backend) -> None:
    begun = await asyncio.gather(*(backend.store.begin("race", "fp", lock_ttl=30.0) for _ in range(20)))
    assert sorted(b.state for b in begun) == ["running"] * 19 + ["started"]


def test_stored_response_round_trips_binary() -> None:
    response = StoredResponse(201, [(b"x-a", b"\xff\x00")], b"\x00\x01body")
    assert StoredResponse.from_json(response.to_json()) == response
