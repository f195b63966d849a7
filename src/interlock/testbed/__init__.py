"""A simulated third-party HTTP API: the opponent Interlock is tested and benchmarked against.

Resources ``/{kind}`` and ``/{kind}/{id}`` (customers, products, orders by default) with
ETags and 304s (listings too), three pagination styles (and their pathological variants), batch reads by
ids, idempotent writes, compression, injected faults (latency, errors, resets, outages),
server-side rate limits announced in five header dialects, its change feed as event streams
(``GET /events`` server-sent events, ``GET /ws`` WebSocket; see ``interlock.testbed._streams``),
and trustworthy counters.

::

    async with Testbed(TestbedConfig(faults=Faults(error_rates={503: 0.2}))) as tb:
        ...  # call tb.url, then assert on tb.counters

    with spawn_testbed(cfg) as handle:   # in a child process, for benchmarks
        ...  # handle.url, handle.counters()

Admin API (never subject to faults): ``GET /_testbed/counters``, ``POST /_testbed/reset``,
``GET|POST /_testbed/config``, ``POST /_testbed/outage``, ``POST /_testbed/touch``,
``GET /_testbed/requests``, ``GET|POST /_testbed/streams`` (drop, stall, retry hints), ``GET /_testbed/records/{kind}/{id}``, ``GET /_testbed/health``.

The hostile upstream, under ``/_testbed/hostile/`` (never subject to faults): compression bombs,
large, trickling and corrupt bodies, unknown charsets, redirects anywhere, and an echo of what
arrived (see ``interlock.testbed._hostile``).
"""

from __future__ import annotations

from ._config import DIALECTS, Faults, Latency, Outage, RateLimitConfig, TestbedConfig
from ._counters import Counters, RecentRequest
from ._data import DataStore
from ._feed import Change, ChangeFeed
from ._server import Testbed
from ._spawn import SpawnedTestbed, spawn_testbed
from ._streams import StreamControl, StreamServer

__all__ = [
    "DIALECTS",
    "Change",
    "ChangeFeed",
    "Counters",
    "DataStore",
    "Faults",
    "Latency",
    "Outage",
    "RateLimitConfig",
    "RecentRequest",
    "SpawnedTestbed",
    "StreamControl",
    "StreamServer",
    "Testbed",
    "TestbedConfig",
    "spawn_testbed",
]
