"""The outbound face: ``Client`` (async) and ``SyncClient``."""

from ._client import Client
from ._config import Batch, Cache, CacheRule, Concurrency, RateLimit, Timeout
from ._paginate import Paginator
from ._sync import SyncClient

__all__ = ["Batch", "Cache", "CacheRule", "Client", "Concurrency", "Paginator", "RateLimit", "SyncClient", "Timeout"]
