"""auth: what do credentials cost per request, on both sides?

Inbound, JWT verification per request (RS256 and ES256 keys from a JWKS served on loopback):
  - ``JWTAuth`` as ASGI middleware, called in-process with one request scope per call (header
    parsing, the allow-list, the cached JWKS lookup, PyJWT's checks, the claims put in state);
  - the baseline: PyJWT called by hand, ``jwt.decode(token, key, algorithms=[...], audience=...,
    issuer=...)`` with the key object parsed once beforehand: what a competent engineer writes
    without a middleware (and without JWKS rotation, kid checks or RFC 6750 answers).
Outbound, the credentials stage per call with a cached token:
  - ``OAuth2ClientCredentials.apply`` (freshness check, header) once a token is held;
  - the baseline: ``Bearer.apply`` (a static header set on the request).
Rounds rotate the contenders; figures are medians (min-max) of microseconds per operation.

    .venv/bin/python benchmarks/auth.py [--ops 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import _common
import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from interlock._models import Request
from interlock.auth import Bearer, OAuth2ClientCredentials
from interlock.server import JWTAuth

ISSUER, AUDIENCE = "https://login.bench/", "https://api.bench"


async def ok_app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def start(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def timed(op: Callable[[], Awaitable[Any]], n: int) -> float:
    """Microseconds per ``op`` over ``n`` sequential calls."""
    started = time.perf_counter()
    for _ in range(n):
        await op()
    return (time.perf_counter() - started) / n * 1e6


async def run(ops: int, rounds: int) -> None:
    load = _common.Load()
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    jwks = {
        "keys": [
            {
                **jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key(), as_dict=True),
                "kid": "r",
                "use": "sig",
            },
            {
                **jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key(), as_dict=True),
                "kid": "e",
                "use": "sig",
            },
        ]
    }

    async def serve_jwks(request: web.Request) -> web.Response:
        return web.json_response(jwks)

    async def serve_token(request: web.Request) -> web.Response:
        return web.json_response({"access_token": "bench-token", "token_type": "Bearer", "expires_in": 3600})

    app = web.Application()
    app.router.add_get("/jwks.json", serve_jwks)
    app.router.add_post("/token", serve_token)
    runner, url = await start(app)
    try:
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "u1", "iat": now, "exp": now + 3600, "scope": "read"}
        pem = {
            "RS256": rsa_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
            "ES256": ec_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        }
        tokens = {
            "RS256": jwt.encode(claims, pem["RS256"], algorithm="RS256", headers={"kid": "r"}),
            "ES256": jwt.encode(claims, pem["ES256"], algorithm="ES256", headers={"kid": "e"}),
        }
        public = {"RS256": rsa_key.public_key(), "ES256": ec_key.public_key()}
        middleware = JWTAuth(ok_app, jwks_url=url + "/jwks.json", issuer=ISSUER, audience=AUDIENCE)

        async def noop_receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        statuses: list[int] = []

        async def record(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        def via_middleware(alg: str) -> Callable[[], Awaitable[Any]]:
            header = f"Bearer {tokens[alg]}".encode()

            async def op() -> None:
                scope = {
                    "type": "http",
                    "method": "GET",
                    "path": "/x",
                    "headers": [(b"authorization", header)],
                }
                await middleware(scope, noop_receive, record)

            return op

        def by_hand(alg: str) -> Callable[[], Awaitable[Any]]:
            async def op() -> None:
                jwt.decode(tokens[alg], public[alg], algorithms=[alg], audience=AUDIENCE, issuer=ISSUER)

            return op

        grant = OAuth2ClientCredentials(url + "/token", "bench", "bench-secret")
        bearer = Bearer("bench-token")
        request = Request("GET", "https://api.bench/x", "/x", "/x", "bench")
        await grant.apply(request)  # fetch the token once: the figures are cache hits

        contenders: dict[str, Callable[[], Awaitable[Any]]] = {
            "JWTAuth RS256": via_middleware("RS256"),
            "PyJWT by hand RS256": by_hand("RS256"),
            "JWTAuth ES256": via_middleware("ES256"),
            "PyJWT by hand ES256": by_hand("ES256"),
            "OAuth2 cached token": lambda: grant.apply(request),
            "static Bearer": lambda: bearer.apply(request),
        }
        await contenders["JWTAuth RS256"]()  # the first call fetches the JWKS
        results: dict[str, list[float]] = {name: [] for name in contenders}
        for order in _common.rotations(list(contenders), rounds):
            for name in order:
                results[name].append(await timed(contenders[name], ops))
                print(f"  {name}: {results[name][-1]:.1f} us/op", flush=True)
        if set(statuses) != {200}:
            raise RuntimeError(f"the middleware refused valid tokens: {sorted(set(statuses))}")
        await grant.aclose()
    finally:
        await runner.cleanup()

    med = {name: _common.med(v) for name, v in results.items()}
    pairs = [
        ("JWTAuth RS256", "PyJWT by hand RS256"),
        ("JWTAuth ES256", "PyJWT by hand ES256"),
        ("OAuth2 cached token", "static Bearer"),
    ]
    rows = [
        [
            name,
            _common.spread(results[name], "{:.1f}"),
            f"{med[name] / med[base]:.2f}x" if name != base else "1.00x",
        ]
        for target, base in pairs
        for name in (target, base)
    ]
    print(_common.table(["contender", "us/op median (min-max)", "vs baseline"], rows))
    for target, base in pairs:
        print(
            f"{target}: {med[target]:.1f} us vs {base} {med[base]:.1f} us = {med[target] / med[base]:.2f}x (+{med[target] - med[base]:.1f} us)"
        )
    _common.emit(
        "auth",
        {
            "ops": ops,
            "rounds": rounds,
            "us_per_op": {name: [round(v, 2) for v in vs] for name, vs in results.items()},
            "median_us": {name: round(v, 2) for name, v in med.items()},
            "ratios": {target: round(med[target] / med[base], 3) for target, base in pairs},
            **load.end(),
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ops", type=int, default=2000, help="operations per contender per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(run(args.ops, args.rounds))


if __name__ == "__main__":
    main()
