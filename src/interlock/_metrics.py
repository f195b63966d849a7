"""Interlock's metrics, on one Prometheus registry of its own (``REGISTRY``), so the service can
expose them at ``/metrics`` and embedders can add them to theirs. Quantiles (p50/p95/p99) for
dashboards are estimated from histogram buckets, as Prometheus' ``histogram_quantile`` does."""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)

LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)

CLIENT_REQUESTS = Counter(
    "interlock_client_requests",
    "Outbound calls by final outcome (status class or error kind).",
    ["upstream", "route", "method", "outcome"],
    registry=REGISTRY,
)
CLIENT_LATENCY = Histogram(
    "interlock_client_request_duration_seconds",
    "Outbound call duration, all attempts included.",
    ["upstream", "route"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
CLIENT_RETRIES = Counter(
    "interlock_client_retries",
    "Retries sent after a failed attempt.",
    ["upstream", "route"],
    registry=REGISTRY,
)
CLIENT_IN_FLIGHT = Gauge(
    "interlock_client_in_flight", "Attempts on the wire.", ["upstream"], registry=REGISTRY
)
CLIENT_BREAKER_STATE = Gauge(
    "interlock_client_breaker_state",
    "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
    ["upstream"],
    registry=REGISTRY,
)


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
    buckets: dict[float, float] = {}
    for metric in REGISTRY.collect():
        if metric.name != "interlock_client_request_duration_seconds":
            continue
        for sample in metric.samples:
            if not sample.name.endswith("_bucket") or sample.labels.get("upstream") != upstream:
                continue
            if route is not None and sample.labels.get("route") != route:
                continue
            bound = float(sample.labels["le"])
            buckets[bound] = buckets.get(bound, 0.0) + sample.value
    bounds = sorted(buckets)
    counts = [buckets[b] for b in bounds]
    return {f"p{int(q * 100)}": histogram_quantile(q, bounds, counts) for q in (0.5, 0.95, 0.99)}
