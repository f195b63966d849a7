"""The testbed's event streams: its change feed as server-sent events and over a WebSocket.

- ``GET /events``: ``text/event-stream`` (WHATWG HTML 9.2). Each change is ``id: <seq>``,
  ``event: <kind>.<op>``, ``data: <json>``; a ``: keep-alive`` comment every ``keepalive``
  seconds; ``retry: <ms>`` first when ``retry_ms`` is set. The ``Last-Event-ID`` header (or
  ``?after=``) resumes after that change, unless ``ignore_last_event_id`` (a server that
  replays from the start). ``multiline`` spreads each JSON document over several ``data:``
  lines.
- ``GET /ws``: the client sends ``{"type": "subscribe", "after": <id or null>}`` first; each
  change comes as one JSON text message ``{"id", "type", "at", "data"}``. Pings are answered
  by hand, so a stall also stops the pongs.

Faults, for tests: ``drop()`` cuts every open stream now, after half an event (a TCP reset
mid-event); ``drop_every`` cuts each connection after that many events; ``stall(seconds)``
makes the open streams send nothing, not even keep-alives or pongs, for that long.
Streams obey the testbed's outage (refused with its status) and count as requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from ..errors import ConfigError
from ._feed import Change, ChangeFeed

__all__ = ["StreamControl", "StreamServer"]


@dataclass(slots=True)
class StreamControl:
    """How the streams behave; change it live (``Testbed.streams.control``)."""

    keepalive: float = 15.0
    """Seconds between keep-alive comments (SSE)."""
    retry_ms: int | None = None
    """Sent as ``retry:`` when a connection opens (SSE)."""
    ignore_last_event_id: bool = False
    """Replay from the start whatever ``Last-Event-ID`` (or ``after``) says."""
    drop_every: int | None = None
    """Cut each connection mid-event after this many events (None: never)."""
    multiline: bool = False
    """Each event's JSON over several ``data:`` lines (SSE)."""

    LIVE: frozenset[str] = field(
        default=frozenset({"keepalive", "retry_ms", "ignore_last_event_id", "drop_every", "multiline"}), repr=False
    )


class _Conn:
    __slots__ = ("cut", "request", "sent")

    def __init__(self, request: web.BaseRequest) -> None:
        self.request = request
        self.cut = asyncio.Event()
        self.sent = 0


