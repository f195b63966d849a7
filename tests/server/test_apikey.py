"""ApiKeyAuth under real uvicorn: hashed keys, scopes per key and route, per-key rate limits."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from interlock.errors import ConfigError
from interlock.server import ApiKeyAuth, ApiKeyRecord, Require, hash_api_key, new_api_key

from .conftest import serve

READER_KEY, READER_DIGEST = new_api_key()
WRITER_KEY, WRITER_DIGEST = new_api_key()


async def whoami(request: Request) -> JSONResponse:
    return JSONResponse({"sub": request.state.subject, "method": request.state.auth_method})


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


@pytest.fixture
async def api() -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(
        routes=[
            Route("/whoami", whoami),
            Route("/orders", whoami, methods=["POST"]),
            Route("/healthz", health),
        ],
        middleware=[
            Middleware(
                ApiKeyAuth,
                keys=[
                    ApiKeyRecord("reader", READER_DIGEST, scopes=("orders:read",), limit=3, window=3600.0),
                    ApiKeyRecord("writer", WRITER_DIGEST, scopes=("orders:read", "orders:write")),
                ],
                require=[Require(scopes=("orders:write",), paths=("/orders",))],
                public=("/healthz",),
            )
        ],
    )
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as client:
        yield client


async def test_a_valid_key_reaches_the_handler_with_its_id(api: httpx.AsyncClient) -> None:
    answer = await api.get("/whoami", headers={"X-API-Key": WRITER_KEY})
    assert answer.json() == {"sub": "writer", "method": "api_key"}
    assert (await api.get("/whoami", headers={"Authorization": f"Bearer {WRITER_KEY}"})).status_code == 200


async def test_missing_and_wrong_keys_are_401(
    api: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    missing = await api.get("/whoami")
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == 'ApiKey realm="api"'
    wrong = await api.get("/whoami", headers={"X-API-Key": WRITER_KEY[:-1] + "x"})
    assert wrong.status_code == 401 and 'error="invalid_token"' in wrong.headers["www-authenticate"]
    assert (await api.get("/whoami", headers={"X-API-Key": "k" * 5000})).status_code == 401
    assert (await api.get("/healthz")).status_code == 200
    assert all(WRITER_KEY[:-1] not in r.getMessage() for r in caplog.records)


async def test_a_missing_scope_is_403(api: httpx.AsyncClient) -> None:
    refused = await api.post("/orders", headers={"X-API-Key": READER_KEY})
    assert refused.status_code == 403 and 'scope="orders:write"' in refused.headers["www-authenticate"]
    assert (await api.post("/orders", headers={"X-API-Key": WRITER_KEY})).status_code == 200


async def test_each_key_has_its_own_rate_limit(api: httpx.AsyncClient) -> None:
    statuses = [(await api.get("/whoami", headers={"X-API-Key": READER_KEY})).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    assert (await api.get("/whoami", headers={"X-API-Key": WRITER_KEY})).status_code == 200  # unlimited


def test_keys_are_stored_hashed_and_never_shown() -> None:
    record = ApiKeyRecord("acme", hash_api_key("secret-key-123"))
    assert "secret-key-123" not in repr(record) and record.digest.startswith("sha256:")
    with pytest.raises(ConfigError, match="digest"):
        ApiKeyRecord("acme", "secret-key-123")  # a plain key where the digest belongs
    with pytest.raises(ConfigError, match="unique"):
        ApiKeyAuth(None, keys=[record, record])  # type: ignore[arg-type]
