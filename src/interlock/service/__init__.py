"""The service: ``interlock serve -c interlock.toml`` runs upstreams, webhook sources and syncs
from one config file, with an outbound proxy for callers in any language and an admin API.

Needs the ``service`` extra (pydantic, starlette, uvicorn).
"""

from __future__ import annotations

from ._config import ConfigFileError, LoadedConfig, ServiceConfig, config_schema, load_config, parse_config

__all__ = ["ConfigFileError", "LoadedConfig", "ServiceConfig", "config_schema", "load_config", "parse_config"]
