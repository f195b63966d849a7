"""A real OAuth2 provider for the auth tests: an aiohttp app on a loopback port with a token
endpoint (client credentials and rotating refresh tokens) and an API that accepts only the
tokens it issued, unexpired by the provider's own clock."""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from interlock._clock import SYSTEM_CLOCK, Clock

CLIENT_ID = "crm-sync"
CLIENT_SECRET = "cs-" + secrets.token_hex(12)
FIRST_REFRESH = "rt-first-" + secrets.token_hex(8)


@dataclass
class Provider:
    """The provider's state, which the tests read and steer."""

    clock: Clock = SYSTEM_CLOCK
    expires_in: float = 3600.0
    delay: float = 0.0
    """Seconds the token endpoint takes to answer."""
    mode: str = "ok"
    """ok | hang | fail500"""
    rotate: bool = True
    token_requests: int = 0
    grants: list[dict[str, str]] = field(default_factory=list)
    issued: dict[str, float] = field(default_factory=dict)
    """access token -> expiry (provider clock)."""
    refresh_tokens: set[str] = field(default_factory=lambda: {FIRST_REFRESH})
    spent_refresh: list[str] = field(default_factory=list)
    revoked: set[str] = field(default_factory=set)
    always_401: bool = False
    api_calls: list[str] = field(default_factory=list)
    """The token each API call carried."""
    expired_uses: int = 0
    url: str = ""

    def secrets(self) -> set[str]:
        """Everything that must never appear in a log line or an error."""
        return {CLIENT_SECRET, FIRST_REFRESH, *self.issued, *self.refresh_tokens, *self.spent_refresh}

    @property
    def token_url(self) -> str:
        return self.url + "/oauth/token"

    async def token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        if self.mode == "hang":
            await asyncio.sleep(60)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.mode == "fail500":
            return web.json_response({"error": "server_error"}, status=500)
        form = await request.post()
        auth = request.headers.get("Authorization", "")
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        if auth.startswith("Basic "):
            client_id, _, client_secret = base64.b64decode(auth[6:]).decode().partition(":")
        if client_id != CLIENT_ID or client_secret != CLIENT_SECRET:
            return web.json_response(
                {"error": "invalid_client", "error_description": "Client authentication failed."}, status=401
            )
        grant = {k: str(v) for k, v in form.items()}
        self.grants.append(grant)
        answer: dict[str, Any] = {"token_type": "Bearer", "expires_in": self.expires_in}
        if grant.get("grant_type") == "refresh_token":
            presented = grant.get("refresh_token", "")
            if presented not in self.refresh_tokens:
                return web.json_response(
                    {
                        "error": "invalid_grant",
                        "error_description": "The refresh token is invalid or was used.",
                    },
                    status=400,
                )
            if self.rotate:
                self.refresh_tokens.discard(presented)
                self.spent_refresh.append(presented)
                fresh = "rt-" + secrets.token_hex(8)
                self.refresh_tokens.add(fresh)
                answer["refresh_token"] = fresh
        elif grant.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        access = "at-" + secrets.token_hex(12)
        self.issued[access] = self.clock.time() + self.expires_in
        answer["access_token"] = access
        return web.json_response(answer)

    async def api(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else ""
        self.api_calls.append(token)
        expiry = self.issued.get(token)
        if expiry is not None and self.clock.time() >= expiry:
            self.expired_uses += 1
        if self.always_401 or expiry is None or token in self.revoked or self.clock.time() >= expiry:
            return web.json_response(
                {"error": "invalid_token"},
                status=401,
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        return web.json_response({"ok": True})


def leaked_secrets(records: list[logging.LogRecord], secrets: set[str]) -> list[tuple[str, str]]:
    """(logger, secret prefix) for every record whose message, arguments or exception text
    holds one of ``secrets``."""
    leaked = []
    for record in records:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += " " + repr(record.exc_info[1]) + " " + str(record.exc_info[1])
        leaked += [(record.name, secret[:6]) for secret in secrets if secret in text]
    return leaked


@pytest.fixture
async def provider(caplog: pytest.LogCaptureFixture) -> AsyncIterator[Provider]:
    """The provider, with DEBUG logging captured for the whole test: afterwards no record may
    hold the client secret, a refresh token or an access token it issued."""
    caplog.set_level(logging.DEBUG)
    state = Provider()
    app = web.Application()
    app.router.add_post("/oauth/token", state.token)
    app.router.add_get("/api/thing", state.api)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    state.url = f"http://127.0.0.1:{port}"
    try:
        yield state
    finally:
        await runner.cleanup()
    assert state.secrets() and leaked_secrets(caplog.records, state.secrets()) == []
