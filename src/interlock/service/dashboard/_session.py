"""The dashboard's login: the admin token, exchanged once for a signed session cookie.

Stateless, so every ``interlock serve`` worker process accepts the same cookie: the cookie is
``v1.<expiry>.<nonce>.<mac>``, the MAC an HMAC-SHA256 under a key derived from the admin token
(rotating the token ends every session). The CSRF token of a session is another HMAC of the
cookie: a state-changing POST must carry it in its form (``csrf``), which a page of another
origin cannot read (the cookie is ``HttpOnly`` and ``SameSite=Strict`` besides). Comparisons
are constant-time (``hmac.compare_digest``). Nothing here logs or returns the token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

__all__ = ["COOKIE", "Sessions"]

COOKIE = "interlock_session"
LIFETIME = 12 * 3600.0
"""Seconds a session lasts before the login form is shown again."""


class Sessions:
    """Issues and checks session cookies and CSRF tokens for one admin token."""

    def __init__(
        self, admin_token: str, *, lifetime: float = LIFETIME, clock: Callable[[], float] = time.time
    ) -> None:
        if not admin_token:
            raise ValueError("the dashboard needs an admin token ([server] admin_token)")
        self._token = admin_token.encode()
        self._key = hmac.new(self._token, b"interlock dashboard session v1", hashlib.sha256).digest()
        self.lifetime = lifetime
        self._clock = clock

    def __repr__(self) -> str:
        return f"Sessions(lifetime={self.lifetime:g}s, token=***)"

    def token_matches(self, candidate: str) -> bool:
        """Whether ``candidate`` is the admin token (constant-time)."""
        return hmac.compare_digest(candidate.encode(), self._token)

    def login(self, candidate: str) -> str | None:
        """A new session cookie value for the right admin token, else ``None``."""
        if not self.token_matches(candidate):
            return None
        expiry = int(self._clock() + self.lifetime)
        body = f"v1.{expiry}.{secrets.token_urlsafe(16)}"
        return f"{body}.{self._mac(body)}"

    def valid(self, cookie: str | None) -> bool:
        """Whether ``cookie`` is a session this token issued and it has not expired."""
        if not cookie:
            return False
        body, _, mac = cookie.rpartition(".")
        parts = body.split(".")
        if len(parts) != 3 or parts[0] != "v1" or not hmac.compare_digest(mac, self._mac(body)):
            return False
        try:
            return int(parts[1]) > self._clock()
        except ValueError:
            return False

    def csrf(self, cookie: str) -> str:
        """The CSRF token that goes with ``cookie``'s forms."""
        return self._mac("csrf:" + cookie)

    def csrf_ok(self, cookie: str | None, token: str | None) -> bool:
        """Whether a POST carries the CSRF token of its own valid session."""
        if not cookie or not token or not self.valid(cookie):
            return False
        return hmac.compare_digest(token, self.csrf(cookie))

    def _mac(self, text: str) -> str:
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()
