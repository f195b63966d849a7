"""GCRA (the Generic Cell Rate Algorithm, ITU-T I.371), sans-I/O: the arithmetic of the server
rate limit, shared line for line by the memory backend and the Redis Lua script.

A limit of ``limit`` requests per ``window`` seconds has an emission interval ``T = window /
limit``. Each key keeps one number, its theoretical arrival time ``tat``: the moment at which the
key's quota would be whole again. A request at ``now`` costing ``cost`` moves it to ``new_tat =
max(tat, now) + cost * T``; it is admitted when ``new_tat - window <= now`` (the burst fits in the
window). GCRA is exact and smooth: it is a token bucket of capacity ``limit`` refilled at one
token per ``T``, so over any interval of ``t`` seconds it admits at most ``limit + t / T`` (never
two full quotas a moment apart, as a fixed window does at its boundary), from a fresh key exactly
``limit`` within the first ``T`` seconds, and it keeps one number per key (no log of timestamps).

Several limits on one request (burst and daily) are checked together by ``check_all``: the request
is admitted only when every limit admits it, and a refused request consumes nothing from any.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Verdict", "check", "check_all"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one limit says about one request.

    ``remaining``: requests still admitted right now after this one; ``reset``: seconds until
    the whole quota is back; ``retry_after``: seconds until this request would be admitted (0 when
    admitted); ``tat``: the key's new theoretical arrival time to store (unchanged when refused).
    """

    allowed: bool
    remaining: int
    reset: float
    retry_after: float
    tat: float


def check(tat: float | None, now: float, *, limit: int, window: float, cost: int = 1) -> Verdict:
    """Decide one request against one limit. ``tat`` is the stored value (None: a fresh key)."""
    interval = window / limit
    base = now if tat is None or tat < now else tat
    new_tat = base + cost * interval
    allow_at = new_tat - window
    if allow_at > now + 1e-9:
        # Refused: nothing consumed; what is left is what the current tat leaves.
        remaining = max(0, math.floor((now - (base - window)) / interval + 1e-9))
        return Verdict(False, remaining, base - now, allow_at - now, base)
    remaining = max(0, math.floor((now - allow_at) / interval + 1e-9))
    return Verdict(True, remaining, new_tat - now, 0.0, new_tat)


def check_all(
    tats: list[float | None], now: float, limits: list[tuple[int, float]], cost: int = 1
) -> tuple[bool, list[Verdict]]:
    """Decide one request against several ``(limit, window)`` pairs at once: admitted only if all
    admit. When one refuses, every verdict keeps its old ``tat`` (nothing is consumed)."""
    verdicts = [
        check(tat, now, limit=limit, window=window, cost=cost)
        for tat, (limit, window) in zip(tats, limits, strict=True)
    ]
    allowed = all(v.allowed for v in verdicts)
    if not allowed:
        # A zero-cost check reports each admitting limit as it stands, leaving its tat as it was.
        verdicts = [
            v if not v.allowed else check(tat, now, limit=limit, window=window, cost=0)
            for v, tat, (limit, window) in zip(verdicts, tats, limits, strict=True)
        ]
    return allowed, verdicts
