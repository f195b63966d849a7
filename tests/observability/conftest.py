"""Tracing fixtures: the OpenTelemetry SDK's in-memory exporter behind the global tracer
provider (set once per process, as the SDK allows), tracing switched on only for the tests that
ask for ``spans`` (``interlock._otel.disable()`` after each, so other tests see no spans)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from interlock import _otel

_EXPORTER = InMemorySpanExporter()
_PROVIDER: TracerProvider | None = None


class Spans:
    """The finished spans of one test."""

    def __init__(self, exporter: InMemorySpanExporter) -> None:
        self.exporter = exporter

    def all(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, prefix: str) -> list[ReadableSpan]:
        return [s for s in self.all() if s.name.startswith(prefix)]

    def one(self, prefix: str) -> ReadableSpan:
        found = self.named(prefix)
        assert len(found) == 1, [s.name for s in self.all()]
        return found[0]


@pytest.fixture
def spans() -> Iterator[Spans]:
    global _PROVIDER
    if _PROVIDER is None:
        _PROVIDER = TracerProvider()
        _PROVIDER.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(_PROVIDER)
    assert trace.get_tracer_provider() is _PROVIDER, "another test set a tracer provider"
    _EXPORTER.clear()
    _otel.enable()
    try:
        yield Spans(_EXPORTER)
    finally:
        _otel.disable()
        _EXPORTER.clear()


@pytest.fixture(autouse=True)
def _tracing_off_by_default() -> None:
    _otel.disable()


class Upstream:
    """A real HTTP server on loopback standing in for a third party: answers each request with
    the next status of ``script`` (then 200), and keeps the headers it received."""

    def __init__(self) -> None:
        self.script: list[int] = []
        self.seen: list[dict[str, str]] = []
        self.url = ""
        self._runner: Any = None

    async def start(self) -> Upstream:
        from aiohttp import web

        async def handle(request: web.Request) -> web.Response:
            self.seen.append(dict(request.headers))
            status = self.script.pop(0) if self.script else 200
            return web.json_response(
                {"ok": status < 400, "path": request.path},
                status=status,
                headers={"X-Request-Id": f"up-{len(self.seen)}"},
            )

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        await self._runner.cleanup()


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    server = await Upstream().start()
    try:
        yield server
    finally:
        await server.stop()
