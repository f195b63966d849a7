"""The outbound face: ``Client`` (async) and ``SyncClient``.

Every call goes through one pipeline, in this order::

    once per call      cache -> coalesce -> batch
    retry              runs the attempts, waits between them, gives up
    once per attempt   open breaker? -> credentials -> rate limit -> concurrency -> breaker ->
                       transport (and the redirects it is answered with, hop by hop, within the
                       same attempt: ``_follow``); a 401 refreshes the credentials and sends
                       once more
    the deadline       (``Timeout.total``) bounds all of it: waits for a turn, a slot, a retry

Why this order: the work-avoiding policies come first and run once, so a cache hit, a shared
flight or a batched read costs no attempt at all. Retry sits below them, so a retried call is
still one cache lookup and one coalesced flight. Each attempt then draws from the rate limit
first (retries spend the same quota as first tries), takes a concurrency slot only while it is
on the wire (not while it backs off) and is judged by the breaker, which sees every attempt. An
attempt the breaker would refuse anyway is refused before all of that ("open breaker?"), so
failing fast costs no quota turn; the breaker admits the attempt only after its turn, since it may
have opened meanwhile.

This docstring states the order; ``_pipeline.compose_pipeline`` is the one place that builds
it. Each stage's decisions are made by a sans-I/O object in ``interlock.core`` (freshness,
batching, retry, bucket, breaker); the modules in ``policies`` do the I/O around them.
"""

from ._client import Client, RequestOptions
from ._config import PROFILES, Batch, Cache, CacheRule, Concurrency, Limits, Profile, RateLimit, Timeout
from ._interactions import InteractionLog
from ._paginate import Paginator
from ._sync import SyncClient

__all__ = [
    "PROFILES",
    "Batch",
    "Cache",
    "CacheRule",
    "Client",
    "Concurrency",
    "InteractionLog",
    "Limits",
    "Paginator",
    "Profile",
    "RateLimit",
    "RequestOptions",
    "SyncClient",
    "Timeout",
]
