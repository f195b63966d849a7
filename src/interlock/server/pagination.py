"""Pagination helpers for your own API: opaque, tamper-proof cursors, ``Link`` headers
(RFC 8288) and a capped ``limit``.

::

    pages = Pagination(secret=os.environ["CURSOR_SECRET"], default_limit=20, max_limit=100)

    @app.get("/orders")
    async def orders(request: Request):
        page = pages.parse(request.scope)            # InvalidPage -> 400 (see below)
        after = page.position.get("after", 0) if page.position else 0
        rows = await db.orders_after(after, page.limit + 1)
        more = len(rows) > page.limit
        rows = rows[: page.limit]
        return pages.response(request.scope, rows, next={"after": rows[-1]["id"]} if more else None)

    app.add_exception_handler(InvalidPage, invalid_page_handler)   # the 400 problem details

A cursor is ``base64url(JSON position) "." base64url(HMAC-SHA256)``: the client cannot read
meaning into it, forge one or change one (a keyset position such as ``{"after": 42}`` stays the
server's business), and any change fails the HMAC check: ``400`` problem details of type
``invalid-cursor``, never a 500 and never a silently wrong page. A cursor is bound to the path
it was issued for (and to ``bind(scope)`` when given, say the filters of the listing), may
expire after ``ttl`` seconds, and verifies under any of ``secrets`` (the first one signs), so
the key can be rotated without breaking the cursors in flight.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from .._clock import SYSTEM_CLOCK, Clock
from .._validate import check_count, check_seconds
from ..errors import ConfigError
from ._asgi import Scope, problem

__all__ = ["InvalidPage", "Page", "Pagination", "invalid_page_handler"]

MAX_CURSOR = 1024
"""Characters a cursor may have; a longer one is refused before any decoding."""
_TAG = 16
_CURSOR = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
"""Bytes of the HMAC kept in a cursor (128 bits: forging one is out of reach)."""


class InvalidPage(ValueError):
    """A ``cursor`` or ``limit`` the API refuses: a ``400`` with ``detail``. Register
    ``invalid_page_handler`` for it (Starlette / FastAPI), or answer ``to_response()``."""

    def __init__(self, detail: str, slug: str = "invalid-cursor") -> None:
        super().__init__(detail)
        self.detail = detail
        self.slug = slug

    def to_response(self) -> Any:
        """The 400 problem-details answer, as a Starlette ``Response``."""
        from starlette.responses import Response

        title = "Invalid cursor" if self.slug == "invalid-cursor" else "Invalid limit"
        _, headers, body = problem(400, self.slug, title, self.detail)
        return Response(body, status_code=400, headers={k.decode(): v.decode() for k, v in headers})


async def invalid_page_handler(request: Any, exc: Exception) -> Any:
    """A Starlette / FastAPI exception handler answering ``InvalidPage`` with its 400."""
    if not isinstance(exc, InvalidPage):  # pragma: no cover - registered for InvalidPage only
        raise exc
    return exc.to_response()


@dataclass(frozen=True)
class Page:
    """What a list request asks for: ``limit`` items (capped) from ``position`` (what the
    cursor carried; None for the first page)."""

    limit: int
    position: Any = None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Pagination:
    """Cursor pagination for list endpoints; see the module docstring.

    ``secret`` (or ``secrets``, the first signing, all verifying): the HMAC keys, at least 16
    bytes each. ``default_limit`` / ``max_limit``: the page size when none is asked for and the
    cap on the one asked for (a larger ``limit`` is cut to the cap; a ``limit`` that is not a
    positive integer is a 400). ``ttl``: seconds a cursor stays valid (None: forever).
    ``bind(scope)``: a string the cursor is tied to besides the path (filters, the user).
    ``param`` / ``limit_param``: the query parameter names.
    """

    def __init__(
        self,
        secret: str | bytes | None = None,
        *,
        secrets: Sequence[str | bytes] = (),
        default_limit: int = 20,
        max_limit: int = 100,
        ttl: float | None = None,
        bind: Callable[[Scope], str] | None = None,
        param: str = "cursor",
        limit_param: str = "limit",
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        keys = [
            k.encode() if isinstance(k, str) else bytes(k)
            for k in ([secret] if secret else []) + list(secrets)
        ]
        if not keys:
            raise ConfigError("Pagination", "secret", "give the HMAC secret cursors are signed with")
        if any(len(k) < 16 for k in keys):
            raise ConfigError(
                "Pagination", "secret", "must be at least 16 bytes (use secrets.token_urlsafe(32))"
            )
        check_count("Pagination", "max_limit", max_limit)
        check_count("Pagination", "default_limit", default_limit)
        if default_limit > max_limit:
            raise ConfigError(
                "Pagination", "default_limit", f"must be <= max_limit ({max_limit}), got {default_limit}"
            )
        check_seconds("Pagination", "ttl", ttl, positive=True, optional=True)
        self._keys = tuple(keys)
        self.default_limit = default_limit
        self.max_limit = max_limit
        self.ttl = ttl
        self.bind = bind
        self.param = param
        self.limit_param = limit_param
        self.clock = clock

    # -- cursors ---------------------------------------------------------------------------------

    def _scope_key(self, scope: Scope) -> str:
        path = str(scope.get("root_path", "")) + str(scope.get("path", ""))
        return path + ("\0" + self.bind(scope) if self.bind is not None else "")

    def _tag(self, key: bytes, scope_key: str, payload: bytes) -> bytes:
        return hmac.new(key, scope_key.encode() + b"\0" + payload, hashlib.sha256).digest()[:_TAG]

    def cursor(self, scope: Scope, position: Any) -> str:
        """The opaque cursor of ``position`` (any JSON) for the listing ``scope`` belongs to."""
        body: dict[str, Any] = {"p": position}
        if self.ttl is not None:
            body["e"] = round(self.clock.time() + self.ttl, 3)
        payload = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
        return _b64(payload) + "." + _b64(self._tag(self._keys[0], self._scope_key(scope), payload))

    def position(self, scope: Scope, cursor: str) -> Any:
        """The position a cursor of this listing carries; ``InvalidPage`` if it was changed,
        forged, issued for another listing, expired or is not a cursor at all."""
        if len(cursor) > MAX_CURSOR:
            raise InvalidPage(f"the {self.param} is longer than {MAX_CURSOR} characters")
        encoded, _, tag_text = cursor.partition(".")
        try:
            if not _CURSOR.fullmatch(cursor):
                raise ValueError(cursor)
            payload, tag = _unb64(encoded), _unb64(tag_text)
        except (binascii.Error, ValueError):
            raise InvalidPage(f"the {self.param} is not one this API issued") from None
        scope_key = self._scope_key(scope)
        if not any(hmac.compare_digest(self._tag(k, scope_key, payload), tag) for k in self._keys):
            raise InvalidPage(
                f"the {self.param} is not one this API issued for this listing (changed, or from another one)"
            )
        body = json.loads(payload)  # signed by us: well-formed
        expires = body.get("e")
        if expires is not None and self.clock.time() > float(expires):
            raise InvalidPage(f"the {self.param} has expired; start again from the first page")
        return body["p"]

    # -- requests --------------------------------------------------------------------------------

    def parse(self, scope: Scope) -> Page:
        """The ``Page`` a request asks for (from its query string; a Starlette ``Request`` is
        accepted too). ``InvalidPage`` for a bad cursor or limit."""
        scope = getattr(scope, "scope", scope)
        query = dict(
            parse_qsl(bytes(scope.get("query_string", b"")).decode("latin-1"), keep_blank_values=True)
        )
        limit = self.default_limit
        raw_limit = query.get(self.limit_param)
        if raw_limit is not None:
            if not raw_limit.isdigit() or int(raw_limit) < 1 or len(raw_limit) > 9:
                raise InvalidPage(
                    f"{self.limit_param} must be a whole number from 1 to {self.max_limit}, got {raw_limit[:20]!r}",
                    "invalid-limit",
                )
            limit = min(int(raw_limit), self.max_limit)
        raw = query.get(self.param)
        position = self.position(scope, raw) if raw else None
        return Page(limit, position)

    def link(self, scope: Scope, *, next: Any = None, prev: Any = None) -> str | None:
        """The ``Link`` header value (RFC 8288) with ``rel="next"`` / ``rel="prev"`` for the
        positions given (None: no such page), relative to the request's path, keeping its
        other query parameters; None when there is neither."""
        scope = getattr(scope, "scope", scope)
        params = [
            (k, v)
            for k, v in parse_qsl(
                bytes(scope.get("query_string", b"")).decode("latin-1"), keep_blank_values=True
            )
            if k != self.param
        ]
        path = str(scope.get("root_path", "")) + str(scope.get("path", ""))
        links = []
        for rel, position in (("next", next), ("prev", prev)):
            if position is not None:
                query = urlencode([*params, (self.param, self.cursor(scope, position))])
                links.append(f'<{path}?{query}>; rel="{rel}"')
        return ", ".join(links) or None

    def response(
        self,
        scope: Scope,
        items: Sequence[Any],
        *,
        next: Any = None,
        prev: Any = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Any:
        """A Starlette ``JSONResponse``: ``{"data": items, "next_cursor": ..., **extra}`` with
        the ``Link`` header, for endpoints that use this shape."""
        from starlette.responses import JSONResponse

        scope = getattr(scope, "scope", scope)
        body = {
            "data": list(items),
            "next_cursor": None if next is None else self.cursor(scope, next),
            **(extra or {}),
        }
        link = self.link(scope, next=next, prev=prev)
        return JSONResponse(body, headers={"link": link} if link else None)

    def __repr__(self) -> str:
        return (
            f"<Pagination keys={len(self._keys)} (hidden) limit={self.default_limit}/{self.max_limit}"
            f" ttl={self.ttl}>"
        )
