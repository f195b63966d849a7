"""``JWTAuth``: verify the bearer JWTs of your own API's callers, plain ASGI (needs
``interlock[jwt]``: PyJWT with ``cryptography``).

::

    from starlette.middleware import Middleware
    from interlock.server import JWTAuth, Require

    Middleware(
        JWTAuth,
        jwks_url="https://login.example.com/.well-known/jwks.json",
        issuer="https://login.example.com/", audience="https://api.example.com",
        require=[Require(scopes=("orders:write",), paths=("/orders*",), methods=("POST",))],
        public=("/healthz",),
    )

What is checked, in order (``JWTVerifier.verify``):

- the header's ``alg`` is on the allow-list (``algorithms``; ``none`` never is), and fits the
  key it names: RSA keys verify only RS* / PS*, EC keys only the ES* of their curve, Ed25519
  only EdDSA, the shared ``secret`` only HS*. An HS256 token "signed" with the RSA public key
  (the classic confusion attack) is refused before any signature is computed;
- the signature, by PyJWT, with the key from the JWKS (``kid``; fetched with caching, refetched
  when older than ``jwks_max_age`` and at once for an unknown ``kid``, but at most once per
  ``jwks_min_interval``) or the shared ``secret``;
- ``exp``, ``nbf`` and ``iat`` with ``leeway`` seconds of clock skew, ``iss``, ``aud``, the
  ``required_claims``, then the scopes the route needs (``require``).

A bad token is 401 with ``WWW-Authenticate: Bearer error="invalid_token"`` (RFC 6750 section
3.1) saying what was wrong; no token at all is 401 with a bare challenge; a missing scope is
403 ``insufficient_scope`` naming it. A JWKS that cannot be fetched (and no cached copy) is 503
with ``Retry-After``. The verified claims go to ``scope["state"]`` (``request.state.claims``,
``.subject``, ``.scopes``) for handlers and for ``Limit(key=auth_subject)``. Tokens are never
logged.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from .._clock import SYSTEM_CLOCK, Clock
from .._redact import redact_url
from .._validate import check_seconds
from ..core.jwks import should_refetch
from ..errors import ConfigError
from ._access import AccessRules, AuthMiddleware, Require, send_challenge, set_principal
from ._asgi import ASGIApp, Receive, Scope, Send, header, send_problem

try:
    import jwt as pyjwt
    from jwt import PyJWK
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError("interlock.server.jwt needs PyJWT: pip install 'interlock[jwt]'") from exc

__all__ = ["DEFAULT_ALGORITHMS", "InvalidToken", "JWKSUnavailable", "JWTAuth", "JWTVerifier"]

log = logging.getLogger("interlock.server.jwt")

DEFAULT_ALGORITHMS = ("RS256", "PS256", "ES256", "ES384", "EdDSA", "HS256")
"""The algorithms accepted unless ``algorithms=`` says otherwise (never ``none``)."""

# Which algorithms each key type may verify (RFC 7518 section 3.1, RFC 8037 for OKP).
_FAMILY: Mapping[str, frozenset[str]] = {
    "RSA": frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}),
    "EC": frozenset({"ES256", "ES384", "ES512"}),
    "OKP": frozenset({"EdDSA"}),
    "oct": frozenset({"HS256", "HS384", "HS512"}),
}
_EC_CURVE = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
MAX_TOKEN_BYTES = 8192
"""Longer bearer tokens are refused unread (401)."""
MAX_JWKS_BYTES = 512 * 1024
MAX_JWKS_KEYS = 100
"""A key set larger than this (bytes, keys) is refused as not what a provider publishes."""


class InvalidToken(Exception):
    """The token is refused: ``status`` (400 or 401), the RFC 6750 ``error`` code and a
    ``description`` safe to send back (it never quotes the token)."""

    def __init__(self, description: str, *, status: int = 401, error: str = "invalid_token") -> None:
        self.status = status
        self.error = error
        self.description = description
        super().__init__(description)


class JWKSUnavailable(Exception):
    """The key set could not be fetched and no copy is cached: verification is impossible (503)."""


def _allowed_for(jwk: Mapping[str, Any]) -> frozenset[str]:
    kty = jwk.get("kty")
    family = _FAMILY.get(kty) if isinstance(kty, str) else None
    if not family:
        return frozenset()
    if kty == "EC":
        curve = _EC_CURVE.get(jwk.get("crv", ""))
        family = frozenset({curve}) if curve else frozenset()
    if kty == "OKP" and jwk.get("crv") != "Ed25519":
        return frozenset()
    alg = jwk.get("alg")
    if isinstance(alg, str):  # a key that names its algorithm verifies only that one
        return family & {alg}
    return family


class _KeySet:
    """The JWKS, fetched with caching and a bounded refetch (``core.jwks.should_refetch``)."""

    def __init__(
        self, url: str, *, max_age: float, min_interval: float, timeout: float, clock: Clock
    ) -> None:
        self.url = url
        self.max_age = max_age
        self.min_interval = min_interval
        self.timeout = timeout
        self._clock = clock
        self.keys: dict[str, dict[str, Any]] = {}
        self.fetched_at: float | None = None
        self.last_attempt: float | None = None
        self.last_unknown: float | None = None
        self.fetches = 0
        """Fetches attempted so far."""
        self._flight: asyncio.Task[None] | None = None
        self._parsed: dict[tuple[int, str], Any] = {}

    async def key(self, kid: str | None) -> dict[str, Any] | None:
        """The JWK for ``kid`` (or the only key, for a token without one), fetching the set
        again first when it is stale or lacks ``kid`` (bounded)."""
        known = kid in self.keys if kid is not None else len(self.keys) == 1
        flight = self._flight
        if flight is None or flight.done():
            flight = None
            if should_refetch(
                now=self._clock.monotonic(), fetched_at=self.fetched_at, last_attempt=self.last_attempt,
                last_unknown=self.last_unknown, kid_known=known, max_age=self.max_age,
                min_interval=self.min_interval,
            ):  # fmt: skip
                self.last_attempt = self._clock.monotonic()
                if not known and self.fetched_at is not None:
                    self.last_unknown = self.last_attempt
                flight = self._flight = asyncio.ensure_future(self._fetch_logged())
        if flight is not None and (self.fetched_at is None or not known):
            # Wait for the fetch in the air when it may bring what this token needs; a token
            # whose key is cached is verified with the cached set meanwhile (stale set: same).
            await asyncio.shield(flight)
        if self.fetched_at is None:
            raise JWKSUnavailable(f"the key set at {redact_url(self.url)} could not be fetched")
        if kid is None:
            return next(iter(self.keys.values())) if len(self.keys) == 1 else None
        return self.keys.get(kid)

    def parsed(self, jwk: dict[str, Any], alg: str) -> Any:
        """The key object for ``jwk`` used with ``alg``, parsed once per key set (parsing an
        RSA key costs more than verifying a signature with it)."""
        cache_key = (id(jwk), alg)
        key = self._parsed.get(cache_key)
        if key is None:
            try:
                key = self._parsed[cache_key] = PyJWK(jwk, algorithm=alg).key
            except pyjwt.PyJWTError:
                raise InvalidToken("the token is signed with an unusable key") from None
        return key

    async def _fetch_logged(self) -> None:
        # Never raises: a failed fetch leaves the cached set (if any) serving, and is logged
        # once here rather than by every request waiting for it.
        try:
            await self._fetch()
        except Exception as exc:
            log.warning("JWKS %s could not be fetched (%s)", redact_url(self.url), exc)

    async def _fetch(self) -> None:
        import aiohttp

        self.fetches += 1
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(self.url, headers={"Accept": "application/json"}, allow_redirects=False) as response,
        ):
            if response.status != 200:
                raise ValueError(f"answered {response.status}")
            body = await response.content.read(MAX_JWKS_BYTES + 1)
        if len(body) > MAX_JWKS_BYTES:
            raise ValueError(f"larger than {MAX_JWKS_BYTES} bytes")
        data = json.loads(body)
        keys = data.get("keys") if isinstance(data, dict) else None
        if not isinstance(keys, list) or len(keys) > MAX_JWKS_KEYS:
            raise ValueError(f"not a key set of at most {MAX_JWKS_KEYS} keys")
        found: dict[str, dict[str, Any]] = {}
        for i, jwk in enumerate(keys):
            if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig" or not _allowed_for(jwk):
                continue  # encryption keys and key types we never verify with
            found[str(jwk.get("kid", f"#{i}"))] = jwk
        self.keys = found
        self._parsed = {}  # bounded: at most MAX_JWKS_KEYS keys times the algorithms allowed
        self.fetched_at = self._clock.monotonic()
        log.info("JWKS %s fetched: %d signing keys", redact_url(self.url), len(found))


def _header_of(token: str) -> dict[str, Any]:
    """The JOSE header of a compact JWS, read to pick the key: only the first of the three
    segments is decoded here (PyJWT's ``get_unverified_header`` decodes and validates all three,
    which it does again while verifying); PyJWT checks the whole token afterwards."""
    segments = token.split(".")
    if len(segments) != 3 or not segments[0]:
        raise InvalidToken("the token is not a well-formed JWT")
    try:
        raw = base64.urlsafe_b64decode(segments[0] + "=" * (-len(segments[0]) % 4))
        head = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidToken("the token is not a well-formed JWT") from None
    if not isinstance(head, dict):
        raise InvalidToken("the token is not a well-formed JWT")
    return head


class JWTVerifier:
    """Verifies JWTs as ``JWTAuth`` does, for use on its own (a FastAPI dependency, a
    websocket): ``claims = await verifier.verify(token)``. Options as ``JWTAuth``'s."""

    def __init__(
        self,
        *,
        jwks_url: str | None = None,
        secret: str | bytes | None = None,
        issuer: str | Sequence[str] | None = None,
        audience: str | Sequence[str] | None = None,
        algorithms: Iterable[str] = DEFAULT_ALGORITHMS,
        leeway: float = 30.0,
        required_claims: Iterable[str] = ("exp",),
        jwks_max_age: float = 300.0,
        jwks_min_interval: float = 30.0,
        jwks_timeout: float = 3.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        owner = "JWTAuth"
        if jwks_url is None and secret is None:
            raise ConfigError(
                owner, "jwks_url", "give jwks_url= (RS256/ES256/EdDSA) or secret= (HS256), or both"
            )
        if jwks_url is not None and not jwks_url.startswith(("https://", "http://")):
            raise ConfigError(owner, "jwks_url", f"must be an http(s) URL, got {redact_url(jwks_url)!r}")
        if isinstance(secret, str):
            secret = secret.encode()
        if secret is not None and len(secret) < 32:
            # RFC 7518 section 3.2: an HS256 key must be at least as long as the hash (256 bits).
            raise ConfigError(owner, "secret", "must be at least 32 bytes (RFC 7518 section 3.2)")
        allowed = tuple(algorithms)
        unknown = [a for a in allowed if not any(a in f for f in _FAMILY.values())]
        if isinstance(algorithms, str) or unknown or not allowed:
            accepted = sorted(set().union(*_FAMILY.values()))
            raise ConfigError(owner, "algorithms", f"must be a list from {accepted}, got {algorithms!r}")
        for name, value in (("leeway", leeway), ("jwks_max_age", jwks_max_age),
                            ("jwks_min_interval", jwks_min_interval)):  # fmt: skip
            check_seconds(owner, name, value)
        check_seconds(owner, "jwks_timeout", jwks_timeout, positive=True)
        self.algorithms = frozenset(allowed)
        self.issuer = issuer if issuer is None or isinstance(issuer, str) else list(issuer)
        self.audience = audience if audience is None or isinstance(audience, str) else list(audience)
        self.leeway = float(leeway)
        self.required_claims = list(required_claims)
        self._secret = secret
        self.keys = (
            _KeySet(
                jwks_url,
                max_age=jwks_max_age,
                min_interval=jwks_min_interval,
                timeout=jwks_timeout,
                clock=clock,
            )
            if jwks_url
            else None
        )

    async def verify(self, token: str) -> dict[str, Any]:
        """The token's claims once every check passes; ``InvalidToken`` saying which failed, or
        ``JWKSUnavailable`` when the keys cannot be had."""
        if len(token) > MAX_TOKEN_BYTES:
            raise InvalidToken(f"the token is longer than {MAX_TOKEN_BYTES} bytes")
        head = _header_of(token)
        alg = head.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise InvalidToken(f"the token's algorithm {str(alg)[:20]!r} is not accepted")
        key: Any
        if alg.startswith("HS"):
            if self._secret is None:
                raise InvalidToken("HMAC-signed tokens are not accepted here")
            key = self._secret
        else:
            if self.keys is None:
                raise InvalidToken("only HMAC-signed tokens are accepted here")
            kid = head.get("kid")
            jwk = await self.keys.key(kid if isinstance(kid, str) else None)
            if jwk is None:
                raise InvalidToken("the token is signed with an unknown key")
            if alg not in _allowed_for(jwk):
                raise InvalidToken(f"the token's algorithm {alg} does not fit its key")
            key = self.keys.parsed(jwk, alg)
        try:
            return pyjwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": self.required_claims, "verify_signature": True},
            )
        except pyjwt.ExpiredSignatureError:
            raise InvalidToken("the token has expired") from None
        except pyjwt.ImmatureSignatureError:
            raise InvalidToken("the token is not valid yet (nbf or iat in the future)") from None
        except pyjwt.InvalidAudienceError:
            raise InvalidToken("the token is not meant for this audience") from None
        except pyjwt.InvalidIssuerError:
            raise InvalidToken("the token's issuer is not accepted") from None
        except pyjwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"the token lacks the {exc.claim!r} claim") from None
        except pyjwt.InvalidSignatureError:
            raise InvalidToken("the token's signature is invalid") from None
        except pyjwt.PyJWTError:
            raise InvalidToken("the token is invalid") from None

    def __repr__(self) -> str:
        where = redact_url(self.keys.url) if self.keys else "no JWKS"
        secret = " secret=***" if self._secret is not None else ""
        return f"<JWTVerifier {where}{secret} iss={self.issuer!r} aud={self.audience!r}>"


