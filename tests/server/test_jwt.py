"""JWTAuth under real uvicorn, with a real JWKS endpoint (aiohttp on loopback). Tokens are signed
by the library under test (PyJWT) and by a second, independent implementation (joserfc; and by
hand for the two attacks), so a bug shared by signer and verifier cannot pass unnoticed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt as pyjwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from joserfc import jwt as jose_jwt
from joserfc.jwk import ECKey, OKPKey, RSAKey
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from interlock.errors import ConfigError
from interlock.server import JWTAuth, Limit, RateLimitMiddleware, Require, auth_subject

from .conftest import serve

pytestmark = pytest.mark.filterwarnings("ignore:EdDSA is deprecated")  # joserfc prefers "Ed25519" (RFC 9864)

ISSUER = "https://login.test/"
AUDIENCE = "https://api.test"
SECRET = secrets.token_bytes(32)


@dataclass
class Keys:
    rsa: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, parameters={"kid": "rsa-1"}))
    ec: ECKey = field(default_factory=lambda: ECKey.generate_key("P-256", parameters={"kid": "ec-1"}))
    ed: OKPKey = field(default_factory=lambda: OKPKey.generate_key("Ed25519", parameters={"kid": "ed-1"}))
    rotated: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, parameters={"kid": "rsa-2"}))


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


@dataclass
class JWKS:
    published: list[dict[str, Any]]
    fetches: int = 0
    url: str = ""

    async def handler(self, request: web.Request) -> web.Response:
        self.fetches += 1
        return web.json_response({"keys": self.published})


@pytest.fixture
async def jwks(keys: Keys) -> AsyncIterator[JWKS]:
    state = JWKS([k.as_dict(private=False) for k in (keys.rsa, keys.ec, keys.ed)])
    app = web.Application()
    app.router.add_get("/jwks.json", state.handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.url = f"http://127.0.0.1:{runner.addresses[0][1]}/jwks.json"
    try:
        yield state
    finally:
        await runner.cleanup()


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-42",
        "iat": now,
        "exp": now + 300,
        "scope": "orders:read",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def pem(key: Any) -> bytes:
    return key.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def sign_pyjwt(key: Any, alg: str, payload: dict[str, Any]) -> str:
    return pyjwt.encode(payload, pem(key), algorithm=alg, headers={"kid": key.kid})


def sign_joserfc(key: Any, alg: str, payload: dict[str, Any]) -> str:
    return jose_jwt.encode({"alg": alg, "kid": key.kid}, payload, key, algorithms=[alg])


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_by_hand_hs256(secret: bytes, payload: dict[str, Any], kid: str | None = None) -> str:
    header = {"alg": "HS256", "typ": "JWT", **({"kid": kid} if kid else {})}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def unsigned(payload: dict[str, Any], kid: str = "rsa-1") -> str:
    header = {"alg": "none", "typ": "JWT", "kid": kid}
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}."


async def me(request: Request) -> JSONResponse:
    return JSONResponse(
        {"sub": request.state.subject, "claims": request.state.claims, "scopes": sorted(request.state.scopes)}
    )


async def orders(request: Request) -> JSONResponse:
    return JSONResponse({"created": True})


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


def app(
    jwks_url: str, *, secret: bytes | None = SECRET, extra: list[Middleware] | None = None, **options: Any
) -> Starlette:
    return Starlette(
        routes=[
            Route("/me", me),
            Route("/orders", orders, methods=["GET", "POST"]),
            Route("/healthz", health),
        ],
        middleware=[
            Middleware(
                JWTAuth,
                jwks_url=jwks_url,
                secret=secret,
                issuer=ISSUER,
                audience=AUDIENCE,
                leeway=5.0,
                require=[Require(scopes=("orders:write",), paths=("/orders",), methods=("POST",))],
                public=("/healthz",),
                **options,
            ),
            *(extra or []),
        ],
    )


@pytest.fixture
async def api(jwks: JWKS) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(app(jwks.url)) as url, httpx.AsyncClient(base_url=url) as client:
        yield client


SENT: list[str] = []
"""Every token a test sends (the signature segment is what must never be logged)."""


def bearer(token: str) -> dict[str, str]:
    SENT.append(token)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(autouse=True)
def no_token_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """DEBUG logging captured for every test; afterwards no record holds a token it sent, nor
    the shared secret."""
    caplog.set_level(logging.DEBUG)
    SENT.clear()
    yield
    secrets_sent = {t.rsplit(".", 1)[-1] for t in SENT if len(t.rsplit(".", 1)[-1]) > 8} | {SECRET.hex()}
    leaked = [r.name for r in caplog.records for s in secrets_sent if s in r.getMessage()]
    assert leaked == []


@pytest.mark.parametrize("signer", [sign_pyjwt, sign_joserfc], ids=["pyjwt", "joserfc"])
@pytest.mark.parametrize(
    ("which", "alg"), [("rsa", "RS256"), ("rsa", "PS256"), ("ec", "ES256"), ("ed", "EdDSA")]
)
async def test_valid_tokens_reach_the_handler_with_their_claims(
    api: httpx.AsyncClient, keys: Keys, signer: Any, which: str, alg: str
) -> None:
    token = signer(getattr(keys, which), alg, claims())
    answer = await api.get("/me", headers=bearer(token))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["sub"] == "user-42" and body["claims"]["iss"] == ISSUER and body["scopes"] == ["orders:read"]


async def test_hs256_with_the_shared_secret_is_accepted(api: httpx.AsyncClient) -> None:
    assert (await api.get("/me", headers=bearer(sign_by_hand_hs256(SECRET, claims())))).status_code == 200
    assert (
        await api.get("/me", headers=bearer(pyjwt.encode(claims(), SECRET, algorithm="HS256")))
    ).status_code == 200


def assert_invalid_token(answer: httpx.Response, words: str) -> None:
    assert answer.status_code == 401, answer.text
    challenge = answer.headers["www-authenticate"]
    assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge, challenge
    assert words in answer.json()["detail"]
    assert answer.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("signer", [sign_pyjwt, sign_joserfc], ids=["pyjwt", "joserfc"])
@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"exp": int(time.time()) - 60}, "expired"),
        ({"nbf": int(time.time()) + 600}, "not valid yet"),
        ({"iat": int(time.time()) + 600}, "not valid yet"),
        ({"aud": "https://someone-else.test"}, "audience"),
        ({"iss": "https://evil.test/"}, "issuer"),
        ({"exp": None}, "'exp'"),
    ],
    ids=["expired", "not-yet-valid", "issued-in-the-future", "wrong-audience", "wrong-issuer", "no-exp"],
)
async def test_bad_claims_are_401_invalid_token(
    api: httpx.AsyncClient, keys: Keys, signer: Any, overrides: dict[str, Any], words: str
) -> None:
    token = signer(keys.rsa, "RS256", claims(**overrides))
    assert_invalid_token(await api.get("/me", headers=bearer(token)), words)


async def test_leeway_absorbs_small_clock_skew(api: httpx.AsyncClient, keys: Keys) -> None:
    token = sign_joserfc(keys.ec, "ES256", claims(exp=int(time.time()) - 2))  # 2 s late, leeway 5 s
    assert (await api.get("/me", headers=bearer(token))).status_code == 200


async def test_alg_none_is_refused(api: httpx.AsyncClient) -> None:
    assert_invalid_token(await api.get("/me", headers=bearer(unsigned(claims()))), "algorithm 'none'")


async def test_hs256_signed_with_the_rsa_public_key_is_refused(jwks: JWKS, keys: Keys) -> None:
    """The confusion attack: the public key, as published, used as an HMAC secret."""
    public_pem = keys.rsa.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    forged = sign_by_hand_hs256(public_pem, claims(scope="orders:write"), kid="rsa-1")
    for secret in (SECRET, None):  # with a shared secret configured, and without one
        async with serve(app(jwks.url, secret=secret)) as url, httpx.AsyncClient(base_url=url) as client:
            answer = await client.get("/me", headers=bearer(forged))
            assert answer.status_code == 401
            assert 'error="invalid_token"' in answer.headers["www-authenticate"]


async def test_an_rsa_key_never_verifies_another_family(api: httpx.AsyncClient, keys: Keys) -> None:
    # An ES256 token naming the RSA key's kid: refused on the allow-list, before any crypto.
    token = jose_jwt.encode({"alg": "ES256", "kid": "rsa-1"}, claims(), keys.ec, algorithms=["ES256"])
    assert_invalid_token(await api.get("/me", headers=bearer(token)), "does not fit its key")


async def test_a_bad_signature_is_refused(api: httpx.AsyncClient, keys: Keys) -> None:
    token = sign_pyjwt(keys.rsa, "RS256", claims())
    head, payload, _ = token.split(".")
    other = sign_pyjwt(keys.rsa, "RS256", claims(sub="admin")).split(".")[2]
    assert_invalid_token(await api.get("/me", headers=bearer(f"{head}.{payload}.{other}")), "signature")


async def test_unknown_kid_refetches_the_jwks_once_per_interval(
    jwks: JWKS, api: httpx.AsyncClient, keys: Keys
) -> None:
    assert (await api.get("/me", headers=bearer(sign_pyjwt(keys.rsa, "RS256", claims())))).status_code == 200
    assert jwks.fetches == 1
    stranger = RSAKey.generate_key(2048, parameters={"kid": "nobody"})
    for _ in range(5):  # a stream of tokens with an unknown kid: one refetch, not five
        assert_invalid_token(
            await api.get("/me", headers=bearer(sign_joserfc(stranger, "RS256", claims()))), "unknown key"
        )
    assert jwks.fetches == 2


async def test_a_rotated_key_is_picked_up_by_the_refetch(
    jwks: JWKS, api: httpx.AsyncClient, keys: Keys
) -> None:
    assert (await api.get("/me", headers=bearer(sign_pyjwt(keys.rsa, "RS256", claims())))).status_code == 200
    jwks.published.append(keys.rotated.as_dict(private=False))  # the provider rotates
    token = sign_joserfc(keys.rotated, "RS256", claims())
    assert (await api.get("/me", headers=bearer(token))).status_code == 200
    assert jwks.fetches == 2


async def test_a_missing_scope_is_403_insufficient_scope(api: httpx.AsyncClient, keys: Keys) -> None:
    reader = sign_pyjwt(keys.ed, "EdDSA", claims(scope="orders:read"))
    answer = await api.post("/orders", headers=bearer(reader))
    assert answer.status_code == 403
    challenge = answer.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge and 'scope="orders:write"' in challenge
    assert (await api.get("/orders", headers=bearer(reader))).status_code == 200  # GET needs no write scope
    writer = sign_joserfc(keys.ed, "EdDSA", claims(scope=None, scp=["orders:read", "orders:write"]))
    assert (await api.post("/orders", headers=bearer(writer))).status_code == 200


async def test_no_token_malformed_tokens_and_public_paths(api: httpx.AsyncClient) -> None:
    answer = await api.get("/me")
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == 'Bearer realm="api"'  # RFC 6750 3.1: no error code
    assert (await api.get("/me", headers={"Authorization": "Basic dTpw"})).status_code == 401
    assert (await api.get("/me", headers={"Authorization": "Bearer a b"})).status_code == 400
    assert_invalid_token(await api.get("/me", headers=bearer("not.a.jwt")), "well-formed")
    assert_invalid_token(await api.get("/me", headers=bearer("x" * 9000)), "longer than")
    assert (await api.get("/healthz")).status_code == 200


async def test_an_unreachable_jwks_is_503_not_a_crash(keys: Keys) -> None:
    async with (
        serve(app("http://127.0.0.1:9/jwks.json", jwks_timeout=1.0)) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        answer = await client.get("/me", headers=bearer(sign_pyjwt(keys.rsa, "RS256", claims())))
    assert answer.status_code == 503 and answer.headers["retry-after"] == "5"


async def test_the_rate_limiter_keys_on_the_verified_subject(jwks: JWKS, keys: Keys) -> None:
    limited = app(
        jwks.url, extra=[Middleware(RateLimitMiddleware, limits=[Limit("user", 2, 60.0, key=auth_subject)])]
    )
    async with serve(limited) as url, httpx.AsyncClient(base_url=url) as client:
        alice = bearer(sign_pyjwt(keys.rsa, "RS256", claims(sub="alice")))
        bob = bearer(sign_pyjwt(keys.rsa, "RS256", claims(sub="bob")))
        statuses = [(await client.get("/me", headers=alice)).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        assert (await client.get("/me", headers=bob)).status_code == 200  # a quota of his own


async def test_the_fastapi_dependency(keys: Keys, jwks: JWKS) -> None:
    from fastapi import Depends, FastAPI

    auth = JWTAuth(None, jwks_url=jwks.url, issuer=ISSUER, audience=AUDIENCE)  # type: ignore[arg-type]
    fastapi_app = FastAPI()

    @fastapi_app.post("/orders")
    async def create(claims: dict[str, Any] = Depends(auth.dependency("orders:write"))) -> dict[str, Any]:
        return {"by": claims["sub"]}

    async with serve(fastapi_app) as url, httpx.AsyncClient(base_url=url) as client:
        assert (await client.post("/orders")).status_code == 401
        reader = bearer(sign_joserfc(keys.rsa, "RS256", claims()))
        answer = await client.post("/orders", headers=reader)
        assert answer.status_code == 403 and "insufficient_scope" in answer.headers["www-authenticate"]
        writer = bearer(sign_pyjwt(keys.rsa, "RS256", claims(scope="orders:write")))
        assert (await client.post("/orders", headers=writer)).json() == {"by": "user-42"}
        expired = bearer(
            sign_pyjwt(keys.rsa, "RS256", claims(exp=int(time.time()) - 600, scope="orders:write"))
        )
        assert (await client.post("/orders", headers=expired)).status_code == 401


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ConfigError, match="jwks_url"):
        JWTAuth(None)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="32 bytes"):
        JWTAuth(None, secret="short")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="algorithms"):
        JWTAuth(None, secret=SECRET, algorithms=["none"])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="scopes"):
        Require(scopes=())
    assert "***" in repr(JWTAuth(None, secret=SECRET))  # type: ignore[arg-type]


async def test_concurrent_first_requests_share_one_jwks_fetch(
    jwks: JWKS, api: httpx.AsyncClient, keys: Keys
) -> None:
    import asyncio

    tokens = [sign_pyjwt(keys.rsa, "RS256", claims(sub=f"u{i}")) for i in range(20)]
    answers = await asyncio.gather(*(api.get("/me", headers=bearer(t)) for t in tokens))
    assert [a.status_code for a in answers] == [200] * 20
    assert jwks.fetches == 1


async def test_a_websocket_handshake_needs_a_valid_token_too(jwks: JWKS, keys: Keys) -> None:
    import websockets
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket

    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(websocket.state.subject)
        await websocket.close()

    guarded = app(jwks.url)
    guarded.router.routes.append(WebSocketRoute("/ws", echo))
    async with serve(guarded) as url:
        ws_url = url.replace("http://", "ws://") + "/ws"
        for headers in ({}, bearer(sign_pyjwt(keys.rsa, "RS256", claims(exp=int(time.time()) - 600)))):
            with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
                async with websockets.connect(ws_url, additional_headers=headers):
                    pass
            assert refused.value.response.status_code == 403
        async with websockets.connect(
            ws_url, additional_headers=bearer(sign_joserfc(keys.ec, "ES256", claims()))
        ) as ws:
            assert await ws.recv() == "user-42"
