"""``ApiKeyAuth``: API keys for your own API's callers, plain ASGI.

::

    from interlock.server import ApiKeyAuth, ApiKeyRecord, new_api_key

    key, digest = new_api_key()          # give ``key`` to the customer, keep only ``digest``
    Middleware(ApiKeyAuth, keys=[ApiKeyRecord("acme", digest, scopes=("orders:read",), limit=100, window=60.0)])

Keys are stored hashed (``hash_api_key``: SHA-256, which suits keys of 128+ random bits; a
slow password hash buys nothing for them and costs every request). A presented key is hashed
and its digest compared with ``hmac.compare_digest`` (constant time) against the stored one.
Each key has its own scopes (403 ``insufficient_scope`` for a route's ``Require`` it lacks) and
optionally its own rate limit (``limit`` requests per ``window`` seconds, through any
``RateLimitBackend``: 429 with ``Retry-After`` past it). The key's id reaches handlers as
``request.state.subject`` (and ``auth_subject`` for ``Limit(key=...)``); the key itself is
never logged or kept.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .._validate import check_count, check_seconds
from ..errors import ConfigError
from ._access import AccessRules, AuthMiddleware, Require, send_challenge, set_principal
from ._asgi import ASGIApp, Receive, Scope, Send, header, send_problem
from .ratelimit import MemoryRateLimitBackend, RateLimitBackend

__all__ = ["ApiKeyAuth", "ApiKeyRecord", "hash_api_key", "new_api_key"]

log = logging.getLogger("interlock.server.apikey")

_PREFIX = "sha256:"
MAX_KEY_LENGTH = 512
"""Longer presented keys are refused unhashed (401)."""


def hash_api_key(key: str) -> str:
    """The digest to store for ``key``: ``sha256:<hex>``."""
    return _PREFIX + hashlib.sha256(key.encode()).hexdigest()


def new_api_key(prefix: str = "ik_") -> tuple[str, str]:
    """A new random key (256 bits, URL-safe, after ``prefix``) and its digest to store."""
    key = prefix + secrets.token_urlsafe(32)
    return key, hash_api_key(key)


@dataclass(frozen=True)
class ApiKeyRecord:
    """One caller's key: its ``id`` (the subject handlers and logs see), the ``digest`` from
    ``hash_api_key``, its ``scopes``, and its own rate limit (``limit`` requests per ``window``
    seconds; None: none)."""

    id: str
    digest: str
    scopes: tuple[str, ...] = ()
    limit: int | None = None
    window: float = 60.0

    def __post_init__(self) -> None:
        if not self.id or not all(c.isalnum() or c in "-_.:" for c in self.id):
            raise ConfigError(
                "ApiKeyRecord", "id", f"must be letters, digits, '-', '_', '.' or ':', got {self.id!r}"
            )
        body = self.digest[len(_PREFIX) :] if self.digest.startswith(_PREFIX) else ""
        if len(body) != 64 or any(c not in "0123456789abcdef" for c in body):
            raise ConfigError(
                "ApiKeyRecord", "digest", "must be a digest from hash_api_key() ('sha256:' and 64 hex digits)"
            )
        if isinstance(self.scopes, str):
            raise ConfigError("ApiKeyRecord", "scopes", f"must be a list, not the string {self.scopes!r}")
        object.__setattr__(self, "scopes", tuple(self.scopes))
        check_count("ApiKeyRecord", "limit", self.limit, optional=True)
        check_seconds("ApiKeyRecord", "window", self.window, positive=True)

    def __repr__(self) -> str:
        return f"ApiKeyRecord(id={self.id!r}, digest=***, scopes={self.scopes!r}, limit={self.limit})"


class ApiKeyAuth(AuthMiddleware):
    """ASGI middleware admitting requests that carry one of ``keys`` in ``header``
    (``X-API-Key``) or ``Authorization: Bearer <key>``, except ``public`` paths; ``require``
    gives the scopes per route; ``backend`` counts the per-key limits
    (``MemoryRateLimitBackend()`` by default, ``RedisRateLimitBackend`` for many processes).
    A missing or unknown key is 401 with ``WWW-Authenticate: ApiKey``; a missing scope 403."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        keys: Sequence[ApiKeyRecord],
        header: str = "X-API-Key",
        require: Sequence[Require] = (),
        public: Iterable[str] = (),
        backend: RateLimitBackend | None = None,
        realm: str = "api",
    ) -> None:
        if not all(isinstance(k, ApiKeyRecord) for k in keys):
            raise ConfigError("ApiKeyAuth", "keys", "must be a list of ApiKeyRecord(...)")
        ids = [k.id for k in keys]
        if len(set(ids)) != len(ids):
            raise ConfigError("ApiKeyAuth", "keys", "ids must be unique")
        self.app = app
        # By digest: a lookup leaks timing only about a SHA-256 of the key, which says nothing
        # about the key; the final comparison is constant time anyway.
        self._by_digest = {k.digest: k for k in keys}
        self.header = header.lower().encode("latin-1")
        self.rules = AccessRules("ApiKeyAuth", require, public)
        self.backend: RateLimitBackend = backend if backend is not None else MemoryRateLimitBackend()
        self.realm = realm

    def _presented(self, scope: Scope) -> str | None:
        headers = scope.get("headers", [])
        raw = header(headers, self.header)
        if raw is None:
            auth = header(headers, b"authorization")
            if auth is not None and auth[:7].lower() == b"bearer ":
                raw = auth[7:]
        return raw.decode("latin-1").strip() if raw is not None else None

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the key, its scopes and its rate limit, then call the app."""
        path, method = scope.get("path", ""), scope.get("method", "GET")
        if self.rules.is_public(path):
            await self.app(scope, receive, send)
            return
        presented = self._presented(scope)
        if not presented:
            await send_challenge(
                send,
                status=401,
                realm=self.realm,
                error=None,
                scheme="ApiKey",
                description="This API needs an API key.",
            )
            return
        found = None
        if len(presented) <= MAX_KEY_LENGTH:
            digest = hash_api_key(presented)
            candidate = self._by_digest.get(digest)
            if candidate is not None and hmac.compare_digest(candidate.digest, digest):
                found = candidate
        if found is None:
            log.info("%s %s: unknown API key refused", method, path)
            await send_challenge(
                send, status=401, realm=self.realm, error="invalid_token", scheme="ApiKey",
                description="The API key is not valid.",
            )  # fmt: skip
            return
        granted = frozenset(found.scopes)
        missing = self.rules.missing(method, path, granted)
        if missing:
            await send_challenge(
                send, status=403, realm=self.realm, error="insufficient_scope", scheme="ApiKey",
                description=f"This key lacks the scope {' '.join(missing)}.", scopes=missing,
            )  # fmt: skip
            return
        if found.limit is not None and not await self._admit(found, send):
            return
        claims = {"sub": found.id, "scope": " ".join(found.scopes)}
        set_principal(scope, subject=found.id, scopes=granted, claims=claims, method="api_key")
        await self.app(scope, receive, send)

    async def _admit(self, key: ApiKeyRecord, send: Send) -> bool:
        assert key.limit is not None
        try:
            allowed, verdicts = await self.backend.check([f"apikey:{key.id}"], [(key.limit, key.window)], 1)
        except Exception as exc:  # fail open, like RateLimitMiddleware's default: never a 5xx
            log.warning("API key rate limit backend failed (%s); admitting", type(exc).__name__)
            return True
        if allowed:
            return True
        retry = max(1, math.ceil(round(verdicts[0].retry_after, 3)))
        await send_problem(
            send, 429, "quota-exceeded", "Too Many Requests",
            f"The rate limit of key {key.id} is exceeded; retry after {retry} s.",
            [(b"retry-after", str(retry).encode())],
        )  # fmt: skip
        return False

    def __repr__(self) -> str:
        return f"<ApiKeyAuth keys={len(self._by_digest)} header={self.header.decode()!r}>"
