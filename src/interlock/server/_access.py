"""What ``JWTAuth`` and ``ApiKeyAuth`` share: which routes need which scopes (``Require``), which
are public, where the verified identity goes for handlers and the rate limiter (the ASGI
``scope["state"]``, Starlette's ``request.state``), and the RFC 6750 challenges they answer.
Private to ``interlock.server``; the names are re-exported there."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ._asgi import HTTPMiddleware, Message, Receive, Scope, Send, send_problem

__all__ = [
    "AccessRules",
    "AuthMiddleware",
    "Require",
    "auth_claims",
    "auth_subject",
    "send_challenge",
    "set_principal",
]


class AuthMiddleware(HTTPMiddleware):
    """Base of the credential middleware: HTTP requests and websocket handshakes both go to
    ``handle`` (a websocket route behind an auth middleware is not left open); other scopes
    (lifespan) pass through. A handshake ``handle`` refuses is closed with code 1008 (policy
    violation, RFC 6455 section 7.4.1) before it is accepted, which the server answers 403."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Authenticate HTTP requests and websocket handshakes; pass other scopes through."""
        if scope["type"] == "http":
            await self.handle(scope, receive, send)
        elif scope["type"] == "websocket":
            await self.handle(scope, receive, _WebsocketRefusal(send))
        else:
            await self.app(scope, receive, send)


class _WebsocketRefusal:
    """``send`` for a websocket handshake: a refusal ``handle`` writes as an HTTP response
    becomes one ``websocket.close``; the app's own websocket messages pass unchanged."""

    __slots__ = ("_send",)

    def __init__(self, send: Send) -> None:
        self._send = send

    async def __call__(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            await self._send({"type": "websocket.close", "code": 1008, "reason": "unauthorized"})
        elif kind != "http.response.body":
            await self._send(message)


@dataclass(frozen=True)
class Require:
    """The ``scopes`` a request must hold (all of them) when its path matches one of ``paths``
    (fnmatch patterns such as ``"/orders/*"``; none: every path) and its method one of
    ``methods`` (none: every method). Lacking one is a 403 ``insufficient_scope``."""

    scopes: tuple[str, ...]
    paths: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("scopes", "paths", "methods"):
            value = getattr(self, name)
            if isinstance(value, str):
                raise ConfigError("Require", name, f"must be a list, not the string {value!r}")
            object.__setattr__(self, name, tuple(value))
        if not self.scopes or not all(isinstance(s, str) and s and " " not in s for s in self.scopes):
            raise ConfigError("Require", "scopes", f"must be one or more scope names, got {self.scopes!r}")
        object.__setattr__(self, "methods", tuple(m.upper() for m in self.methods))

    def applies(self, method: str, path: str) -> bool:
        """Whether this requirement covers the request."""
        if self.methods and method not in self.methods:
            return False
        return not self.paths or any(fnmatch.fnmatchcase(path, p) for p in self.paths)


class AccessRules:
    """The public paths (no credentials needed) and the scope requirements of one middleware."""

    def __init__(self, owner: str, require: Sequence[Require], public: Iterable[str]) -> None:
        if not all(isinstance(r, Require) for r in require):
            raise ConfigError(owner, "require", "must be a list of Require(...)")
        if isinstance(public, str):
            raise ConfigError(owner, "public", f"must be a list of path patterns, not the string {public!r}")
        self.require = tuple(require)
        self.public = tuple(public)

    def is_public(self, path: str) -> bool:
        """Whether ``path`` is served without credentials."""
        return any(fnmatch.fnmatchcase(path, p) for p in self.public)

    def missing(self, method: str, path: str, granted: frozenset[str]) -> list[str]:
        """The scopes the request needs and ``granted`` lacks (empty: allowed)."""
        needed: dict[str, None] = {}
        for rule in self.require:
            if rule.applies(method, path):
                needed.update(dict.fromkeys(s for s in rule.scopes if s not in granted))
        return list(needed)


def set_principal(
    scope: Scope, *, subject: str | None, scopes: frozenset[str], claims: Mapping[str, Any], method: str
) -> None:
    """Put the verified identity where handlers (``request.state.claims``, ``.subject``,
    ``.scopes``, ``.auth_method``) and rate-limit key functions (``auth_subject``) find it."""
    state = scope.setdefault("state", {})
    state["claims"] = dict(claims)
    state["subject"] = subject
    state["scopes"] = scopes
    state["auth_method"] = method


def auth_claims(scope: Scope) -> dict[str, Any] | None:
    """The verified claims of the request (``JWTAuth``; ``ApiKeyAuth`` gives ``sub`` and
    ``scope``), or None when no auth middleware verified it."""
    claims = scope.get("state", {}).get("claims")
    return claims if isinstance(claims, dict) else None


def auth_subject(scope: Scope) -> str | None:
    """The verified subject (a JWT's ``sub``, an API key's id): a key function for
    ``Limit(key=auth_subject)``, so each user or key gets its own quota. None (exempt from that
    limit) for requests no auth middleware verified."""
    subject = scope.get("state", {}).get("subject")
    return f"sub:{subject}" if isinstance(subject, str) and subject else None


def _quoted(value: str) -> str:
    # An auth-param value (RFC 9110 section 11.2): a quoted-string, never a header break.
    return '"' + "".join(c for c in value if c.isprintable() and c not in '"\\') + '"'


async def send_challenge(
    send: Send,
    *,
    status: int,
    realm: str,
    error: str | None,
    description: str,
    scheme: str = "Bearer",
    scopes: Sequence[str] = (),
) -> None:
    """Answer 400 / 401 / 403 with ``WWW-Authenticate`` (RFC 6750 section 3: no ``error`` when
    the request had no credentials at all; ``invalid_request``, ``invalid_token`` or
    ``insufficient_scope`` otherwise) and RFC 9457 problem details."""
    params = [f"realm={_quoted(realm)}"]
    if error:
        params.append(f"error={_quoted(error)}")
        params.append(f"error_description={_quoted(description)}")
    if scopes:
        params.append(f"scope={_quoted(' '.join(scopes))}")
    challenge = f"{scheme} " + ", ".join(params)
    slug, title = {
        400: ("invalid-request", "Bad Request"),
        401: ("unauthorized", "Unauthorized"),
        403: ("insufficient-scope", "Forbidden"),
    }[status]
    await send_problem(
        send,
        status,
        slug,
        title,
        description,
        [(b"www-authenticate", challenge.encode("latin-1", "replace"))],
    )
