"""The two wires: one connection of a server-sent events stream or of a WebSocket, read as
``Received`` events and signs of life. I/O only; the decisions are in ``core.sse`` and
``core.reconnect``, the commit and the resume position in ``Subscription``."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from ..core.sse import Comment, SSEEvent, SSEParser
from ._stream import EventStream

__all__ = ["Alive", "Opened", "Received", "RetryHint", "StreamRefused", "read_sse", "read_websocket"]

_READ = 65536


class StreamRefused(Exception):
    """The upstream answered the stream request with something else than a stream."""


@dataclass(frozen=True, slots=True)
class Received:
    """One event off the wire."""

    key: str
    """Its dedupe id (the Inbox's delivery id)."""
    position: str | None
    """The id to resume after once it is committed (None: the event has no id to resume by)."""
    type: str
    body: bytes


@dataclass(frozen=True, slots=True)
class Opened:
    """The connection is open and the upstream accepted it as a stream."""


@dataclass(frozen=True, slots=True)
class Alive:
    """A keep-alive comment or a pong: no event, but the stream is current."""


@dataclass(frozen=True, slots=True)
class RetryHint:
    """The upstream's ``retry:`` field, in milliseconds."""

    milliseconds: int


Item = Received | Opened | Alive | RetryHint
Deadline = Callable[[], float]
"""Seconds left before the connection counts as stalled (read before each wait)."""


async def _authorize(client: Any, request: Any, within: float) -> Any:
    """Put the Client's credentials (``Client(auth=...)``: a Bearer, an API key, an OAuth2
    token fetched and shared as for its calls) on the stream's request; what was used, for a
    refresh after a 401."""
    auth = client.auth
    if auth is None:
        return None
    request.deadline = asyncio.get_running_loop().time() + within if request.deadline is None else request.deadline
    return await auth.credentials.apply(request)


def _no_id_key() -> str:
    # An event with no id at all cannot be recognised when sent again: a fresh key each time.
    return "noid-" + os.urandom(10).hex()


async def read_sse(
    session: aiohttp.ClientSession, stream: EventStream, last_id: str | None, remaining: Deadline
) -> AsyncIterator[Item]:
    """Open ``GET path`` with ``Last-Event-ID: last_id`` and yield what arrives, until the
    stream ends (return), fails (aiohttp's errors) or stalls (``TimeoutError``)."""
    client = stream.client
    headers = {**stream.headers, "Accept": "text/event-stream", "Cache-Control": "no-cache"}
    if last_id:
        headers["Last-Event-ID"] = last_id  # WHATWG HTML 9.2.4: the last event ID string
    request = client.build_request("GET", stream.path, params=stream.params, headers=headers)
    used = await _authorize(client, request, stream.policy.connect_timeout)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=stream.policy.connect_timeout)
    try:
        async with asyncio.timeout(stream.policy.connect_timeout):
            response = await session.get(
                request.url, params=request.params or None, headers=request.headers, timeout=timeout,
                allow_redirects=False,
            )
    except TimeoutError:  # not a stall: the connection never opened
        raise ConnectionError(f"no answer within {stream.policy.connect_timeout:g} s") from None
    async with response:
        content_type = response.headers.get("Content-Type", "")
        if response.status == 401 and client.auth is not None:
            # Stale credentials: new ones for the next connection (the reconnect backoff applies).
            await client.auth.credentials.refresh(request, used)
        if response.status != 200 or not content_type.lower().startswith("text/event-stream"):
            raise StreamRefused(f"answered {response.status} {content_type or '(no Content-Type)'}, not an event stream")
        parser = SSEParser(last_event_id=last_id or "", max_event_bytes=stream.max_event_bytes)
        retry = None
        yield Opened()  # the stream is open: its stall clock starts now
        while True:
            async with asyncio.timeout(remaining()):
                chunk = await response.content.readany()
            if not chunk:
                return  # the upstream closed the stream: a partial event is discarded (spec)
            yield Alive()
            for item in parser.feed(chunk):
                if isinstance(item, SSEEvent):
                    if item.id:
                        yield Received(item.key, item.id, item.type, item.data.encode())
                    else:
                        yield Received(_no_id_key(), None, item.type, item.data.encode())
                elif isinstance(item, Comment):
                    pass  # a keep-alive: already counted as a sign of life above
            if parser.retry is not None and parser.retry != retry:
                retry = parser.retry
                yield RetryHint(retry)


async def read_websocket(
    session: aiohttp.ClientSession, stream: EventStream, last_id: str | None, remaining: Deadline
) -> AsyncIterator[Item]:
    """Connect, send the resume message, then yield each JSON text message as an event; our
    own pings every ``heartbeat`` s, answered pongs as signs of life. A silent connection past
    the stall deadline raises ``TimeoutError``; the generator's close sends a clean close."""
    client = stream.client
    request = client.build_request("GET", stream.path, params=stream.params, headers=dict(stream.headers))
    used = await _authorize(client, request, stream.policy.connect_timeout)
    url = "ws" + request.url.removeprefix("http")
    try:
        async with asyncio.timeout(stream.policy.connect_timeout):
            ws = await session.ws_connect(
                url, params=request.params or None, headers=request.headers, autoping=False,
                max_msg_size=stream.max_event_bytes,
            )
    except TimeoutError:  # not a stall: the connection never opened
        raise ConnectionError(f"no answer within {stream.policy.connect_timeout:g} s") from None
    except aiohttp.WSServerHandshakeError as exc:
        if exc.status == 401 and client.auth is not None:
            await client.auth.credentials.refresh(request, used)
        raise
    pinger = asyncio.ensure_future(_ping(ws, stream.heartbeat))
    try:
        first = stream.resume_message(last_id)
        if first is not None:
            await ws.send_str(first)
        yield Opened()
        while True:
            msg = await ws.receive(timeout=max(0.0, remaining()))
            if msg.type == aiohttp.WSMsgType.TEXT:
                yield Alive()
                yield _ws_event(stream, msg.data)
            elif msg.type == aiohttp.WSMsgType.BINARY:
                yield Alive()
                yield _ws_event(stream, msg.data.decode("utf-8", errors="replace"))
            elif msg.type == aiohttp.WSMsgType.PING:
                yield Alive()
                await ws.pong(msg.data)
            elif msg.type == aiohttp.WSMsgType.PONG:
                yield Alive()
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                return
            elif msg.type == aiohttp.WSMsgType.ERROR:
                raise ConnectionError(f"websocket error: {ws.exception()!r}")
    finally:
        pinger.cancel()
        # A clean close (RFC 6455 section 7.1.2: 1000 normal closure), bounded: a dead peer
        # must not hold the reconnection up.
        try:
            async with asyncio.timeout(2.0):
                await ws.close()
        except (TimeoutError, aiohttp.ClientError, OSError):
            pass


async def _ping(ws: aiohttp.ClientWebSocketResponse, every: float) -> None:
    try:
        while not ws.closed:
            await asyncio.sleep(every)
            await ws.ping()
    except (aiohttp.ClientError, OSError, RuntimeError, ConnectionError):
        return


def _ws_event(stream: EventStream, text: str) -> Received:
    try:
        doc: Any = json.loads(text)
    except ValueError:
        doc = None
    found = stream.id_field.find(doc) if isinstance(doc, dict) else None
    event_id = None if found is None or isinstance(found, dict | list) else str(found)
    kind = stream.type_field.find(doc) if isinstance(doc, dict) else None
    body = text.encode()
    if not event_id:
        return Received(_no_id_key(), None, str(kind or "message"), body)
    return Received(event_id, event_id, str(kind or "message"), body)