class StreamServer:
    """Serves the change feed as SSE and WebSocket streams, and applies the stream faults."""

    def __init__(self, feed: ChangeFeed) -> None:
        self.feed = feed
        self.control = StreamControl()
        self.connections = 0
        """Stream connections opened (both kinds)."""
        self.resumed_from: list[str | None] = []
        """What each connection asked to resume after (``Last-Event-ID`` or ``after``), in order."""
        self.events_sent = 0
        self._open: set[_Conn] = set()
        self._stalled_until = 0.0

    # -- control ---------------------------------------------------------------------------

    def configure(self, **changes: Any) -> StreamControl:
        """Change ``StreamControl`` fields live; ``ConfigError`` for an unknown one."""
        for name, value in changes.items():
            if name not in self.control.LIVE:
                raise ConfigError("Testbed.streams", name, f"unknown; live: {', '.join(sorted(self.control.LIVE))}")
            setattr(self.control, name, value)
        return self.control

    def drop(self) -> int:
        """Cut every open stream now, mid-event; how many were open."""
        for conn in self._open:
            conn.cut.set()
        return len(self._open)

    def stall(self, seconds: float) -> None:
        """Send nothing on any stream (events, keep-alives, pongs) for ``seconds``."""
        self._stalled_until = time.monotonic() + seconds

    @property
    def open_streams(self) -> int:
        """Connections open now."""
        return len(self._open)

    def _stalled(self) -> float:
        return max(0.0, self._stalled_until - time.monotonic())

    def _start(self, request: web.BaseRequest, after: str | None) -> tuple[_Conn, int]:
        self.connections += 1
        self.resumed_from.append(after)
        seq = 0
        if after and not self.control.ignore_last_event_id:
            try:
                seq = max(0, int(after))
            except ValueError:
                seq = 0  # an id this server never sent: from the start, as a real one might
        conn = _Conn(request)
        self._open.add(conn)
        return conn, seq

    def _due_cut(self, conn: _Conn) -> bool:
        every = self.control.drop_every
        return conn.cut.is_set() or (every is not None and conn.sent >= every)

    # -- SSE -------------------------------------------------------------------------------

    async def sse(self, request: web.BaseRequest) -> web.StreamResponse | None:
        """Answer ``GET /events``; None when the connection was cut (aborted)."""
        after = request.headers.get("Last-Event-ID") or request.query.get("after")
        conn, seq = self._start(request, after)
        control = self.control
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-store"}
        )
        try:
            await response.prepare(request)
            if control.retry_ms is not None:
                await response.write(f"retry: {control.retry_ms}\n\n".encode())
            while True:
                if self._due_cut(conn):
                    await self._cut(request, response, conn, seq)
                    return None
                if (rest := self._stalled()) > 0:
                    await asyncio.wait([asyncio.ensure_future(conn.cut.wait())], timeout=rest)
                    continue
                changes = self.feed.after(seq, limit=100)
                if not changes:
                    waited = asyncio.ensure_future(self.feed.wait(seq, control.keepalive))
                    cut = asyncio.ensure_future(conn.cut.wait())
                    done, _ = await asyncio.wait([waited, cut], return_when=asyncio.FIRST_COMPLETED)
                    for task in (waited, cut):
                        task.cancel()
                    if waited in done and not waited.cancelled() and not waited.result() and not self._stalled():
                        await response.write(b": keep-alive\n\n")
                    continue
                for change in changes:
                    if self._due_cut(conn) or self._stalled():
                        break
                    await response.write(self._sse_event(change))
                    seq = change.seq
                    conn.sent += 1
                    self.events_sent += 1
        except (ConnectionResetError, asyncio.CancelledError):
            return None
        finally:
            self._open.discard(conn)

    def _sse_event(self, change: Change) -> bytes:
        doc = change.to_dict()
        text = json.dumps(doc, indent=1) if self.control.multiline else json.dumps(doc, separators=(",", ":"))
        data = "".join(f"data: {line}\n" for line in text.split("\n"))
        return f"id: {change.seq}\nevent: {change.type}\n{data}\n".encode()

    async def _cut(self, request: web.BaseRequest, response: web.StreamResponse, conn: _Conn, seq: int) -> None:
        # Half of the next event, then a reset: the consumer must not commit a partial event.
        pending = self.feed.after(seq, limit=1)
        if pending:
            with contextlib.suppress(ConnectionError):
                await response.write(self._sse_event(pending[0])[:20])
        _abort(request)
        self._open.discard(conn)

    # -- WebSocket -------------------------------------------------------------------------

    async def websocket(self, request: web.BaseRequest) -> web.StreamResponse | None:
        """Answer ``GET /ws`` (an upgrade)."""
        ws = web.WebSocketResponse(autoping=False, max_msg_size=65536)
        await ws.prepare(request)
        try:
            first = await ws.receive(timeout=10)
        except TimeoutError:
            await ws.close(code=1008, message=b"expected a subscribe message")
            return ws
        after: str | None = None
        try:
            hello = json.loads(first.data) if first.type == WSMsgType.TEXT else None
        except ValueError:
            hello = None
        if not isinstance(hello, dict) or hello.get("type") != "subscribe":
            await ws.close(code=1008, message=b'the first message must be {"type": "subscribe", "after": ...}')
            return ws
        if hello.get("after") is not None:
            after = str(hello["after"])
        conn, seq = self._start(request, after)
        reader = asyncio.ensure_future(self._ws_reader(ws, conn))
        try:
            while not ws.closed:
                if self._due_cut(conn):
                    _abort(request)
                    return None
                if (rest := self._stalled()) > 0:
                    await asyncio.wait([asyncio.ensure_future(conn.cut.wait())], timeout=rest)
                    continue
                changes = self.feed.after(seq, limit=100)
                if not changes:
                    waited = asyncio.ensure_future(self.feed.wait(seq, self.control.keepalive))
                    cut = asyncio.ensure_future(conn.cut.wait())
                    await asyncio.wait([waited, cut, reader], return_when=asyncio.FIRST_COMPLETED)
                    for task in (waited, cut):
                        task.cancel()
                    if reader.done():
                        break
                    continue
                for change in changes:
                    if self._due_cut(conn) or self._stalled():
                        break
                    await ws.send_str(json.dumps(change.to_dict(), separators=(",", ":")))
                    seq = change.seq
                    conn.sent += 1
                    self.events_sent += 1
        except (ConnectionResetError, asyncio.CancelledError):
            return None
        finally:
            reader.cancel()
            self._open.discard(conn)
        return ws

    async def _ws_reader(self, ws: web.WebSocketResponse, conn: _Conn) -> None:
        async for msg in ws:
            if msg.type == WSMsgType.PING:
                rest = self._stalled()
                if rest > 0:  # a stalled server answers nothing, not even pings
                    await asyncio.sleep(rest)
                await ws.pong(msg.data)
            elif msg.type == WSMsgType.CLOSE:
                break

    def __repr__(self) -> str:
        return f"StreamServer(open={len(self._open)}, connections={self.connections}, sent={self.events_sent})"


def _abort(request: web.BaseRequest) -> None:
    from ._app import _abort as abort  # the one reset helper (SO_LINGER 0, then abort)

    abort(request)
