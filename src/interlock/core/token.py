"""OAuth2 access tokens without I/O: what a token endpoint's answer means (RFC 6749 sections 5.1
and 5.2), when a cached token must be refreshed, and how a token is kept in a store.

``Token`` is one access token with its expiry and (for the refresh-token grant) the refresh
token that goes with it; ``freshness`` says whether it may be used as is (``USE``), should be
replaced soon but may still be used (``REFRESH_AHEAD``: another caller may already be on it), or
must not be used any more (``REFRESH``). The margin is jittered per token, so a fleet of workers
holding the same token does not fall due at one instant.
"""

from __future__ import annotations

import enum
import json
import math
from dataclasses import dataclass, replace
from typing import Any

__all__ = [
    "Freshness",
    "Token",
    "TokenAnswer",
    "TokenRefusal",
    "freshness",
    "parse_token_answer",
    "refresh_due",
]


@dataclass(frozen=True, slots=True, repr=False)
class Token:
    """An access token as the token endpoint issued it (RFC 6749 section 5.1).

    ``expires_at`` is wall-clock seconds since the epoch (None: the endpoint gave no
    ``expires_in``, so the token is used until an upstream answers 401); ``refresh_token`` is the
    one to present next time (rotated when the endpoint issues a new one). Its repr shows neither
    token.
    """

    access_token: str
    token_type: str = "Bearer"
    expires_at: float | None = None
    refresh_token: str | None = None
    scope: str | None = None
    issued_at: float = 0.0
    """Wall-clock seconds since the epoch when it was received."""

    def to_json(self) -> str:
        """The token as stored (JSON text); ``from_json`` reads it back."""
        return json.dumps(
            {
                "access_token": self.access_token,
                "token_type": self.token_type,
                "expires_at": self.expires_at,
                "refresh_token": self.refresh_token,
                "scope": self.scope,
                "issued_at": self.issued_at,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Token:
        """A token stored by ``to_json``; ``ValueError`` for anything else."""
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("access_token"), str):
            raise ValueError("not a stored token")
        expires = data.get("expires_at")
        return cls(
            access_token=data["access_token"],
            token_type=str(data.get("token_type") or "Bearer"),
            expires_at=float(expires) if isinstance(expires, int | float) else None,
            refresh_token=data.get("refresh_token") if isinstance(data.get("refresh_token"), str) else None,
            scope=data.get("scope") if isinstance(data.get("scope"), str) else None,
            issued_at=float(data.get("issued_at") or 0.0),
        )

    @classmethod
    def read_stored(cls, text: str | bytes | None) -> Token | None:
        """What a token store loads: the token ``to_json`` stored, or None for no text or one
        that is not a stored token (an unreadable token reads as none)."""
        if text is None:
            return None
        try:
            return cls.from_json(text)
        except ValueError:
            return None

    def without_access(self) -> Token:
        """The same token with its access token spent (kept only for its refresh token)."""
        return replace(self, access_token="", expires_at=0.0)

    def __repr__(self) -> str:
        expiry = "never" if self.expires_at is None else f"{self.expires_at:.0f}"
        refresh = " refresh_token=***" if self.refresh_token else ""
        return f"Token(type={self.token_type} access_token=*** expires_at={expiry}{refresh})"


class Freshness(enum.Enum):
    """What to do with a cached token now."""

    USE = "use"
    """Valid past the refresh margin: send it."""
    REFRESH_AHEAD = "refresh_ahead"
    """Inside the margin but not expired: refresh, or send it if a refresh is already running."""
    REFRESH = "refresh"
    """Expired, spent or absent: it must not be sent; wait for a new one."""


def refresh_due(token: Token, *, margin: float, jitter: float = 0.0, draw: float = 0.0) -> float | None:
    """Wall time at which ``token`` falls due for a refresh (None: it never expires).

    ``margin`` seconds before its expiry, plus up to ``jitter`` (a fraction of the margin) times
    ``draw`` (a random number in [0, 1) chosen once per token by the caller), so workers holding
    the same token do not all fall due at one instant. A token whose lifetime is shorter than
    twice the margin falls due halfway through it instead (a 60 s token with a 60 s margin
    would otherwise be refreshed on every call).
    """
    if token.expires_at is None:
        return None
    lifetime = token.expires_at - token.issued_at if token.issued_at else math.inf
    lead = min(margin, lifetime * 0.5) if lifetime > 0 else 0.0
    lead *= 1.0 + max(0.0, jitter) * min(max(draw, 0.0), 1.0)
    return token.expires_at - lead


def freshness(token: Token | None, now: float, due: float | None) -> Freshness:
    """Whether ``token`` may be used at wall time ``now``, given the time ``due`` it falls due
    for a refresh (``refresh_due``)."""
    if token is None or not token.access_token:
        return Freshness.REFRESH
    if token.expires_at is not None and now >= token.expires_at:
        return Freshness.REFRESH
    if due is not None and now >= due:
        return Freshness.REFRESH_AHEAD
    return Freshness.USE


@dataclass(frozen=True, slots=True)
class TokenRefusal:
    """The token endpoint refused (RFC 6749 section 5.2): its ``error`` code and
    ``error_description``, or what was wrong with its answer."""

    status: int
    error: str
    description: str | None = None

    @property
    def retryable(self) -> bool:
        """Whether asking again later may help: the endpoint failed (5xx, 429), rather than
        refusing these credentials."""
        return self.status >= 500 or self.status == 429


TokenAnswer = Token | TokenRefusal
"""What one token endpoint answer means."""

_MAX_TEXT = 200  # an error_description is quoted in errors: bounded


def _short(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    printable = "".join(c if c.isprintable() else "?" for c in value)
    return printable[:_MAX_TEXT]


def parse_token_answer(
    status: int, body: bytes, now: float, *, previous_refresh: str | None = None
) -> TokenAnswer:
    """Read a token endpoint's answer received at wall time ``now``.

    A 200 with a JSON object holding ``access_token`` is a ``Token`` (``expires_in`` made
    absolute; the ``refresh_token`` kept from ``previous_refresh`` when the endpoint did not
    rotate it, RFC 6749 section 6). Anything else is a ``TokenRefusal`` with the endpoint's
    ``error`` and ``error_description`` when it gave them, never the body itself (it may echo a
    credential).
    """
    try:
        data = json.loads(body) if body else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        data = {}
    if status != 200:
        error = _short(data.get("error")) or f"http_{status}"
        return TokenRefusal(status, error, _short(data.get("error_description")))
    access = data.get("access_token")
    if not isinstance(access, str) or not access:
        return TokenRefusal(status, "invalid_response", "the answer has no access_token")
    raw_type = data.get("token_type")
    token_type = raw_type if isinstance(raw_type, str) else "Bearer"
    if token_type.lower() != "bearer":
        return TokenRefusal(
            status, "unsupported_token_type", f"token_type {_short(token_type)!r} is not Bearer"
        )
    expires_in = data.get("expires_in")
    if isinstance(expires_in, str) and expires_in.isdigit():  # some providers send a string
        expires_in = int(expires_in)
    expires_at: float | None = None
    if isinstance(expires_in, int | float) and not isinstance(expires_in, bool) and math.isfinite(expires_in):
        expires_at = now + max(0.0, float(expires_in))
    refresh = data.get("refresh_token")
    return Token(
        access_token=access,
        token_type="Bearer",
        expires_at=expires_at,
        refresh_token=refresh if isinstance(refresh, str) and refresh else previous_refresh,
        scope=_short(data.get("scope")),
        issued_at=now,
    )
