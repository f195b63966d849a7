"""Helpers for testing code that uses Interlock.

- ``MockTransport(handler)`` (with ``respond``): a Client whose upstream is a function of the
  request; every policy still runs.
- ``set_testing(True, attempts=...)``: testing mode for every client, no waits between
  attempts and few attempts, so code that retries finishes at once (also a context manager).
- ``FakeClock``: time that moves only when told to, for ``clock=`` arguments.
- ``temporary_schema``: a throwaway PostgreSQL schema.
- ``TcpProxy``: a loopback TCP proxy in front of a server, to freeze or cut in fault tests.

The simulated third-party API for end-to-end tests is ``interlock.testbed``.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

from .client.policies.retry import is_testing, set_testing
from .client.transports import MockTransport, Responder, respond

__all__ = [
    "FakeClock",
    "MockTransport",
    "Responder",
    "TcpProxy",
    "is_testing",
    "respond",
    "set_testing",
    "temporary_schema",
]


class FakeClock:
    """A clock that only moves when told to. ``sleep`` advances it instantly."""

    def __init__(self, start: float = 1_000.0, wall: float = 1_700_000_000.0) -> None:
        self._now = start
        self._wall_offset = wall - start
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        """The fake monotonic time, in seconds."""
        return self._now

    def time(self) -> float:
        """The fake wall-clock time (epoch seconds), moving with ``monotonic``."""
        return self._now + self._wall_offset

    def advance(self, seconds: float) -> None:
        """Move both clocks forward by ``seconds``."""
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        self._now += seconds

    async def sleep(self, seconds: float) -> None:
        """Record the sleep in ``sleeps``, advance the clock by it and yield once."""
        self.sleeps.append(seconds)
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"FakeClock(monotonic={self._now:.3f})"


@asynccontextmanager
async def temporary_schema(dsn: str, prefix: str = "itest") -> AsyncIterator[str]:
    """A fresh PostgreSQL schema for one test (``prefix_<random>``), dropped with all it holds
    afterwards, so test runs never see each other's tables. Needs ``interlock[postgres]``."""
    import asyncpg

    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
    finally:
        await conn.close()
    try:
        yield schema
    finally:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()


class TcpProxy:
    """A loopback TCP proxy between a client under test and a server, for fault tests.

    It forwards bytes both ways until told otherwise: ``freeze()`` stops forwarding (connections
    stay open and new ones are accepted, as with a server that hangs), ``thaw()`` resumes;
    ``cut()`` drops every connection and closes each new one at once (as a server that
    restarts), ``restore()`` lets them through again. The proxy runs its own event loop in a
    thread, so it keeps its word whatever the loop of the code under test is doing::

        with TcpProxy("127.0.0.1", 5432) as proxy:
            queue = PostgresQueue(proxy.url("postgresql://postgres@127.0.0.1:5432/test"))
            ...
            proxy.freeze()

    Freeze or cut a proxy, never a server other tests share.
    """

    def __init__(self, upstream_host: str, upstream_port: int, *, host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.host = host
        self.port = 0
        """The port the proxy listens on (known once started)."""
        self.accepted = 0
        """Connections accepted so far."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._flowing: asyncio.Event | None = None
        self._cut = False
        self._open: set[asyncio.StreamWriter] = set()

    def start(self) -> TcpProxy:
        """Listen on a free port of ``host`` and start forwarding; returns the proxy."""
        if self._thread is not None:
            return self
        ready = threading.Event()
        loop = asyncio.new_event_loop()
        self._loop = loop

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self._listen())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name=f"interlock-tcp-proxy:{self.upstream[1]}", daemon=True)
        self._thread.start()
        ready.wait()
        return self

    async def _listen(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self._cut:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self._open.update((writer, up_writer))
        await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
        self._open.difference_update((writer, up_writer))

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._flowing is not None
        try:
            while data := await reader.read(65536):
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.transport.abort()

    def url(self, url: str) -> str:
        """``url`` (a PostgreSQL DSN, a ``redis://`` URL...) with its host and port replaced by
        the proxy's, so a client given it connects through the proxy."""
        parts = urlsplit(url)
        user, _, _ = parts.netloc.rpartition("@")
        here = f"{self.host}:{self.port}"
        return urlunsplit(parts._replace(netloc=f"{user}@{here}" if user else here))

    def _call(self, fn: Callable[[], None]) -> None:
        if self._loop is None:
            raise RuntimeError("the proxy is not started: call start() or use it as a context manager")

        async def run() -> None:
            fn()

        asyncio.run_coroutine_threadsafe(run(), self._loop).result()

    def freeze(self) -> None:
        """Stop forwarding bytes (both ways, on every connection, new ones too) until ``thaw()``."""
        self._call(lambda: self._flowing.clear() if self._flowing else None)

    def thaw(self) -> None:
        """Forward again, the held bytes first."""
        self._call(lambda: self._flowing.set() if self._flowing else None)

    def cut(self) -> None:
        """Drop every open connection (a reset) and close new ones at once until ``restore()``."""

        def cut() -> None:
            self._cut = True
            for writer in list(self._open):
                writer.transport.abort()
            self._open.clear()

        self._call(cut)

    def restore(self) -> None:
        """Let new connections through again after ``cut()``."""

        def restore() -> None:
            self._cut = False

        self._call(restore)

    def close(self) -> None:
        """Drop every connection, stop listening and stop the proxy's thread."""
        if self._loop is None or self._thread is None:
            return
        self.cut()
        self.thaw()

        async def stop() -> None:
            if self._server is not None:
                self._server.close()
                await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop = self._thread = None

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "cut" if self._cut else "frozen" if self._flowing is not None and not self._flowing.is_set() else "flowing"
        return f"TcpProxy({self.host}:{self.port} -> {self.upstream[0]}:{self.upstream[1]}, {state})"
