"""Inbox metrics: plain counters on the hot path, percentiles and queue gauges on demand.

``snapshot()`` returns a dict; ``register_prometheus()`` exposes the same figures to
prometheus-client through a custom collector, read only when scraped.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Iterator
from typing import Any

from ..stores.queue import QueueStats

log = logging.getLogger("interlock.inbox")

SLOW_AFTER = 5.0
"""Seed 000: warn when one webhook takes longer than this to process."""
UNKNOWN_SOURCE = "_unknown"
"""The one source label every request to an unconfigured source name is counted under: the
names come from the URL, unauthenticated, and must not each become a label."""
OTHER_SOURCES = "_other"
"""The label of the sources met after ``max_sources`` distinct ones were counted."""
MAX_SOURCES = 100
"""Distinct source labels an ``InboxMetrics`` keeps; later sources count as ``_other``."""


def _percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


class InboxMetrics:
    """What an inbox counts: plain per-source counters bumped by the ASGI app and the workers,
    handler durations over the last ``window`` events, and the latest queue gauges.

    The counters are ``collections.Counter``s read and written directly (``metrics.processed
    ["stripe"]``), keyed by ``label(source)``; ``snapshot()`` sums them up for
    ``Inbox.stats()``. Every label set is bounded: at most ``max_sources`` sources (the first
    ones met; the rest count as ``_other``), requests to unconfigured names all under
    ``_unknown``, and the fixed list of rejection reasons.
    """

    def __init__(self, window: int = 4096, *, max_sources: int = MAX_SOURCES) -> None:
        self.max_sources = max_sources
        self._labels: set[str] = set()
        self.received: Counter[str] = Counter()
        """Accepted (new, durable) events per source."""
        self.duplicates: Counter[str] = Counter()
        self.rejected: Counter[tuple[str, str]] = Counter()
        """(source, reason) -> count; reasons: signature, too_large, unknown_source, malformed,
        method, body_timeout, store_timeout, store_unavailable."""
        self.processed: Counter[str] = Counter()
        self.retries: Counter[str] = Counter()
        self.dead_lettered: Counter[str] = Counter()
        self.unhandled: Counter[str] = Counter()
        self.slow: Counter[str] = Counter()
        self._durations: deque[float] = deque(maxlen=window)
        self.queue_stats: QueueStats | None = None
        """The latest queue gauges (depth, in flight, DLQ size, oldest event), refreshed by the
        workers every few seconds and by ``Inbox.stats()``; ``None`` before the first refresh."""

    def label(self, source: str) -> str:
        """The label to count ``source`` under: itself while fewer than ``max_sources``
        distinct sources were counted (or if it is one of them), ``_other`` after that."""
        labels = self._labels
        if source in labels:
            return source
        if len(labels) < self.max_sources:
            labels.add(source)
            return source
        return OTHER_SOURCES

    def observe(self, seconds: float) -> None:
        """Record one delivery's handler time."""
        self._durations.append(seconds)

    def processing_percentiles(self) -> dict[str, float | None]:
        """p50, p95 and p99 of the recent handler times (``None`` before the first event)."""
        values = sorted(self._durations)
        return {
            "p50": _percentile(values, 0.50),
            "p95": _percentile(values, 0.95),
            "p99": _percentile(values, 0.99),
        }

    def snapshot(self, stats: QueueStats | None = None, now: float | None = None) -> dict[str, Any]:
        """Totals over all sources, the percentiles and, given ``stats``, the queue gauges
        (the oldest event's age measured at wall-clock ``now``)."""
        rejected: dict[str, int] = Counter()
        for (_, reason), n in self.rejected.items():
            rejected[reason] += n
        snap: dict[str, Any] = {
            "received": sum(self.received.values()),
            "duplicates": sum(self.duplicates.values()),
            "rejected": dict(rejected),
            "processed": sum(self.processed.values()),
            "retries": sum(self.retries.values()),
            "dead_lettered": sum(self.dead_lettered.values()),
            "unhandled": sum(self.unhandled.values()),
            "slow": sum(self.slow.values()),
            "processing_seconds": self.processing_percentiles(),
        }
        if stats is not None:
            snap["queue_depth"] = stats.pending
            snap["in_flight"] = stats.in_flight
            snap["dlq_size"] = stats.dead
            snap["oldest_event_age"] = (
                None if stats.oldest_pending_at is None or now is None else max(0.0, now - stats.oldest_pending_at)
            )
        return snap

    def prometheus_metrics(self, stats: QueueStats | None, now: float) -> Iterator[Any]:
        """The same figures as prometheus-client metric families, per source, for a collector."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily

        def counter(name: str, doc: str, values: Counter[str]) -> Any:
            family = CounterMetricFamily(name, doc, labels=["source"])
            for source, n in sorted(values.items()):
                family.add_metric([source], n)
            return family

        yield counter("interlock_webhooks_received", "Webhooks accepted and stored", self.received)
        yield counter("interlock_webhooks_duplicates", "Duplicate deliveries acknowledged", self.duplicates)
        rejected = CounterMetricFamily(
            "interlock_webhooks_rejected", "Webhooks refused, by reason", labels=["source", "reason"]
        )
        for (source, reason), n in sorted(self.rejected.items()):
            rejected.add_metric([source, reason], n)
        yield rejected
        yield counter("interlock_webhooks_processed", "Events handled successfully", self.processed)
        yield counter("interlock_webhooks_retries", "Failed attempts scheduled again", self.retries)
        yield counter("interlock_webhooks_dead_lettered", "Events moved to the DLQ", self.dead_lettered)
        values = sorted(self._durations)
        summary = SummaryMetricFamily(
            "interlock_webhook_processing_seconds", "Handler time (recent window)",
            count_value=len(values), sum_value=sum(values),
        )
        yield summary
        for q in (0.5, 0.95, 0.99):
            g = GaugeMetricFamily(
                f"interlock_webhook_processing_seconds_p{int(q * 100)}", f"Handler time p{int(q * 100)}"
            )
            g.add_metric([], _percentile(values, q) or 0.0)
            yield g
        if stats is not None:
            for name, doc, value in (
                ("interlock_webhook_queue_depth", "Events not yet processed", stats.pending),
                ("interlock_webhook_in_flight", "Events leased by a worker", stats.in_flight),
                ("interlock_webhook_dlq_size", "Events in the dead-letter queue", stats.dead),
                (
                    "interlock_webhook_oldest_age_seconds",
                    "Age of the oldest unprocessed event",
                    0.0 if stats.oldest_pending_at is None else max(0.0, now - stats.oldest_pending_at),
                ),
            ):
                g = GaugeMetricFamily(name, doc)
                g.add_metric([], value)
                yield g
