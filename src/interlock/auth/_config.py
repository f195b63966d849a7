"""``credentials_from_config``: credentials from a plain mapping, as a config file writes them
(the service's ``[upstreams.NAME.auth]`` table)::

    [upstreams.crm.auth]
    type = "oauth2_client_credentials"
    token_url = "https://login.example.com/oauth/token"
    client_id = "crm-sync"
    client_secret = "${CRM_CLIENT_SECRET}"
    scopes = ["contacts.read"]
    store = "redis://127.0.0.1:6379/0"

Types: ``bearer`` (``token``), ``api_key`` (``key``, ``header`` or ``query``, ``prefix``),
``basic`` (``username``, ``password``), ``oauth2_client_credentials`` and
``oauth2_refresh_token`` (the constructor's keywords; durations in seconds). An unknown type or
key is a ``ConfigError`` naming it and what is accepted; values are never quoted (they may be
secrets).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..client.policies.auth import Credentials
from ..errors import ConfigError
from ._oauth2 import OAuth2ClientCredentials, OAuth2RefreshToken
from ._static import ApiKey, Basic, Bearer

__all__ = ["credentials_from_config"]

_OAUTH = ("token_url", "client_id", "client_secret", "scopes", "audience", "extra_params", "client_auth",
          "store", "key", "margin", "jitter", "lock_ttl")  # fmt: skip
_TYPES: Mapping[str, tuple[Any, tuple[str, ...], tuple[str, ...]]] = {
    # type: (class, required keys, optional keys)
    "bearer": (Bearer, ("token",), ()),
    "api_key": (ApiKey, ("key",), ("header", "query", "prefix")),
    "basic": (Basic, ("username", "password"), ()),
    "oauth2_client_credentials": (OAuth2ClientCredentials, _OAUTH[:3], _OAUTH[3:]),
    "oauth2_refresh_token": (OAuth2RefreshToken, (*_OAUTH[:3], "refresh_token"), _OAUTH[3:]),
}


def credentials_from_config(config: Mapping[str, Any], *, owner: str = "auth") -> Credentials:
    """The credentials ``config`` describes (see the module docstring); errors are
    ``ConfigError(owner, key, problem)``."""
    kind = config.get("type")
    if not isinstance(kind, str) or kind not in _TYPES:
        raise ConfigError(owner, "type", f"must be one of {', '.join(_TYPES)}, got {str(kind)[:40]!r}")
    cls, required, optional = _TYPES[kind]
    missing = [k for k in required if k not in config]
    if missing:
        raise ConfigError(owner, missing[0], f"is required for type {kind!r}")
    unknown = sorted(set(config) - {"type", *required, *optional})
    if unknown:
        accepted = ", ".join((*required, *optional))
        raise ConfigError(owner, unknown[0], f"is not a setting of type {kind!r} (accepted: {accepted})")
    options = {k: v for k, v in config.items() if k != "type"}
    positional = [options.pop(k) for k in required]
    credentials: Credentials = cls(*positional, **options)
    return credentials
