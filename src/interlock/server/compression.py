"""``CompressionMiddleware``: gzip, br and zstd for your API's responses, plain ASGI.

The coding comes from the request's ``Accept-Encoding`` with its q-values (RFC 9110 section
12.5.3; ties go to zstd, then br, then gzip). Left alone: responses that already have a
``Content-Encoding`` (no double compression), ``text/event-stream`` (each event must reach the
client when sent), types that do not compress (images, archives: only ``content_types`` are
compressed), bodies under ``minimum_size``, HEAD requests, 1xx/204/304. Every compressible
response carries ``Vary: Accept-Encoding``, compressed or not, so caches keep the variants apart.

A buffered response (one body message) is compressed whole with a correct ``Content-Length``. A
streamed response is compressed chunk by chunk, each chunk flushed (``Z_SYNC_FLUSH``, brotli's
``flush``, zstd's block flush) so it reaches the client when the app sends it; it is never
buffered whole. A strong ``ETag`` gets the coding as a suffix (``"abc"`` becomes ``"abc-gzip"``:
a strong validator names one representation, RFC 9110 section 8.8.3), and the suffix is taken off
the request's ``If-None-Match`` / ``If-Match`` on the way in, so conditional requests still match.
br needs ``brotli`` and zstd needs ``zstandard`` (``pip install 'interlock[compression]'``); a
coding whose library is missing is not offered.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from .._validate import check_count
from ..core.content_coding import choose_coding as _choose_coding
from ..errors import ConfigError
from ._asgi import ASGIApp, HTTPMiddleware, Message, Receive, Scope, Send, header

__all__ = ["DEFAULT_COMPRESSIBLE", "CompressionMiddleware"]

DEFAULT_COMPRESSIBLE = (
    "text/",
    "application/json",
    "application/problem+json",
    "application/javascript",
    "application/xml",
    "application/x-ndjson",
    "application/graphql-response+json",
    "image/svg+xml",
)
"""Content types compressed by default (prefixes; ``+json`` and ``+xml`` suffixes count too)."""

_SUFFIXES = ("-gzip", "-br", "-zstd")

# Clients send a handful of distinct Accept-Encoding values: parse each once (bounded).
choose_coding = lru_cache(maxsize=256)(_choose_coding)


class _Encoder:
    """One response's compressor: ``chunk(data)`` returns flushed bytes, ``finish()`` the rest."""

    def __init__(self, coding: str, level: int) -> None:
        self.coding = coding
        if coding == "gzip":
            gz = zlib.compressobj(level, zlib.DEFLATED, 31)
            self._chunk: Callable[[bytes], bytes] = lambda d: gz.compress(d) + gz.flush(zlib.Z_SYNC_FLUSH)
            self._finish: Callable[[], bytes] = gz.flush
        elif coding == "br":
            import brotli

            br = brotli.Compressor(quality=level)
            self._chunk = lambda d: br.process(d) + br.flush()
            self._finish = br.finish
        else:
            import zstandard

            zs = zstandard.ZstdCompressor(level=level).compressobj()
            self._chunk = lambda d: zs.compress(d) + zs.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
            self._finish = zs.flush

    def chunk(self, data: bytes) -> bytes:
        return self._chunk(data) if data else b""

    def finish(self) -> bytes:
        return self._finish()

    def whole(self, data: bytes) -> bytes:
        return self._chunk(data) + self._finish()


def _available() -> tuple[str, ...]:
    out = []
    try:
        import zstandard  # noqa: F401

        out.append("zstd")
    except ImportError:  # pragma: no cover - depends on the install
        pass
    try:
        import brotli  # noqa: F401

        out.append("br")
    except ImportError:  # pragma: no cover - depends on the install
        pass
    out.append("gzip")
    return tuple(out)


def _strip_suffixes(value: bytes) -> bytes:
    text = value.decode("latin-1")
    for suffix in _SUFFIXES:
        text = text.replace(suffix + '"', '"')
    return text.encode("latin-1")


