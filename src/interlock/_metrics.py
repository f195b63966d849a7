"""Interlock's metrics, on one Prometheus registry of its own (``REGISTRY``), so the service can
expose them at ``/metrics`` and embedders can add them to theirs.

The outbound hot path does not call prometheus-client per request (its locks and label lookups
cost more than the rest of the pipeline): each upstream counts into plain slots of an
``UpstreamStats`` and a collector turns them into metric families when scraped. In-flight
attempts and breaker state are read from the live clients at scrape time. Quantiles
(p50/p95/p99) for dashboards are estimated from histogram buckets, as Prometheus'
``histogram_quantile`` does.
"""

from __future__ import annotations

import math
import weakref
from bisect import bisect_left
from collections.abc import Iterator
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry(auto_describe=True)

LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip


class RouteStats:
    """Counts for one (upstream, route): outcomes, retries and a latency histogram."""

    __slots__ = ("buckets", "count", "outcomes", "retries", "sum")

    def __init__(self) -> None:
        self.outcomes: dict[tuple[str, str], int] = {}
        self.retries = 0
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, method: str, outcome: str, elapsed: float) -> None:
        """Count one finished call: its method, its outcome label and its duration in seconds."""
        key = (method, outcome)
        self.outcomes[key] = self.outcomes.get(key, 0) + 1
        self.buckets[bisect_left(LATENCY_BUCKETS, elapsed)] += 1
        self.sum += elapsed
        self.count += 1


class UpstreamStats:
    """Per-upstream counters, shared by every Client that calls the same upstream name.

    Kept for the life of the process so Prometheus counters never go backwards.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.routes: dict[str, RouteStats] = {}

    def route(self, route: str) -> RouteStats:
        """The counters of ``route`` (a route template), created on first use."""
        stats = self.routes.get(route)
        if stats is None:
            stats = self.routes[route] = RouteStats()
        return stats

    def latency_quantiles(self, route: str | None = None) -> dict[str, float]:
        """p50/p95/p99 in seconds, for one route or all routes merged."""
        chosen = [self.routes[route]] if route in self.routes else [] if route else list(self.routes.values())
        cumulative, running = [], 0.0
        for i in range(len(LATENCY_BUCKETS) + 1):
            running += sum(r.buckets[i] for r in chosen)
            cumulative.append(running)
        bounds = [*LATENCY_BUCKETS, math.inf]
        return {f"p{int(q * 100)}": histogram_quantile(q, bounds, cumulative) for q in (0.5, 0.95, 0.99)}


class LiveClient(Protocol):
    """What the collector reads from a live Client at scrape time."""

    name: str

    def gauges(self) -> dict[str, float]:
        """Current values by name: ``in_flight`` (attempts on the wire), ``breaker_state``."""
        ...


_UPSTREAMS: dict[str, UpstreamStats] = {}
_LIVE_CLIENTS: weakref.WeakSet[Any] = weakref.WeakSet()


def upstream_stats(upstream: str) -> UpstreamStats:
    """The process-wide counters of ``upstream`` (a client's name), created on first use."""
    stats = _UPSTREAMS.get(upstream)
    if stats is None:
        stats = _UPSTREAMS[upstream] = UpstreamStats(upstream)
    return stats


def track_client(client: LiveClient) -> None:
    """Read ``client``'s gauges at every scrape while it lives (held weakly: no leak)."""
    _LIVE_CLIENTS.add(client)


class _ClientCollector(Collector):
    def collect(self) -> Iterator[Any]:
        requests = CounterMetricFamily(
            "interlock_client_requests",
            "Outbound calls by final outcome (status class or error kind).",
            labels=["upstream", "route", "method", "outcome"],
        )
        retries = CounterMetricFamily(
            "interlock_client_retries", "Retries sent after a failed attempt.", labels=["upstream", "route"]
        )
        latency = HistogramMetricFamily(
            "interlock_client_request_duration_seconds",
            "Outbound call duration, all attempts included.",
            labels=["upstream", "route"],
        )
        for upstream, stats in list(_UPSTREAMS.items()):
            for route, rs in list(stats.routes.items()):
                for (method, outcome), n in list(rs.outcomes.items()):
                    requests.add_metric([upstream, route, method, outcome], n)
                retries.add_metric([upstream, route], rs.retries)
                running, buckets = 0, []
                for bound, n in zip([*LATENCY_BUCKETS, math.inf], rs.buckets, strict=True):
                    running += n
                    buckets.append(("+Inf" if math.isinf(bound) else repr(bound), running))
                latency.add_metric([upstream, route], buckets, rs.sum)
        in_flight = GaugeMetricFamily(
            "interlock_client_in_flight", "Attempts on the wire.", labels=["upstream"]
        )
        breaker = GaugeMetricFamily(
            "interlock_client_breaker_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
            labels=["upstream"],
        )
        for client in list(_LIVE_CLIENTS):
            gauges = client.gauges()
            if "in_flight" in gauges:
                in_flight.add_metric([client.name], gauges["in_flight"])
            if "breaker_state" in gauges:
                breaker.add_metric([client.name], gauges["breaker_state"])
        yield from (requests, retries, latency, in_flight, breaker)


REGISTRY.register(_ClientCollector())


def render() -> bytes:
    """The Prometheus text exposition of every Interlock metric."""
    return generate_latest(REGISTRY)


def histogram_quantile(q: float, upper_bounds: list[float], cumulative: list[float]) -> float:
    """Estimate the q-quantile from cumulative bucket counts by linear interpolation."""
    total = cumulative[-1] if cumulative else 0.0
    if total == 0:
        return math.nan
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, count in zip(upper_bounds, cumulative, strict=True):
        if count >= rank:
            if math.isinf(bound):
                return lower
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 0.0)
        lower, below = bound, count
    return lower


