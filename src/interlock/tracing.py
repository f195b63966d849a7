"""``interlock.tracing``: Interlock's OpenTelemetry spans, switched on and off.

Interlock traces when the application does: with ``interlock[otel]`` (the API package) and an
SDK tracer provider set (``opentelemetry.trace.set_tracer_provider``), the Client, the Inbox and
Sync make spans; without a provider they make none, and cost one check per call. ``disable()``
turns them off in a traced application (a benchmark, a noisy test); ``enable()`` back on.

What the spans are: ``docs/observability.md`` (one trace from a webhook, through the queue
and the handler, to the outbound calls it makes).
"""

from __future__ import annotations

from . import _otel

__all__ = ["disable", "enable", "enabled"]


def enable() -> None:
    """Make spans again where a tracer provider is set (the default)."""
    _otel.enable()


def disable() -> None:
    """Make no spans, even where a tracer provider is set."""
    _otel.disable()


def enabled() -> bool:
    """Whether Interlock makes spans now: not disabled, the API installed and a provider set."""
    return _otel.tracer() is not None
