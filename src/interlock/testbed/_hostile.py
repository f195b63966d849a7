"""The hostile upstream: endpoints under ``/_testbed/hostile/`` that answer as a broken or
malicious API would, for the client's hardening tests. Never subject to faults or quotas.

- ``GET bomb?coding=gzip|br|zstd&mib=N``: N MiB of zeros (default 512), compressed to a body
  of about 0.5 MB (gzip), 16 KB (zstd) or 1 KB (br), with ``Content-Encoding``. Built without
  ever holding the inflated body (gzip: one deflate block, flushed full, repeated).
- ``GET large?bytes=N&chunked=0|1``: N bytes of ``x``, with ``Content-Length`` or chunked.
- ``GET trickle?bytes=N&interval=S``: N bytes, one every S seconds (``Content-Length`` N).
- ``GET corrupt?coding=gzip``: a body that claims a coding and is not in it.
- ``GET charset?charset=X``: ``text/plain; charset=X`` with a UTF-8 body.
- ``GET headers?bytes=N``: an ``X-Junk`` header N bytes long (past what clients parse).
- ``* redirect?to=URL&status=307``: that redirect (any method); the body is read first.
- ``* echo``: what arrived, as JSON: method, path, query, headers (every one, as sent), body.
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import zlib
from functools import cache

from aiohttp import web

__all__ = ["HOSTILE_PREFIX", "handle_hostile"]

HOSTILE_PREFIX = "/_testbed/hostile/"
_MIB = 1 << 20
_MAX_MIB = 4096
_MAX_BYTES = 1 << 30


def _int(request: web.BaseRequest, name: str, default: int, maximum: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) > maximum:
        raise web.HTTPBadRequest(text=f"{name} must be an integer in 0..{maximum}, got {raw!r}")
    return int(raw)


@cache
def _gzip_bomb(mib: int) -> bytes:
    # A full flush resets the compressor, so every further MiB of zeros compresses to the same
    # bytes: compress two, repeat the second, and write the gzip header and trailer by hand.
    zeros = bytes(_MIB)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)
    block = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(mib):
        crc = zlib.crc32(zeros, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # RFC 1952: deflate, no name, no mtime
    trailer = struct.pack("<II", crc, (mib * _MIB) & 0xFFFFFFFF)
    body = first + block * (mib - 1) if mib else b""
    return header + body + deflate.flush(zlib.Z_FINISH) + trailer


@cache
def _br_bomb(mib: int) -> bytes:
    import brotli

    compressor = brotli.Compressor(quality=4)
    zeros = bytes(_MIB)
    body: bytes = b"".join(compressor.process(zeros) for _ in range(mib)) + compressor.finish()
    return body


@cache
def _zstd_bomb(mib: int) -> bytes:
    import zstandard

    compressor = zstandard.ZstdCompressor(level=3).compressobj()
    zeros = bytes(_MIB)
    return b"".join(compressor.compress(zeros) for _ in range(mib)) + compressor.flush()


_BOMBS = {"gzip": _gzip_bomb, "br": _br_bomb, "zstd": _zstd_bomb}


async def handle_hostile(request: web.BaseRequest, name: str) -> web.StreamResponse:
    """Answer one ``/_testbed/hostile/{name}`` request (see the module docstring)."""
    try:
        return await _dispatch(request, name)
    except web.HTTPException as exc:
        return web.Response(status=exc.status, text=exc.text or exc.reason)


async def _dispatch(request: web.BaseRequest, name: str) -> web.StreamResponse:
    if name == "echo":
        return await _echo(request)
    if name == "redirect":
        await request.read()
        to = request.query.get("to")
        status = _int(request, "status", 302, 399)
        if not to or status not in (301, 302, 303, 307, 308):
            raise web.HTTPBadRequest(text="redirect needs to=URL and status=301|302|303|307|308")
        return web.Response(status=status, headers={"Location": to})
    if request.method != "GET":
        raise web.HTTPMethodNotAllowed(request.method, ["GET"])
    if name == "bomb":
        coding = request.query.get("coding", "gzip")
        make = _BOMBS.get(coding)
        if make is None:
            raise web.HTTPBadRequest(text=f"coding must be one of {sorted(_BOMBS)}, got {coding!r}")
        body = await asyncio.to_thread(make, _int(request, "mib", 512, _MAX_MIB))
        headers = {"Content-Encoding": coding, "Content-Type": "application/json"}
        return web.Response(body=body, headers=headers)
    if name == "large":
        size = _int(request, "bytes", _MIB, _MAX_BYTES)
        if request.query.get("chunked") == "1":
            response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
            response.enable_chunked_encoding()
            await response.prepare(request)
            chunk = b"x" * 65536
            sent = 0
            while sent < size:
                piece = chunk[: size - sent]
                await response.write(piece)
                sent += len(piece)
            await response.write_eof()
            return response
        return web.Response(body=b"x" * size, content_type="application/octet-stream")
    if name == "trickle":
        size = _int(request, "bytes", 60, 1 << 20)
        try:
            interval = float(request.query.get("interval", "1"))
        except ValueError:
            raise web.HTTPBadRequest(text="interval must be a number of seconds") from None
        if not 0 <= interval <= 60:
            raise web.HTTPBadRequest(text="interval must be within 0..60 seconds")
        response = web.StreamResponse(headers={"Content-Type": "text/plain", "Content-Length": str(size)})
        await response.prepare(request)
        for _ in range(size):
            await response.write(b".")
            await asyncio.sleep(interval)
        await response.write_eof()
        return response
    if name == "corrupt":
        coding = request.query.get("coding", "gzip")
        return web.Response(body=b"this is not " + coding.encode(), headers={"Content-Encoding": coding})
    if name == "headers":
        size = _int(request, "bytes", 65536, 1 << 24)
        return web.Response(text="{}", headers={"X-Junk": "j" * size})
    if name == "charset":
        charset = request.query.get("charset", "utf-8")
        body = "caf\u00e9 \u2713".encode()
        return web.Response(body=body, headers={"Content-Type": f"text/plain; charset={charset}"})
    raise web.HTTPNotFound(text=f"unknown hostile endpoint {name!r}")


async def _echo(request: web.BaseRequest) -> web.Response:
    raw = await request.read()
    try:
        body: str | None = raw.decode()
        encoding = "utf-8"
    except UnicodeDecodeError:
        body, encoding = base64.b64encode(raw).decode(), "base64"
    seen = {
        "method": request.method,
        "host": request.host,
        "path": request.path,
        "query": request.query_string,
        "headers": [[k, v] for k, v in request.headers.items()],
        "body": body if raw else None,
        "body_encoding": encoding,
    }
    return web.Response(body=json.dumps(seen).encode(), content_type="application/json")