def latency_quantiles(upstream: str, route: str | None = None) -> dict[str, float]:
    """p50/p95/p99 (seconds) of calls to ``upstream`` (one route, or all routes merged)."""
    return upstream_stats(upstream).latency_quantiles(route)


# -- work avoided: cache, coalescing, batching, rate limit (issue #3) ---------------------------
# Same approach as above: plain counters on the hot path, metric families built at scrape time.
CACHE_RESULTS = ("hit", "stale", "revalidated", "miss")


class WorkStats:
    """Per-upstream counts of work avoided: cache results, invalidations, coalescing, batching, quota.

    ``cache[route][result]`` with result one of ``CACHE_RESULTS``: hit (fresh), stale (served
    stale), revalidated (a 304 refreshed the entry), miss (fetched in full).
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.cache: dict[str, dict[str, int]] = {}
        self.invalidations: dict[str, int] = {}
        self.coalesced: dict[str, int] = {}
        self.batch_calls: dict[tuple[str, str], int] = {}
        self.batch_members: dict[str, int] = {}
        self.ratelimit_remaining: float | None = None
        self.ratelimit_limit: float | None = None
        self.ratelimit_quota: float | None = None
        """The quota per window as last announced (``X-RateLimit-Limit``): remaining's whole."""
        self.ratelimit_wait = 0.0
        self.ratelimit_throttled = 0
        self.store_errors: dict[str, int] = {}
        """Failed or timed-out operations of a shared store, by store (``cache``, ``quota``)."""

    def cache_result(self, route: str, result: str) -> None:
        """Count one cache lookup on ``route``; ``result`` is one of ``CACHE_RESULTS``."""
        counts = self.cache.get(route)
        if counts is None:
            counts = self.cache[route] = dict.fromkeys(CACHE_RESULTS, 0)
        counts[result] += 1

    def hit_rate(self, route: str | None = None) -> float:
        """Share of cache lookups answered without a full upstream fetch (hit, stale or revalidated).

        NaN before any lookup. Seed 000 wants > 0.9 on cached routes.
        """
        chosen = [self.cache[route]] if route in self.cache else [] if route else list(self.cache.values())
        total = sum(sum(c.values()) for c in chosen)
        misses = sum(c["miss"] for c in chosen)
        return (total - misses) / total if total else math.nan


_WORK: dict[str, WorkStats] = {}


def work_stats(upstream: str) -> WorkStats:
    """The process-wide work-avoided counters of ``upstream``, created on first use."""
    stats = _WORK.get(upstream)
    if stats is None:
        stats = _WORK[upstream] = WorkStats(upstream)
    return stats


