"""Reading an answer's body within ``max_response_bytes``, on the wire and decoded.

Both transports read the raw bytes (their own decompression off) and decode the content
codings here, chunk by chunk, each decoder asked for no more output than the room left under
the bound: a 0.5 MB gzip bomb stops at the bound instead of inflating to a gigabyte (zlib's
``max_length``, brotli's ``output_buffer_limit``, zstd's ``max_length``). One decoder for both
transports also makes them agree on what they accept (``ACCEPT_ENCODING``) and on how a corrupt
body fails: ``TransportError``, as a broken connection would.

Codings decoded (RFC 9110 section 8.4.1): gzip (and x-gzip), deflate (zlib, or raw deflate as
some servers send it), br (needs ``brotli``) and zstd (needs ``backports.zstd`` before Python
3.14); several, applied in order, are undone in reverse. An unknown coding is passed through
as is, as aiohttp and httpx both do.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

from ..._models import Request
from ...errors import ResponseTooLarge, TransportError

__all__ = ["ACCEPT_ENCODING", "BodyReader", "too_large"]

_STEP = 64 * 1024  # output asked of a decoder at a time: what it may overshoot by, at most


def _zstd_module() -> Any:
    try:
        from compression import zstd  # type: ignore[import-not-found,unused-ignore]  # Python 3.14+
    except ImportError:
        try:
            from backports import zstd  # type: ignore[import-not-found,unused-ignore,no-redef]
        except ImportError:
            return None
    return zstd


def _brotli_module() -> Any:
    try:
        import brotli
    except ImportError:
        return None
    # output_buffer_limit (brotli >= 1.2) is what bounds a brotli bomb; without it, no br.
    return brotli if hasattr(brotli.Decompressor(), "can_accept_more_data") else None


_ZSTD = _zstd_module()
_BROTLI = _brotli_module()
# What a corrupt body raises, per codec.
_CODEC_ERRORS: tuple[type[BaseException], ...] = (
    zlib.error,
    EOFError,
    ValueError,
    *([_BROTLI.error] if _BROTLI is not None else []),
    *([_ZSTD.ZstdError] if _ZSTD is not None else []),
)

ACCEPT_ENCODING = ", ".join(
    ["gzip", "deflate", *(["br"] if _BROTLI is not None else []), *(["zstd"] if _ZSTD is not None else [])]
)
"""What the transports ask for: the codings this module can decode within a bound."""


class _Zlib:
    """gzip (wbits 31), or deflate: zlib (15), falling back to raw deflate (-15) as httpx does."""

    def __init__(self, wbits: int) -> None:
        self._wbits = wbits
        self._z = zlib.decompressobj(wbits)
        self._first = True

    def decode(self, data: bytes, room: int) -> bytes:
        try:
            out = self._z.decompress(data, room + 1)
        except zlib.error:
            if not (self._first and self._wbits == 15):
                raise
            self._wbits = -15
            self._z = zlib.decompressobj(-15)
            out = self._z.decompress(data, room + 1)
        self._first = False
        # Concatenated gzip members (RFC 1952 section 2.2): the next one starts in unused_data.
        while self._z.eof and self._z.unused_data and len(out) <= room:
            rest = self._z.unused_data
            self._z = zlib.decompressobj(self._wbits)
            out += self._z.decompress(rest, room + 1 - len(out))
        return out

    def flush(self, room: int) -> bytes:
        return self._z.flush() if room >= 0 and not self._z.eof else b""


class _Brotli:
    def __init__(self) -> None:
        self._d = _BROTLI.Decompressor()

    def decode(self, data: bytes, room: int) -> bytes:
        out = self._d.process(data, output_buffer_limit=min(room + 1, _STEP))
        # Past the output limit the decoder holds the rest: drain it with empty input.
        while not self._d.can_accept_more_data() and len(out) <= room:
            more = self._d.process(b"", output_buffer_limit=min(room + 1 - len(out), _STEP))
            if not more:
                break
            out += more
        return bytes(out)

    def flush(self, room: int) -> bytes:
        return b""


class _Zstd:
    def __init__(self) -> None:
        self._d = _ZSTD.ZstdDecompressor()

    def decode(self, data: bytes, room: int) -> bytes:
        if self._d.eof:
            if not data:
                return b""
            self._d = _ZSTD.ZstdDecompressor()  # a frame after the last one
        out = self._d.decompress(data, max_length=room + 1)
        # A zstd body may hold several frames: each one ends its decompressor.
        while self._d.eof and self._d.unused_data and len(out) <= room:
            rest = self._d.unused_data
            self._d = _ZSTD.ZstdDecompressor()
            out += self._d.decompress(rest, max_length=room + 1 - len(out))
        return bytes(out)

    def flush(self, room: int) -> bytes:
        return b""


def _decoders(content_encoding: str | None) -> list[Any] | None:
    """The decoders for a ``Content-Encoding`` value, in the order to apply them; None when a
    coding is not one this module decodes (the body is then passed through as is)."""
    if not content_encoding:
        return []
    makers: dict[str, Callable[[], Any]] = {
        "gzip": lambda: _Zlib(31),
        "x-gzip": lambda: _Zlib(31),
        "deflate": lambda: _Zlib(15),
        "identity": lambda: None,
    }
    if _BROTLI is not None:
        makers["br"] = _Brotli
    if _ZSTD is not None:
        makers["zstd"] = _Zstd
    decoders = []
    for coding in reversed(content_encoding.split(",")):
        maker = makers.get(coding.strip().lower())
        if maker is None:
            return None
        decoder = maker()
        if decoder is not None:
            decoders.append(decoder)
    return decoders


def too_large(request: Request, limit: int, what: str) -> ResponseTooLarge:
    """The error for an answer past ``limit`` bytes (``what``: where it was found out)."""
    return ResponseTooLarge(
        f"answer larger than max_response_bytes={limit} ({what}); read stopped, connection closed",
        limit=limit,
        **request.context(),
    )


class BodyReader:
    """Collects one answer's body from raw chunks (``feed``), decoding its content codings as
    they come, never holding more than ``limit`` bytes of either (None: no bound).

    Raises ``ResponseTooLarge`` as soon as the raw or the decoded body passes the bound, and
    ``TransportError`` for a body that does not decode.
    """

    __slots__ = ("_bound", "_chunks", "_decoded", "_decoders", "_limit", "_raw", "_request", "coding")

    def __init__(self, request: Request, content_encoding: str | None, limit: int | None) -> None:
        self._request = request
        self._limit = limit
        self._bound = limit if limit is not None else 1 << 62
        self.coding = content_encoding or ""
        self._decoders = _decoders(content_encoding)
        self._chunks: list[bytes] = []
        self._raw = 0
        self._decoded = 0

    def check_length(self, content_length: int | None) -> None:
        """Refuse at once an answer whose ``Content-Length`` is past the bound."""
        if self._limit is not None and content_length is not None and content_length > self._limit:
            raise too_large(self._request, self._limit, f"Content-Length is {content_length}")

    @property
    def room(self) -> int:
        """Raw bytes that may still come before the bound (a large number when unbounded)."""
        return self._bound - self._raw

    def feed(self, chunk: bytes) -> None:
        """Take the next raw chunk of the body."""
        if not chunk:
            return
        self._raw += len(chunk)
        self._check(self._raw, "on the wire")
        decoders = self._decoders  # none: identity, or a coding passed through as is
        self._emit(self._decode(chunk, decoders, final=False) if decoders else chunk)

    def _decode(self, data: bytes, decoders: list[Any], *, final: bool) -> bytes:
        room = self._bound - self._decoded
        try:
            for decoder in decoders:
                data = decoder.decode(data, room)
                if final:
                    data += decoder.flush(room - len(data))
                if len(data) > room:
                    break
        except _CODEC_ERRORS as exc:
            raise self._undecodable(exc) from exc
        return data

    def _undecodable(self, exc: BaseException) -> TransportError:
        return TransportError(
            f"could not decode the {self.coding} body: {type(exc).__name__}: {exc}", **self._request.context()
        )

    def _emit(self, data: bytes) -> None:
        if not data:
            return
        self._decoded += len(data)
        self._check(self._decoded, f"once decoded from {self.coding}")
        self._chunks.append(data)

    def _check(self, total: int, where: str) -> None:
        if total > self._bound:
            raise too_large(self._request, self._bound, f"more than {self._bound} bytes {where}")

    def finish(self) -> bytes:
        """The whole decoded body, once every chunk was fed."""
        if self._decoders:
            self._emit(self._decode(b"", self._decoders, final=True))
        chunks = self._chunks
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
