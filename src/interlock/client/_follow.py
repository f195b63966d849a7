"""Follows redirects for the Client, hop by hop, as ``core.redirect`` decides: the same for
every transport (they never follow on their own). The pipeline's ``GatedSend`` hands it an
attempt's redirect answer, so the hops hold the attempt's gates and cost the common path
nothing.

A hop to another origin (only to an allowed host) carries no credential header the client's
``Redaction`` names and no idempotency key; a 303 (and a POST answered 301/302) becomes a GET
without the body. A redirect that is not followed is the call's answer, with one warning per
reason and target origin.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from urllib.parse import parse_qsl, urlencode, urlsplit

from multidict import CIMultiDict

from .._clock import Clock
from .._models import Request, Response
from .._redact import Redaction
from ..core.redirect import Follow, Redirects, Stay, next_hop, origin_of
from ..errors import TimedOut
from .transports import AttemptTimeout

__all__ = ["RedirectFollower"]

_log = logging.getLogger("interlock.client")
_MAX_WARNED = 100  # (reason, origin) pairs warned about, at most: the set is bounded too

SendAttempt = Callable[[Request, AttemptTimeout], Awaitable[Response]]


def _full_url(request: Request) -> str:
    return f"{request.url}?{urlencode(request.params)}" if request.params else request.url


class RedirectFollower:
    """Sends the hops of one attempt after its answer was a redirect. Each hop is bounded like an
    attempt: by ``per_attempt`` and by what is left of the call's deadline."""

    def __init__(
        self,
        config: Redirects,
        send: SendAttempt,
        clock: Clock,
        redaction: Redaction,
        idempotency_header: str,
        upstream: str,
        *,
        connect: float | None,
        per_attempt: float | None,
    ) -> None:
        self.config = config
        self._send = send
        self._clock = clock
        self._redaction = redaction
        self._idempotency_header = idempotency_header.lower()
        self._upstream = upstream
        self._connect = connect
        self._per_attempt = per_attempt
        self._warned: set[tuple[str, str]] = set()

    async def follow(self, request: Request, response: Response) -> Response:
        """The attempt's answer, ``response`` being the redirect the first hop got: the answer of
        the last hop the rules allow."""
        origin = origin_of(request.url)
        if origin is None:
            return response
        hop, hops = request, 0
        while True:
            decision = next_hop(
                self.config,
                status=response.status,
                method=hop.method,
                url=_full_url(hop),
                location=response.headers.get("Location"),
                hops=hops,
                origin=origin,
            )
            if decision is None:
                return response
            if isinstance(decision, Stay):
                self._not_followed(request, decision, response)
                return response
            hop = self._next(hop, decision)
            hops += 1
            total = self._per_attempt
            if request.deadline is not None:
                left = request.deadline - self._clock.monotonic()
                if left <= 0:
                    raise TimedOut(f"deadline reached following redirects ({hops} hops)", **request.context())
                total = left if total is None else min(total, left)
            response = await self._send(hop, AttemptTimeout(self._connect, None, total))

    def _next(self, hop: Request, follow: Follow) -> Request:
        url, _, query = follow.url.partition("?")
        headers: CIMultiDict[str] = hop.headers.copy()
        key = hop.idempotency_key
        if follow.cross_origin:
            for name in {k for k in headers if self._redaction.is_sensitive_header(k)}:
                headers.popall(name, None)
            headers.popall(self._idempotency_header, None)
            key = None
        body = hop.body
        if not follow.keep_body:
            body = None
            for name in ("Content-Type", "Content-Length", "Content-Encoding"):
                headers.popall(name, None)
        return replace(
            hop,
            method=follow.method,
            url=url,
            path=urlsplit(url).path or "/",
            params=dict(parse_qsl(query, keep_blank_values=True)),
            headers=headers,
            body=body,
            idempotency_key=key,
        )

    def _not_followed(self, request: Request, stay: Stay, response: Response) -> None:
        location = response.headers.get("Location") or ""
        target = origin_of(location)
        where = f"{target[0]}://{target[1]}:{target[2]}" if target else ""
        seen = (stay.reason, where)
        if stay.reason == "off" or seen in self._warned or len(self._warned) >= _MAX_WARNED:
            return
        self._warned.add(seen)
        advice = {
            "other_origin": "a redirect to another origin is followed only to Redirects(allow_hosts=[...])",
            "downgrade": "a redirect from https to http is never followed",
            "too_many": f"more than Redirects(max_hops={self.config.max_hops}) hops",
        }.get(stay.reason, "the Location header is missing or not an http(s) URL")
        _log.warning(
            "%s%s: %d redirect to %s not followed (%s); the 3xx is the answer",
            self._upstream,
            request.route,
            response.status,
            self._redaction.mask_url(location) or "(no Location)",
            advice,
            extra={
                "interlock": {"upstream": self._upstream, "route": request.route, "redirect": stay.reason}
            },
        )
