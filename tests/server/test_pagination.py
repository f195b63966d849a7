"""Signed cursors, Link headers and limit caps over real uvicorn."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from interlock.errors import ConfigError
from interlock.server import InvalidPage, Pagination, invalid_page_handler
from interlock.testing import FakeClock

from .conftest import serve

SECRET = "a-cursor-secret-of-some-length"
ITEMS = [{"id": n, "status": "paid" if n % 2 else "open"} for n in range(1, 56)]


def make_app(pages: Pagination) -> Starlette:
    async def orders(request: Request) -> Any:
        page = pages.parse(request)
        after = page.position["after"] if page.position else 0
        status = request.query_params.get("status")
        rows = [r for r in ITEMS if r["id"] > after and (status is None or r["status"] == status)]
        more = len(rows) > page.limit
        rows = rows[: page.limit]
        return pages.response(request, rows, next={"after": rows[-1]["id"]} if more else None)

    async def other(request: Request) -> Any:
        page = pages.parse(request)
        return pages.response(request, [], extra={"position": page.position})

    return Starlette(
        routes=[Route("/orders", orders), Route("/other", other)],
        exception_handlers={InvalidPage: invalid_page_handler},
    )


def next_link(response: httpx.Response) -> str | None:
    match = re.fullmatch(r'<([^>]+)>; rel="next"', response.headers.get("link", ""))
    return match.group(1) if match else None


async def test_walking_the_link_headers_visits_every_item_once() -> None:
    pages = Pagination(SECRET, default_limit=20, max_limit=25)
    seen: list[int] = []
    async with serve(make_app(pages)) as base, httpx.AsyncClient(base_url=base) as http:
        url: str | None = "/orders?status=paid&limit=10"
        while url is not None:
            r = await http.get(url)
            assert r.status_code == 200
            seen += [row["id"] for row in r.json()["data"]]
            url = next_link(r)
            if url is not None:
                assert "status=paid" in url and "limit=10" in url  # other parameters kept
                assert r.json()["next_cursor"] in httpx.URL(url).params["cursor"]
        capped = await http.get("/orders", params={"limit": 1000})
        default = await http.get("/orders")
    assert seen == [r["id"] for r in ITEMS if r["status"] == "paid"]
    assert len(capped.json()["data"]) == 25
    assert len(default.json()["data"]) == 20
    assert "link" not in r.headers and r.json()["next_cursor"] is None  # the last page


def _flip(cursor: str) -> str:
    payload, tag = cursor.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["p"]["after"] = 0  # try to rewind to see everything
    forged = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    return f"{forged}.{tag}"


async def test_tampered_forged_foreign_and_garbage_cursors_are_400() -> None:
    pages = Pagination(SECRET, default_limit=5)
    async with serve(make_app(pages)) as base, httpx.AsyncClient(base_url=base) as http:
        first = await http.get("/orders")
        cursor = first.json()["next_cursor"]
        ok = await http.get("/orders", params={"cursor": cursor})
        tampered = await http.get("/orders", params={"cursor": _flip(cursor)})
        other_key = Pagination("another-secret-entirely!!", default_limit=5)
        scope = {"path": "/orders", "root_path": ""}
        forged = await http.get("/orders", params={"cursor": other_key.cursor(scope, {"after": 0})})
        foreign = await http.get("/other", params={"cursor": cursor})
        garbage = [
            await http.get("/orders", params={"cursor": c})
            for c in ("x", "....", cursor + "!", "é" * 10, "a" * 2000, cursor.replace(".", ""))
        ]
        bad_limits = [await http.get("/orders", params={"limit": v}) for v in ("0", "-1", "ten", "1e3", "")]
    assert ok.status_code == 200 and ok.json()["data"][0]["id"] == 6
    for r in (tampered, forged, foreign, *garbage):
        assert r.status_code == 400, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["type"].endswith("/invalid-cursor")
    assert "another" in foreign.json()["detail"]
    for r in bad_limits:
        assert r.status_code == 400 and r.json()["type"].endswith("/invalid-limit")


def test_cursors_expire_and_rotated_secrets_still_verify() -> None:
    clock = FakeClock()
    old = Pagination("the-old-secret-of-16+", ttl=60.0, clock=clock)
    scope = {"path": "/orders", "query_string": b""}
    issued = old.cursor(scope, {"after": 7})
    rotated = Pagination("the-new-secret-of-16+", secrets=["the-old-secret-of-16+"], ttl=60.0, clock=clock)
    assert rotated.position(scope, issued) == {"after": 7}
    clock.advance(61.0)
    with pytest.raises(InvalidPage, match="expired"):
        rotated.position(scope, issued)
    bound = Pagination(SECRET, bind=lambda s: "user-1" if s.get("user") == 1 else "user-2")
    mine = bound.cursor({"path": "/o", "user": 1}, 3)
    assert bound.position({"path": "/o", "user": 1}, mine) == 3
    with pytest.raises(InvalidPage):
        bound.position({"path": "/o", "user": 2}, mine)
    assert "the-old" not in repr(rotated)


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="secret"):
        Pagination()
    with pytest.raises(ConfigError, match="16 bytes"):
        Pagination("short")
    with pytest.raises(ConfigError, match="default_limit"):
        Pagination(SECRET, default_limit=200, max_limit=100)
    with pytest.raises(ConfigError, match="ttl"):
        Pagination(SECRET, ttl=0)
