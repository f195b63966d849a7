"""Interlock's metrics, public: the Prometheus registry and helpers for dashboards.

::

    from prometheus_client import start_http_server
    start_http_server(9100, registry=interlock.metrics.REGISTRY)

or ``interlock.metrics.render()`` for the text exposition in your own ``/metrics`` route,
served with ``Content-Type: interlock.metrics.CONTENT_TYPE``.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST

from . import _metrics
from ._metrics import REGISTRY, latency_quantiles

__all__ = ["CONTENT_TYPE", "REGISTRY", "latency_quantiles", "render"]

CONTENT_TYPE: str = CONTENT_TYPE_LATEST
"""The ``Content-Type`` of ``render()``'s text: Prometheus' text format, version 0.0.4."""


def render() -> str:
    """The Prometheus text exposition of every Interlock metric, as text (``str``), for the
    body of your own ``/metrics`` answer (with ``Content-Type: CONTENT_TYPE``)."""
    return _metrics.render().decode("utf-8")
