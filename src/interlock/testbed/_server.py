"""``Testbed``: the simulated API served on a loopback socket inside the caller's event loop."""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum
from types import TracebackType
from typing import Any, Final, Literal

from aiohttp import web

from ..errors import ConfigError
from ._app import TestbedApp
from ._config import Faults, RateLimitConfig, TestbedConfig
from ._counters import Counters, RecentRequest
from ._data import DataStore, Record
from ._streams import StreamServer

__all__ = ["UNSET", "Testbed"]


class _Unset(Enum):
    UNSET = "UNSET"


UNSET: Final = _Unset.UNSET


class Testbed:
    """The simulated third-party API, in-process.

    ``async with Testbed(cfg) as tb:`` binds ``host`` on ``port`` (0: a free port) and serves
    until the block ends. Everything here is synchronous and instant (no HTTP round trip): use it
    from the test that owns the event loop. For a server in another process, see
    ``spawn_testbed``.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        config: TestbedConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        shutdown_timeout: float = 0.5,
    ) -> None:
        if config is not None and not isinstance(config, TestbedConfig):
            raise ConfigError("Testbed", "config", f"must be a TestbedConfig, got {config!r}")
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ConfigError("Testbed", "port", f"must be 0..65535, got {port!r}")
        self._app = TestbedApp(config or TestbedConfig())
        self._host = host
        self._port = port
        self._shutdown_timeout = shutdown_timeout
        self._runner: web.ServerRunner | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind the socket and start serving (nothing when already started); ``OSError`` when the port is taken."""
        if self._runner is not None:
            return
        # access_log=None: per-request logging would cost more than the request itself.
        server = web.Server(self._app.handle, access_log=None)
        runner = web.ServerRunner(server, shutdown_timeout=self._shutdown_timeout)
        await runner.setup()
        site = web.TCPSite(
            runner,
            self._host,
            self._port,
            backlog=1024,
            reuse_address=True,
        )
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._port = int(runner.addresses[0][1])
        self._runner = runner

    async def aclose(self) -> None:
        """Stop serving and close the socket; safe to call twice."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Testbed:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- where -----------------------------------------------------------------------------

    @property
    def host(self) -> str:
        """The address the testbed binds."""
        return self._host

    @property
    def port(self) -> int:
        """The bound port (the free port picked when constructed with ``port=0``)."""
        return self._port

    @property
    def url(self) -> str:
        """``http://host:port`` of the running testbed; ``RuntimeError`` before it is started."""
        if self._runner is None:
            raise RuntimeError("the testbed is not started: use `async with Testbed(...)`")
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    @property
    def running(self) -> bool:
        """Whether it is serving now."""
        return self._runner is not None

    # -- observation -----------------------------------------------------------------------

    @property
    def config(self) -> TestbedConfig:
        """The current configuration (live changes included)."""
        return self._app.config

    @property
    def counters(self) -> Counters:
        """A snapshot of what the testbed has seen since start or ``reset_counters()``."""
        return self._app.stats.snapshot()

    def reset_counters(self) -> None:
        """Start the counters again from zero."""
        self._app.stats.reset()

    def recent(self, limit: int | None = None) -> list[RecentRequest]:
        """The last requests (up to 1000), oldest first."""
        return self._app.stats.recent_requests(limit)

    @property
    def streams(self) -> StreamServer:
        """The event streams (``GET /events``, ``GET /ws``): ``drop()``, ``stall(s)``,
        ``configure(retry_ms=..., drop_every=..., ignore_last_event_id=...)``, and what they saw
        (``connections``, ``resumed_from``)."""
        return self._app.streams

    @property
    def data(self) -> DataStore:
        """The records, for assertions (``tb.data.get("customers", 1)`` returns a copy)."""
        return self._app.data

    # -- control ---------------------------------------------------------------------------

    def configure(
        self,
        *,
        faults: Faults | _Unset | None = UNSET,
        rate_limit: RateLimitConfig | _Unset | None = UNSET,
        **live: Any,
    ) -> TestbedConfig:
        """Change the running testbed; the configuration now in force.

        ``faults`` (``None``: no faults; outage windows re-based on now), ``rate_limit`` (``None``: no
        limit; quotas start full), or another of ``TestbedConfig.LIVE_FIELDS`` (``max_age``,
        ``pagination_bug``, ...).
        """
        changes: dict[str, Any] = dict(live)
        if faults is not UNSET:
            changes["faults"] = faults
        if rate_limit is not UNSET:
            changes["rate_limit"] = rate_limit
        return self._app.configure(changes)

    def start_outage(self, duration: float) -> None:
        """Every resource request fails with ``faults.outage_status`` for ``duration`` s."""
        self._app.start_outage(duration)

    @property
    def outage_active(self) -> bool:
        """Whether an outage is on now (configured window or ``start_outage``)."""
        return self._app.outage_active()

    def touch(self, kind: str, ids: Iterable[int], updated_at: str | float | None = None) -> list[Record]:
        """Change records as the upstream would; copies of the touched records.

        The version goes up by one and ``updated_at`` is set (RFC 3339 string, epoch seconds, or
        now).
        """
        return self._app.touch(kind, list(ids), updated_at)

    def __repr__(self) -> str:
        state: Literal["running", "stopped"] = "running" if self.running else "stopped"
        where = self.url if self.running else f"{self._host}:{self._port}"
        cfg = self.config
        stats = self._app.stats
        limit = cfg.rate_limit.describe() if cfg.rate_limit else "none"
        outage = " OUTAGE" if self.running and self.outage_active else ""
        return (
            f"<Testbed {state}{outage} {where} kinds={','.join(cfg.kinds)} "
            f"records={cfg.records} requests={stats.requests} in_flight={stats.in_flight} "
            f"faults=[{cfg.faults.describe()}] rate_limit=[{limit}]"
            f"{f' pagination_bug={cfg.pagination_bug}' if cfg.pagination_bug else ''}>"
        )
