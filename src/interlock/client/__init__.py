"""The outbound face: ``Client`` (async) and ``SyncClient``."""

from ._client import Client
from ._config import Concurrency, Timeout
from ._options import Batch, Cache, CacheRule, RateLimit
from ._paginate import Paginator
from ._sync import SyncClient

__all__ = ["Batch", "Cache", "CacheRule", "Client", "Concurrency", "Paginator", "RateLimit", "SyncClient", "Timeout"]
