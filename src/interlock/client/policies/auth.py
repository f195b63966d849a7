"""The credentials stage of the pipeline: puts the caller's credentials on every attempt and, on
a 401, refreshes them once and sends the attempt once more.

It runs per attempt, before the rate limit and the gates (``_pipeline.compose_pipeline``): each
retry carries the credentials current when it is sent, and the one extra send after a 401
passes the rate limit, the concurrency limit and the breaker like any attempt. A second 401 to
the refreshed credentials is ``AuthError``: refreshing again would only repeat it (a revoked
client, a missing scope), and a loop of refreshes is how a token endpoint gets hammered.

``Credentials`` is what the stage needs of them; ``interlock.auth`` provides ``Bearer``,
``ApiKey``, ``Basic`` and the OAuth2 grants.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol, runtime_checkable

from ..._models import REDACTION_KEY, Request, Response
from ..._redact import REDACTION, Redaction
from ...errors import AuthError
from .._pipeline import Send

__all__ = ["AuthPolicy", "Credentials"]

_log = logging.getLogger("interlock.auth")


@runtime_checkable
class Credentials(Protocol):
    """How a ``Client(auth=...)`` authenticates its calls.

    ``apply`` writes the credentials into one attempt (a header or a query parameter) and returns
    a handle on what it used; ``refresh`` is called with that handle after a 401 and says
    whether new credentials are now available (static ones answer False: the 401 stands).
    ``redacted_headers`` and ``redacted_query`` name where the credentials travel, so the
    client masks them in errors, logs and reprs. A client ``attach``-es once when built and
    ``release``-s when closed: credentials shared by several clients close what they opened
    (a token endpoint's connections) after the last one.
    """

    redacted_headers: frozenset[str]
    redacted_query: frozenset[str]

    def attach(self) -> None:
        """A client starts using these credentials."""
        ...

    async def release(self) -> None:
        """A client using these credentials is closed."""
        ...

    async def apply(self, request: Request) -> Any:
        """Put the credentials on ``request`` (within its deadline); return what was used."""
        ...

    async def refresh(self, request: Request, used: Any) -> bool:
        """The upstream answered 401 to ``used``: get new credentials; True when there are."""
        ...


class AuthPolicy:
    """The credentials stage (see the module docstring)."""

    def __init__(self, credentials: Credentials, upstream: str, redaction: Redaction = REDACTION) -> None:
        self.credentials = credentials
        self._upstream = upstream
        self._redaction = redaction
        self.refreshes = 0
        """Attempts sent again after a 401 with refreshed credentials."""
        credentials.attach()

    async def handle(self, request: Request, call_next: Send) -> Response:
        """Send the attempt with credentials; after a 401, refresh once and send once more."""
        credentials = self.credentials
        request.extensions[REDACTION_KEY] = self._redaction  # its repr masks these credentials too
        used = await credentials.apply(request)
        response = await call_next(request)
        if response.status != 401 or not await credentials.refresh(request, used):
            return response
        self.refreshes += 1
        _log.info(
            "%s %s%s answered 401: credentials refreshed, sending once more",
            request.method,
            self._upstream,
            request.route,
        )
        await credentials.apply(request)
        response = await call_next(request)
        if response.status == 401:
            raise AuthError(
                "the upstream answered 401 again to freshly refreshed credentials: they are valid for "
                "the token endpoint but not accepted here (revoked, wrong audience or missing scope?)",
                status=401,
                tracking_id=response.tracking_id,
                hint="check the scopes / audience the credentials are issued for",
                **request.context(),
            )
        return response

    async def aclose(self) -> None:
        """The client is closed: release the credentials."""
        await self.credentials.release()

    def __repr__(self) -> str:
        return f"<AuthPolicy {self._upstream} {self.credentials!r} refreshes={self.refreshes}>"