class CompressionMiddleware(HTTPMiddleware):
    """ASGI middleware compressing responses with the best coding the client accepts.

    ``codings``: which to offer, in order of preference on ties (default: zstd, br, gzip, those
    installed). ``minimum_size``: bodies shorter than this many bytes are sent as they are.
    ``levels``: per coding (gzip 6, br 4, zstd 3 by default: fast levels, since it is per request).
    ``content_types``: prefixes of the types to compress.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        minimum_size: int = 500,
        codings: Sequence[str] | None = None,
        levels: dict[str, int] | None = None,
        content_types: Sequence[str] = DEFAULT_COMPRESSIBLE,
    ) -> None:
        check_count("CompressionMiddleware", "minimum_size", minimum_size, minimum=0)
        installed = _available()
        chosen = tuple(codings) if codings is not None else installed
        for coding in chosen:
            if coding not in ("gzip", "br", "zstd"):
                raise ConfigError(
                    "CompressionMiddleware", "codings", f"accepts gzip, br, zstd; got {coding!r}"
                )
            if coding not in installed:
                raise ConfigError(
                    "CompressionMiddleware", "codings", f"{coding} needs pip install 'interlock[compression]'"
                )
        self.app = app
        self.minimum_size = minimum_size
        self.codings = chosen
        self.levels = {"gzip": 6, "br": 4, "zstd": 3, **(levels or {})}
        self.content_types = tuple(content_types)

    def _compressible(self, content_type: bytes | None) -> bool:
        if content_type is None:
            return False
        value = content_type.decode("latin-1").split(";", 1)[0].strip().lower()
        if value == "text/event-stream":
            return False
        return value.startswith(self.content_types) or value.endswith(("+json", "+xml"))

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Compress the app's response for this request when it should be."""
        request_headers = scope.get("headers", [])
        accept = header(request_headers, b"accept-encoding")
        coding = choose_coding(accept.decode("latin-1")[:512] if accept else None, self.codings)
        if any(k in (b"if-none-match", b"if-match") for k, _ in request_headers):
            scope = dict(scope)
            scope["headers"] = [
                (k, _strip_suffixes(v) if k in (b"if-none-match", b"if-match") else v)
                for k, v in request_headers
            ]
        head = scope.get("method") == "HEAD"
        state: dict[str, Any] = {"start": None, "encoder": None, "passthrough": False}

        async def send_compressed(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                status = int(message["status"])
                compressible = (
                    self._compressible(header(headers, b"content-type"))
                    and header(headers, b"content-encoding") is None
                    and status >= 200
                    and status not in (204, 304)
                )
                if compressible:
                    headers = _add_vary(headers)
                message["headers"] = headers
                if not compressible or coding is None or head:
                    state["passthrough"] = True
                    await send(message)
                    return
                state["start"] = message  # held until the first body message says buffered or streamed
                return
            if message["type"] != "http.response.body" or state["passthrough"]:
                await send(message)
                return
            body = bytes(message.get("body", b""))
            more = bool(message.get("more_body", False))
            encoder: _Encoder | None = state["encoder"]
            start: Message | None = state["start"]
            if start is not None:
                state["start"] = None
                assert coding is not None
                if not more and len(body) < self.minimum_size:
                    state["passthrough"] = True
                    await send(start)
                    await send(message)
                    return
                encoder = state["encoder"] = _Encoder(coding, self.levels[coding])
                headers = [
                    (k, v) for k, v in start["headers"] if k.lower() not in (b"content-length", b"etag")
                ]
                etag = header(start["headers"], b"etag")
                if etag is not None:
                    if etag.startswith(b'"') and etag.endswith(b'"'):
                        etag = etag[:-1] + b"-" + coding.encode() + b'"'
                    headers.append((b"etag", etag))
                headers.append((b"content-encoding", coding.encode()))
                if not more:
                    compressed = encoder.whole(body)
                    headers.append((b"content-length", str(len(compressed)).encode()))
                    await send({**start, "headers": headers})
                    await send({"type": "http.response.body", "body": compressed, "more_body": False})
                    return
                await send({**start, "headers": headers})
            assert encoder is not None
            data = encoder.chunk(body) if more else encoder.chunk(body) + encoder.finish()
            if data or not more:
                await send({"type": "http.response.body", "body": data, "more_body": more})

        await self.app(scope, receive, send_compressed)

    def __repr__(self) -> str:
        return f"<CompressionMiddleware codings={','.join(self.codings)} minimum_size={self.minimum_size}>"


def _add_vary(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    for i, (key, value) in enumerate(headers):
        if key.lower() == b"vary":
            if b"accept-encoding" in value.lower() or value.strip() == b"*":
                return headers
            headers[i] = (key, value + b", Accept-Encoding")
            return headers
    return [*headers, (b"vary", b"Accept-Encoding")]
