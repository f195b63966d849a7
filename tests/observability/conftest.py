"""Tracing fixtures: the OpenTelemetry SDK's in-memory exporter behind the global tracer
provider (set once per process, as the SDK allows), tracing switched on only for the tests that
ask for ``spans`` (``interlock._otel.disable()`` after each, so other tests see no spans)."""

from __future__ import annotations

from collections.abc import Iterator

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
