"""Serving the Inbox with uvicorn, every connection bounded in time and size.

uvicorn's defaults leave three doors open to a sender that is slow on purpose or by accident:
a connection that never sends a request (or sends its head a byte at a time) is held for ever,
because the keep-alive timer only runs between requests and the first byte cancels it; the
httptools parser takes header blocks of any size (h11 bounds only a head still incomplete
after a read); and connections are not counted. The settings here close them: uvicorn's own
protocol (httptools or h11) with a deadline and a size limit for each request head (408 or 431,
and the connection closed), the keep-alive timeout, and a concurrency limit past which uvicorn
answers 503. The body's own deadline is the ASGI app's (``InboxApp.body_timeout``), so it holds
wherever the app is mounted.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import json
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import ConfigError

__all__ = ["ServeSettings"]



def _closing_response(status: int, reason: str, message: str) -> bytes:
    """A whole HTTP/1.1 response that closes the connection, for answers given before (or
    instead of) parsing a request head, where h11 has no request to answer."""
    body = json.dumps({"error": message, "status": status}).encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\nconnection: close\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode() + body


_HEAD_TIMEOUT = _closing_response(408, "Request Timeout", "the request head was not received in time")


@dataclass(frozen=True, slots=True)
class ServeSettings:
    """How ``Inbox.serve()`` and ``Inbox.uvicorn_config()`` bound each connection.

    ``http``: uvicorn's HTTP parser, ``"httptools"`` (fast, C) or ``"h11"`` (pure Python);
    ``"auto"`` takes httptools when it is installed, as uvicorn does.
    ``header_timeout``: seconds a request head (request line and headers) may take to arrive,
    counted from the connection or from the previous response (408 and closed after it);
    ``keep_alive``: seconds an idle connection is kept between requests; ``max_header_bytes``:
    the largest request head accepted (431 and closed, RFC 6585 section 5, once more arrived
    without its end); ``limit_concurrency``: connections (or requests in progress) past which
    new requests are answered 503 at once.
    """

    http: Literal["auto", "httptools", "h11"] = "auto"
    header_timeout: float = 10.0
    keep_alive: float = 5.0
    max_header_bytes: int = 16 * 1024
    limit_concurrency: int = 1000

    def __post_init__(self) -> None:
        if self.http not in ("auto", "httptools", "h11"):
            raise ConfigError("ServeSettings", "http", f"must be 'auto', 'httptools' or 'h11', got {self.http!r}")
        for name in ("header_timeout", "keep_alive"):
            value = getattr(self, name)
            if not value > 0:
                raise ConfigError("ServeSettings", name, f"must be > 0 seconds, got {value!r}")
        if self.max_header_bytes < 1024:
            raise ConfigError("ServeSettings", "max_header_bytes", f"must be >= 1024, got {self.max_header_bytes!r}")
        if self.limit_concurrency < 1:
            raise ConfigError("ServeSettings", "limit_concurrency", f"must be >= 1, got {self.limit_concurrency!r}")

    def uvicorn_options(self) -> dict[str, Any]:
        """The keyword arguments of ``uvicorn.Config`` / ``uvicorn.run`` that apply these
        bounds: ``http`` (the protocol class, with a deadline and a size limit per request
        head), ``timeout_keep_alive``, ``h11_max_incomplete_event_size`` and
        ``limit_concurrency``. Needs uvicorn."""
        http = self.http
        if http == "auto":
            http = "httptools" if importlib.util.find_spec("httptools") is not None else "h11"
        return {
            "http": bounded_protocol(http, self.header_timeout, self.max_header_bytes),
            "timeout_keep_alive": self.keep_alive,
            "h11_max_incomplete_event_size": self.max_header_bytes,
            "limit_concurrency": self.limit_concurrency,
        }


@functools.cache
def bounded_protocol(http: str, header_timeout: float, max_header_bytes: int) -> type[asyncio.Protocol]:
    """uvicorn's ``http`` protocol (``"httptools"`` or ``"h11"``) with a deadline and a size
    limit for every request head: ``header_timeout`` s from the connection, or from the
    previous response on a kept-alive connection, and ``max_header_bytes`` up to the blank line
    that ends it.

    The bytes are counted as they arrive, before the parser sees them: httptools has no limit,
    and h11's ``max_incomplete_event_size`` only counts a head still incomplete after a read,
    so a head that arrives whole in one read (uvicorn reads 64 KiB at a time) passes it.
    """
    base: Any
    if http == "httptools":
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as base
    else:
        from uvicorn.protocols.http.h11_impl import H11Protocol as base

    too_large = _closing_response(
        431, "Request Header Fields Too Large", f"the request head is over {max_header_bytes} bytes"
    )

    class BoundedProtocol(base):  # type: ignore[misc]
        """uvicorn's protocol with a deadline and a size limit for each request head (see
        ``bounded_protocol``)."""

        _head_timer: asyncio.TimerHandle | None = None
        _head_pending = True
        _head_bytes = 0
        _tail = b""

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._await_head()

        def data_received(self, data: bytes) -> None:
            if self._head_pending:
                seen = self._tail + data
                end = seen.find(b"\r\n\r\n")
                size = self._head_bytes + (end + 4 - len(self._tail) if end >= 0 else len(data))
                if size > max_header_bytes:
                    self._head_pending = False
                    self.transport.write(too_large)
                    self.transport.close()
                    return
                if end >= 0:
                    self._head_pending = False
                else:
                    self._head_bytes, self._tail = size, seen[-3:]
            super().data_received(data)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._head_pending, self._head_bytes, self._tail = True, 0, b""
                self._await_head()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None
            super().connection_lost(exc)

        def _await_head(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
            self._head_timer = self.loop.call_later(header_timeout, self._head_overdue, self.cycle)

        def _head_overdue(self, cycle: Any) -> None:
            self._head_timer = None
            if self.transport.is_closing():
                return
            # A request whose head came in time has its own cycle (its body is the app's to
            # bound); the same finished cycle, or none, means no head arrived since.
            if self.cycle is cycle and (cycle is None or cycle.response_complete):
                self.transport.write(_HEAD_TIMEOUT)
                self.transport.close()

    BoundedProtocol.__name__ = BoundedProtocol.__qualname__ = f"Bounded{base.__name__}"
    return BoundedProtocol
