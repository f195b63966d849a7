"""When a JWT verifier fetches its JSON Web Key Set again, without I/O.

Keys rotate: a provider publishes a new key (new ``kid``) and starts signing with it. So a
cached set is refetched when it is older than ``max_age``, and at once when a token names a
``kid`` the set does not hold, but such refetches happen at most once per ``min_interval``
seconds whatever the tokens say: a stream of tokens with made-up ``kid`` values must not turn
into a stream of requests to the provider. A failing fetch is not retried more often either.
"""

from __future__ import annotations

__all__ = ["should_refetch"]


def should_refetch(
    *,
    now: float,
    fetched_at: float | None,
    last_attempt: float | None,
    last_unknown: float | None,
    kid_known: bool,
    max_age: float,
    min_interval: float,
) -> bool:
    """Whether to fetch the key set now (monotonic seconds throughout).

    ``fetched_at``: the last successful fetch (None: never); ``last_attempt``: the last try,
    successful or not; ``last_unknown``: the last fetch an unknown ``kid`` caused;
    ``kid_known``: the token's ``kid`` is in the cached set.
    """
    failed_lately = last_attempt is not None and (fetched_at is None or last_attempt > fetched_at)
    if failed_lately and last_attempt is not None and now - last_attempt < min_interval:
        return False  # a failing provider is asked again once per interval, not per request
    if fetched_at is None or now - fetched_at >= max_age:
        return True
    if kid_known:
        return False
    return last_unknown is None or now - last_unknown >= min_interval
