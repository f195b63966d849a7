"""Static credentials on the wire (a real loopback server via aiohttp) and in the Client's
redaction: an ApiKey's own header or query name is masked in errors and logs."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from interlock import Client, Retry
from interlock.auth import ApiKey, Basic, Bearer
from interlock.errors import RetriesExhausted

KEY = "k-9f3b2c1d0e"


@pytest.fixture
async def echo() -> AsyncIterator[tuple[str, list[web.Request]]]:
    seen: list[web.Request] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request)
        return web.json_response({}, status=503 if request.path == "/down" else 200)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", seen
    finally:
        await runner.cleanup()


async def test_api_key_in_a_custom_header_and_basic(echo: tuple[str, list[web.Request]]) -> None:
    url, seen = echo
    async with Client(url, auth=ApiKey(KEY, header="X-Shop-Token")) as api:
        await api.get("/a")
    async with Client(url, auth=Basic("ann", "pw:with:colons")) as api:
        await api.get("/b")
    assert seen[0].headers["X-Shop-Token"] == KEY
    assert seen[1].headers["Authorization"] == "Basic YW5uOnB3OndpdGg6Y29sb25z"


async def test_api_key_in_the_query_is_sent_and_masked_in_errors_and_logs(
    echo: tuple[str, list[web.Request]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url, seen = echo
    async with Client(url, auth=ApiKey(KEY, query="apiKey"), retry=Retry(attempts=2, budget=None)) as api:
        assert "apikey" in api.redaction.query
        await api.get("/a", params={"page": "2"})
        with pytest.raises(RetriesExhausted) as caught:
            await api.get(f"/down?apiKey={KEY}")
    assert seen[0].query["apiKey"] == KEY and seen[0].query["page"] == "2"
    assert KEY not in str(caught.value)
    assert all(KEY not in record.getMessage() for record in caplog.records)


async def test_a_request_repr_masks_a_credential_header_of_its_own_naming() -> None:
    from interlock.testing import MockTransport, respond

    transport = MockTransport(lambda request: respond(200))
    async with Client(
        "https://api.test", auth=ApiKey(KEY, header="X-Shop-Token"), transport=transport
    ) as api:
        await api.get("/x")
    shown = repr(transport.requests[0])
    assert "X-Shop-Token" in shown and KEY not in shown


def test_credentials_from_config_builds_each_type_and_names_mistakes() -> None:
    from interlock.auth import OAuth2RefreshToken, credentials_from_config
    from interlock.errors import ConfigError

    assert isinstance(credentials_from_config({"type": "bearer", "token": "t"}), Bearer)
    key = credentials_from_config({"type": "api_key", "key": KEY, "query": "apiKey"})
    assert isinstance(key, ApiKey) and key.query == "apiKey"
    grant = credentials_from_config({
        "type": "oauth2_refresh_token", "token_url": "https://login.test/token", "client_id": "c",
        "client_secret": "s", "refresh_token": "r", "scopes": ["a"], "margin": 30.0,
    })  # fmt: skip
    assert isinstance(grant, OAuth2RefreshToken) and grant.scopes == ("a",) and grant.margin == 30.0
    with pytest.raises(ConfigError, match="auth.type"):
        credentials_from_config({"type": "kerberos"})
    with pytest.raises(ConfigError, match="auth.password: is required"):
        credentials_from_config({"type": "basic", "username": "u"})
    with pytest.raises(ConfigError, match="auth.secret: is not a setting") as caught:
        credentials_from_config({"type": "bearer", "token": "t", "secret": KEY})
    assert KEY not in str(caught.value)


def test_the_public_surface_of_interlock_auth() -> None:
    import interlock.auth as auth

    assert len(set(auth.__all__)) == len(auth.__all__)
    for name in auth.__all__:
        value = getattr(auth, name)
        assert getattr(value, "__doc__", None), name
    assert auth.AuthError is __import__("interlock.errors").errors.AuthError