def granted_scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    """The scopes a token grants: its ``scope`` claim (space-separated, RFC 8693 section 4.2)
    and ``scp`` (a list or a string, as Azure AD and Okta write it)."""
    scopes: set[str] = set()
    for name in ("scope", "scp"):
        value = claims.get(name)
        if isinstance(value, str):
            scopes.update(value.split())
        elif isinstance(value, list):
            scopes.update(v for v in value if isinstance(v, str))
    return frozenset(scopes)


class JWTAuth(AuthMiddleware):
    """ASGI middleware verifying ``Authorization: Bearer <jwt>`` on every HTTP request and
    websocket handshake except
    the ``public`` paths (fnmatch patterns), then the ``require`` scopes. See the module
    docstring for the checks and the answers.

    Key options: ``jwks_url`` (asymmetric keys) and / or ``secret`` (HS256, at least 32
    bytes); ``issuer``, ``audience``; ``algorithms`` (the allow-list, ``DEFAULT_ALGORITHMS``);
    ``leeway`` (seconds of clock skew for exp / nbf / iat); ``required_claims``;
    ``jwks_max_age`` / ``jwks_min_interval`` / ``jwks_timeout`` (seconds); ``realm`` for the
    challenge. ``verifier`` gives a ``JWTVerifier`` built beforehand instead.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        jwks_url: str | None = None,
        secret: str | bytes | None = None,
        issuer: str | Sequence[str] | None = None,
        audience: str | Sequence[str] | None = None,
        algorithms: Iterable[str] = DEFAULT_ALGORITHMS,
        leeway: float = 30.0,
        required_claims: Iterable[str] = ("exp",),
        require: Sequence[Require] = (),
        public: Iterable[str] = (),
        jwks_max_age: float = 300.0,
        jwks_min_interval: float = 30.0,
        jwks_timeout: float = 3.0,
        realm: str = "api",
        verifier: JWTVerifier | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.app = app
        self.verifier = verifier or JWTVerifier(
            jwks_url=jwks_url, secret=secret, issuer=issuer, audience=audience, algorithms=algorithms,
            leeway=leeway, required_claims=required_claims, jwks_max_age=jwks_max_age,
            jwks_min_interval=jwks_min_interval, jwks_timeout=jwks_timeout, clock=clock,
        )  # fmt: skip
        self.rules = AccessRules("JWTAuth", require, public)
        self.realm = realm

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Verify the request's token and scopes, then call the app (or answer 400/401/403/503)."""
        path, method = scope.get("path", ""), scope.get("method", "GET")
        if self.rules.is_public(path):
            await self.app(scope, receive, send)
            return
        raw = header(scope.get("headers", []), b"authorization")
        scheme, _, token = (raw or b"").decode("latin-1").strip().partition(" ")
        if raw is None or scheme.lower() != "bearer":
            await send_challenge(
                send, status=401, realm=self.realm, error=None, description="This API needs a bearer token."
            )
            return
        token = token.strip()
        if not token or " " in token:
            await send_challenge(
                send, status=400, realm=self.realm, error="invalid_request",
                description="The Authorization header is not 'Bearer <token>'.",
            )  # fmt: skip
            return
        try:
            claims = await self.verifier.verify(token)
        except InvalidToken as exc:
            log.info("%s %s: token refused: %s", method, path, exc.description)
            await send_challenge(
                send, status=exc.status, realm=self.realm, error=exc.error, description=exc.description
            )
            return
        except JWKSUnavailable as exc:
            log.warning("%s %s: cannot verify tokens: %s", method, path, exc)
            await send_problem(
                send, 503, "auth-unavailable", "Service Unavailable",
                "The keys to verify tokens cannot be fetched right now; retry shortly.", [(b"retry-after", b"5")],
            )  # fmt: skip
            return
        scopes = granted_scopes(claims)
        missing = self.rules.missing(method, path, scopes)
        if missing:
            await send_challenge(
                send, status=403, realm=self.realm, error="insufficient_scope",
                description=f"This request needs the scope {' '.join(missing)}.", scopes=missing,
            )  # fmt: skip
            return
        subject = claims.get("sub")
        set_principal(
            scope,
            subject=subject if isinstance(subject, str) else None,
            scopes=scopes,
            claims=claims,
            method="jwt",
        )
        await self.app(scope, receive, send)

    def dependency(self, *scopes: str) -> Callable[[Any], Any]:
        """A FastAPI dependency returning the verified claims, requiring ``scopes``: the claims
        the middleware put in ``request.state`` or, without the middleware, the request's own
        token verified here. Raises ``HTTPException`` 401 / 403 with the RFC 6750 challenge."""
        return _dependency(self.verifier, self.realm, scopes)

    def __repr__(self) -> str:
        return f"<JWTAuth {self.verifier!r} require={len(self.rules.require)} public={self.rules.public}>"


