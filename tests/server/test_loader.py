from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from interlock.errors import ConfigError
from interlock.server import DataLoader, request_loader

from .conftest import serve

calls: list[list[int]] = []


async def users_by_id(ids: list[int]) -> dict[int, str]:
    calls.append(sorted(ids))
    return {i: f"user-{i}" for i in ids if i != 404}


async def test_one_batch_per_tick_with_duplicates_coalesced() -> None:
    calls.clear()
    loader = DataLoader(users_by_id)
    values = await asyncio.gather(*(loader.load(i % 5) for i in range(20)))
    assert values == [f"user-{i % 5}" for i in range(20)]
    assert calls == [[0, 1, 2, 3, 4]]
    assert await loader.load(3) == "user-3" and loader.batches == 1  # memoized


async def test_max_batch_splits_and_missing_keys_raise_key_error() -> None:
    calls.clear()
    loader = DataLoader(users_by_id, max_batch=3)
    assert await loader.load_many(range(7)) == [f"user-{i}" for i in range(7)]
    assert [len(c) for c in calls] == [3, 3, 1]
    with pytest.raises(KeyError):
        await loader.load(404)


async def test_a_failed_batch_fails_its_loads_and_is_not_memoized() -> None:
    attempts = 0

    async def flaky(keys: list[str]) -> list[str]:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise ConnectionError("db down")
        return [k.upper() for k in keys]

    loader = DataLoader(flaky)
    results = await asyncio.gather(loader.load("a"), loader.load("b"), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    assert await loader.load("a") == "A"


async def test_sequence_of_the_wrong_length_is_an_error() -> None:
    async def short(keys: list[int]) -> list[int]:
        return keys[:1]

    loader = DataLoader(short)
    results = await asyncio.gather(loader.load(1), loader.load(2), return_exceptions=True)
    assert results[0] == 1 and isinstance(results[1], ValueError)


async def test_the_memo_is_bounded() -> None:
    loader = DataLoader(users_by_id, max_keys=2)
    for i in range(5):
        await loader.load(i)
    assert len(loader._memo) <= 2
    with pytest.raises(ConfigError):
        DataLoader(users_by_id, max_batch=0)


async def test_request_scoped_over_real_http() -> None:
    calls.clear()

    async def orders(request: Request) -> JSONResponse:
        users = request_loader(request.scope, users_by_id)
        assert request_loader(request.scope, users_by_id) is users
        owners = await asyncio.gather(*(users.load(uid) for uid in (1, 2, 1, 3)))
        return JSONResponse({"owners": owners, "batches": users.batches})

    app = Starlette(routes=[Route("/orders", orders)])
    async with serve(app) as base, httpx.AsyncClient(base_url=base) as http:
        first = (await http.get("/orders")).json()
        second = (await http.get("/orders")).json()
    assert first == second == {"owners": ["user-1", "user-2", "user-1", "user-3"], "batches": 1}
    assert calls == [[1, 2, 3], [1, 2, 3]]  # a new loader per request: nothing leaks between them
