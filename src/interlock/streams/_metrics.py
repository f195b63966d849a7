"""Stream metrics: per stream, connected, reconnects, events, duplicates, errors and lag, kept
in plain counters and turned into Prometheus families when ``interlock.metrics.REGISTRY`` is
scraped. Bounded: at most ``MAX_STREAMS`` stream names (later ones share ``_other``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from .._metrics import REGISTRY

__all__ = ["MAX_STREAMS", "StreamStats", "stream_stats"]

MAX_STREAMS = 100
OTHER = "_other"


@dataclass(slots=True)
class StreamStats:
    """One subscription's counters."""

    name: str
    connected: bool = False
    reconnects: int = 0
    events: int = 0
    """Events committed (new ones)."""
    duplicates: int = 0
    """Events received again and dropped by the Inbox's dedupe (replays after a reconnect)."""
    errors: int = 0
    """Connections that failed, were refused, or were closed as stalled."""
    stalls: int = 0
    reconciliations: int = 0
    """Polls triggered because the stream was down too long."""
    lag: Callable[[], float] = field(default=lambda: 0.0, repr=False)
    """Seconds since the stream was last known current, read at scrape time."""


_STREAMS: dict[str, StreamStats] = {}


def stream_stats(name: str) -> StreamStats:
    """Fresh counters for a new subscription to stream ``name``, exported under that name
    (replacing an earlier subscription's: Prometheus reads it as a counter reset), or under
    ``_other`` past ``MAX_STREAMS`` names."""
    stats = StreamStats(name)
    if name in _STREAMS or len(_STREAMS) < MAX_STREAMS:
        _STREAMS[name] = stats
    else:
        _STREAMS[OTHER] = stats
    return stats


class _StreamCollector:
    def collect(self) -> Iterator[Any]:
        connected = GaugeMetricFamily("interlock_stream_connected", "1 while the stream is connected", labels=["stream"])
        lag = GaugeMetricFamily(
            "interlock_stream_lag_seconds", "Seconds since the stream was last known current", labels=["stream"]
        )
        counters = {
            "reconnects": CounterMetricFamily("interlock_stream_reconnects", "Connections reopened", labels=["stream"]),
            "events": CounterMetricFamily("interlock_stream_events", "Events committed to the Inbox", labels=["stream"]),
            "duplicates": CounterMetricFamily(
                "interlock_stream_duplicates", "Events received again and dropped", labels=["stream"]
            ),
            "errors": CounterMetricFamily("interlock_stream_errors", "Failed or stalled connections", labels=["stream"]),
            "reconciliations": CounterMetricFamily(
                "interlock_stream_reconciliations", "Polls triggered by an outage of the stream", labels=["stream"]
            ),
        }
        for name, s in sorted(_STREAMS.items()):
            connected.add_metric([name], 1.0 if s.connected else 0.0)
            lag.add_metric([name], s.lag())
            for attr, family in counters.items():
                family.add_metric([name], getattr(s, attr))
        yield connected
        yield lag
        yield from counters.values()


REGISTRY.register(_StreamCollector())
