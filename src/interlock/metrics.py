"""Interlock's metrics, public: the Prometheus registry and helpers for dashboards.

::

    from prometheus_client import start_http_server
    start_http_server(9100, registry=interlock.metrics.REGISTRY)

or ``interlock.metrics.render()`` for the text exposition in your own ``/metrics`` route.
"""

from __future__ import annotations

from ._metrics import REGISTRY, latency_quantiles, render

__all__ = ["REGISTRY", "latency_quantiles", "render"]
