"""The outbound face: ``Client`` (async) and ``SyncClient``."""

from ._client import Client
from ._config import Concurrency, Timeout
from ._sync import SyncClient

__all__ = ["Client", "Concurrency", "SyncClient", "Timeout"]