def _dependency(verifier: JWTVerifier, realm: str, scopes: Sequence[str]) -> Callable[[Any], Any]:
    from starlette.exceptions import HTTPException

    def refuse(status: int, error: str | None, description: str) -> HTTPException:
        params = f'realm="{realm}"' + (
            f', error="{error}", error_description="{description}"' if error else ""
        )
        if error == "insufficient_scope":
            params += f', scope="{" ".join(scopes)}"'
        return HTTPException(status, description, headers={"WWW-Authenticate": f"Bearer {params}"})

    async def claims_dependency(request: Any) -> dict[str, Any]:
        claims = getattr(request.state, "claims", None)
        if not isinstance(claims, dict):
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise refuse(401, None, "This API needs a bearer token.")
            try:
                claims = await verifier.verify(token.strip())
            except InvalidToken as exc:
                raise refuse(exc.status, exc.error, exc.description) from None
            except JWKSUnavailable:
                raise HTTPException(503, "token keys unavailable", headers={"Retry-After": "5"}) from None
        missing = [s for s in scopes if s not in granted_scopes(claims)]
        if missing:
            raise refuse(403, "insufficient_scope", f"This request needs the scope {' '.join(missing)}.")
        return claims

    claims_dependency.__annotations__["request"] = _starlette_request()
    return claims_dependency


def _starlette_request() -> Any:
    from starlette.requests import Request

    return Request
