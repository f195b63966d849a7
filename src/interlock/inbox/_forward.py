"""HTTP forward handler: deliver events to an internal service through ``interlock.Client``.

The call goes through the client's whole pipeline, so delivery to internal services gets rate
limits, concurrency, the breaker and retries too, as a call of the ``"background"`` profile
(nobody waits on a webhook's processing: an open breaker is waited out within a long deadline,
unless the client was given ``retry=`` / ``timeout=`` explicitly). The event id is the correlation id (sent as
``X-Request-ID``) and ``{source}:{id}`` the ``Idempotency-Key``, so the receiving service can
drop a redelivery. Any answer outside 2xx fails the attempt and the inbox's redelivery
schedule takes over.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypedDict
from urllib.parse import urlsplit

from ..errors import ConfigError
from ._event import Event

if TYPE_CHECKING:
    from ..client import Client

__all__ = ["DEFAULT_FORWARDED", "Forward", "ForwardOptions"]

DEFAULT_FORWARDED = ("content-type", "user-agent")
"""Headers of the original delivery passed on to the internal service."""


class ForwardOptions(TypedDict, total=False):
    """The options of ``Forward`` besides the URL and the client, as ``Inbox.forward`` takes them."""

    headers: Mapping[str, str] | None
    """Added to every request (an ``Authorization`` for the internal service, say)."""
    forward_headers: Sequence[str]
    """Headers of the delivery passed on; ``DEFAULT_FORWARDED`` when left out."""
    method: str
    """``POST`` when left out."""


class Forward:
    """An inbox handler that delivers each event to an internal service over HTTP.

    ``Forward("http://billing.internal/hooks/stripe")`` or, with a configured client,
    ``Forward("/hooks/stripe", client=interlock.Client("http://billing.internal", ...))``;
    usually made by ``Inbox.forward(...)``. ``headers`` are added to every request,
    ``forward_headers`` names the delivery's own headers passed on.
    """

    def __init__(
        self,
        url: str,
        *,
        client: Client | None = None,
        headers: Mapping[str, str] | None = None,
        forward_headers: Sequence[str] = DEFAULT_FORWARDED,
        method: str = "POST",
    ) -> None:
        if client is None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ConfigError("Inbox.forward", "url", f"needs an absolute http(s) URL without a client, got {url!r}")
        self.url = url
        self.method = method.upper()
        self.headers = dict(headers or {})
        self.forward_headers = tuple(h.lower() for h in forward_headers)
        self._client = client
        self._own_client = client is None

    def _get_client(self) -> Client:
        if self._client is None:
            from ..client import Client

            parts = urlsplit(self.url)
            self._client = Client(
                f"{parts.scheme}://{parts.netloc}", name=f"forward:{parts.netloc}", profile="background"
            )
        return self._client

    async def __call__(self, event: Event) -> None:
        """Deliver one event: its body, the forwarded headers and the ``X-Interlock-*`` ones."""
        client = self._get_client()
        headers = {k: v for k, v in event.headers.items() if k in self.forward_headers}
        headers.update(
            {
                "X-Interlock-Source": event.source,
                "X-Interlock-Event-Id": event.id,
                "X-Interlock-Event-Type": event.type,
                "X-Interlock-Attempt": str(event.attempt),
                "Idempotency-Key": f"{event.source}:{event.id}",
            }
        )
        headers.update(self.headers)
        response: Any = await client.request(
            self.method, self.url, content=event.body, headers=headers, profile="background"
        )
        response.raise_for_status()

    async def aclose(self) -> None:
        """Close the client this handler made for itself (a client passed in stays open)."""
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    def __repr__(self) -> str:
        return f"Forward({self.method} {self.url})"