def cache_hit_rate(upstream: str, route: str | None = None) -> float:
    """``WorkStats.hit_rate`` of ``upstream``: one route, or all its cached routes merged."""
    return work_stats(upstream).hit_rate(route)


class _WorkCollector(Collector):
    def collect(self) -> Iterator[Any]:
        lookups = CounterMetricFamily(
            "interlock_cache_lookups",
            "Cache lookups on cached routes by result: hit, stale, revalidated, miss.",
            labels=["upstream", "route", "result"],
        )
        ratio = GaugeMetricFamily(
            "interlock_cache_hit_ratio",
            "Share of lookups answered without a full upstream fetch, since start (seed 000: > 0.9).",
            labels=["upstream", "route"],
        )
        invalidations = CounterMetricFamily(
            "interlock_cache_invalidations",
            "Cache entries forgotten on purpose, by how: key, prefix, tag, write.",
            labels=["upstream", "how"],
        )
        coalesced = CounterMetricFamily(
            "interlock_client_coalesced",
            "Calls answered by an identical call already in flight.",
            labels=["upstream", "route"],
        )
        batch_calls = CounterMetricFamily(
            "interlock_batch_calls",
            "List calls made for batched single reads.",
            labels=["upstream", "route", "outcome"],
        )
        batch_members = CounterMetricFamily(
            "interlock_batch_members", "Single reads served through a batch.", labels=["upstream", "route"]
        )
        remaining = GaugeMetricFamily(
            "interlock_ratelimit_remaining",
            "Remaining quota as last announced by the upstream.",
            labels=["upstream"],
        )
        limit = GaugeMetricFamily(
            "interlock_ratelimit_limit",
            "Requests per second allowed (learned or configured).",
            labels=["upstream"],
        )
        headroom = GaugeMetricFamily(
            "interlock_ratelimit_remaining_ratio",
            "Share of the announced quota remaining (remaining / limit); the dashboard warns below 0.3.",
            labels=["upstream"],
        )
        wait = CounterMetricFamily(
            "interlock_ratelimit_wait_seconds", "Time calls waited for their turn.", labels=["upstream"]
        )
        throttled = CounterMetricFamily(
            "interlock_ratelimit_throttled", "429 Too Many Requests answers received.", labels=["upstream"]
        )
        store_errors = CounterMetricFamily(
            "interlock_store_errors",
            "Operations of a shared store (cache, quota) that failed or ran out of time; the call went on without it.",
            labels=["upstream", "store"],
        )
        for upstream, ws in list(_WORK.items()):
            for route, counts in list(ws.cache.items()):
                for result, n in counts.items():
                    lookups.add_metric([upstream, route, result], n)
                ratio.add_metric([upstream, route], ws.hit_rate(route))
            for how, n in list(ws.invalidations.items()):
                invalidations.add_metric([upstream, how], n)
            for route, n in list(ws.coalesced.items()):
                coalesced.add_metric([upstream, route], n)
            for (route, outcome), n in list(ws.batch_calls.items()):
                batch_calls.add_metric([upstream, route, outcome], n)
            for route, n in list(ws.batch_members.items()):
                batch_members.add_metric([upstream, route], n)
            if ws.ratelimit_remaining is not None:
                remaining.add_metric([upstream], ws.ratelimit_remaining)
            if ws.ratelimit_limit is not None:
                limit.add_metric([upstream], ws.ratelimit_limit)
            if ws.ratelimit_remaining is not None and ws.ratelimit_quota:
                headroom.add_metric([upstream], min(1.0, ws.ratelimit_remaining / ws.ratelimit_quota))
            wait.add_metric([upstream], ws.ratelimit_wait)
            throttled.add_metric([upstream], ws.ratelimit_throttled)
            for store, n in list(ws.store_errors.items()):
                store_errors.add_metric([upstream, store], n)
        yield from (lookups, ratio, invalidations, coalesced, batch_calls, batch_members)
        yield from (remaining, limit, headroom, wait, throttled, store_errors)


REGISTRY.register(_WorkCollector())
