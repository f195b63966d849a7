"""``ConditionalMiddleware``: ETags, ``304 Not Modified`` and ``412 Precondition Failed``
(RFC 9110 section 13), plain ASGI.

- **Reads** (GET): a buffered ``200`` (one body message, as JSONResponse sends) gets a strong
  ``ETag``, the SHA-256 of its body, unless the app set its own. ``If-None-Match`` that matches
  (weak comparison, section 13.1.2; ``*`` matches any) answers ``304`` with an empty body and the
  validator headers; without ``If-None-Match``, ``If-Modified-Since`` is compared with the app's
  ``Last-Modified``. A streamed response is compared only against the app's own ``ETag`` /
  ``Last-Modified`` (its body is never buffered).
- **Writes** (POST, PUT, PATCH, DELETE) with ``If-Match`` or ``If-Unmodified-Since``: the
  middleware first asks the app for the resource's current representation (an internal GET of
  the same path and query, its body hashed as it streams, never stored), and answers ``412`` with
  problem details (type ``.../precondition-failed``) and the current ``ETag`` when the
  precondition fails; the write does not run. ``If-Match`` uses strong comparison (section
  13.1.1) and fails when the resource does not exist. This is optimistic concurrency between
  clients; it is not a lock: two writes racing with the same ETag both pass unless the app
  checks the version in its own transaction.

Put it inside ``CompressionMiddleware`` (which adds and strips the coding suffix of ETags) and
outside ``FieldsMiddleware`` (so each field selection has its own ETag).
"""

from __future__ import annotations

import hashlib
from email.utils import parsedate_to_datetime
from typing import Any

from ._asgi import ASGIApp, HTTPMiddleware, Message, Receive, Scope, Send, header, send_problem

__all__ = ["ConditionalMiddleware", "strong_etag"]

_KEEP_ON_304 = (
    b"etag",
    b"last-modified",
    b"cache-control",
    b"content-location",
    b"date",
    b"expires",
    b"vary",
)
_WRITES = ("POST", "PUT", "PATCH", "DELETE")


def strong_etag(body: bytes) -> bytes:
    """The strong entity-tag the middleware gives a body: ``"`` + 32 hex digits of SHA-256 + ``"``."""
    return _etag(hashlib.sha256(body))


def _etag(digest: hashlib._Hash) -> bytes:
    return b'"' + digest.hexdigest()[:32].encode() + b'"'


def _tags(value: bytes) -> list[bytes]:
    return [t.strip() for t in value.split(b",") if t.strip()]


def _matches_weak(if_none_match: bytes, etag: bytes) -> bool:
    if if_none_match.strip() == b"*":
        return True
    return etag.removeprefix(b"W/") in [t.removeprefix(b"W/") for t in _tags(if_none_match)]


def _matches_strong(if_match: bytes, etag: bytes | None, exists: bool) -> bool:
    if if_match.strip() == b"*":
        return exists
    if etag is None or etag.startswith(b"W/"):
        return False
    return etag in [t for t in _tags(if_match) if not t.startswith(b"W/")]


def _date(value: bytes | None) -> float | None:
    if value is None:
        return None
    try:
        return parsedate_to_datetime(value.decode("latin-1")).timestamp()
    except (TypeError, ValueError, IndexError):
        return None  # an invalid date is ignored (RFC 9110 section 13.1.3)


class ConditionalMiddleware(HTTPMiddleware):
    """ASGI middleware for ETags and conditional requests; see the module docstring.

    ``check_writes=False`` leaves ``If-Match`` on writes to the app.
    """

    def __init__(self, app: ASGIApp, *, check_writes: bool = True) -> None:
        self.app = app
        self.check_writes = check_writes

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer 304/412 when a precondition says so, else call the app and tag its response."""
        method = scope.get("method", "GET")
        headers = scope.get("headers", [])
        if method == "GET":
            await self._read(
                scope, receive, send, header(headers, b"if-none-match"), header(headers, b"if-modified-since")
            )
            return
        if_match = header(headers, b"if-match")
        if_unmodified = header(headers, b"if-unmodified-since")
        if self.check_writes and method in _WRITES and (if_match is not None or if_unmodified is not None):
            status, etag, modified = await self._current(scope)
            failed = (if_match is not None and not _matches_strong(if_match, etag, status == 200)) or (
                if_match is None
                and (since := _date(if_unmodified)) is not None
                and (modified is None or modified > since)
            )
            if failed:
                extra = [(b"etag", etag)] if etag is not None and status == 200 else []
                await send_problem(
                    send,
                    412,
                    "precondition-failed",
                    "Precondition Failed",
                    "The resource changed since you read it (or does not exist); read it again and retry.",
                    extra,
                )
                return
        await self.app(scope, receive, send)

    async def _read(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        if_none_match: bytes | None,
        if_modified: bytes | None,
    ) -> None:
        state: dict[str, Any] = {"start": None, "drop": False}

        def not_modified(headers: list[tuple[bytes, bytes]]) -> bool:
            etag = header(headers, b"etag")
            if if_none_match is not None:
                return etag is not None and _matches_weak(if_none_match, etag)
            since = _date(if_modified)
            modified = _date(header(headers, b"last-modified"))
            return since is not None and modified is not None and modified <= since

        async def send_304(start: Message) -> None:
            kept = [(k, v) for k, v in start["headers"] if k.lower() in _KEEP_ON_304]
            await send({"type": "http.response.start", "status": 304, "headers": kept})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            state["drop"] = True

        async def send_conditional(message: Message) -> None:
            if state["drop"]:
                return
            if message["type"] == "http.response.start":
                if message["status"] != 200:
                    await send(message)
                    return
                state["start"] = message
                return
            start: Message | None = state["start"]
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            state["start"] = None
            headers = list(start.get("headers", []))
            if message.get("more_body", False):
                # Streamed: compare only the app's own validators; never buffer the body.
                if not_modified(headers):
                    await send_304(start)
                    return
                await send(start)
                await send(message)
                return
            if header(headers, b"etag") is None:
                headers.append((b"etag", strong_etag(bytes(message.get("body", b"")))))
            start = {**start, "headers": headers}
            if not_modified(headers):
                await send_304(start)
                return
            await send(start)
            await send(message)

        await self.app(scope, receive, send_conditional)

    async def _current(self, scope: Scope) -> tuple[int, bytes | None, float | None]:
        """The resource's current status, ETag and Last-Modified: an internal GET, hashed as it
        streams."""
        dropped = (
            b"if-match",
            b"if-none-match",
            b"if-modified-since",
            b"if-unmodified-since",
            b"content-length",
        )
        probe = {
            **scope,
            "method": "GET",
            "headers": [(k, v) for k, v in scope.get("headers", []) if k.lower() not in dropped],
        }
        digest = hashlib.sha256()
        result: dict[str, Any] = {"status": 0, "headers": []}

        async def empty() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                result["status"] = int(message["status"])
                result["headers"] = list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                digest.update(message.get("body", b""))

        await self.app(probe, empty, capture)
        headers = result["headers"]
        etag = header(headers, b"etag")
        if etag is None and result["status"] == 200:
            etag = _etag(digest)
        return result["status"], etag, _date(header(headers, b"last-modified"))

    def __repr__(self) -> str:
        return f"<ConditionalMiddleware check_writes={self.check_writes}>"
