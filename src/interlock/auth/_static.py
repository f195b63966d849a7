"""Credentials that never change: ``Bearer``, ``ApiKey`` and ``Basic``. A 401 to them stands
(there is nothing to refresh), and their reprs never show the secret."""

from __future__ import annotations

import base64
from typing import Any

from .._models import Request
from ..errors import ConfigError

__all__ = ["ApiKey", "Basic", "Bearer"]


def _check_secret(owner: str, field: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(owner, field, "must be a non-empty string")
    if any(c in value for c in "\r\n\x00"):
        raise ConfigError(owner, field, "must not contain CR, LF or NUL (it travels in a header)")
    return value


class _Static:
    """What the static credentials share: nothing to open, close or refresh."""

    redacted_headers: frozenset[str] = frozenset({"authorization"})
    redacted_query: frozenset[str] = frozenset()

    def attach(self) -> None:
        """Nothing to count: no connections of their own."""

    async def release(self) -> None:
        """Nothing to close."""

    async def refresh(self, request: Request, used: Any) -> bool:
        """Static credentials cannot be refreshed: the 401 stands."""
        return False


class Bearer(_Static):
    """A fixed bearer token (RFC 6750), sent as ``Authorization: Bearer <token>``."""

    def __init__(self, token: str) -> None:
        self._header = "Bearer " + _check_secret("Bearer", "token", token)

    async def apply(self, request: Request) -> None:
        """Set the ``Authorization`` header."""
        request.headers["Authorization"] = self._header

    def __repr__(self) -> str:
        return "Bearer(token=***)"


class Basic(_Static):
    """HTTP Basic authentication (RFC 7617): ``username`` and ``password`` as UTF-8."""

    def __init__(self, username: str, password: str) -> None:
        if not isinstance(username, str) or ":" in username:
            raise ConfigError("Basic", "username", "must be a string without ':' (RFC 7617 section 2)")
        _check_secret("Basic", "password", password)
        self.username = username
        pair = f"{username}:{password}".encode()
        self._header = "Basic " + base64.b64encode(pair).decode("ascii")

    async def apply(self, request: Request) -> None:
        """Set the ``Authorization`` header."""
        request.headers["Authorization"] = self._header

    def __repr__(self) -> str:
        return f"Basic(username={self.username!r}, password=***)"


class ApiKey(_Static):
    """An API key sent in a ``header`` (``X-API-Key`` by default, with an optional ``prefix``
    such as ``"Token "``) or, when the provider wants it there, as the ``query`` parameter
    named. Either name is masked in errors, logs and reprs."""

    def __init__(
        self, key: str, *, header: str | None = None, query: str | None = None, prefix: str = ""
    ) -> None:
        _check_secret("ApiKey", "key", key)
        if header is not None and query is not None:
            raise ConfigError("ApiKey", "header", "give header= or query=, not both")
        if query is not None and (not isinstance(query, str) or not query):
            raise ConfigError("ApiKey", "query", "must be a non-empty parameter name")
        if query is None:
            header = header or "X-API-Key"
            if not header.replace("-", "").replace("_", "").isalnum():
                raise ConfigError("ApiKey", "header", f"must be a header name, got {header!r}")
        self.header = header
        self.query = query
        self._value = prefix + key
        self.redacted_headers = frozenset({header.lower()}) if header else frozenset()
        self.redacted_query = frozenset({query.lower()}) if query else frozenset()

    async def apply(self, request: Request) -> None:
        """Set the header or the query parameter."""
        if self.header is not None:
            request.headers[self.header] = self._value
        else:
            assert self.query is not None
            request.params[self.query] = self._value

    def __repr__(self) -> str:
        where = f"header={self.header!r}" if self.header else f"query={self.query!r}"
        return f"ApiKey({where}, key=***)"
