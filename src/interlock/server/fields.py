"""``FieldsMiddleware``: partial responses, ``?fields=id,email,stats.total_bookings``, plain ASGI.

The selection (``interlock.core.fields``) applies to successful JSON responses (``application/
json`` and ``+json`` types): to an object, to a list of objects, and nested through both. A
malformed list is refused with ``400`` before the app runs; a field the response does not have is
``400`` too (problem details, type ``.../invalid-fields``, naming the field), so a typo never
passes silently as a smaller response. Responses that are not JSON or not 2xx, or larger than
``max_body`` bytes, pass untouched (the bound on what is buffered to select from).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from .._validate import check_count
from ..core.fields import FieldError, FieldTree, parse_fields, select_fields
from ._asgi import ASGIApp, HTTPMiddleware, Message, Receive, Scope, Send, header, send_problem

__all__ = ["FieldsMiddleware"]


def _is_json(content_type: bytes | None) -> bool:
    if content_type is None:
        return False
    value = content_type.decode("latin-1").split(";", 1)[0].strip().lower()
    return value == "application/json" or value.endswith("+json")


class FieldsMiddleware(HTTPMiddleware):
    """ASGI middleware selecting fields of JSON responses from the ``param`` query parameter
    (``fields`` by default). ``max_body``: the largest response, in bytes, it buffers to select."""

    def __init__(self, app: ASGIApp, *, param: str = "fields", max_body: int = 8 * 1024 * 1024) -> None:
        check_count("FieldsMiddleware", "max_body", max_body)
        self.app = app
        self.param = param
        self.max_body = max_body

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Parse the selection, call the app, and cut its JSON response down to it."""
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        values = query.get(self.param)
        if values is None:
            await self.app(scope, receive, send)
            return
        try:
            tree = parse_fields(",".join(values))
        except FieldError as exc:
            await send_problem(send, 400, "invalid-fields", "Invalid field selection", str(exc))
            return
        await self.app(scope, receive, _Selector(send, tree, self.max_body).send)

    def __repr__(self) -> str:
        return f"<FieldsMiddleware param={self.param!r} max_body={self.max_body}>"


class _Selector:
    """One response's send: holds a JSON 2xx until its body is whole, then selects."""

    def __init__(self, send: Send, tree: FieldTree, max_body: int) -> None:
        self._send = send
        self._tree = tree
        self._max = max_body
        self._start: Message | None = None
        self._chunks: list[bytes] = []
        self._size = 0
        self._passthrough = False

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            status = int(message["status"])
            if 200 <= status < 300 and _is_json(header(message.get("headers", []), b"content-type")):
                self._start = message
            else:
                self._passthrough = True
                await self._send(message)
            return
        if self._passthrough or self._start is None or message["type"] != "http.response.body":
            await self._send(message)
            return
        body = bytes(message.get("body", b""))
        self._chunks.append(body)
        self._size += len(body)
        more = bool(message.get("more_body", False))
        if self._size > self._max:
            await self._flush_untouched(more)
            return
        if more:
            return
        await self._select(b"".join(self._chunks))

    async def _flush_untouched(self, more: bool) -> None:
        assert self._start is not None
        self._passthrough = True
        await self._send(self._start)
        await self._send({"type": "http.response.body", "body": b"".join(self._chunks), "more_body": more})
        self._chunks = []

    async def _select(self, body: bytes) -> None:
        assert self._start is not None
        try:
            data: Any = json.loads(body)
        except ValueError:
            await self._flush_untouched(False)
            return
        try:
            selected = select_fields(data, self._tree)
        except FieldError as exc:
            await send_problem(self._send, 400, "invalid-fields", "Invalid field selection", str(exc))
            return
        out = json.dumps(selected, ensure_ascii=False, separators=(",", ":")).encode()
        headers = [
            (k, v) for k, v in self._start.get("headers", []) if k.lower() not in (b"content-length", b"etag")
        ]
        headers.append((b"content-length", str(len(out)).encode()))
        await self._send({**self._start, "headers": headers})
        await self._send({"type": "http.response.body", "body": out, "more_body": False})
