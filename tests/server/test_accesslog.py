from __future__ import annotations

import logging

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import interlock
from interlock.server import AccessLogMiddleware

from .conftest import serve

seen_ids: list[str | None] = []


async def user(request: Request) -> JSONResponse:
    seen_ids.append(interlock.current_correlation_id())
    return JSONResponse({"id": request.path_params["user_id"], "pad": "x" * 100})


async def boom(request: Request) -> JSONResponse:
    raise RuntimeError("boom")


def make_app() -> Starlette:
    return Starlette(
        routes=[Route("/users/{user_id}", user), Route("/boom", boom)],
        middleware=[Middleware(AccessLogMiddleware)],
    )


def records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "interlock.server.access"]


async def test_one_record_per_request_with_route_template_and_a_generated_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "interlock.server.access")
    seen_ids.clear()
    async with serve(make_app()) as base, httpx.AsyncClient(base_url=base) as http:
        r = await http.get("/users/42?token=secret")
    [record] = records(caplog)
    rid = r.headers["x-request-id"]
    assert len(rid) == 24 and seen_ids == [rid]
    fields = {
        k: getattr(record, k)
        for k in ("method", "route", "path", "status", "bytes", "client", "correlation_id")
    }
    assert fields == {
        "method": "GET",
        "route": "/users/{user_id}",
        "path": "/users/42",
        "status": 200,
        "bytes": len(r.content),
        "client": "127.0.0.1",
        "correlation_id": rid,
    }
    assert isinstance(record.duration_ms, float) and record.duration_ms >= 0
    assert record.getMessage().startswith("GET /users/{user_id} 200 ")
    assert "secret" not in record.getMessage()


async def test_a_callers_request_id_is_kept_and_a_bad_one_replaced(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "interlock.server.access")
    seen_ids.clear()
    async with serve(make_app()) as base, httpx.AsyncClient(base_url=base) as http:
        kept = await http.get("/users/1", headers={"x-request-id": "abc-123"})
        replaced = await http.get("/users/1", headers={"x-request-id": "bad id\t" + "x" * 200})
    assert kept.headers["x-request-id"] == "abc-123"
    assert replaced.headers["x-request-id"] != "" and " " not in replaced.headers["x-request-id"]
    assert seen_ids == ["abc-123", replaced.headers["x-request-id"]]
    assert [r.correlation_id for r in records(caplog)] == seen_ids


async def test_a_failing_request_is_logged_as_500(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "interlock.server.access")
    async with serve(make_app()) as base, httpx.AsyncClient(base_url=base) as http:
        r = await http.get("/boom")
    assert r.status_code == 500
    [record] = records(caplog)
    assert (record.status, record.route) == (500, "/boom")
