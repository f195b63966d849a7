"""The service: ``interlock serve -c interlock.toml`` runs upstreams, webhook sources and syncs
from one config file, with an outbound proxy for callers in any language, an admin API and the
dashboard (``interlock.service.dashboard``).

Needs the ``service`` extra (pydantic, starlette, uvicorn).
"""

from __future__ import annotations

try:
    import pydantic  # noqa: F401
    import starlette  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        f"the Interlock service needs {exc.name}: pip install 'interlock[service]'"
    ) from None

from ._app import PauseGate, Service
from ._config import (
    ConfigFileError,
    LoadedConfig,
    ServiceConfig,
    config_schema,
    load_config,
    parse_config,
    resolve_handlers,
)

__all__ = [
    "ConfigFileError",
    "LoadedConfig",
    "PauseGate",
    "Service",
    "ServiceConfig",
    "config_schema",
    "load_config",
    "parse_config",
    "resolve_handlers",
]
