from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from interlock.server import ConditionalMiddleware, FieldsMiddleware

from .conftest import serve

USER = {"id": 7, "email": "a@example.com", "name": "Ann", "stats": {"total_bookings": 3, "rating": 4.5}}
calls: list[str] = []


async def user(request: Request) -> JSONResponse:
    calls.append("user")
    return JSONResponse(USER)


async def users(request: Request) -> JSONResponse:
    return JSONResponse([USER, {**USER, "id": 8}])


async def text(request: Request) -> PlainTextResponse:
    return PlainTextResponse("plain")


async def failing(request: Request) -> JSONResponse:
    return JSONResponse({"error": "nope"}, status_code=404)


def make_app(**options: object) -> Starlette:
    return Starlette(
        routes=[
            Route("/user", user),
            Route("/users", users),
            Route("/text", text),
            Route("/missing", failing),
        ],
        middleware=[Middleware(ConditionalMiddleware), Middleware(FieldsMiddleware, **options)],
    )


async def test_selects_nested_fields_of_objects_and_lists() -> None:
    async with serve(make_app()) as base, httpx.AsyncClient(base_url=base) as http:
        one = await http.get("/user", params={"fields": "id,email,stats.total_bookings"})
        many = await http.get("/users", params={"fields": "id"})
        whole = await http.get("/user")
    assert one.json() == {"id": 7, "email": "a@example.com", "stats": {"total_bookings": 3}}
    assert int(one.headers["content-length"]) == len(one.content)
    assert many.json() == [{"id": 7}, {"id": 8}]
    assert whole.json() == USER
    assert one.headers["etag"] != whole.headers["etag"]  # each selection is its own representation


@pytest.mark.parametrize("spec", ["id,,email", "id;1", "stats..x", ""])
async def test_malformed_is_400_before_the_app_runs(spec: str) -> None:
    calls.clear()
    async with serve(make_app()) as base, httpx.AsyncClient(base_url=base) as http:
        r = await http.get("/user", params={"fields": spec})
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"].endswith("/invalid-fields")
    assert calls == []


@pytest.mark.parametrize(("spec", "named"), [("id,nope", "'nope'"), ("stats.nothing", "'stats.nothing'")])
async def test_unknown_field_is_400_naming_it(spec: str, named: str) -> None:
    async with serve(make_app()) as base, httpx.AsyncClient(base_url=base) as http:
        r = await http.get("/user", params={"fields": spec})
    assert r.status_code == 400
    assert named in r.json()["detail"]


async def test_non_json_errors_and_oversized_pass_untouched() -> None:
    async with serve(make_app(max_body=10)) as base, httpx.AsyncClient(base_url=base) as http:
        assert (await http.get("/text", params={"fields": "id"})).text == "plain"
        missing = await http.get("/missing", params={"fields": "id"})
        assert (missing.status_code, missing.json()) == (404, {"error": "nope"})
        assert (await http.get("/user", params={"fields": "id"})).json() == USER
