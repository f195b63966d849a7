"""``MockTransport``: a transport that answers from a function, for unit tests of code that
uses a Client (httpx's ``MockTransport`` idea). Every policy still runs; only the network is
replaced. Public as ``interlock.testing.MockTransport``."""

from __future__ import annotations

import json as _json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy

from ..._models import Request, Response
from ._base import DEFAULT_TRACKING_HEADERS, AttemptTimeout, answer
from ._body import too_large

__all__ = ["MockTransport", "Responder", "respond"]

Responder = Callable[[Request], Response | Awaitable[Response]]
"""What a ``MockTransport`` calls for each attempt: a plain or an async function of the request."""


def respond(
    status: int = 200,
    *,
    json: Any = None,
    content: bytes | str = b"",
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A ``Response`` for a ``MockTransport`` handler to return: ``json`` is serialised (with
    ``Content-Type: application/json``), else ``content`` is the body as is."""
    fields: CIMultiDict[str] = CIMultiDict(headers or {})
    if json is not None:
        content = _json.dumps(json, separators=(",", ":"))
        fields.setdefault("Content-Type", "application/json")
    body = content.encode() if isinstance(content, str) else content
    return Response(status=status, headers=CIMultiDictProxy(fields), content=body)


class MockTransport:
    """A ``Transport`` that answers each attempt with ``handler(request)``: a ``Response`` (see
    ``respond``) or an awaitable of one. To fail an attempt as the network would, raise
    ``interlock.errors.ConnectError``, ``TransportError`` or ``TimedOut`` from the handler;
    retries, breaker, cache and the rest then behave as they would against a real upstream.

    The answer carries the request's method, URL, route and upstream, and the tracking id
    found in its headers (``tracking_headers``, as the real transports read it); a body past
    ``request.max_response_bytes`` raises ``ResponseTooLarge``, as theirs would. Every attempt
    is recorded: ``requests`` and ``timeouts`` (the ``AttemptTimeout`` each was sent with).
    ``handler`` may be replaced between calls.

        transport = MockTransport(lambda request: respond(200, json={"id": 1}))
        async with Client("https://api.test", transport=transport) as api:
            assert (await api.get("/customers/1")).json() == {"id": 1}
        assert transport.requests[0].route == "/customers/{id}"
    """

    def __init__(
        self, handler: Responder, *, tracking_headers: Sequence[str] = DEFAULT_TRACKING_HEADERS
    ) -> None:
        self.handler = handler
        self.requests: list[Request] = []
        self.timeouts: list[AttemptTimeout] = []
        self._tracking_headers = tuple(tracking_headers)

    async def send(self, request: Request, timeout: AttemptTimeout) -> Response:
        """Record the attempt and answer it with the handler's response."""
        self.requests.append(request)
        self.timeouts.append(timeout)
        result = self.handler(request)
        given = result if isinstance(result, Response) else await result
        limit = request.max_response_bytes
        if limit is not None and len(given.content) > limit:
            raise too_large(request, limit, f"{len(given.content)} bytes")
        response = answer(request, given.status, given.headers, given.content, self._tracking_headers)
        if given.tracking_id is not None:
            response.tracking_id = given.tracking_id
        return response

    async def aclose(self) -> None:
        """Nothing to close; present for the ``Transport`` seam."""

    def __repr__(self) -> str:
        return f"<MockTransport {getattr(self.handler, '__name__', self.handler)!r} requests={len(self.requests)}>"
