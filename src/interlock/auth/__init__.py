"""``interlock.auth``: credentials for the Client's calls to an upstream.

::

    from interlock import Client
    from interlock.auth import OAuth2ClientCredentials

    auth = OAuth2ClientCredentials(
        "https://login.example.com/oauth/token", client_id, client_secret,
        scopes=["crm.read"], store="redis://127.0.0.1:6379/0",
    )
    async with Client("https://api.example.com", auth=auth) as api:
        await api.get("/contacts")

- ``Bearer(token)``, ``ApiKey(key, header=... | query=...)``, ``Basic(username, password)``:
  fixed credentials.
- ``OAuth2ClientCredentials`` and ``OAuth2RefreshToken``: tokens fetched once and shared (one
  flight per process, one token request per store across processes), refreshed before they
  expire and once after a 401, refresh tokens rotated and persisted.
- ``credentials_from_config(mapping)``: any of them from a config file's table (the service's
  ``[upstreams.NAME.auth]``).
- ``AuthError``: a token could not be had, or the upstream refused a freshly refreshed one.

Each is a ``Credentials`` (the protocol ``Client(auth=...)`` takes); every secret and token is
masked in reprs, errors and log lines.
"""

from __future__ import annotations

from ..client.policies.auth import Credentials
from ..core.token import Token
from ..errors import AuthError
from ._config import credentials_from_config
from ._oauth2 import TOKEN_BREAKER, TOKEN_RETRY, TOKEN_TIMEOUT, OAuth2ClientCredentials, OAuth2RefreshToken
from ._static import ApiKey, Basic, Bearer

__all__ = [
    "TOKEN_BREAKER",
    "TOKEN_RETRY",
    "TOKEN_TIMEOUT",
    "ApiKey",
    "AuthError",
    "Basic",
    "Bearer",
    "Credentials",
    "OAuth2ClientCredentials",
    "OAuth2RefreshToken",
    "Token",
    "credentials_from_config",
]
